"""Summary detail samples large GEMMs (collectors.simulator.sampling) and lands where full detail does.

The reference is the full event simulation of every instruction of the same op (what the summary
stands in for) and, for flops, the hand count 2*M*N*K.  Speed is measured by
``bench/bench_simulator.py`` (summary against full detail on the same op), not here.
"""

from __future__ import annotations

import json

import pytest

from collectors.simulator import Gemm, sampling, simulate, workload_from_name
from collectors.simulator.machine import SimOptions
from profiler.hardware import load_spec

EXACT = SimOptions(sample=False)


def _sampled_args(res) -> dict | None:
    args = json.loads(res.trace.slices.column("args")[0].as_py())
    return args.get("sampled")


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * abs(b)


# (workload, preset): large regular GEMMs that the summary samples
SAMPLED = [
    pytest.param(Gemm(M=4096, N=4096, K=4096, dtype="int8", tile_m=64, tile_n=64, tile_k=64), "edge-npu",
                 id="edge-npu-4096^3-int8-64tiles"),
    pytest.param(Gemm(M=512, N=8192, K=4096, dtype="bf16", tile_m=64, tile_n=64, tile_k=64), "h100-sxm",
                 id="h100-512x8192x4096-64tiles"),
]


@pytest.mark.parametrize("gemm,hw", SAMPLED)
def test_sampled_summary_lands_on_the_full_simulation(gemm: Gemm, hw: str) -> None:
    spec = load_spec(hw)
    full = simulate(gemm, spec)  # every instruction simulated and traced
    summ = simulate(gemm, spec, detail="summary")
    sampled = _sampled_args(summ)
    assert sampled is not None, "a GEMM this large is sampled at summary detail"
    # the summary simulated a small fraction of the op's instructions
    assert summ.stats["instructions"] * 1000 < full.stats["instructions"]
    assert sampled["instructions"] == full.stats["instructions"]
    # flops by hand: every multiply-add of the op, none lost or invented by the extrapolation
    assert summ.stats["flops"] == pytest.approx(2.0 * gemm.M * gemm.N * gemm.K, rel=1e-9)
    assert summ.stats["dram_bytes"] == pytest.approx(full.stats["dram_bytes"], rel=1e-6)
    assert _close(summ.total_ns, full.total_ns, 0.005)
    for kind, busy in full.stats["busy_ns_by_kind"].items():
        assert _close(summ.stats["busy_ns_by_kind"][kind], busy, 0.005), kind
    stall_full = sum(full.stats["stall_ns"].values())
    stall_summ = sum(summ.stats["stall_ns"].values())
    assert abs(stall_summ - stall_full) <= 0.01 * stall_full + 0.005 * full.total_ns
    assert summ.stats["stall_count"].keys() == full.stats["stall_count"].keys()
    for cause, n in full.stats["stall_count"].items():
        assert abs(summ.stats["stall_count"][cause] - n) <= 0.01 * n + 2, cause
    # one slice per engine of the op, as for any summary, each inside the op
    s = summ.trace.slices
    assert s.num_rows <= len(summ.trace.tracks)
    assert min(s.column("ts").to_pylist()) >= 0
    ends = [a + b for a, b in zip(s.column("ts").to_pylist(), s.column("dur").to_pylist(), strict=True)]
    assert max(ends) == summ.total_ns


def test_the_op_ends_where_its_steady_time_says_not_where_one_queue_extrapolates() -> None:
    """mi210 at 4.9 TB/s, 104 cores each streaming 256 k-steps: the op's time grows by the same
    2.57 us per k-step from the first few on, but which of a core's DMA queues takes the last
    transfer flips as the op grows, so one queue's last end, extended alone, overshot the op by
    6.7 %.  The whole op, every instruction simulated, is the reference."""
    spec = load_spec("mi210")
    g = Gemm(M=512, N=11008, K=4096, dtype="int8", split="n", tile_m=256, tile_n=105, tile_k=16)
    opts = SimOptions(dram_bandwidth=4.9e12)
    summ = simulate(g, spec, detail="summary", options=opts)
    exact = simulate(g, spec, detail="summary", options=SimOptions(dram_bandwidth=4.9e12, sample=False))
    assert _sampled_args(summ) is not None
    assert _close(summ.total_ns, exact.total_ns, 0.005)
    assert summ.stats["dram_bytes"] == pytest.approx(exact.stats["dram_bytes"], rel=1e-6)


def test_sampled_op_is_never_faster_than_its_roofline() -> None:
    spec = load_spec("edge-npu")
    g = Gemm(M=4096, N=4096, K=4096, dtype="int8", tile_m=64, tile_n=64, tile_k=64)
    summ = simulate(g, spec, detail="summary")
    assert _sampled_args(summ) is not None
    assert summ.total_ns >= 2.0 * g.M * g.N * g.K / spec.peak("int8") * 1e9
    assert summ.total_ns >= (g.M * g.K + g.K * g.N + g.M * g.N) / spec.dram.bandwidth * 1e9


def test_sample_false_simulates_every_instruction() -> None:
    spec = load_spec("edge-npu")
    g = Gemm(M=4096, N=4096, K=4096, dtype="int8", tile_m=64, tile_n=64, tile_k=64)
    exact = simulate(g, spec, detail="summary", options=EXACT)
    assert _sampled_args(exact) is None
    sampled = simulate(g, spec, detail="summary")
    # the sampled op's instruction count, extrapolated, is the count the exact run compiled
    assert _sampled_args(sampled)["instructions"] == exact.stats["instructions"] > 100 * sampled.stats["instructions"]


