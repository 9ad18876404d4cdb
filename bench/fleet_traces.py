"""Generated jobs for the fleet tests and benchmark: runs x ranks of Kineto JSON, with known odd ones.

Each trace is a real PyTorch-profiler-shaped file (``distributedInfo``, GPU ``kernel`` events on a
stream, an NCCL all-reduce per step) that the normal importer reads.  Every rank of a run runs the
same kernels; ``slow_rank`` makes one rank's GEMMs ``slow_factor`` times longer, and
``run_scale`` scales a run's GEMMs (a regression from one run to the next).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

#: Per step: (kernel name, duration in us).  The GEMM is what slow ranks and regressions stretch.
STEP = (("ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_tn", 400.0), ("vectorized_elementwise_kernel", 40.0),
        ("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", 120.0))


def trace_doc(rank: int, world: int, steps: int, gemm_scale: float = 1.0) -> dict:
    events: list[dict] = [{"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"GPU {rank}"}}]
    t = 1_000_000.0
    for s in range(steps):
        for name, dur in STEP:
            d = dur * gemm_scale if "gemm" in name else dur
            events.append({"ph": "X", "cat": "kernel", "name": name, "pid": rank, "tid": 7, "ts": t, "dur": d,
                           "args": {"device": rank, "stream": 7, "correlation": s * 10 + len(events)}})
            t += d + 5.0
        events.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{s}", "pid": 100 + rank, "tid": 1,
                       "ts": t - 600.0 * gemm_scale, "dur": 10.0})
    return {"schemaVersion": 1, "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": world},
            "traceEvents": events}


def write_job(root: Path, runs: int, ranks: int, steps: int = 50, slow_rank: tuple[int, int] | None = None,
              slow_factor: float = 2.0, run_scale: dict[int, float] | None = None) -> list[Path]:
    """Write ``runs`` sub-folders of ``ranks`` traces under ``root``; returns the paths written."""
    out = []
    for r in range(runs):
        d = root / f"run{r:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(ranks):
            scale = (run_scale or {}).get(r, 1.0) * (slow_factor if slow_rank == (r, k) else 1.0)
            p = d / f"job_rank{k}.json.gz"
            with gzip.open(p, "wt") as f:
                json.dump(trace_doc(k, ranks, steps, scale), f)
            out.append(p)
    return out
