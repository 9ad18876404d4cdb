"""Kernel launch statistics: launch cost against kernel time, and launches that waited long.

For every device op (a kernel, copy or set) whose launch is visible (the host
slice its flow comes from), as HolisticTraceAnalysis' ``get_cuda_kernel_launch_stats``:

* ``cpu_ns``: the launch call's duration; ``gpu_ns``: the kernel's;
* ``launch_delay_ns``: kernel start minus launch end, clipped at 0 (how long the launched kernel
  sat in the queue before it ran).

Flagged: *short kernels* (the kernel ran shorter than its launch took: the host cannot keep such
a device busy, so fuse them or capture them in a graph), *runtime outliers* (launch calls longer
than ``runtime_cutoff``, 50 us) and *launch-delay outliers* (longer than ``launch_delay_cutoff``,
100 us).  HTA's defaults, in nanoseconds here.  Like HTA, asynchronous copies and sets count
as launched ops too; unlike HTA, which knows a list of launch call names, every device op with a
visible launch counts (graph launches and vendor runtimes included).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.common import pct, severity_for
from analysis.context import AnalysisContext
from analysis.device_ops import device_ops, stream_labels
from analysis.findings import AnalyzerResult, Finding

NAME = "launch_stats"
RUNTIME_CUTOFF_NS = 50_000
LAUNCH_DELAY_CUTOFF_NS = 100_000
#: Short kernels above this share of all launched kernels are a finding.
SHORT_SHARE = 0.5
COLUMNS = ["stream", "kernels", "short_kernels", "short_pct", "runtime_outliers", "launch_delay_outliers",
           "cpu_ns_total", "gpu_ns_total", "launch_delay_p50_ns", "launch_delay_p95_ns", "launch_delay_max_ns"]


def pairs(ctx: AnalysisContext, keep: np.ndarray | None = None) -> pd.DataFrame:
    """One row per launched kernel: stream, kernel row, launch row, cpu_ns, gpu_ns, launch_delay_ns."""
    ops = device_ops(ctx, keep)
    m = ops.launch >= 0
    k, la = ops.rows[m], ops.launch[m]
    return pd.DataFrame({"stream": stream_labels(ops.stream[m], ops.names), "row": k, "launch_row": la, "cpu_ns": ctx.dur[la],
                         "gpu_ns": ctx.dur[k], "launch_delay_ns": np.maximum(ctx.ts[k] - ctx.end[la], 0)})


def analyze(ctx: AnalysisContext, keep: np.ndarray | None = None) -> AnalyzerResult:
    runtime_cut = int(ctx.options.get("runtime_cutoff_ns") or RUNTIME_CUTOFF_NS)
    delay_cut = int(ctx.options.get("launch_delay_cutoff_ns") or LAUNCH_DELAY_CUTOFF_NS)
    p = pairs(ctx, keep)
    rows = []
    for stream, g in p.groupby("stream", sort=True, observed=True):
        d = g["launch_delay_ns"].to_numpy()
        short = int((g["gpu_ns"] < g["cpu_ns"]).sum())
        rows.append({"stream": stream, "kernels": int(len(g)), "short_kernels": short, "short_pct": pct(short, len(g)),
                     "runtime_outliers": int((g["cpu_ns"] > runtime_cut).sum()),
                     "launch_delay_outliers": int((d > delay_cut).sum()),
                     "cpu_ns_total": int(g["cpu_ns"].sum()), "gpu_ns_total": int(g["gpu_ns"].sum()),
                     "launch_delay_p50_ns": float(np.percentile(d, 50)), "launch_delay_p95_ns": float(np.percentile(d, 95)),
                     "launch_delay_max_ns": int(d.max())})
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    n = int(len(p))
    short = int((p["gpu_ns"] < p["cpu_ns"]).sum()) if n else 0
    summary = {"kernels": n, "short_kernels": short, "short_pct": pct(short, n) if n else 0.0,
               "runtime_outliers": int((p["cpu_ns"] > runtime_cut).sum()) if n else 0,
               "launch_delay_outliers": int((p["launch_delay_ns"] > delay_cut).sum()) if n else 0,
               "runtime_cutoff_ns": runtime_cut, "launch_delay_cutoff_ns": delay_cut}
    findings: list[Finding] = []
    s, e = ctx.span
    if n >= 20 and short / n >= SHORT_SHARE:
        lost = int(np.maximum(p["cpu_ns"] - p["gpu_ns"], 0).sum())
        findings.append(Finding(
            kind="short_kernels", severity=severity_for(lost, ctx.duration),
            title=f"{short} of {n} kernels ({100 * short / n:.0f}%) run shorter than their launch takes",
            track=None, track_name=None, start_ns=s, end_ns=e, metric="short_pct", value=100 * short / n,
            threshold=100 * SHORT_SHARE, unit="%", gain_ns=0, subject="kernel launches",
            suggestion="fuse small kernels (torch.compile), or capture the step in a CUDA graph so launches stop "
                       "costing host time per kernel",
            details={"launch_ns_beyond_kernel_ns": lost},
        ))
    return AnalyzerResult(NAME, findings, metrics, summary)

