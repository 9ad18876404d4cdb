"""Analyzers on small hand-built traces: every number below is worked out by hand in the comments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import intervals as iv
from analysis import roofline, run_all
from analysis.budget import BudgetError, evaluate
from analysis.context import AnalysisContext
from analysis.diff import diff
from analysis.report_schema import validate
from analysis.roles import infer_roles
from profiler import TraceBuilder
from profiler.hardware import load_spec

EDGE = load_spec("edge-npu")  # int8 peak 73.7e12 FLOP/s, dram 68e9 B/s, dma latency 500 ns x 34e9 B/s


def single_buffered() -> TraceBuilder:
    """Four tiles, load (100 ns) then compute (200 ns), nothing overlapped.

    dma0:  [0,100) [300,400) [600,700) [900,1000)     loads, 1000 B each; src A0 A1 A0 A1
    mxu:   [100,300) [400,600) [700,900) [1000,1200)   gemm, 1e6 int8 FLOPs, 1000 B each
           stall slices [300,400) [600,700) [900,1000) cause dma
    flows: load i -> gemm i
    """
    b = TraceBuilder(source_format="test", hardware="edge-npu")
    dev = b.add_track("npu0", kind="group", device="npu0")
    mxu = b.add_track("mxu", kind="compute", parent=dev)
    dma = b.add_track("dma0", kind="dma", parent=dev)
    t = 0
    for i in range(4):
        ld = b.add_slice(dma, t, 100, f"load {i}", bytes=1000, args={"src": f"A{i % 2}"})
        if i:
            b.add_slice(mxu, t, 100, "stall: wait load", category="stall", args={"cause": "dma"})
        c = b.add_slice(mxu, t + 100, 200, "gemm", flops=1e6, bytes=1000, dtype="int8")
        b.add_flow(ld, c)
        t += 300
    return b


@pytest.fixture(scope="module")
def report():
    return run_all(single_buffered().build(), EDGE)


def test_utilization_by_hand(report) -> None:
    u = report.results["utilization"]
    row = u.metrics.set_index("track_name").loc["npu0 / mxu"]
    assert row["active_ns"] == 800 and row["stalled_ns"] == 300
    assert row["busy_fraction"] == pytest.approx(800 / 1200)
    assert u.metrics.set_index("track_name").loc["npu0 / dma0", "active_ns"] == 400
    # MFU = 4e6 FLOP / 73.7e12 FLOP/s / 1200 ns; HFU divides by the 800 ns the MXU worked.
    assert report.summary["mfu"] == pytest.approx(4e6 / 73.7e12 / 1.2e-6)
    assert report.summary["hfu"] == pytest.approx(4e6 / 73.7e12 / 0.8e-6)
    # DRAM sees the DMA bytes: 4000 B in 1.2 us against 68 GB/s.
    assert report.summary["mbu"] == pytest.approx(4000 / 1.2e-6 / 68e9)
    # windows: 20 windows of 60 ns; the first [0,60) is all load, so the MXU is idle there.
    w = u.summary["windows"]["busy_fraction"]["npu0 / mxu"]
    assert len(w) == 20 and w[0] == 0.0 and w[2] == 1.0  # [120,180) is inside gemm 0


def test_stalls_cause_from_args_and_target_from_flows(report) -> None:
    s = report.results["stalls"]
    assert s.summary["stall_ns"] == 300
    assert s.summary["by_cause"] == {"dma": 300}
    assert s.summary["stall_pct"] == pytest.approx(25.0)
    # no waits_for arg: the flow into the gemm after each stall names the load
    assert sorted(s.metrics["waits_for"]) == ["npu0 / dma0: load 1", "npu0 / dma0: load 2", "npu0 / dma0: load 3"]
    f = [f for f in report.findings if f.kind == "stall"]
    assert len(f) == 1 and f[0].gain_ns == 300 and f[0].details["cause"] == "dma"


def test_dma_bubble_and_buffering_saving(report) -> None:
    m = report.results["dma_bubbles"].metrics.iloc[0]
    # exposed DMA = all 400 ns; the first load precedes any compute, so 300 ns starve compute.
    assert m["exposed_ns"] == 400 and m["starved_ns"] == 300
    # the queue idles during all 800 ns of compute; saving = min(300, 800) = 300 ns,
    # exactly what double buffering gives: 100 + 4 x 200 = 900 ns instead of 1200.
    assert m["dma_idle_while_compute_ns"] == 800 and m["saving_ns"] == 300
    assert report.summary["dma_bubble_pct"] == pytest.approx(25.0)
    assert any(f.kind == "dma_bubble" and f.gain_ns == 300 for f in report.findings)


def test_roofline_by_hand(report) -> None:
    m = report.results["roofline"].metrics
    assert list(m.columns) == roofline.METRIC_COLUMNS
    r = m.iloc[0]
    assert (r["name"], r["count"], r["total_ns"]) == ("gemm", 4, 800)
    assert r["ai"] == pytest.approx(1000.0)  # 1e6 FLOP / 1000 B
    assert r["achieved_flops"] == pytest.approx(4e6 / 800e-9)
    # ridge (int8, dram) = 73.7e12 / 68e9 = 1083.8 > 1000: memory-bound, roof 1000 * 68e9
    assert r["bound"] == "memory" and r["attainable_flops"] == pytest.approx(68e12)
    assert r["headroom"] == pytest.approx(68e12 / 5e12)


def test_roofline_ceilings_and_points() -> None:
    compute, memory, ridges = roofline.ceilings(EDGE, ["int8", "bfloat16"])
    assert compute == {"int8": 73.7e12}  # bf16 is not on this NPU
    assert memory == {"sram": 4.0e12, "dram": 68.0e9}
    assert ridges["int8"]["dram"] == pytest.approx(73.7e12 / 68e9)
    t = single_buffered().build()
    pts = roofline.points(t, EDGE, start_ns=350, end_ns=800)
    assert pts["ts"].tolist() == [400, 700]  # gemms overlapping [350, 800)
    assert (pts["bound"] == "memory").all()


def test_dma_efficiency_small_and_redundant(report) -> None:
    d = report.results["dma_efficiency"]
    assert d.summary["avg_bytes"] == 1000.0
    assert d.summary["small_transfer_bytes"] == pytest.approx(500e-9 * 34e9)  # latency x bandwidth
    assert d.summary["max_pending"] == 1
    assert d.summary["mean_pending"] == pytest.approx(400 / 1200)
    red = d.summary["redundant"]  # A0 and A1 each loaded twice: 2 x 1000 B and 2 x 100 ns extra
    assert red["tensors"] == 2 and red["bytes"] == 2000.0 and red["ns"] == 200
    kinds = {f.kind for f in report.findings}
    assert {"small_transfers", "redundant_load"} <= kinds


def test_overlap_breakdown(report) -> None:
    m = report.results["overlap"].metrics.set_index("track_name").loc["npu0 / mxu"]
    assert (m["compute_ns"], m["stalled_ns"], m["idle_ns"]) == (800, 300, 100)
    dev = report.results["overlap"].summary["devices"][0]
    assert dev["dma_ns"] == 400 and dev["dma_overlapped_ns"] == 0


def test_implicit_wait_on_dma_without_stall_slices() -> None:
    """No stall slices: the 150 ns gap before gemm 1 is attributed to the load it waits for."""
    b = TraceBuilder()
    mxu = b.add_track("mxu", kind="compute")
    dma = b.add_track("dma", kind="dma")
    g0 = b.add_slice(mxu, 0, 100, "gemm")
    ld = b.add_slice(dma, 50, 200, "load B")  # ends at 250
    g1 = b.add_slice(mxu, 250, 100, "gemm")
    b.add_flow(ld, g1)
    b.add_flow(g0, g1)
    s = run_all(b.build()).results["stalls"]
    assert s.summary["stall_ns"] == 150
    row = s.metrics.iloc[0]
    assert (row["kind"], row["cause"], row["waits_for"]) == ("implicit", "dma", "dma: load B")


def test_host_bound_gaps_from_launch_flows() -> None:
    """Kernel 2 is launched 300 ns after kernel 1 ends: a host-bound gap, not a device stall."""
    b = TraceBuilder()
    gpu = b.add_track("GPU 0", kind="group")
    stream = b.add_track("stream 7", kind="compute", parent=gpu)
    th = b.add_track("thread 1", kind="host")
    l1 = b.add_slice(th, 0, 50, "cudaLaunchKernel")
    k1 = b.add_slice(stream, 60, 100, "k1")  # ends 160
    l2 = b.add_slice(th, 400, 60, "cudaLaunchKernel")  # ends 460
    k2 = b.add_slice(stream, 470, 100, "k2")
    b.add_flow(l1, k1)
    b.add_flow(l2, k2)
    rep = run_all(b.build())
    g = rep.results["gaps"]
    row = g.metrics.iloc[0]
    assert row["gaps"] == 1 and row["gap_ns"] == 310
    assert row["host_bound_ns"] == 300  # from 160 until the launch returned at 460
    assert g.summary["host_bound_stretches"][0]["start_ns"] == 160
    assert rep.results["stalls"].summary["stall_ns"] == 0
    assert any(f.kind == "host_bound" for f in rep.findings)


def test_roles_inferred_for_foreign_tracks() -> None:
    b = TraceBuilder()
    gpu = b.add_track("GPU 0", kind="other")
    s7 = b.add_track("stream 7", kind="other", parent=gpu, attrs={"stream": 7})
    cp = b.add_track("stream 9", kind="other", parent=gpu, attrs={"stream": 9})
    th = b.add_track("thread 12 (python)", kind="other", attrs={"tid": 12})
    cnt = b.add_track("SRAM", kind="other")
    sync = b.add_track("stream 7 other", kind="other", parent=gpu, attrs={"stream": 7})
    b.add_slice(s7, 0, 10, "gemm_kernel", category="kernel")
    b.add_slice(cp, 0, 10, "Memcpy HtoD (Pageable -> Device)", category="gpu_memcpy")
    b.add_slice(th, 0, 10, "aten::mm", category="cpu_op")
    b.add_slice(sync, 0, 10, "cudaStreamSynchronize", category="cuda_sync")
    b.add_counter(cnt, 0, 1.0)
    roles = infer_roles(b.build())
    assert [roles[i] for i in (gpu, s7, cp, th, cnt, sync)] == ["group", "compute", "dma", "host", "counter", "other"]


def test_lanes_fold_into_their_engine() -> None:
    b = TraceBuilder()
    mxu = b.add_track("mxu", kind="compute")
    b.add_slice(mxu, 0, 100_000, "a")
    b.add_slice(mxu, 50_000, 100_000, "b")  # overlaps a by 50 us without nesting: moved to a lane
    t = b.build()
    assert t.tracks.num_rows == 2
    u = run_all(t).results["utilization"]
    assert len(u.metrics) == 1 and u.metrics.iloc[0]["active_ns"] == 150_000  # union [0, 150 us)


def test_flops_counted_once_through_nesting() -> None:
    """An op with flops enclosing a kernel with flops counts once; a bytes-only wrapper is no point."""
    b = TraceBuilder()
    th = b.add_track("thread 1", kind="host")
    b.add_slice(th, 0, 1000, "aten::linear", bytes=64)  # wrapper: bytes only
    b.add_slice(th, 100, 800, "aten::addmm", flops=2e6, bytes=64, dtype="fp32")
    b.add_slice(th, 200, 100, "inner", flops=1e6)  # inside addmm: not counted again
    b.add_slice(th, 2000, 100, "aten::copy_", bytes=4096)
    t = b.build()
    ctx = AnalysisContext(t)
    assert ctx.host_as_compute
    assert t.slices_df().loc[ctx.counted_flops, "name"].tolist() == ["aten::addmm"]
    r = run_all(t).results["roofline"].metrics
    assert sorted(r["name"]) == ["aten::addmm", "aten::copy_"]
    assert run_all(t).results["utilization"].summary["flops"] == 2e6


def test_diff_by_hand() -> None:
    def trace(gemm_ns: int, extra: str | None) -> TraceBuilder:
        b = TraceBuilder()
        mxu = b.add_track("mxu", kind="compute")
        b.add_slices(mxu, np.arange(10) * 100_000, np.full(10, gemm_ns), "gemm")
        b.add_slice(mxu, 2_000_000, 50_000, "softmax")
        if extra:
            b.add_slice(mxu, 3_000_000, 40_000, extra)
        return b

    base = trace(50_000, "old_op").build()
    new = trace(60_000, "new_op").build()
    d = diff(base, new, threshold_pct=5.0)
    m = d.metrics.set_index("name")
    assert m.loc["gemm", "base_ns"] == 500_000 and m.loc["gemm", "new_ns"] == 600_000
    assert m.loc["gemm", "delta_pct"] == pytest.approx(20.0) and m.loc["gemm", "status"] == "regressed"
    assert m.loc["softmax", "status"] == "same"
    assert m.loc["new_op", "status"] == "new" and m.loc["old_op", "status"] == "removed"
    assert d.summary["op_regression_pct_max"] == pytest.approx(20.0)
    assert d.summary["engine_regression_pct_max"] == pytest.approx(100 * (690_000 - 590_000) / 590_000)
    assert {f.kind for f in d.findings} == {"regression", "new_op"}
    assert diff(base, base).summary["op_regression_pct_max"] == 0.0


def test_report_json_matches_schema_and_budgets(report) -> None:
    from analysis.render import report_to_dict

    results = evaluate({"mfu_min": 0.5, "stall_pct_max": 30, "max_findings_severity": "critical"}, report.summary)
    assert [r.passed for r in results] == [False, True, True]
    doc = json.loads(json.dumps(report_to_dict(report, results), allow_nan=False))
    assert validate(doc) == []
    assert doc["passed"] is False and doc["summary"]["total_ns"] == 1200
    broken = dict(doc, summary={**doc["summary"], "mfu": "high"})
    assert validate(broken)  # the validator does reject a wrong type
    with pytest.raises(BudgetError, match="needs a baseline"):
        evaluate({"op_regression_pct_max": 5}, report.summary)


def test_finding_ids_are_stable(report) -> None:
    again = run_all(single_buffered().build(), EDGE)
    assert [f.id for f in again.findings] == [f.id for f in report.findings]


def test_empty_trace_does_not_crash() -> None:
    b = TraceBuilder()
    b.add_track("mxu", kind="compute")
    rep = run_all(b.build(), EDGE)
    assert rep.summary["total_ns"] == 0 and rep.findings == []


# ---------------------------------------------------------------- intervals
spans = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=25)


def _mask(pairs: list[tuple[int, int]]) -> np.ndarray:
    m = np.zeros(260, dtype=bool)
    for s, d in pairs:
        m[s:s + d] = True
    return m


def _set(pairs: list[tuple[int, int]]) -> iv.Intervals:
    s = np.array([p[0] for p in pairs], dtype=np.int64)
    e = np.array([p[0] + p[1] for p in pairs], dtype=np.int64)
    keep = e > s
    return iv.merge(s[keep], e[keep])


@settings(max_examples=60, deadline=None)
@given(spans, spans)
def test_interval_algebra_matches_a_bitmap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    ma, mb = _mask(a), _mask(b)
    A, B = _set(a), _set(b)
    assert iv.total(A) == ma.sum()
    assert iv.overlap_total(A, B) == (ma & mb).sum()
    assert iv.total(iv.intersect(A, B)) == (ma & mb).sum()
    assert iv.total(iv.subtract(A, B)) == (ma & ~mb).sum()
    assert iv.total(iv.complement(A, 0, 260)) == (~ma).sum()
    edges = np.array([0, 37, 100, 260])
    assert iv.per_window(A, edges).tolist() == [int(ma[lo:hi].sum()) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
