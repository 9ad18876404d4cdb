"""The accelerator simulator: physics (roofline, peak, bandwidth), buffering, SRAM, trace shape."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from collectors.simulator import (
    Attention,
    CnnEncoder,
    Conv2d,
    Elementwise,
    Gemm,
    LayerNorm,
    LlmDecodeStep,
    ModelConfig,
    SimOptions,
    SimulatorError,
    Softmax,
    TransformerBlock,
    simulate,
    workload_from_name,
)
from profiler.errors import ProfilerError
from profiler.hardware import load_spec

EDGE = load_spec("edge-npu")


def _roofline_ns(stats: dict, spec, dtype: str) -> float:
    """Lower bound: all matrix FLOPs at peak, vector FLOPs at the vector rate, DRAM bytes at full bandwidth."""
    compute = stats["matrix_flops"] / spec.peak(dtype) + stats["vector_flops"] / spec.vector_flops
    memory = stats["dram_bytes"] / spec.dram.bandwidth
    return max(compute, memory) * 1e9


def _stalls(trace, track_name: str, buffering_cause: str = "dma"):
    df = trace.slices_df()
    return df[(df.track_name == track_name) & (df.category == "stall")]


def test_large_gemm_double_buffered_reaches_90_percent_of_peak() -> None:
    r = simulate(Gemm(M=4096, N=4096, K=8192, dtype="int8", buffering=2), EDGE)
    achieved = r.stats["flops"] / (r.total_ns * 1e-9)
    assert achieved >= 0.90 * EDGE.peak("int8")
    assert r.total_ns >= _roofline_ns(r.stats, EDGE, "int8")
    # the matrix engines were busy for the flops they did at their peak rate
    per_core_peak = EDGE.peak("int8") / EDGE.cores
    busy = r.stats["busy_ns"]["core0.matrix"] + r.stats["busy_ns"]["core1.matrix"]
    assert busy == pytest.approx(r.stats["matrix_flops"] / per_core_peak * 1e9, rel=1e-3)


def test_large_elementwise_reaches_90_percent_of_dram_bandwidth() -> None:
    r = simulate(Elementwise(rows=8192, cols=4096, dtype="fp16"), EDGE)
    bw = r.stats["dram_bytes"] / (r.total_ns * 1e-9)
    assert bw >= 0.90 * EDGE.dram.bandwidth
    assert r.stats["dram_bytes"] == 3 * 8192 * 4096 * 2  # two inputs in, one output back
    assert r.total_ns >= _roofline_ns(r.stats, EDGE, "fp16")
    # the DRAM counter never reports more than the DRAM can give
    c = r.trace.counters_df()
    bw_track = int(r.trace.tracks_df().query("name == 'DRAM bandwidth'")["id"].iloc[0])
    assert c[c.track == bw_track]["value"].max() <= EDGE.dram.bandwidth * (1 + 1e-9)


@pytest.mark.parametrize("workload,dtype", [
    (Gemm(M=512, N=768, K=384, dtype="int8"), "int8"),
    (Gemm(M=1, N=4096, K=4096, dtype="int8"), "int8"),
    (Gemm(M=300, N=200, K=100, dtype="fp16", split="k"), "fp16"),
    (Softmax(rows=512, cols=1024), "fp16"),
    (LayerNorm(rows=256, cols=4096), "fp16"),
])
def test_no_run_beats_its_roofline(workload, dtype) -> None:
    r = simulate(workload, EDGE, dtype=dtype)
    assert r.total_ns >= _roofline_ns(r.stats, EDGE, dtype)
    assert r.stats["flops"] > 0


def test_buffering_depth_one_stalls_on_dma_and_two_removes_them() -> None:
    # fast DRAM so that the tiles are compute-bound: then only buffering decides the stalls
    fast = SimOptions(dram_bandwidth=2e12, dma_bandwidth=1e12)
    g = Gemm(M=512, N=512, K=4096, dtype="int8", tile_m=256, tile_n=256, tile_k=256)
    one = simulate(dataclasses.replace(g, buffering=1), EDGE, options=fast)
    two = simulate(g, EDGE, options=fast)
    s1 = _stalls(one.trace, "matrix")
    s2 = _stalls(two.trace, "matrix")
    dma1 = s1[s1.name.str.startswith("stall: wait load")]
    dma2 = s2[s2.name.str.startswith("stall: wait load")]
    # depth 1: the matrix engine waits for every tile's load; depth 2: only at pipeline fill
    assert len(dma1) > 10 * EDGE.cores
    assert len(dma2) <= 2 * EDGE.cores
    assert dma2["dur"].sum() < 0.1 * dma1["dur"].sum()
    assert two.total_ns < one.total_ns
    for r in (one, two):
        args = [json.loads(a) for a in _stalls(r.trace, "matrix")["args"]]
        assert all(a["cause"] == "dma" for a in args)
        # waits_for names a DMA slice (builder id == instruction id for instructions)
        df = r.trace.slices_df()
        dma_ids = set(df[df.category == "dma"].index)
        assert all(a["waits_for_name"].startswith("load") for a in args)
        assert len(dma_ids) > 0
        # flows go from DMA slices to the compute slices that consumed them
        fl = r.trace.flows_df()
        assert len(fl) > 0
        assert (df.loc[fl.from_slice, "category"].values == "dma").all()
        assert (df.loc[fl.to_slice, "category"].values != "dma").all()
        assert (df.loc[fl.from_slice, "ts"].values + df.loc[fl.from_slice, "dur"].values
                <= df.loc[fl.to_slice, "ts"].values).all()
    # stall accounting in metadata matches the stall slices
    st = two.trace.slices_df()
    st = st[st.category == "stall"]
    total = sum(two.stats["stall_ns"].values())
    assert int(st["dur"].sum()) == total


def test_sram_counter_never_exceeds_capacity_and_tile_too_large_is_an_error() -> None:
    opts = SimOptions(sram_bytes=4 * 2**20)
    r = simulate(Gemm(M=2048, N=2048, K=2048, dtype="int8"), EDGE, options=opts)
    tr = r.trace.tracks_df()
    sram = tr[tr.name == "SRAM"]["id"].tolist()
    c = r.trace.counters_df()
    vals = c[c.track.isin(sram)]["value"]
    assert vals.max() <= 4 * 2**20
    assert vals.max() == r.stats["peak_sram_bytes"] > 0
    assert c[c.track.isin(sram)].groupby("track")["value"].last().eq(0).all()  # everything released
    with pytest.raises(SimulatorError, match="SRAM"):
        simulate(Gemm(M=2048, N=2048, K=2048, dtype="int8", tile_m=2048, tile_n=2048, tile_k=512), EDGE, options=opts)
    with pytest.raises(SimulatorError, match="dtype"):
        simulate(Gemm(M=64, N=64, K=64), EDGE, dtype="bf16")
    with pytest.raises(ProfilerError, match="buffering"):
        simulate(Gemm(M=64, N=64, K=64, buffering=4), EDGE, dtype="int8")


def test_trace_shape_tracks_slices_metadata() -> None:
    r = simulate(Gemm(M=256, N=256, K=512, dtype="int8"), EDGE)
    t = r.trace
    t.validate()
    md = t.metadata
    assert md.source_format == "simulator" and md.clock == "simulated" and md.hardware == "edge-npu"
    tr = t.tracks_df()
    eng = tr[tr["attrs"].notna() & tr["attrs"].str.contains("\"engine\"")]
    attrs = [json.loads(a) for a in eng["attrs"]]
    assert sorted({a["engine"] for a in attrs}) == ["dma", "matrix", "vector"]
    assert sum(a["engine"] == "dma" for a in attrs) == EDGE.cores * EDGE.dma.engines
    assert set(eng[eng.kind == "dma"].name) == {"dma0", "dma1"}
    # engine tracks sit under a core group under the device group
    groups = tr[tr.kind == "group"]
    assert {"edge-npu", "core0", "core1"} <= set(groups.name)
    df = t.slices_df()
    comp = df[df.category.isin(["matmul", "vector"])]
    assert comp.flops.notna().all() and comp.bytes.notna().all() and comp.dtype.notna().all()
    dma = df[df.category == "dma"]
    assert dma.bytes.notna().all()
    a0 = [json.loads(a) for a in dma.args]
    assert {(a["src"], a["dst"]) for a in a0} == {("dram", "sram"), ("sram", "dram")}
    # accounting: busy ns per engine and totals match the slices (what analyzers will recompute)
    extra = md.extra["simulator"]
    assert extra["flops"] == pytest.approx(comp.flops.sum())
    assert extra["bytes"] == pytest.approx(dma.bytes.sum())
    assert extra["flops"] == 2 * 256 * 256 * 512
    for track_name, group in (("matrix", "core0"), ("dma1", "core1")):
        tid = int(tr[(tr.name == track_name) & (tr.parent == int(groups[groups.name == group].id.iloc[0]))].id.iloc[0])
        work = df[(df.track == tid) & (df.category != "stall")]["dur"].sum()
        assert extra["busy_ns"][f"{group}.{track_name}"] == work
    assert r.total_ns == t.time_span()[1]
    assert r.total_cycles == round(r.total_ns * EDGE.clock_hz / 1e9)


def test_tensor_parallel_split_k_moves_partials_between_cores() -> None:
    r = simulate(Gemm(M=256, N=512, K=2048, dtype="int8", split="k", tile_m=128, tile_n=256, tile_k=256), EDGE)
    df = r.trace.slices_df()
    sends = df[df.name == "send partial"]
    assert len(sends) > 0
    routes = {(a["src"], a["dst"]) for a in map(json.loads, sends.args)}
    assert routes <= {("sram:core0", "sram:core1"), ("sram:core1", "sram:core0")} and len(routes) == 2
    assert (df.name == "reduce partials").sum() == len(sends)
    assert r.stats["peer_bytes"] == pytest.approx(sends.bytes.sum())
    assert r.stats["flops"] == pytest.approx(2 * 256 * 512 * 2048 + sends.bytes.sum() / 4)


@pytest.mark.parametrize("name", [
    "gemm", "conv2d", "elementwise", "layernorm", "softmax", "attention", "flash-attention",
    "transformer-prefill", "transformer-decode", "cnn-encoder", "llm-decode",
])
def test_every_workload_runs_to_a_valid_trace(name) -> None:
    small = {
        "gemm": dict(M=256, N=256, K=256), "conv2d": dict(height=16, width=16),
        "elementwise": dict(rows=256, cols=256), "layernorm": dict(rows=256, cols=256),
        "softmax": dict(rows=256, cols=256), "attention": dict(seq_len=128, heads=2),
        "flash-attention": dict(seq_len=256, heads=2), "transformer-prefill": dict(seq_len=64, hidden=256, ffn=512, heads=4),
        "transformer-decode": dict(seq_len=256, hidden=256, ffn=512, heads=4), "cnn-encoder": dict(image=32),
        "llm-decode": dict(layers=2, seq_len=128, hidden=256, ffn=512, heads=4),
    }[name]
    w = workload_from_name(name, **{k: str(v) for k, v in small.items()})
    r = simulate(w, EDGE, dtype="int8")
    r.trace.validate()
    assert r.total_ns > 0 and r.trace.slices.num_rows > 0
    assert r.total_ns >= _roofline_ns(r.stats, EDGE, "int8") * 0.999 or r.stats["vector_flops"] > 0
    assert r.trace.metadata.import_stats.events_dropped == 0


def test_flash_attention_moves_less_dram_than_naive() -> None:
    naive = simulate(Attention(seq_len=512, heads=4, flash=False), EDGE, dtype="fp16")
    flash = simulate(Attention(seq_len=512, heads=4, flash=True), EDGE, dtype="fp16")
    assert flash.stats["dram_bytes"] < naive.stats["dram_bytes"] / 2
    assert flash.total_ns < naive.total_ns
    assert naive.stats["flops"] == pytest.approx(flash.stats["flops"], rel=0.5)


def test_decode_reads_the_kv_cache_and_weights() -> None:
    cfg = ModelConfig(layers=1, hidden=512, heads=8, ffn=1024, seq_len=1024, batch=1)
    r = simulate(TransformerBlock(cfg, mode="decode"), EDGE, dtype="int8")
    weights = (4 * 512 * 512 + 3 * 512 * 1024) * 1
    kv = 2 * 1024 * 512 * 2  # keys and values, fp16
    assert r.stats["dram_bytes"] >= weights + kv
    assert r.stats["dram_bytes"] < 1.2 * (weights + kv)


def test_llm_decode_reduced_7b_layers_on_edge_npu() -> None:
    """The 7B shape with two layers (the full 32-layer run is in bench and the slow test)."""
    cfg = ModelConfig.llama7b(layers=2, dtype="int8")
    r = simulate(LlmDecodeStep(cfg), EDGE)
    per_layer_weights = 4 * 4096 * 4096 + 3 * 4096 * 11008
    assert r.stats["dram_bytes"] >= 2 * per_layer_weights
    # decode is memory-bound: most of the DRAM bandwidth is used
    assert r.stats["dram_bytes"] / (r.total_ns * 1e-9) >= 0.8 * EDGE.dram.bandwidth
    r.trace.validate()


@pytest.mark.slow
def test_llm_decode_7b_full_on_edge_npu() -> None:
    r = simulate(LlmDecodeStep(ModelConfig.llama7b(dtype="int8")), EDGE)
    assert r.stats["dram_bytes"] > 6.5e9
    assert r.total_ns >= r.stats["dram_bytes"] / EDGE.dram.bandwidth * 1e9


def test_systolic_mode_uses_the_array_model() -> None:
    from collectors.simulator.systolic import systolic_tile_cycles

    g = Gemm(M=96, N=96, K=96, dtype="int8", tile_m=96, tile_n=96, tile_k=96, split="none")
    r = simulate(g, EDGE, options=SimOptions(systolic=True))
    df = r.trace.slices_df()
    mm = df[df.category == "matmul"]
    assert len(mm) == 1
    cycles = systolic_tile_cycles(96, 96, 96, 96, 96, "os")
    assert int(mm.dur.iloc[0]) == round(cycles / EDGE.clock_hz * 1e9)
    small = simulate(g, EDGE, options=SimOptions(systolic=True, systolic_rows=32, systolic_cols=32))
    assert small.total_ns > r.total_ns
    with pytest.raises(SimulatorError, match="dataflow"):
        simulate(g, EDGE, options=SimOptions(systolic=True, dataflow="xx"))


def test_conv_and_cnn_lower_to_gemm() -> None:
    c = Conv2d(batch=1, height=16, width=16, in_channels=8, out_channels=16, kernel=3, stride=1, padding=1)
    g = c.as_gemm()
    assert (g.M, g.N, g.K) == (256, 16, 72)
    r = simulate(CnnEncoder(image=32, channels=(8, 16)), EDGE, dtype="int8")
    df = r.trace.slices_df()
    names = {json.loads(a)["op"] for a in df[df.category != "stall"]["args"]}
    assert {"stage0.conv", "stage0.relu", "stage1.conv", "stage1.relu"} <= names


def test_workload_from_name_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        workload_from_name("nope")
    with pytest.raises(ValueError, match="unknown field 'Q'"):
        workload_from_name("gemm", Q="1")
    with pytest.raises(ValueError, match="cannot read"):
        workload_from_name("gemm", M="abc")
    w = workload_from_name("llm-decode", layers="3", dtype="int8")
    assert w.config.layers == 3 and w.config.dtype == "int8"


def test_program_streams_show_semaphores() -> None:
    r = simulate(Gemm(M=128, N=128, K=256, dtype="int8", tile_m=128, tile_n=128, tile_k=128, split="none"), EDGE)
    streams = r.program.streams()
    mx = streams[0]
    assert any(s.startswith("wait sem") for s in mx) and any(s.startswith("matmul") for s in mx)
    dma_lines = streams[2] + streams[3]
    assert any(s.startswith("signal sem") for s in dma_lines)
    assert sum(s.startswith("matmul") for s in mx) == 2
    assert np.isfinite(r.total_ns)


def test_repeated_layers_replay_exactly_what_simulating_them_gives() -> None:
    """Identical ops share one compiled and simulated segment; the trace is the same as without
    sharing, and placing op schedules end to end equals one event loop over the whole program."""
    from collectors.simulator.engine import run, simulate_segment
    from collectors.simulator.program import Segment

    w = LlmDecodeStep(ModelConfig(layers=4, hidden=512, heads=8, ffn=1024, seq_len=256, dtype="int8"))
    reused = simulate(w, EDGE)
    fresh = simulate(w, EDGE, options=SimOptions(reuse=False))
    prog = reused.program
    assert len({id(s) for s in prog.segments}) < len(prog.segments)  # later layers were replayed
    assert len({id(s) for s in fresh.program.segments}) == len(fresh.program.segments)
    for table in ("slices", "counters", "flows", "instants", "tracks"):
        assert getattr(reused.trace, table).equals(getattr(fresh.trace, table)), table
    assert reused.stats == fresh.stats
    assert reused.trace.slices.num_rows > 500
    # the whole program as one segment (deps include the barriers between ops), one event loop
    f = prog.flat()
    whole = Segment()
    whole.rows.extend(zip(f["engine"], f["kind"], f["name"], f["flops"], f["nbytes"], f["dur"], f["deps"],
                          f["alloc"], f["alloc_core"], f["route"], f["dtype"], strict=True))
    for i, (b, c) in enumerate(zip(f["free"], f["free_core"], strict=True)):
        if b:
            whole.frees[i] = [b, c]
    one = simulate_segment(whole, prog, prog.machine)
    placed = run(prog, prog.machine)
    assert np.array_equal(np.rint(one.start), np.rint(placed.start))
    assert np.array_equal(np.rint(one.end), np.rint(placed.end))
    assert np.array_equal(np.rint(np.sort(one.bw_ts)), np.rint(np.sort(placed.bw_ts)))


@pytest.mark.parametrize("workload", [
    Gemm(M=1024, N=1024, K=2048, dtype="int8", tile_m=128, tile_n=128, tile_k=256, buffering=1),
    Gemm(M=1024, N=1024, K=2048, dtype="int8", tile_m=128, tile_n=128, tile_k=256, buffering=3),
    Gemm(M=512, N=512, K=4096, dtype="int8", split="k", tile_m=128, tile_n=128, tile_k=256),
    Elementwise(rows=4096, cols=256, dtype="fp16", tile_rows=8),
    Attention(seq_len=1024, heads=4, flash=True, tile_q=64, tile_kv=64),
], ids=["gemm-buf1", "gemm-buf3", "gemm-split-k", "elementwise", "flash-attention"])
def test_compiled_event_loop_equals_the_python_loop(workload) -> None:
    """The numba loop (used for long segments) gives the Python loop's schedule to the last bit."""
    pytest.importorskip("numba")
    from collectors.simulator.engine import simulate_segment

    r = simulate(workload, EDGE, dtype="int8" if isinstance(workload, Gemm) else "fp16")
    prog = r.program
    seg = prog.segments[0]
    assert len(seg) > 200
    a = simulate_segment(seg, prog, prog.machine, compiled=False)
    b = simulate_segment(seg, prog, prog.machine, compiled=True)
    assert a.stall_engine.size > 0 and a.bw_ts.size > 0 and a.sram_ts.size > 0
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype.kind == y.dtype.kind and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name
