"""Simulator throughput: trace events per second of wall time, and the 7B decode step's wall time.

Baseline in the same run: the same trace's slices added one ``add_slice`` call at a time (the
row-wise path a per-event-object simulator would use), against the simulator's whole run.
The target the simulator is held to is 1,000,000 trace events per second.
"""

from __future__ import annotations

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
    repeat = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    cases = [("gemm 4096^3, 256 tiles", _gemm_small_tiles),
             ("llm decode 7B, 4 layers" if quick else "llm decode 7B, 32 layers", lambda: _decode_7b(4 if quick else 32))]
    for name, fn in cases:
        res = fn()
        events = res.trace.num_events
        t, _ = median_time(fn, repeat=repeat, warmup=0)
        tb, _ = median_time(lambda res=res: _rowwise_rebuild(res.trace), repeat=1, warmup=0)
        rows.append({
            "case": name, "instructions": res.stats["instructions"], "events": events,
            "median_s": t, "events_per_s": events / t, "vs_target": events / t / TARGET_EVENTS_PER_S,
            "rowwise_slices_only_s": tb, "speedup_vs_rowwise": tb / t,
            "simulated_ms": res.total_ns / 1e6,
        })
    report("simulator", rows)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
