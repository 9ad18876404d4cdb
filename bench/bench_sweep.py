"""Sweep throughput: points per second of a what-if grid, one process vs a pool, same grid, same run.

The grid is the 7B decode step on edge-npu over DRAM bandwidth x matmul dtype (the table a
hardware team asks for first); each point is a summary-detail simulation.  The table itself is
printed too (latency per point), since it is the result a user would read.
"""

from __future__ import annotations

import os
import time

from bench._util import report
from collectors.simulator import LlmDecodeStep, ModelConfig
from collectors.simulator.sweep import run_sweep
from profiler.hardware import load_spec


def main(quick: bool = False) -> None:
    spec = load_spec("edge-npu")
    w = LlmDecodeStep(ModelConfig.llama7b(layers=4 if quick else 32))
    vary = {"dram_bandwidth": ["34e9", "68e9", "136e9", "272e9"]}
    dtypes: list[str | None] = ["fp16", "int8"]
    run_sweep(w, spec, {"dram_bandwidth": ["68e9"]}, ["int8"], jobs=1)  # warm: imports, numba
    t0 = time.perf_counter()
    serial = run_sweep(w, spec, vary, dtypes, jobs=1)
    t_serial = time.perf_counter() - t0
    jobs = max(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    pooled = run_sweep(w, spec, vary, dtypes, jobs=jobs)
    t_pool = time.perf_counter() - t0
    n = len(serial)
    same = [a.get("latency_ns") for a in serial] == [b.get("latency_ns") for b in pooled]
    report("sweep throughput", [
        {"path": "1 process", "points": n, "seconds": round(t_serial, 2), "points_per_s": round(n / t_serial, 2),
         "vs_serial": 1.0},
        {"path": f"{jobs} processes", "points": n, "seconds": round(t_pool, 2), "points_per_s": round(n / t_pool, 2),
         "vs_serial": round(t_serial / t_pool, 2), "same_results": same},
    ])
    report(f"7B decode step on edge-npu ({w.config.layers} layers): latency by DRAM bandwidth and dtype",
           [{"dram_GB_s": float(r["dram_bandwidth"]) / 1e9, "dtype": r["dtype"],
             "latency_ms": round(r["latency_ns"] / 1e6, 3), "dram_MiB": round(r["dram_bytes"] / 2**20, 1),
             "tokens_per_s": round(1e9 / r["latency_ns"], 1)} for r in serial if not r.get("error")])


if __name__ == "__main__":
    main()
