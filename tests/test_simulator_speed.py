"""Simulator levels of detail and the fast paths: summary agrees with full detail, the placed
schedule agrees with one event loop, the trace is handed over in canonical order.

Speed itself is measured by ``bench/bench_simulator.py`` (events per second, summary vs full).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from collectors.simulator import (
    Attention,
    Elementwise,
    Gemm,
    LlmDecodeStep,
    ModelConfig,
    SimulatorError,
    simulate,
    workload_from_name,
)
from profiler.hardware import load_spec

EDGE = load_spec("edge-npu")
H100 = load_spec("h100-sxm")

CASES = [
    pytest.param(Gemm(M=1024, N=1024, K=2048, dtype="int8", tile_m=128, tile_n=128, tile_k=256, buffering=1), EDGE,
                 id="gemm-buf1-edge"),
    pytest.param(Gemm(M=512, N=512, K=4096, dtype="int8", split="k", tile_m=128, tile_n=128, tile_k=256), EDGE,
                 id="gemm-split-k-edge"),
    pytest.param(Attention(seq_len=512, heads=4, flash=True, tile_q=64, tile_kv=64, dtype="fp16"), EDGE,
                 id="flash-attention-edge"),
    pytest.param(LlmDecodeStep(ModelConfig(layers=3, hidden=512, heads=8, ffn=1024, seq_len=256, dtype="int8")), EDGE,
                 id="decode-3-layers-edge"),
    pytest.param(workload_from_name("transformer-prefill", seq_len=64, hidden=256, ffn=512, heads=4), H100,
                 id="prefill-h100"),
]


def _engine_totals(trace) -> tuple[dict[str, int], float, float, int]:
    """Busy ns per engine track, flops, bytes and the end of the last slice, read off a trace."""
    df = trace.slices_df()
    work = df[df.category != "stall"]
    key = work.track_name.astype(str) + "@" + work.track.astype(str)
    busy = work.groupby(key)["dur"].sum().astype(int).to_dict()
    return busy, float(work.flops.fillna(0).sum()), float(work.bytes.fillna(0).sum()), int((df.ts + df.dur).max())


@pytest.mark.parametrize("workload,spec", CASES)
def test_summary_detail_has_the_full_runs_totals(workload, spec) -> None:
    full = simulate(workload, spec)
    summ = simulate(workload, spec, detail="summary")
    # accounting: identical but for the event count and the level of detail
    strip = {"events", "detail"}
    assert {k: v for k, v in summ.stats.items() if k not in strip} == {
        k: v for k, v in full.stats.items() if k not in strip}
    assert (full.stats["detail"], summ.stats["detail"]) == ("full", "summary")
    assert summ.total_ns == full.total_ns
    # read off the traces themselves: full = per-instruction slices, summary = per-op slices
    busy_f, flops_f, bytes_f, end_f = _engine_totals(full.trace)
    s = summ.trace.slices_df()
    assert s.category.isin(["matmul", "vector", "dma"]).all()
    args = [json.loads(a) for a in s.args]
    busy_s: dict[str, int] = {}
    for name, track, a in zip(s.track_name.astype(str), s.track, args, strict=True):
        busy_s[f"{name}@{track}"] = busy_s.get(f"{name}@{track}", 0) + a["busy_ns"]
        assert "op" in a and a["instructions"] >= 1
    assert busy_s == busy_f
    assert float(s.flops.fillna(0).sum()) == pytest.approx(flops_f, rel=1e-12)
    assert float(s.bytes.fillna(0).sum()) == pytest.approx(bytes_f, rel=1e-12)
    assert int((s.ts + s.dur).max()) == end_f == full.total_ns
    # one slice per op per engine, a slice never shorter than the work in it
    assert not s.duplicated(["track", "name"]).any() or isinstance(workload, LlmDecodeStep)
    assert (s.dur >= np.asarray([a["busy_ns"] for a in args])).all()
    assert summ.trace.num_events < full.trace.num_events / 5
    summ.trace.validate()


def test_summary_of_a_large_gemm_obeys_the_roofline_by_hand() -> None:
    M, N, K = 8192, 8192, 4096
    spec = load_spec("dojo-tile")
    r = simulate(Gemm(M=M, N=N, K=K, dtype="bf16"), spec, detail="summary")
    flops = 2.0 * M * N * K
    assert r.stats["matrix_flops"] == flops
    # bf16 operands in and the bf16 result out at least once through DRAM
    min_bytes = 2.0 * (M * K + K * N + M * N)
    assert r.stats["dram_bytes"] >= min_bytes
    roof_ns = max(flops / spec.peak("bf16"), min_bytes / spec.dram.bandwidth) * 1e9
    assert r.total_ns >= roof_ns
    # every matrix engine's busy time is at least its flops at the per-core peak (each of its
    # instructions' durations is rounded to the nanosecond: up to half a nanosecond each)
    s = r.trace.slices_df()
    mat = s[s.category == "matmul"]
    assert len(mat) > 1
    per_core_peak = spec.peak("bf16") / spec.cores
    for flops_i, a in zip(mat.flops, mat.args, strict=True):
        got = json.loads(a)
        assert got["busy_ns"] + 0.5 * got["instructions"] >= flops_i / per_core_peak * 1e9


def test_detail_must_be_full_or_summary() -> None:
    with pytest.raises(SimulatorError, match="detail"):
        simulate(Gemm(M=64, N=64, K=64, dtype="int8"), EDGE, detail="tiles")


def test_cli_detail_option_and_set(tmp_path) -> None:
    from profiler.cli import cli
    from profiler.formats import read_trace

    runner = CliRunner()
    outs = {}
    for extra in (["--detail", "summary"], ["--set", "detail=summary"], []):
        out = tmp_path / f"g{len(outs)}.trace"
        r = runner.invoke(cli, ["simulate", "gemm", "--hw", "edge-npu", "--dtype", "int8", "--set", "M=512",
                                *extra, "-o", str(out)])
        assert r.exit_code == 0, r.output
        outs[" ".join(extra) or "full"] = read_trace(out)
    a, b, full = outs.values()
    assert a.metadata.extra["simulator"]["detail"] == b.metadata.extra["simulator"]["detail"] == "summary"
    assert a.slices.num_rows == b.slices.num_rows < full.slices.num_rows
    assert a.metadata.extra["simulator"]["total_ns"] == full.metadata.extra["simulator"]["total_ns"]
    r = runner.invoke(cli, ["simulate", "gemm", "--set", "detail=tiles", "-o", str(tmp_path / "x.trace")])
    assert r.exit_code == 2 and "detail" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("workload,spec", CASES[1:])
def test_stall_waits_for_is_the_slice_that_ended_the_wait(workload, spec) -> None:
    """A stalled instruction starts when the dependency it waited for ends, to the nanosecond."""
    df = simulate(workload, spec).trace.slices_df()
    st = df[df.category == "stall"]
    assert len(st) > 0
    ids = np.asarray([json.loads(a)["waits_for"] for a in st.args])
    names = [json.loads(a)["waits_for_name"] for a in st.args]
    assert (df.id.to_numpy() == np.arange(len(df))).all()
    prod = df.loc[ids]
    assert (prod.ts.to_numpy() + prod.dur.to_numpy() == st.ts.to_numpy() + st.dur.to_numpy()).all()
    assert list(prod.name.astype(str)) == names
    assert (prod.category != "stall").all()


def test_placed_ops_give_the_stalls_of_one_event_loop_over_the_whole_program() -> None:
    """Ops simulated on their own clocks and placed end to end: the cross-op stalls (which
    instruction ended the wait) are those of a single event loop over the whole program."""
    from collectors.simulator.engine import run, simulate_segment
    from collectors.simulator.program import Segment

    w = workload_from_name("transformer-prefill", seq_len=64, hidden=256, ffn=512, heads=4)
    prog = simulate(w, H100).program
    f = prog.flat()
    whole = Segment()
    whole.rows.extend(zip(f["engine"], f["kind"], f["name"], f["flops"], f["nbytes"], f["dur"], f["deps"],
                          f["alloc"], f["alloc_core"], f["route"], f["dtype"], strict=True))
    for i, (b, c) in enumerate(zip(f["free"], f["free_core"], strict=True)):
        if b:
            whole.frees[i] = [b, c]
    one = simulate_segment(whole, prog, prog.machine, compiled=False)
    placed = run(prog, prog.machine)

    def stalls(r) -> set[tuple[int, int, int, int]]:
        # Left out: waits from time 0 (the one loop treats each engine's first instruction as its
        # stream head and records no stall for it) and waits under 2 ns (t0 + local time and the
        # absolute time may round apart by one nanosecond).
        s, e = np.rint(r.stall_start).astype(int), np.rint(r.stall_end).astype(int)
        k = (e - s >= 2) & (r.stall_start > 0)
        return set(zip(r.stall_engine[k].tolist(), s[k].tolist(), e[k].tolist(), r.stall_by[k].tolist(),
                       strict=True))

    assert len(stalls(one)) > 100
    assert stalls(one) == stalls(placed)


def test_compiled_and_python_loops_place_a_many_core_program_identically() -> None:
    pytest.importorskip("numba")
    from collectors.simulator import engine

    w = workload_from_name("transformer-prefill", seq_len=64, hidden=256, ffn=512, heads=4)
    prog = simulate(w, H100).program
    saved = engine.USE_COMPILED
    try:
        engine.USE_COMPILED = False
        for s in prog.segments:
            s.timing = None
        py = engine.run(prog, prog.machine)
        engine.USE_COMPILED = True
        for s in prog.segments:
            s.timing = None
        nb = engine.run(prog, prog.machine)
    finally:
        engine.USE_COMPILED = saved
    for name in ("start", "end", "stall_engine", "stall_start", "stall_end", "stall_by", "sram_core", "sram_ts",
                 "sram_val", "bw_ts", "bw_val"):
        assert np.array_equal(getattr(py, name), getattr(nb, name)), name
    assert py.sram_peak == nb.sram_peak


def test_compiled_loop_once_loaded_serves_small_programs_too() -> None:
    pytest.importorskip("numba")
    from collectors.simulator import engine

    prog = simulate(Gemm(M=512, N=512, K=512, dtype="int8", tile_m=64, tile_n=64, tile_k=64), EDGE).program
    seg = prog.segments[0]
    assert len(seg) >= engine.COMPILED_MIN_INSTRUCTIONS
    engine.simulate_segment(seg, prog, prog.machine, compiled=True)  # loads the compiled loop
    assert engine.use_compiled(100)  # loaded: no import cost left to avoid
    saved = engine.USE_COMPILED
    try:
        engine.USE_COMPILED = False
        assert not engine.use_compiled(10**9)
    finally:
        engine.USE_COMPILED = saved


def test_python_loop_time_past_the_import_cost_switches_to_the_compiled_loop(monkeypatch) -> None:
    from collectors.simulator import engine

    monkeypatch.setattr(engine, "_compiled_loaded", lambda: False)
    monkeypatch.setattr(engine, "_python_loop_s", 0.0)
    assert not engine.use_compiled(100)
    # a long program of the Python loop counts its time; past the import cost it is worth loading
    prog = simulate(Gemm(M=512, N=512, K=512, dtype="int8", tile_m=64, tile_n=64, tile_k=64), EDGE).program
    engine.simulate_segment(prog.segments[0], prog, prog.machine, compiled=False)
    assert engine._python_loop_s > 0
    monkeypatch.setattr(engine, "_python_loop_s", engine.COMPILED_AFTER_PYTHON_S)
    assert engine.use_compiled(100)


def test_released_rows_leave_the_same_program() -> None:
    """simulate() frees the row tuples after the run; columns and listings read the same after."""
    from collectors.simulator.api import compile_workload
    from collectors.simulator.machine import Machine

    w = LlmDecodeStep(ModelConfig(layers=2, hidden=512, heads=8, ffn=1024, seq_len=256, dtype="int8"))
    prog = compile_workload(w, Machine(EDGE))
    before = prog.flat()
    lens = [len(s) for s in prog.segments]
    streams = prog.streams()
    kept = {k: list(v) for k, v in before.items()}
    after_sim = simulate(w, EDGE).program
    assert all(len(s.rows) == 0 for s in after_sim.segments)
    assert [len(s) for s in after_sim.segments] == lens
    assert {k: list(v) for k, v in after_sim.flat().items()} == kept
    assert after_sim.streams() == streams


def test_large_elementwise_summary_moves_every_byte() -> None:
    r = simulate(Elementwise(rows=8192, cols=4096, dtype="fp16"), EDGE, detail="summary")
    assert r.stats["dram_bytes"] == 3 * 8192 * 4096 * 2
    assert r.total_ns >= r.stats["dram_bytes"] / EDGE.dram.bandwidth * 1e9


def test_device_track_tree_is_built_once_per_layout_and_identical() -> None:
    """The track tree is cached per device layout: a later trace gets the same tracks a fresh
    build gives, and a different layout (fewer cores) gets its own."""
    from collectors.simulator import tracegen
    from collectors.simulator.machine import SimOptions

    tracegen._TRACK_TREES.clear()
    g = Gemm(M=256, N=256, K=256, dtype="int8")
    first = simulate(g, EDGE).trace.tracks
    assert len(tracegen._TRACK_TREES) == 1
    again = simulate(g, EDGE, detail="summary").trace.tracks
    assert again.equals(first)
    one_core = simulate(g, EDGE, options=SimOptions(cores=1)).trace.tracks
    assert len(tracegen._TRACK_TREES) == 2
    assert one_core.num_rows < first.num_rows
    tracegen._TRACK_TREES.clear()
    assert simulate(g, EDGE).trace.tracks.equals(first)


def test_builder_start_tracks_needs_an_empty_builder() -> None:
    from profiler import TraceBuilder

    a = TraceBuilder()
    dev = a.add_track("dev", kind="group")
    a.add_track("x", kind="compute", parent=dev)
    b = TraceBuilder()
    b.start_tracks(a.track_rows())
    assert b.add_track("y", kind="compute", parent=dev) == 2
    assert b.track_info(2)["sort_index"] == 1  # after x among dev's children
    with pytest.raises(ValueError, match="no tracks"):
        b.start_tracks(a.track_rows())