@pytest.mark.parametrize("workload,hw", [
    pytest.param(Gemm(M=1024, N=1024, K=1024, dtype="int8"), "edge-npu", id="small-gemm"),
    pytest.param(workload_from_name("llm-decode", layers=2), "edge-npu", id="decode-step"),
    # tiles sharing an L2 smaller than the operands: which loads hit depends on the whole order
    pytest.param(Gemm(M=4096, N=4096, K=4096, dtype="fp16", split="tiles", tile_m=128, tile_n=128, tile_k=32),
                 "mi210", id="gpu-tiles-through-l2"),
])
def test_ops_not_worth_or_not_safe_to_sample_are_exact(workload, hw: str) -> None:
    spec = load_spec(hw)
    summ = simulate(workload, spec, detail="summary")
    exact = simulate(workload, spec, detail="summary", options=EXACT)
    assert all(json.loads(a).get("sampled") is None for a in summ.trace.slices.column("args").to_pylist())
    assert summ.total_ns == exact.total_ns
    assert summ.stats["busy_ns"] == exact.stats["busy_ns"]


def test_no_steady_state_means_the_op_is_simulated_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tolerance nothing meets: every probe fails, and the summary is the exact one."""
    monkeypatch.setattr(sampling, "STEADY_TOL", -1.0)
    spec = load_spec("edge-npu")
    g = Gemm(M=2048, N=2048, K=2048, dtype="int8", tile_m=64, tile_n=64, tile_k=64)
    summ = simulate(g, spec, detail="summary")
    assert _sampled_args(summ) is None
    assert summ.total_ns == simulate(g, spec, detail="summary", options=EXACT).total_ns


def test_bilinear_extension_is_exact_on_a_bilinear_quantity() -> None:
    """Hand-made: q(t, s) = 5 + 2t + 3s + 7ts, known at the four corners, evaluated far away."""
    q = {(t, s): 5 + 2 * t + 3 * s + 7 * t * s for t in (2, 4) for s in (4, 8)}
    assert sampling._bilinear(q, (2, 4), (4, 8), 100, 64) == 5 + 200 + 192 + 7 * 100 * 64
    # one axis kept whole: linear in the other
    q1 = {(3, s): 1 + 10 * s for s in (4, 8)}
    assert sampling._bilinear(q1, (3,), (4, 8), 3, 50) == 501


def test_sample_is_a_set_option_of_the_cli(tmp_path) -> None:
    from click.testing import CliRunner

    from profiler.cli import cli
    from profiler.formats import read_trace

    out = tmp_path / "t.trace"
    args = ["simulate", "gemm", "--hw", "edge-npu", "--dtype", "int8", "--set", "M=2048", "--set", "N=2048",
            "--set", "K=2048", "--set", "tile_m=64", "--set", "tile_n=64", "--set", "tile_k=64",
            "--detail", "summary", "-o", str(out)]
    r1 = CliRunner().invoke(cli, args)
    assert r1.exit_code == 0, r1.output
    sampled = read_trace(out)
    r2 = CliRunner().invoke(cli, [*args, "--set", "sample=false"])
    assert r2.exit_code == 0, r2.output
    exact = read_trace(out)
    n_sampled = sampled.metadata.extra["simulator"]["instructions"]
    n_exact = exact.metadata.extra["simulator"]["instructions"]
    assert n_sampled * 20 < n_exact
    assert "sampled" in sampled.slices.column("args")[0].as_py()
    assert "sampled" not in exact.slices.column("args")[0].as_py()
    assert sampled.metadata.extra["simulator"]["sampled_ops"] == 1
    assert exact.metadata.extra["simulator"]["sampled_ops"] == 0
    assert "1 op(s) sampled" in r1.output and "sampled" not in r2.output


def test_a_long_vector_op_is_sampled_along_its_row_tiles() -> None:
    """262,144 rows of 8,192 fp16 on edge-npu: 2 cores stream 8,192 tiles of 16 rows each; the
    summary simulates a few tiles per core and lands on every instruction simulated."""
    from collectors.simulator.workloads import Elementwise

    spec = load_spec("edge-npu")
    v = Elementwise(rows=262_144, cols=8192, dtype="fp16")
    exact = simulate(v, spec, detail="summary", options=EXACT)
    summ = simulate(v, spec, detail="summary")
    sampled = _sampled_args(summ)
    assert sampled is not None and sampled["instructions"] == exact.stats["instructions"]
    assert summ.stats["instructions"] * 100 < exact.stats["instructions"]
    # by hand: one add per element; two inputs read and one output written, 2 bytes each
    assert summ.stats["flops"] == pytest.approx(262_144 * 8192, rel=1e-9)
    assert summ.stats["dram_bytes"] == pytest.approx(3 * 2 * 262_144 * 8192, rel=1e-9)
    assert _close(summ.total_ns, exact.total_ns, 0.005)
    assert summ.total_ns >= 3 * 2 * 262_144 * 8192 / spec.dram.bandwidth * 1e9


def test_an_irregular_vector_op_is_simulated_whole() -> None:
    """On a100-sxm 65,536 rows over 108 SMs leave some SMs a row short: the time per tile wanders
    by a few percent (no steady state), so the summary simulates every instruction."""
    from collectors.simulator.workloads import Elementwise

    spec = load_spec("a100-sxm")
    v = Elementwise(rows=65_536, cols=8192, dtype="fp16")
    summ = simulate(v, spec, detail="summary")
    assert _sampled_args(summ) is None
    assert summ.total_ns == simulate(v, spec, detail="summary", options=EXACT).total_ns
