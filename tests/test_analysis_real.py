"""Analyzers on real traces: a torch.profiler CPU run made here, and GPU Kineto traces from real jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import run_all
from analysis.context import COMM, AnalysisContext
from analysis.diff import diff
from profiler.formats import read_trace
from profiler.hardware import load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parent
A100 = load_spec("a100-sxm")


def kineto(name: str) -> Path:
    for d in (ROOT / "data" / "kineto", Path("/work/shared/data/kineto")):
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} is not available")


# ------------------------------------------------------------ PyTorch CPU trace
CPU_SPEC = spec_from_dict({
    "name": "test-cpu", "description": "a small CPU, figures for the test only", "clock_hz": 3e9, "cores": 2,
    "peak_flops": {"fp32": 2.0e11}, "memory": [{"name": "dram", "bandwidth": 2.0e10, "capacity": 8e9}],
    "dma": {"engines": 1, "bandwidth": 1e10},
})
ITERS, BATCH, D_IN, D_HID = 3, 32, 128, 256


@pytest.fixture(scope="module")
def cpu_trace(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D_IN, D_HID), torch.nn.ReLU(), torch.nn.Linear(D_HID, D_IN))
    x = torch.randn(BATCH, D_IN)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(ITERS):
            model(x)
    path = tmp_path_factory.mktemp("cpu") / "cpu.pt.trace.json"
    prof.export_chrome_trace(str(path))
    return read_trace(path)


def test_cpu_trace_host_threads_are_the_engines(cpu_trace) -> None:
    rep = run_all(cpu_trace, CPU_SPEC)
    ctx = AnalysisContext(cpu_trace, CPU_SPEC)
    assert ctx.host_as_compute and ctx.engine_ids["compute"]
    roof = rep.results["roofline"].metrics.set_index("name")
    # Each Linear is one addmm of 2 * batch * d_in * d_hid FLOPs, counted once (not again in aten::linear).
    assert roof.loc["aten::addmm", "count"] == 2 * ITERS
    assert roof.loc["aten::addmm", "flops"] == pytest.approx(2 * ITERS * 2 * BATCH * D_IN * D_HID)
    assert "aten::linear" not in roof.index
    assert rep.summary["mfu"] is not None and 0 < rep.summary["mfu"] < 1
    assert rep.results["utilization"].summary["flops"] == pytest.approx(2 * ITERS * 2 * BATCH * D_IN * D_HID)
    assert 0 < rep.summary["compute_active_pct"] <= 100


# ----------------------------------------------------------- GPU Kineto traces
def test_alexnet_gpu_waits_on_host_launches() -> None:
    rep = run_all(read_trace(kineto("a100_alexnet.json.gz")), A100)
    ctx_roles = {r.track_name: r.role for r in rep.results["utilization"].metrics.itertuples()}
    assert ctx_roles["GPU 0 / stream 7"] == "compute" and ctx_roles["GPU 0 / stream 7 memcpy"] == "dma"
    top = rep.findings[0]
    assert top.kind == "host_bound" and top.track_name == "GPU 0 / stream 7"
    assert rep.summary["mfu"] is None  # kernels carry no FLOP counts: unknown, not 0%
    assert rep.results["gaps"].summary["host_bound_stretches"]


def test_v100_busy_stream_has_no_utilization_finding() -> None:
    rep = run_all(read_trace(kineto("v100_ns_resolution.json.gz")), load_spec("a100-sxm"))
    assert rep.summary["compute_active_pct"] > 90
    assert not [f for f in rep.findings if f.kind == "low_utilization" and f.track_name == "GPU 0 / stream 7"]


def test_nccl_trace_exposed_communication() -> None:
    tr = read_trace(kineto("a100_nccl_2ranks_rank0.json.gz"))
    rep = run_all(tr, A100)
    ctx = AnalysisContext(tr)
    assert (ctx.slice_class == COMM).sum() > 0
    dev = rep.results["overlap"].summary["devices"][0]
    assert dev["comm_ns"] > 0 and 0 <= dev["comm_overlapped_ns"] <= dev["comm_ns"]
    f = [f for f in rep.findings if f.kind == "exposed_communication"]
    assert f and f[0].gain_ns == dev["comm_exposed_ns"]


def test_amd_trace_without_spec() -> None:
    rep = run_all(read_trace(kineto("amd_mi250_minitoy_train.json.gz")), None)
    assert rep.summary["mfu"] is None and rep.summary["hardware"] is None
    assert (rep.results["roofline"].metrics["bound"] == "unknown").all()
    assert rep.findings


def test_kineto_diff_pair() -> None:
    base = read_trace(kineto("compare_base.json.gz"))
    new = read_trace(kineto("compare_test.json.gz"))
    d = diff(base, new, threshold_pct=5.0, min_delta_ns=1)
    m = d.metrics.set_index("name")
    add_int = [n for n in m.index if "CUDAFunctor_add<int>" in n]
    assert add_int and m.loc[add_int[0], "base_ns"] == 12_000 and m.loc[add_int[0], "new_ns"] == 8_000
    assert m.loc[add_int[0], "status"] == "improved"
    assert d.summary["engines"]


def test_temporal_breakdown_agrees_with_hta(tmp_path) -> None:
    """Our per-GPU idle/compute/non-compute split against HolisticTraceAnalysis on the same trace.

    HTA drops the last profiler iteration when it reads a trace, so absolute times differ; the
    shares of the span agree within a percentage point or so.
    """
    pytest.importorskip("hta")
    import logging
    import shutil

    from hta.trace_analysis import TraceAnalysis

    src = kineto("a100_rank3_of8.json.gz")
    shutil.copy(src, tmp_path / src.name)
    logging.disable(logging.WARNING)
    try:
        hta = TraceAnalysis(trace_dir=str(tmp_path)).get_temporal_breakdown(visualize=False).iloc[0]
    finally:
        logging.disable(logging.NOTSET)
    ours = run_all(read_trace(src), analyzers=("overlap",)).results["overlap"].summary["devices"][0]
    for k in ("idle", "compute", "non_compute"):
        assert ours[f"{k}_pct"] == pytest.approx(hta[f"{k}_time_pctg"], abs=1.5), k
