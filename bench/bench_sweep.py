"""Sweep throughput: points per second of a what-if grid, same grid, same run.

The grid is the 7B decode step on edge-npu over DRAM bandwidth x matmul dtype (the table a
hardware team asks for first); each point is a summary-detail simulation.  Rows:

* ``own plans, 1 process``: every point keeps the plans the mapper finds for it alone (one pass;
  the baseline, what a sweep did before plans were shared);
* ``shared plans, 1 process``: the default, two passes, every GEMM shape tries the plans the other
  points found (see :mod:`collectors.simulator.sweep`);
* ``shared plans, N processes``: the same in a process pool.

Each row says whether its latencies are monotone (never slower with more bandwidth, int8 never
slower than fp16).  The table itself is printed too (latency per point), since it is the result a
user would read.  Every timed run starts with the mapper's cache cleared, so no run reuses the plans
an earlier one found.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench._util import report
from collectors.simulator import LlmDecodeStep, ModelConfig, mapper
from collectors.simulator.sweep import run_sweep
from profiler.hardware import load_spec


def monotone(rows: list[dict[str, Any]], dtypes: list[str]) -> bool:
    """Latency never grows down the grid (growing bandwidth), and the second dtype never slower."""
    ok = True
    for d in dtypes:
        lat = [r["latency_ns"] for r in rows if r["dtype"] == d]
        ok &= all(b <= a for a, b in zip(lat, lat[1:], strict=False))
    by = [rows[i:i + len(dtypes)] for i in range(0, len(rows), len(dtypes))]
    return ok and all(g[-1]["latency_ns"] <= g[0]["latency_ns"] for g in by)


def main(quick: bool = False) -> None:
    spec = load_spec("edge-npu")
    w = LlmDecodeStep(ModelConfig.llama7b(layers=4 if quick else 32))
    vary = {"dram_bandwidth": ["34e9", "68e9", "102e9", "136e9", "204e9", "272e9"]}
    dtypes: list[str | None] = ["fp16", "int8"]
    jobs = max(2, os.cpu_count() or 1)
    run_sweep(w, spec, {"dram_bandwidth": ["68e9"]}, ["int8"], jobs=1)  # warm: imports, numba
    paths = {"own plans, 1 process": (1, False), "shared plans, 1 process": (1, True),
             f"shared plans, {jobs} processes": (jobs, True)}
    times: dict[str, list[float]] = {p: [] for p in paths}
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(1 if quick else 3):  # interleaved, so load changes hit every path alike
        for path, (j, share) in paths.items():
            mapper._CACHE.clear()
            t0 = time.perf_counter()
            rows[path] = run_sweep(w, spec, vary, dtypes, jobs=j, share_plans=share)
            times[path].append(time.perf_counter() - t0)
    base = statistics.median(times["own plans, 1 process"])
    first = rows["shared plans, 1 process"]
    out = []
    for path, ts in times.items():
        t = statistics.median(ts)
        n = len(rows[path])
        out.append({"path": path, "points": n, "median_s": round(t, 3), "points_per_s": round(n / t, 2),
                    "vs_own_plans": round(base / t, 2), "monotone": monotone(rows[path], ["fp16", "int8"]),
                    "same_as_serial_shared": [r["latency_ns"] for r in rows[path]] == [r["latency_ns"] for r in first],
                    "shared_plans": sum(r.get("shared_plans", 0) for r in rows[path])})
    report("sweep throughput", out)
    report(f"7B decode step on edge-npu ({w.config.layers} layers): latency by DRAM bandwidth and dtype",
           [{"dram_GB_s": float(r["dram_bandwidth"]) / 1e9, "dtype": r["dtype"],
             "latency_ms": round(r["latency_ns"] / 1e6, 3), "dram_MiB": round(r["dram_bytes"] / 2**20, 1),
             "tokens_per_s": round(1e9 / r["latency_ns"], 1), "shared_plans": r["shared_plans"],
             "own_plans_ms": round(o["latency_ns"] / 1e6, 3)}
            for r, o in zip(first, rows["own plans, 1 process"], strict=True) if not r.get("error")])


if __name__ == "__main__":
    main()
