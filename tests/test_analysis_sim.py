"""Ground truth from the simulator: its own accounting (metadata.extra["simulator"]) is the answer key."""

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
    return simulate(Gemm(M=2048, N=2048, K=2048, dtype="fp16", tile_m=1024, tile_n=1024, tile_k=128,
                         buffering=buffering), EDGE)


@pytest.fixture(scope="module")
def single():
    r = gemm(1)
    return r, run_all(r.trace, EDGE)


@pytest.fixture(scope="module")
def double():
    r = gemm(2)
    return r, run_all(r.trace, EDGE)


def _sim_name(track_name: str) -> str:
    """'edge-npu / core0 / matrix' -> 'core0.matrix' (the simulator's key)."""
    return ".".join(track_name.split(" / ")[1:])


@pytest.mark.parametrize("which", ["single", "double"])
def test_utilization_matches_simulator_accounting(which: str, request) -> None:
    r, rep = request.getfixturevalue(which)
    sim = r.trace.metadata.extra["simulator"]
    assert rep.summary["total_ns"] == pytest.approx(r.total_ns, rel=0.01)
    m = rep.results["utilization"].metrics
    assert len(m) == 6  # 2 matrix engines + 4 DMA queues (the idle vector engines hold no slices)
    for row in m.itertuples(index=False):
        assert row.active_ns == pytest.approx(sim["busy_ns"][_sim_name(row.track_name)], rel=0.01), row.track_name
    u = rep.results["utilization"].summary
    assert u["flops"] == pytest.approx(sim["flops"], rel=0.01)
    assert u["dram_bytes"] == pytest.approx(sim["dram_bytes"], rel=0.01)
    # MFU from the simulator's own numbers: FLOPs at the fp16 peak over the run time.
    assert rep.summary["mfu"] == pytest.approx(sim["flops"] / EDGE.peak("fp16") / (r.total_ns * 1e-9), rel=0.01)
    # explicit stalls on the matrix engines are the ones the simulator charges to DMA
    assert rep.results["stalls"].summary["by_cause"].get("dma", 0) == pytest.approx(sim["stall_ns"]["dma"], rel=0.01)


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
