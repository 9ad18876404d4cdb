"""Simulator throughput: trace events per second of wall time, and the 7B decode step's wall time.

Events are everything in the returned Trace (slices + counters + flows + instants); the time is
the whole ``simulate()`` call (compile + run + trace build), median of several runs.  The target
the simulator is held to is 1,000,000 trace events per second on both workloads.

Measured in the same run for comparison:
* ``python_loop``: the same simulation with the compiled (numba) event loop switched off, i.e.
  what an installation without numba gets;
* ``rowwise``: the same trace's slices added one ``add_slice`` call at a time (the row-wise path a
  per-event-object simulator would use), slices only.
``cpu_s`` is the median process CPU time of the same runs (on a shared machine wall time also
counts other processes).  ``first_call_s`` is the first simulate() in the process: it includes importing numba and loading
(or, on a fresh checkout, compiling) the event loop.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._util import median_time, report

TARGET_EVENTS_PER_S = 1_000_000


def _decode_7b(layers: int) -> Any:
    from collectors.simulator import LlmDecodeStep, ModelConfig, simulate
    from profiler.hardware import load_spec

    return simulate(LlmDecodeStep(ModelConfig.llama7b(layers=layers, dtype="int8")), load_spec("edge-npu"))


def _gemm_small_tiles() -> Any:
    from collectors.simulator import Gemm, simulate
    from profiler.hardware import load_spec

    g = Gemm(M=4096, N=4096, K=4096, dtype="int8", tile_m=256, tile_n=256, tile_k=256)
    return simulate(g, load_spec("edge-npu"))


def _python_loop(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with every segment simulated by the plain-Python event loop."""

    def run() -> Any:
        from collectors.simulator import engine

        saved = engine.COMPILED_MIN_PROGRAM
        engine.COMPILED_MIN_PROGRAM = 1 << 62
        try:
            return fn()
        finally:
            engine.COMPILED_MIN_PROGRAM = saved

    return run


def _median_wall_and_cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn()``; CPU time shows what a busy machine hides."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


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


def main(quick: bool = False) -> None:
    repeat = 3 if quick else 7
    rows: list[dict[str, Any]] = []
    layers = 4 if quick else 32
    cases = [("gemm 4096^3, 256 tiles", _gemm_small_tiles),
             (f"llm decode 7B, {layers} layers", lambda: _decode_7b(layers))]
    for name, fn in cases:
        t0 = time.perf_counter()
        res = fn()
        first = time.perf_counter() - t0
        events = res.trace.num_events
        t, cpu = _median_wall_and_cpu(fn, repeat)
        tp, _ = median_time(_python_loop(fn), repeat=max(1, repeat // 2), warmup=0)
        tb, _ = median_time(lambda res=res: _rowwise_rebuild(res.trace), repeat=1, warmup=0)
        rows.append({
            "case": name, "instructions": res.stats["instructions"], "events": events,
            "median_s": t, "events_per_s": events / t, "vs_1M_target": events / t / TARGET_EVENTS_PER_S,
            "cpu_s": cpu, "events_per_cpu_s": events / cpu,
            "python_loop_s": tp, "python_loop_events_per_s": events / tp, "speedup_vs_python_loop": tp / t,
            "rowwise_slices_only_s": tb, "speedup_vs_rowwise": tb / t,
            "first_call_s": first, "simulated_ms": res.total_ns / 1e6,
        })
    report("simulator", rows)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
