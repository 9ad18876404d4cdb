"""Summary detail's sampling of large GEMMs: how far from every instruction simulated, how much faster.

A seeded panel of GEMM shapes on the NPU presets (edge-npu, dojo-tile), with the tile sizes a
kernel writer would try (mapper's choice, or 32/64/128 tiles).  For each shape that summary detail
samples (collectors.simulator.sampling), the same run with ``sample=False`` (every instruction
simulated, the same summary trace) is the baseline: both are warm (the mapper's cache filled by a
first call), same GC setting, median of the repeats.  Reported per case: error of the total time,
DRAM bytes and the largest per-engine busy error, and the speed ratio; then the medians and worst.
Shapes whose exact run would compile more than ``MAX_INSTRUCTIONS`` are skipped (minutes each).
"""

from __future__ import annotations

import json
import random
import statistics
from typing import Any

from bench._util import median_time, report

MAX_INSTRUCTIONS = 2_000_000


def _panel(n: int, seed: int = 1) -> list[tuple[str, Any]]:
    from collectors.simulator import Gemm

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        hw = rng.choice(["edge-npu", "dojo-tile", "edge-npu"])
        tile = rng.choice([None, 32, 64, 128])
        kw = {"tile_m": tile, "tile_n": tile, "tile_k": tile} if tile else {}
        g = Gemm(M=rng.choice([512, 1000, 2048, 3000, 4096]), N=rng.choice([512, 1024, 2000, 4096, 8192]),
                 K=rng.choice([1024, 2048, 4000, 8192]), batch=rng.choice([1, 1, 2]),
                 dtype="int8" if hw == "edge-npu" else "bf16", **kw)
        out.append((hw, g))
    return out


def main(quick: bool = False) -> None:
    from collectors.simulator import simulate
    from collectors.simulator.machine import SimOptions
    from profiler.hardware import load_spec

    exact_opts = SimOptions(sample=False)
    rows: list[dict[str, Any]] = []
    for hw, g in _panel(20 if quick else 60):
        spec = load_spec(hw)
        try:
            res = simulate(g, spec, detail="summary")
        except Exception:  # noqa: BLE001 - a shape that does not fit the chip's SRAM: not a case
            continue
        sampled = json.loads(res.trace.slices.column("args")[0].as_py()).get("sampled")
        if not sampled or sampled["instructions"] > MAX_INSTRUCTIONS:
            continue
        exact = simulate(g, spec, detail="summary", options=exact_opts)
        t_s, _ = median_time(lambda g=g, spec=spec: simulate(g, spec, detail="summary"), repeat=3, warmup=0)
        t_e, _ = median_time(lambda g=g, spec=spec: simulate(g, spec, detail="summary", options=exact_opts),
                             repeat=1 if quick else 3, warmup=0)
        busy_err = max(abs(res.stats["busy_ns"].get(k, 0) - v) / v for k, v in exact.stats["busy_ns"].items() if v)
        rows.append({
            "case": f"{hw} {g.M}x{g.N}x{g.K} b{g.batch} tile {g.tile_m or 'mapper'}",
            "instructions": sampled["instructions"], "simulated_runs": sampled["runs"],
            "time_err_pct": (res.total_ns - exact.total_ns) / exact.total_ns * 100,
            "dram_err_pct": (res.stats["dram_bytes"] - exact.stats["dram_bytes"]) / exact.stats["dram_bytes"] * 100,
            "busy_max_err_pct": busy_err * 100,
            "sampled_s": t_s, "exact_s": t_e, "speedup": t_e / t_s,
        })
    if rows:
        errs = [abs(r["time_err_pct"]) for r in rows]
        rows.append({"case": f"all {len(rows)} sampled cases (median |time error|, median speedup)",
                     "time_err_pct": statistics.median(errs), "worst_time_err_pct": max(errs),
                     "speedup": statistics.median(r["speedup"] for r in rows)})
    report("sampling", rows)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
