"""The simulator against real silicon: the measured A100 table, GPU headline rates, the roofline.

Ground truth: ``tests/data/measured_a100`` -- kernel times measured on a real A100 80GB and
published with the LLMCompass paper (BSD-3-Clause, see the LICENSE there; units in its README).
Headline rates: cuBLAS-class large-GEMM and streaming rates from public reports (issue bounds).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from collectors.simulator import Elementwise, Gemm, LayerNorm, SimOptions, Softmax, simulate
from collectors.simulator.calibrate import llmcompass_rows, simulate_ns, workload_for
from collectors.simulator.machine import Machine
from collectors.simulator.mapper import choose_gemm
from profiler.hardware import load_spec

DATA = Path(__file__).parent / "data" / "measured_a100"
A100 = load_spec("a100-sxm")
H100 = load_spec("h100-sxm")


def test_every_measured_a100_row_within_bounds() -> None:
    """Mean absolute error <= 10 % per op family, no row off by more than 35 %."""
    rows = llmcompass_rows(DATA)
    assert len(rows) == 20 + 22 + 22 + 20
    errs: dict[str, list[float]] = {}
    worst = []
    for r in rows:
        e = simulate_ns(A100, workload_for(r)) / r.latency_ns - 1
        errs.setdefault(r.op, []).append(abs(e))
        worst.append((abs(e), r.label()))
    for fam, es in errs.items():
        assert sum(es) / len(es) <= 0.10, (fam, sum(es) / len(es))
    assert max(worst)[0] <= 0.35, max(worst)


@pytest.mark.parametrize(("spec", "lo", "hi"), [(H100, 0.65, 0.85), (A100, 0.80, 0.95)])
def test_large_bf16_gemm_lands_where_cublas_does(spec, lo, hi) -> None:
    r = simulate(Gemm(M=8192, N=8192, K=8192), spec, dtype="bf16",
                 options=SimOptions(flows=False, counters=False))
    frac = 2 * 8192**3 / (r.total_ns * 1e-9) / spec.peak("bf16")
    assert lo <= frac <= hi, frac
    # every SM computes (the old default split left 131 of 132 idle)
    busy = [v for k, v in r.stats["busy_ns"].items() if k.endswith(".matrix")]
    assert len(busy) == spec.cores and min(busy) > 0.5 * max(busy)
    # the chosen mapping is recorded in the trace metadata
    maps = r.trace.metadata.extra["simulator"]["mappings"]
    assert maps[0]["split"] == "tiles" and maps[0]["how"] == "model"


@pytest.mark.parametrize("spec", [H100, A100])
def test_large_elementwise_reaches_80_to_95_percent_of_dram(spec) -> None:
    w = Elementwise(rows=65536, cols=8192, dtype="bf16")
    frac = 3 * 65536 * 8192 * 2 / (simulate_ns(spec, w) * 1e-9) / spec.dram.bandwidth
    assert 0.80 <= frac <= 0.95, frac


def _roofline_ns(stats, spec, dtype) -> float:
    return max(stats["matrix_flops"] / spec.peak(dtype), stats["dram_bytes"] / spec.dram.bandwidth) * 1e9


@pytest.mark.parametrize("spec", [A100, H100], ids=["a100", "h100"])
@pytest.mark.parametrize("w", [Gemm(M=2048, N=2048, K=2048), Gemm(M=64, N=4096, K=4096), Gemm(M=1, N=4096, K=4096),
                               Softmax(rows=4096, cols=4096), LayerNorm(rows=1024, cols=8192),
                               Elementwise(rows=8192, cols=4096)])
def test_no_gpu_run_is_faster_than_its_roofline(spec, w) -> None:
    r = simulate(w, spec, dtype="fp16", options=SimOptions(flows=False, counters=False))
    # DRAM bytes are at least every distinct operand once (the cache never creates bytes)
    if isinstance(w, Gemm):
        assert r.stats["dram_bytes"] >= (w.M * w.K + w.K * w.N + w.M * w.N) * 2 * (1 - 1e-9)
    assert r.total_ns >= _roofline_ns(r.stats, spec, "fp16")


def test_shared_l2_means_cores_no_longer_each_load_all_of_a() -> None:
    """Dojo's tile SRAM and a GPU's L2 serve repeated operand reads: DRAM moves about A + B + C."""
    dojo = load_spec("dojo-tile")
    g = Gemm(M=3072, N=2048, K=1536, dtype="bf16")
    r = simulate(g, dojo, options=SimOptions(flows=False, counters=False))
    once = (3072 * 1536 + 1536 * 2048 + 3072 * 2048) * 2
    assert r.stats["dram_bytes"] <= 1.05 * once
    frac = 2 * 3072 * 2048 * 1536 / (r.total_ns * 1e-9) / dojo.peak("bf16")
    assert frac > 0.15, frac  # memory-bound at 4 TB/s: the roofline allows ~27 %
    assert r.total_ns >= _roofline_ns(r.stats, dojo, "bf16")


def test_fixed_costs_make_small_ops_take_the_launch_time() -> None:
    """A tiny op costs max(host, launch + work): the measured A100 floor of ~13-50 us per call."""
    t = A100.timing
    ns = simulate_ns(A100, Softmax(rows=32, cols=32, dtype="fp16"))
    assert ns >= max(t.host("softmax"), t.launch("softmax"))
    assert ns <= max(t.host("softmax"), t.launch("softmax")) + 5_000


def test_systolic_array_larger_than_the_specs_keeps_its_own_peak() -> None:
    """A 128x128 array computes at its own 128x128 rate, not capped at edge-npu's 96x96 peak."""
    edge = load_spec("edge-npu")
    m = Machine(edge, SimOptions(systolic=True, systolic_rows=128, systolic_cols=128))
    from collectors.simulator.systolic import systolic_tile_cycles

    cycles = systolic_tile_cycles(512, 512, 512, 128, 128, "os")
    # (rel 1e-3: the spec rounds the 96x96 array's int8 peak to 73.7 TOPS)
    assert m.matmul_compute_ns(512, 512, 512, "int8") == pytest.approx(cycles / edge.clock_hz * 1e9, rel=1e-3)


