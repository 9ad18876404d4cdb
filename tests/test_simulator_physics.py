"""Per-instruction physics of the simulator: no compute slice beats the roofline of the memory it reads.

Every matmul/vector slice carries its SRAM operand traffic in ``bytes``; its achieved FLOP/s must
stay under both the engine's peak share (per dtype, per core) and ``AI x`` the core's share of
SRAM bandwidth.  Durations are whole nanoseconds (start and end each rounded), so a slice's true
duration can be up to 1 ns longer than its ``dur``: the checks use ``dur + 1``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from collectors.simulator import Gemm, LlmDecodeStep, ModelConfig, SimOptions, simulate, workload_from_name
from collectors.simulator.machine import Machine
from profiler.hardware import HardwareSpec, load_spec

EDGE = load_spec("edge-npu")
A100 = load_spec("a100-sxm")

SMALL = {
    "gemm": dict(M=256, N=256, K=256), "conv2d": dict(height=16, width=16),
    "elementwise": dict(rows=256, cols=256), "layernorm": dict(rows=256, cols=256),
    "softmax": dict(rows=256, cols=256), "attention": dict(seq_len=128, heads=2),
    "flash-attention": dict(seq_len=256, heads=2),
    "transformer-prefill": dict(seq_len=64, hidden=256, ffn=512, heads=4),
    "transformer-decode": dict(seq_len=256, hidden=256, ffn=512, heads=4), "cnn-encoder": dict(image=32),
    "llm-decode": dict(layers=2, seq_len=128, hidden=256, ffn=512, heads=4),
}


def _compute_slices(trace) -> pd.DataFrame:
    df = trace.slices_df()
    # an op's fixed costs (launch, host dispatch) are slices without FLOPs or bytes
    comp = df[df.category.isin(["matmul", "vector"]) & ~df.track_name.isin(["launch", "host"])].copy()
    assert len(comp) > 0
    assert (comp.bytes > 0).all() and (comp.flops >= 0).all()
    comp["achieved"] = comp.flops / ((comp.dur + 1) * 1e-9)  # +1: nanosecond rounding (module docstring)
    return comp


def _assert_under_roofs(trace, spec: HardwareSpec, options: SimOptions | None = None) -> pd.DataFrame:
    """Every compute slice: achieved <= its engine's peak share and <= AI x SRAM bandwidth share."""
    m = Machine(spec, options)
    comp = _compute_slices(trace)
    mat = comp.category == "matmul"
    peak = np.where(mat, [spec.peak(d) / spec.cores if k else 0.0 for d, k in zip(comp.dtype, mat, strict=True)],
                    spec.vector_flops / spec.cores)
    over_peak = comp[comp.achieved > peak * (1 + 1e-9)]
    assert over_peak.empty, over_peak[["name", "flops", "bytes", "dur", "dtype"]].head()
    ai = comp.flops / comp.bytes
    sram_roof = ai * m.sram_bw
    over_sram = comp[comp.achieved > sram_roof * (1 + 1e-9)]
    assert over_sram.empty, over_sram[["name", "flops", "bytes", "dur", "dtype"]].head()
    return comp


