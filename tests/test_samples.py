"""The bundled samples still load and still produce the findings sample_traces/README.md promises."""

from __future__ import annotations

import pytest

import analysis
from profiler import read_trace
from profiler.hardware import load_spec
from sample_traces import HERE, default_sample


def _report(name: str, hw: str | None = "edge-npu") -> analysis.Report:
    trace = read_trace(HERE / name)
    assert trace.metadata.import_stats.events_dropped == 0
    return analysis.run_all(trace, load_spec(hw) if hw else None)


def _kinds(report: analysis.Report) -> set[str]:
    return {f.kind for f in report.findings}


def test_every_sample_is_described_in_the_readme() -> None:
    readme = (HERE / "README.md").read_text()
    files = [p.name for p in HERE.iterdir() if p.suffix in (".pftrace", ".gz", ".json")]
    assert len(files) >= 6
    for name in files:
        assert f"`{name}`" in readme, name
    assert default_sample().exists()


def test_single_buffered_gemm_has_dma_bubbles_and_dma_stalls() -> None:
    r = _report("gemm_single_buffered.pftrace")
    assert {"dma_bubble", "stall"} <= _kinds(r)
    stall = next(f for f in r.findings if f.kind == "stall")
    assert "dma" in stall.title
    assert 0.35 < r.summary["mfu"] < 0.5


def test_double_buffered_gemm_has_no_bubbles_and_is_faster() -> None:
    single = _report("gemm_single_buffered.pftrace")
    double = _report("gemm_double_buffered.pftrace")
    assert "dma_bubble" not in _kinds(double)
    assert double.summary["stall_pct"] <= 25
    assert double.summary["total_ns"] < 0.7 * single.summary["total_ns"]
    assert double.summary["mfu"] > 0.6


def test_transformer_decode_is_memory_bound() -> None:
    r = _report("transformer_decode_edge.pftrace")
    assert r.summary["mbu"] > 0.9
    assert {"low_utilization", "stall"} <= _kinds(r)


def test_cnn_encoder_has_small_transfers() -> None:
    r = _report("cnn_encoder_edge.pftrace")
    assert {"small_transfers", "stall"} <= _kinds(r)


def test_torch_cpu_trace_has_real_ops_with_flops() -> None:
    r = _report("torch_cpu_mlp.pt.trace.json.gz", hw=None)
    roof = r.results["roofline"].metrics.set_index("name")
    assert roof.loc["aten::conv2d", "flops"] > 0 and roof.loc["aten::addmm", "flops"] > 0
    assert roof.loc["aten::addmm", "count"] == 6  # two Linear layers x 3 steps


def test_onnxruntime_sample_has_gaps_and_conv_flops() -> None:
    r = _report("onnxruntime_cnn.pftrace", hw=None)
    assert {"engine_gaps", "low_utilization"} <= _kinds(r)
    roof = r.results["roofline"].metrics.set_index("name")
    for conv in ("conv1", "conv2", "conv3"):
        assert roof.loc[conv, "flops"] > 0 and roof.loc[conv, "count"] == 3


def test_scalesim_sample_layers_are_memory_bound() -> None:
    r = _report("scalesim_gemm.pftrace")
    mem = [f for f in r.findings if f.kind == "memory_bound_kernel"]
    assert {f.subject for f in mem} >= {"gemm0", "gemm1"}
    assert "stall" in _kinds(r)


@pytest.mark.parametrize("stem", ["gemm_single_buffered", "gemm_double_buffered", "cnn_encoder_edge"])
def test_simulator_samples_are_not_stale(stem: str) -> None:
    """The bundled simulator samples equal what regenerate.py's workloads produce today."""
    from sample_traces.regenerate import simulate_sample

    bundled = read_trace(HERE / f"{stem}.pftrace")
    fresh = simulate_sample(stem)
    assert fresh.slices.num_rows == bundled.slices.num_rows
    assert fresh.time_span() == bundled.time_span()
    assert fresh.slices["name"].to_pylist() == bundled.slices["name"].to_pylist()
