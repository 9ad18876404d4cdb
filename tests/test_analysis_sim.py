"""The analyzers on simulator traces, against answers worked out independently of them.

Ground truth comes from outside the code under test: the workload's arithmetic (2*M*N*K FLOPs,
the bytes a tiled GEMM must move) and a hand calculation over the trace's raw intervals in plain
Python (sorted, merged, summed), not the simulator's own accounting nor any analysis helper.  The
predicted saving of deeper buffering is checked against a second, double-buffered simulation.
"""

from __future__ import annotations

import pytest

from analysis import run_all
from collectors.simulator.api import simulate
from collectors.simulator.workloads import Elementwise, Gemm
from profiler.hardware import load_spec

EDGE = load_spec("edge-npu")


def gemm(buffering: int):
    """fp16 GEMM whose 1024x1024x128 tiles take about as long to load as to multiply:
    single-buffered it alternates load and compute, double-buffered it hides the loads."""
    return simulate(Gemm(M=M, N=N, K=K, dtype="fp16", tile_m=TILE_M, tile_n=TILE_N, tile_k=TILE_K,
                         buffering=buffering), EDGE)


@pytest.fixture(scope="module")
def single():
    r = gemm(1)
    return r, run_all(r.trace, EDGE)


@pytest.fixture(scope="module")
def double():
    r = gemm(2)
    return r, run_all(r.trace, EDGE)


M = N = K = 2048
TILE_M, TILE_N, TILE_K, FP16 = 1024, 1024, 128, 2


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    """Length of a union of [start, end) intervals: sort, merge, sum (by hand, no numpy)."""
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0)


def _by_hand(trace) -> dict:
    """Busy time per engine, run span, DMA bytes and DMA-caused stall time from the raw rows."""
    tracks = {t["id"]: t for t in trace.tracks.to_pylist()}

    def path(tid: int) -> str:
        names = []
        while tid is not None:
            names.append(tracks[tid]["name"])
            tid = tracks[tid]["parent"]
        return " / ".join(reversed(names))

    rows = trace.slices.to_pylist()
    # An engine's stall is caused by DMA when what it waits for ("stall: wait load A") ran on a DMA queue.
    dma_ops = {r["name"] for r in rows if tracks[r["track"]]["kind"] == "dma" and r["category"] != "stall"}
    busy: dict[str, list[tuple[int, int]]] = {}
    stall_dma: dict[str, list[tuple[int, int]]] = {}
    starts, ends, dma_bytes = [], [], 0.0
    for r in rows:
        kind = tracks[r["track"]]["kind"]
        if kind not in ("compute", "dma"):
            continue
        iv = (r["ts"], r["ts"] + r["dur"])
        starts.append(iv[0])
        ends.append(iv[1])
        if r["category"] == "stall":
            if kind == "compute" and r["name"].removeprefix("stall: wait ") in dma_ops:
                stall_dma.setdefault(path(r["track"]), []).append(iv)
            continue
        if r["depth"] == 0:
            busy.setdefault(path(r["track"]), []).append(iv)
        if kind == "dma" and r["bytes"] is not None:
            dma_bytes += r["bytes"]
    return {"busy": {k: _union_ns(v) for k, v in busy.items()}, "total_ns": max(ends) - min(starts),
            "dma_bytes": dma_bytes, "stall_dma_ns": sum(_union_ns(v) for v in stall_dma.values())}  # engine-time


@pytest.mark.parametrize("which", ["single", "double"])
def test_utilization_matches_a_hand_calculation(which: str, request) -> None:
    r, rep = request.getfixturevalue(which)
    hand = _by_hand(r.trace)
    assert rep.summary["total_ns"] == hand["total_ns"]
    m = rep.results["utilization"].metrics
    assert len(m) == 6  # 2 matrix engines + 4 DMA queues (the idle vector engines hold no slices)
    assert {row.track_name: row.active_ns for row in m.itertuples(index=False)} == hand["busy"]
    u = rep.results["utilization"].summary
    # The workload's arithmetic: 2*M*N*K FLOPs; each of the (M/TM)*(N/TN) output tiles loads K/TK
    # tiles of A (TM x TK) and of B (TK x TN), and C is stored once, all fp16.
    flops = 2 * M * N * K
    moved = (M // TILE_M) * (N // TILE_N) * (K // TILE_K) * (TILE_M * TILE_K + TILE_K * TILE_N) * FP16 + M * N * FP16
    assert u["flops"] == pytest.approx(flops, rel=1e-9)
    assert hand["dma_bytes"] == moved and u["dram_bytes"] == pytest.approx(moved, rel=1e-9)
    assert rep.summary["mfu"] == pytest.approx(flops / EDGE.peak("fp16") / (hand["total_ns"] * 1e-9), rel=1e-9)
    assert rep.results["stalls"].summary["by_cause"].get("dma", 0) == hand["stall_dma_ns"]


def test_single_buffered_reports_bubbles_and_dma_stalls(single, double) -> None:
    r1, rep = single
    kinds = {f.kind: f for f in rep.findings}
    assert "dma_bubble" in kinds and "stall" in kinds
    stall = kinds["stall"]
    assert stall.details["cause"] == "dma" and "load" in stall.details["top_waits_for"]
    assert stall.details["engine_count"] == 2  # both cores, folded into one finding
    # The predicted saving of deeper buffering is what double buffering actually saved.
    r2, _ = double
    saved = r1.total_ns - r2.total_ns
    predicted = rep.results["dma_bubbles"].metrics["saving_ns"].max()
    assert predicted == pytest.approx(saved, rel=0.1)


def test_double_buffered_is_clean(double) -> None:
    _, rep = double
    kinds = {f.kind for f in rep.findings}
    assert "dma_bubble" not in kinds and "stall" not in kinds
    assert rep.summary["dma_bubble_pct"] < 1.0
    assert rep.summary["mfu"] > 0.85


def test_gemm_is_compute_bound_and_elementwise_memory_bound(double) -> None:
    _, rep = double
    mm = rep.results["roofline"].metrics.set_index("name").loc["matmul"]
    assert mm["bound"] == "compute" and mm["headroom"] == pytest.approx(1.0, rel=0.02)
    r = simulate(Elementwise(rows=2048, cols=2048, dtype="fp16"), EDGE)
    roof = run_all(r.trace, EDGE).results["roofline"].metrics.set_index("name")
    assert roof.loc["add", "bound"] == "memory"
    assert roof.loc["add", "ai"] < EDGE.vector_flops / EDGE.dram.bandwidth


def test_dma_bound_gemm_stalls_on_dma_without_bubbles() -> None:
    """Small 256^3 tiles make this GEMM DMA-bound even double-buffered: it stalls on DMA, but more
    buffers cannot help (the queues never idle), so there is no bubble finding."""
    r = simulate(Gemm(M=1024, N=1024, K=1024, dtype="fp16", tile_m=256, tile_n=256, tile_k=256, buffering=2), EDGE)
    rep = run_all(r.trace, EDGE)
    kinds = {f.kind: f for f in rep.findings}
    assert "stall" in kinds and kinds["stall"].details["cause"] == "dma"
    assert "dma_bubble" not in kinds
