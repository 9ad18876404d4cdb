"""Simulator throughput: trace events per second of wall time on the general path, and the
summary level of detail against full detail on the same workload.

Events are everything in the returned Trace (slices + counters + flows + instants); the time is
the whole ``simulate()`` call (compile + run + trace build), median of several runs.  The target
the simulator is held to is 1,000,000 trace events per second on an 8192x8192x4096 bf16 GEMM on
dojo-tile and a transformer prefill on h100-sxm, not only where decode layers repeat.  (The
prefill wrote 13M events before the mapper chose larger tiles; it writes about 0.6M now, so a
GEMM cut into 64^3 tiles on h100-sxm keeps a multi-million-event case on the general path.)

Measured in the same run for comparison:
* ``summary``: the same workload with ``detail="summary"`` (one slice per op per engine, the
  same accounting; large regular GEMMs sampled, ``sampled_slices`` says how many slices came from
  sampled ops, ``summary_time_err_pct`` is its total time against full detail);
  ``full_over_summary`` is the speed ratio, wall and CPU; ``summary_exact_s`` is the summary
  with every instruction simulated (``sample=False``), the baseline of the sampling;
* ``python_loop``: full detail with the compiled (numba) event loop switched off, i.e. what an
  installation without numba gets (skipped above 200k instructions: it would take minutes);
* ``rowwise``: the same trace's slices added one ``add_slice`` call at a time (the row-wise path a
  per-event-object simulator would use), slices only (skipped above 300k slices).
``cpu_s`` is the median process CPU time of the same runs (on a shared machine wall time also
counts other processes).  The compiled event loop is loaded once before the cases (as it is in
any process that has simulated for about a second: see ``engine.use_compiled``); ``load_s`` is
what that costs, and ``first_call_s`` is the first simulate() of a case (the mapper's first
search for each shape included).
``peak_rss_gb`` is the process's peak resident memory after the case (cumulative).
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._util import median_time, report

TARGET_EVENTS_PER_S = 1_000_000


def _sim(workload: Any, hw: str, detail: str = "full", sample: bool = True) -> Any:
    from collectors.simulator import simulate
    from collectors.simulator.machine import SimOptions
    from profiler.hardware import load_spec

    return simulate(workload, load_spec(hw), detail=detail, options=SimOptions(sample=sample))


def _gemm_dojo(tile: int | None = None) -> Any:
    """The mapper's tiles (22.7k events: fixed costs dominate), or ``tile``^3 tiles (2.3M events at
    128: the general path at scale on the same op)."""
    from collectors.simulator import Gemm

    return Gemm(M=8192, N=8192, K=4096, dtype="bf16", tile_m=tile, tile_n=tile, tile_k=tile)


def _prefill(seq: int) -> Any:
    from collectors.simulator import workload_from_name

    return workload_from_name("transformer-prefill", seq_len=seq)


def _gemm_fine_tiles(m: int) -> Any:
    """A GEMM cut into 64^3 tiles: millions of events on the general path (no repeated segments)."""
    from collectors.simulator import Gemm

    return Gemm(M=m, N=8192, K=4096, dtype="bf16", tile_m=64, tile_n=64, tile_k=64)


def _gemm_small_tiles() -> Any:
    from collectors.simulator import Gemm

    return Gemm(M=4096, N=4096, K=4096, dtype="int8", tile_m=256, tile_n=256, tile_k=256)


def _gemm_npu_fine(n: int) -> Any:
    """A long regular GEMM on a 2-core NPU: what summary detail samples (a few waves and k-steps)."""
    from collectors.simulator import Gemm

    return Gemm(M=n, N=n, K=n, dtype="int8", tile_m=64, tile_n=64, tile_k=64)


def _decode_7b(layers: int) -> Any:
    from collectors.simulator import LlmDecodeStep, ModelConfig

    return LlmDecodeStep(ModelConfig.llama7b(layers=layers, dtype="int8"))


def _python_loop(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with every segment simulated by the plain-Python event loop."""

    def run() -> Any:
        from collectors.simulator import engine

        saved = engine.USE_COMPILED
        engine.USE_COMPILED = False
        try:
            return fn()
        finally:
            engine.USE_COMPILED = saved

    return run


def _median_wall_and_cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, float, int]:
    """Median wall and process-CPU seconds of ``fn()`` (CPU time shows what a busy machine hides),
    and the event count of the trace it returned."""
    walls, cpus = [], []
    events = 0
    for _ in range(repeat):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        res = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        events = res.trace.num_events
        del res
    return statistics.median(walls), statistics.median(cpus), events


