"""The HTA-style analyzers on a 1,000,000-slice Kineto-shaped trace: time per analyzer.

The trace is what the PyTorch profiler records on a training loop: ``ProfilerStep#N`` ranges on
the main thread, an ``aten::`` op per launch with the ``cudaLaunchKernel`` inside it, and the
launched op on a GPU stream (compute kernels on stream 7, NCCL all-reduces on stream 13, copies on
stream 20) linked by a launch flow; the host runs ahead of the device by a growing queue, then
falls behind, so every category of idle time, the queue and the launch delays are exercised.
Built columnar (TraceBuilder), one slice per event: 1M slices = 333k launches.

Baseline, measured in the same run on the same context: the ``overlap`` and ``gaps`` analyzers
that existed before (they walk the same slices).  Each analyzer runs on a fresh AnalysisContext
whose shared columns are already decoded, so the time is the analyzer's own.  Second table: what
the new analyzers add to ``run_all`` (the analyzers before them as the baseline), on this trace and
on :func:`bench.bench_analysis.synthetic`'s accelerator trace of the same size.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from bench._util import median_time, report
from bench.bench_analysis import synthetic

ANALYZERS_NEW = ANALYZERS = ("iterations", "idle_breakdown", "queue_length", "launch_stats", "kernel_types", "kernel_sequences")
BASELINE = ("overlap", "gaps")
KERNELS = ("gemm_fwd", "bias_add", "relu", "gemm_bwd", "reduce_sum", "adam_step")


def kineto_like(n_slices: int) -> Any:  # -> Trace
    """A training loop of ``n_slices // 3`` launches (see the module docstring)."""
    from profiler import TraceBuilder

    n = max(n_slices // 3, 30)
    rng = np.random.default_rng(0)
    b = TraceBuilder(source_format="kineto", clock="unix_epoch")
    proc = b.add_track("python3", kind="group")
    main = b.add_track("thread 1 (pt_main_thread)", kind="host", parent=proc, attrs={"pid": 1, "tid": 1})
    gpu = b.add_track("GPU 0", kind="group", device="GPU 0")
    streams = {s: b.add_track(f"stream {s}" + (" memcpy" if s == 20 else ""), kind="dma" if s == 20 else "compute",
                              parent=gpu, attrs={"pid": 0, "stream": s}) for s in (7, 13, 20)}
    k = np.arange(n)
    which = np.where(k % 50 == 49, 13, np.where(k % 20 == 7, 20, 7))
    # host: one launch every 4-6 us, with a slow stretch (data loading) every 2000 launches
    gap = rng.integers(4_000, 6_000, n) + np.where(k % 2000 == 0, 3_000_000, 0)
    launch_ts = np.cumsum(gap).astype(np.int64)
    launch_dur = rng.integers(2_000, 4_000, n).astype(np.int64)
    op_ts = launch_ts - 1_000
    op_dur = launch_dur + 2_000
    kdur = np.where(which == 13, 400_000, np.where(which == 20, 20_000, rng.integers(1_000, 9_000, n))).astype(np.int64)
    kts = np.empty(n, dtype=np.int64)
    free = {7: 0, 13: 0, 20: 0}
    ready = launch_ts + launch_dur + 1_500
    for s in (7, 13, 20):  # a stream runs its ops in order: start = max(ready, previous end)
        idx = np.flatnonzero(which == s)
        r, d = ready[idx], kdur[idx]
        # start_i = max(r_i, start_{i-1} + d_{i-1}): a running max of r_i - prefix(d) plus prefix(d)
        pre = np.concatenate([[0], np.cumsum(d)[:-1]])
        kts[idx] = np.maximum.accumulate(r - pre) + pre
        free[s] = int(kts[idx][-1] + d[-1]) if idx.size else 0
    names = np.array(KERNELS, dtype=object)[k % len(KERNELS)]
    knames = np.where(which == 13, "ncclKernel_AllReduce_RING_LL_Sum_float",
                      np.where(which == 20, "Memcpy HtoD (Pageable -> Device)", names))
    steps = np.arange(0, n, 1000)
    step_end = np.append(op_ts[steps[1:]] - 1, op_ts[-1] + op_dur[-1] + 1)
    b.add_slices(main, op_ts[steps] - 500, step_end - op_ts[steps] + 500,
                 np.array([f"ProfilerStep#{i}" for i in range(steps.size)], dtype=object), category="user_annotation")
    b.add_slices(main, op_ts, op_dur, np.char.add("aten::", names.astype(str)).astype(object), category="cpu_op")
    launch_ids = b.add_slices(main, launch_ts, launch_dur, "cudaLaunchKernel", category="cuda_runtime")
    kernel_ids = np.empty(n, dtype=np.int64)
    for s, tr in streams.items():
        idx = np.flatnonzero(which == s)
        kernel_ids[idx] = b.add_slices(tr, kts[idx], kdur[idx], knames[idx],
                                       category="gpu_memcpy" if s == 20 else "kernel")
    b.add_flows(launch_ids, kernel_ids, name="ac2g")
    return b.build(validate=False)


def main(quick: bool = False) -> None:
    import importlib

    from analysis.context import AnalysisContext

    n = 100_000 if quick else 1_000_000
    t0 = time.perf_counter()
    trace = kineto_like(n)
    build_s = time.perf_counter() - t0
    slices = trace.slices.num_rows

    def warm() -> AnalysisContext:
        ctx = AnalysisContext(trace)
        _ = (ctx.slice_class, ctx.depth, ctx.gating_source, ctx.engine_ids, ctx.devices, ctx.name_code)
        return ctx

    rows = []
    reps = 1 if quick else 3
    for name in BASELINE + ANALYZERS:
        mod = importlib.import_module(f"analysis.{name}")
        ctxs = [warm() for _ in range(reps + 1)]
        it = iter(ctxs)
        t, _ = median_time(lambda m=mod, it=it: m.analyze(next(it)), repeat=reps, warmup=1)
        res = mod.analyze(warm())
        rows.append({"analyzer": name, "baseline": name in BASELINE, "slices": slices, "median_s": round(t, 3),
                     "metrics_rows": int(len(res.metrics)), "findings": len(res.findings)})
    base = max(r["median_s"] for r in rows if r["baseline"])
    for r in rows:
        r["vs_slowest_baseline"] = round(r["median_s"] / base, 2) if base else None
    rows.insert(0, {"analyzer": "(build the trace)", "baseline": False, "slices": slices, "median_s": round(build_s, 2)})
    report("hta_analyzers", rows)
    report("hta_analyzers_in_run_all", run_all_cost(trace, reps) + run_all_cost(synthetic(n), reps))


def run_all_cost(trace: Any, reps: int) -> list[dict[str, Any]]:
    """run_all with the analyzers that existed before (baseline) and with all of them, same trace."""
    from analysis import ANALYZERS, run_all

    old = tuple(a for a in ANALYZERS if a not in ANALYZERS_NEW)
    t_old, _ = median_time(lambda: run_all(trace, analyzers=old), repeat=reps, warmup=0)
    t_all, _ = median_time(lambda: run_all(trace), repeat=reps, warmup=0)
    kind = trace.metadata.source_format
    return [{"trace": kind, "slices": trace.slices.num_rows, "analyzers": f"{len(old)} before (baseline)",
             "median_s": round(t_old, 3)},
            {"trace": kind, "slices": trace.slices.num_rows, "analyzers": f"all {len(ANALYZERS)}",
             "median_s": round(t_all, 3), "added_s": round(t_all - t_old, 3)}]


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