def test_mapper_modes_and_explicit_fields() -> None:
    g = Gemm(M=4096, N=4096, K=4096, dtype="fp16")
    fast = choose_gemm(Machine(A100), g)
    off = choose_gemm(Machine(A100, SimOptions(mapper="off")), g)
    # without a mapper the old rule (split N only when N >= 64 x cores) leaves 107 of 108 SMs idle
    assert fast.split == "tiles" and off.split == "none" and off.how == "rules"
    # explicit fields win: the split, tile sizes, buffering and loop order given are kept
    mine = choose_gemm(Machine(A100), Gemm(M=4096, N=4096, K=4096, dtype="fp16", split="tiles", tile_m=64,
                                           buffering=2, loop_order="nmk"))
    assert (mine.split, mine.tm, mine.buffering, mine.order) == ("tiles", 64, 2, "nmk")
    legacy = choose_gemm(Machine(A100), Gemm(M=4096, N=4096, K=4096, dtype="fp16", split="m"))
    assert legacy.split == "m"
    # search simulates the model's best few and keeps the fastest: never slower than fast's choice
    s = choose_gemm(Machine(A100, SimOptions(mapper="search")), Gemm(M=2048, N=1024, K=1024, dtype="fp16"))
    assert s.how == "search" and s.sim_ns is not None
    f = choose_gemm(Machine(A100), Gemm(M=2048, N=1024, K=1024, dtype="fp16"))
    from collectors.simulator.calibrate import simulate_ns as sim

    f_ns = sim(A100, Gemm(M=2048, N=1024, K=1024, dtype="fp16", split="tiles", tile_m=f.tm, tile_n=f.tn,
                          tile_k=f.tk, buffering=f.buffering, loop_order=f.order))
    assert s.sim_ns <= f_ns * (1 + 1e-9)
    # cached: the same op, spec and options give the very same object
    assert choose_gemm(Machine(A100), g) is fast


def test_mapper_estimate_tracks_the_event_simulation() -> None:
    """The analytic model the mapper ranks by stays near what the simulation then measures."""
    for M, N, K in ((8192, 8192, 8192), (512, 12288, 12288), (8192, 1024, 1024)):
        g = Gemm(M=M, N=N, K=K, dtype="fp16")
        mp = choose_gemm(Machine(A100), g)
        ns = simulate_ns(A100, g)
        assert math.isclose(mp.est_ns, ns, rel_tol=0.15), (M, N, K, mp.est_ns, ns)


def test_transformer_layer_on_a100_projections_and_attention_use_every_sm() -> None:
    """A 7B-class prefill layer: projections at cuBLAS-class rates, FlashAttention-class attention
    (query tiles dealt to the SMs when heads are fewer than SMs); decode-time vector ops pay the
    launch and dispatch cost a real call does (they used to simulate 7x faster than measured)."""
    from collectors.simulator import Attention, ModelConfig, TransformerBlock
    from collectors.simulator.workloads import expand

    cfg = ModelConfig(layers=1, hidden=4096, heads=32, ffn=11008, seq_len=1024, dtype="fp16", act_dtype="fp16")
    peak = A100.peak("fp16")
    for op in expand(TransformerBlock(cfg, "prefill"), "fp16", "fp16"):
        if isinstance(op, Gemm):
            assert op.split == "auto"
            rate = 2 * op.M * op.N * op.K / (simulate_ns(A100, op) * 1e-9)
            assert 0.45 * peak <= rate <= peak, (op.label, rate / peak)  # 1024 rows: 2 waves of tiles
    a = Attention(batch=1, heads=32, seq_len=1024, head_dim=128, dtype="fp16")
    r = simulate(a, A100, options=SimOptions(flows=False, counters=False))
    busy = [v for k, v in r.stats["busy_ns"].items() if k.endswith(".matrix")]
    assert sum(1 for b in busy if b > 0) == A100.cores
    rate = 4 * 1024 * 1024 * 128 * 32 / (r.total_ns * 1e-9)
    assert 0.35 * peak <= rate <= peak, rate / peak
    for op in expand(TransformerBlock(cfg, "decode"), "fp16", "fp16"):
        if not isinstance(op, Gemm | Attention):
            assert simulate_ns(A100, op) >= A100.timing.host(op.kind)
    # tensor parallelism over cores stays available as an explicit choice
    tensor = expand(TransformerBlock(cfg, "decode", parallel="tensor"), "fp16", "fp16")
    assert [op.split for op in tensor if isinstance(op, Gemm)] == ["n", "k", "n", "k"]