def _rowwise_rebuild(trace: Any) -> None:
    from profiler import TraceBuilder

    b = TraceBuilder(source_format="simulator")
    for _ in range(trace.tracks.num_rows):
        b.add_track("t", kind="compute")
    df = trace.slices.select(["track", "ts", "dur", "name", "category", "flops", "bytes", "dtype", "args"]).to_pylist()
    for r in df:
        b.add_slice(r["track"], r["ts"], r["dur"], r["name"], r["category"], r["flops"], r["bytes"], r["dtype"],
                    r["args"])
    b.build()


def _load_compiled_loop() -> float:
    """Import numba and load the compiled event loop (seconds), as a long-running process would."""
    from collectors.simulator import Gemm, engine, simulate
    from profiler.hardware import load_spec

    t0 = time.perf_counter()
    saved = engine.USE_COMPILED
    engine.USE_COMPILED = True
    try:
        simulate(Gemm(M=256, N=256, K=256, dtype="int8", tile_m=32, tile_n=32, tile_k=32), load_spec("edge-npu"))
    finally:
        engine.USE_COMPILED = saved
    return time.perf_counter() - t0


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(quick: bool = False) -> None:
    repeat = 3 if quick else 5
    big_repeat = 1 if quick else 3
    seq = 128 if quick else 512
    fine = 1024 if quick else 4096  # about 2M / 8M events
    layers = 4 if quick else 32
    sq = 2048 if quick else 4096  # about 0.1M / 0.8M instructions
    cases: list[tuple[str, Any, str, int]] = [
        ("gemm 8192x8192x4096 bf16", _gemm_dojo(), "dojo-tile", repeat),
        ("gemm 8192x8192x4096 bf16, 128^3 tiles", _gemm_dojo(128), "dojo-tile", big_repeat),
        (f"transformer prefill seq {seq}", _prefill(seq), "h100-sxm", big_repeat),
        (f"gemm {fine}x8192x4096 bf16, 64^3 tiles", _gemm_fine_tiles(fine), "h100-sxm", big_repeat),
        ("gemm 4096^3 int8, 256 tiles", _gemm_small_tiles(), "edge-npu", repeat),
        (f"llm decode 7B, {layers} layers", _decode_7b(layers), "edge-npu", repeat),
        (f"gemm {sq}^3 int8, 64^3 tiles", _gemm_npu_fine(sq), "edge-npu", big_repeat),
    ]
    rows: list[dict[str, Any]] = []
    load_s = _load_compiled_loop()
    for name, w, hw, rep in cases:
        def full(w: Any = w, hw: str = hw) -> Any:
            return _sim(w, hw)

        def summary(w: Any = w, hw: str = hw) -> Any:
            return _sim(w, hw, "summary")

        def summary_exact(w: Any = w, hw: str = hw) -> Any:
            return _sim(w, hw, "summary", sample=False)

        gc.collect()
        t0 = time.perf_counter()
        res = full()
        first = time.perf_counter() - t0
        events = res.trace.num_events
        n_instr = res.stats["instructions"]
        n_slices = res.trace.slices.num_rows
        total_ns = res.total_ns
        del res
        t, cpu, _ = _median_wall_and_cpu(full, rep)
        ts, cpu_s, s_events = _median_wall_and_cpu(summary, rep)
        te, cpu_e, _ = _median_wall_and_cpu(summary_exact, rep)
        sampled = summary()
        n_sampled = sum('"sampled"' in a for a in sampled.trace.slices.column("args").to_pylist())
        err = (sampled.total_ns - total_ns) / total_ns * 100 if total_ns else 0.0
        del sampled
        row: dict[str, Any] = {
            "case": name, "hw": hw, "instructions": n_instr, "events": events,
            "median_s": t, "events_per_s": events / t, "vs_1M_target": events / t / TARGET_EVENTS_PER_S,
            "cpu_s": cpu, "events_per_cpu_s": events / cpu,
            "summary_s": ts, "summary_cpu_s": cpu_s, "summary_events": s_events,
            "full_over_summary": t / ts, "full_over_summary_cpu": cpu / cpu_s,
            "summary_exact_s": te, "summary_exact_cpu_s": cpu_e, "sampled_slices": n_sampled,
            "summary_time_err_pct": err,
            "first_call_s": first, "load_s": load_s, "simulated_ms": total_ns / 1e6,
        }
        if n_instr <= 200_000:
            tp, _ = median_time(_python_loop(full), repeat=max(1, rep // 2), warmup=0)
            row.update(python_loop_s=tp, speedup_vs_python_loop=tp / t)
        if n_slices <= 300_000:
            again = full()
            tb, _ = median_time(lambda again=again: _rowwise_rebuild(again.trace), repeat=1, warmup=0)
            row.update(rowwise_slices_only_s=tb, speedup_vs_rowwise=tb / t)
            del again
        row["peak_rss_gb"] = _peak_rss_gb()
        rows.append(row)
    report("simulator", rows)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