@pytest.mark.parametrize("dtype", ["int8", "fp16"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_compute_slice_is_under_its_peak_and_sram_roofs(name: str, dtype: str) -> None:
    w = workload_from_name(name, **{k: str(v) for k, v in SMALL[name].items()})
    r = simulate(w, EDGE, dtype=dtype)
    _assert_under_roofs(r.trace, EDGE)


@pytest.mark.parametrize("name", ["gemm", "flash-attention", "transformer-decode"])
def test_roofs_hold_in_systolic_mode_and_without_an_array(name: str) -> None:
    w = workload_from_name(name, **{k: str(v) for k, v in SMALL[name].items()})
    opts = SimOptions(systolic=True)
    _assert_under_roofs(simulate(w, EDGE, dtype="int8", options=opts).trace, EDGE, opts)
    opts = SimOptions(cores=2)  # two SMs of an A100: no [systolic] section, so no array factor
    _assert_under_roofs(simulate(w, A100, dtype="fp16", options=opts).trace, A100, opts)


def test_llm_decode_sample_gemv_tiles_are_bound_by_array_rows_and_sram() -> None:
    """The LLM decode sample's batch-1 GEMV tiles (AI ~2): one row of the 96x96 array is busy, and
    no tile comes near the engine's full peak any more."""
    from sample_traces.regenerate import simulator_workloads

    r = simulate(simulator_workloads()["transformer_decode_edge"], EDGE)
    comp = _assert_under_roofs(r.trace, EDGE)
    gemv = comp[comp.name == "matmul"]
    assert len(gemv) > 50
    ai = gemv.flops / gemv.bytes
    assert ai.between(1.5, 2.5).all(), ai.describe()
    per_core = EDGE.peak("int8") / EDGE.cores
    assert (gemv.achieved <= per_core / 96 * (1 + 1e-9)).all()
    # the slowest phase of the run is still streaming weights from DRAM (the array is not the limit)
    assert r.stats["dram_bytes"] / (r.total_ns * 1e-9) >= 0.9 * EDGE.dram.bandwidth


def test_gemv_tile_time_is_the_slower_of_array_rows_and_sram_streaming() -> None:
    """A GEMV tile lasts max(flops / (peak x min(m,rows)/rows x min(n,cols)/cols), bytes / SRAM share)."""
    g = Gemm(M=1, N=4096, K=4096, dtype="int8", split="none")
    per_core = EDGE.peak("int8") / EDGE.cores
    for opts, sram_bw in ((SimOptions(), EDGE.sram.bandwidth / EDGE.cores),
                          (SimOptions(sram_bandwidth=20e9), 20e9)):  # slow SRAM: streaming binds instead
        r = simulate(g, EDGE, options=opts)
        df = r.trace.slices_df()
        mm = df[df.category == "matmul"]
        tm, tn, tk = json.loads(mm.args.iloc[0])["tile"]
        assert tm == 1
        util = min(tn, 96) / 96 / 96
        want = np.maximum(mm.flops / (per_core * util), mm.bytes / sram_bw) * 1e9
        assert np.abs(mm.dur - want).max() <= 1.0
        if opts.sram_bandwidth:
            assert (mm.bytes / sram_bw * 1e9 > mm.flops / (per_core * util) * 1e9).all()


def test_array_utilization_formula() -> None:
    m = Machine(EDGE)
    assert m.array_utilization(1, 96) == pytest.approx(1 / 96)
    assert m.array_utilization(48, 24) == pytest.approx(0.5 * 0.25)
    assert m.array_utilization(96, 4096) == 1.0 and m.array_utilization(4096, 256) == 1.0
    assert Machine(A100).array_utilization(1, 1) == 1.0  # no array described: peak as given
    # an array size set in the options counts too
    assert Machine(EDGE, SimOptions(systolic_rows=32, systolic_cols=32)).array_utilization(16, 64) == 0.5
    # compute-bound tiles keep the whole peak: a 256x256x256 int8 tile lasts flops / peak share
    per_core = EDGE.peak("int8") / EDGE.cores
    assert m.matmul_ns(256, 256, 256, "int8", 2 * 256 * 256) == pytest.approx(2 * 256**3 / per_core * 1e9)


def test_llm_decode_7b_layer_gemvs_stay_memory_bound_with_the_array_factor() -> None:
    """With one array row busy a 7B decode layer is still DRAM-bound on the edge NPU (384 GFLOP/s per
    core of GEMV throughput needs 192 GB/s of weights, the DRAM gives 34 GB/s per core)."""
    r = simulate(LlmDecodeStep(ModelConfig.llama7b(layers=1, dtype="int8")), EDGE)
    assert r.stats["dram_bytes"] / (r.total_ns * 1e-9) >= 0.9 * EDGE.dram.bandwidth
