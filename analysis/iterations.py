"""Iterations: the ``ProfilerStep#N`` ranges of a training loop, and each one's device breakdown.

torch.profiler wraps every ``schedule`` step in a host range ``ProfilerStep#N``.  Device work
belongs to the iteration whose step holds the host op that launched it (its incoming flow's
source): a kernel launched late in step 5 may run after step 5's range ended, and still is
step 5's work.  Device work without a launch belongs to the step it starts in.

* :func:`iteration_of` - per slice, the iteration index (-1: outside every step);
* :func:`hta_window` - the slices HolisticTraceAnalysis keeps when it reads a trace: with two or
  more steps it drops the last one (it is often cut short) and device work whose launch it
  cannot see; with fewer it keeps everything.  Comparisons with HTA use this window;
* :func:`analyze` - per iteration and device: span, idle, compute, non-compute (the
  :mod:`analysis.breakdown` formula on that iteration's work), and a finding for a step much
  slower than the median step.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.breakdown import device_breakdown
from analysis.common import fmt_ns, severity_for
from analysis.context import AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "iterations"
STEP = re.compile(r"^ProfilerStep\s*#\s*(\d+)")
#: A step slower than this multiple of the median step is a finding.
SLOW_STEP = 1.25
COLUMNS = ["iteration", "step", "device", "start_ns", "end_ns", "step_ns", "span_ns", "idle_ns", "compute_ns",
           "non_compute_ns", "idle_pct", "compute_pct", "non_compute_pct"]


def steps(ctx: AnalysisContext) -> pd.DataFrame:
    """The ProfilerStep ranges on host tracks: step number, row, start, end; sorted by start."""
    words = ctx.name_words
    num = np.array([-1 if not (w and STEP.match(w)) else int(STEP.match(w).group(1))  # type: ignore[union-attr]
                    for w in words] + [-1], dtype=np.int64)
    if ctx.n == 0:
        return pd.DataFrame(columns=["step", "row", "start_ns", "end_ns"])
    code = np.where(ctx.name_code < 0, len(words), ctx.name_code)
    rows = np.flatnonzero(num[code] >= 0)
    if rows.size:
        host = ctx.roles[ctx.engine[ctx.track[rows]]] == "host"
        rows = rows[host]
    rows = rows[np.argsort(ctx.ts[rows], kind="stable")]
    return pd.DataFrame({"step": num[code[rows]], "row": rows, "start_ns": ctx.ts[rows], "end_ns": ctx.end[rows]})


def iteration_of(ctx: AnalysisContext) -> np.ndarray:
    """Iteration index (position in :func:`steps`) of every slice; -1 outside every step.

    A slice with a launch (incoming flow from a host slice) takes its launch's iteration.
    """
    st = steps(ctx)
    out = np.full(ctx.n, -1, dtype=np.int64)
    if st.empty:
        return out
    starts, ends = st["start_ns"].to_numpy(), st["end_ns"].to_numpy()
    src = ctx.gating_source
    t = np.where(src >= 0, ctx.ts[np.maximum(src, 0)], ctx.ts)
    k = np.searchsorted(starts, t, side="right") - 1
    inside = (k >= 0) & (t < ends[np.maximum(k, 0)])
    out[inside] = k[inside]
    return out


def hta_window(ctx: AnalysisContext) -> np.ndarray:
    """Slices HolisticTraceAnalysis analyses (its ``_filter_irrelevant_gpu_kernels``).

    With two or more steps: host slices that start before the last step starts, and device slices
    whose launch is such a host slice.  Otherwise every slice.
    """
    keep = np.ones(ctx.n, dtype=bool)
    st = steps(ctx)
    if len(st) < 2:
        return keep
    last = int(st["start_ns"].max())
    roles = ctx.roles[ctx.engine[ctx.track]]
    host = roles == "host"
    keep = host & (ctx.ts < last)
    src = ctx.gating_source
    dev = ~host & (src >= 0)
    keep[dev] = host[src[dev]] & (ctx.ts[src[dev]] < last)
    return keep


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    st = steps(ctx)
    it = iteration_of(ctx) if len(st) else np.zeros(0, dtype=np.int64)
    rows = []
    for k, s in enumerate(st.itertuples(index=False)):
        for d in device_breakdown(ctx, it == k):
            rows.append({"iteration": k, "step": int(s.step), "device": d["device"], "start_ns": int(s.start_ns),
                         "end_ns": int(s.end_ns), "step_ns": int(s.end_ns - s.start_ns),
                         **{c: d[c] for c in COLUMNS[6:]}})
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    dur = (st["end_ns"] - st["start_ns"]).to_numpy() if len(st) else np.zeros(0)
    med = float(np.median(dur)) if dur.size else 0.0
    summary = {"steps": int(len(st)), "step_numbers": [int(x) for x in st["step"]],
               "step_ns_median": med, "step_ns_max": float(dur.max()) if dur.size else 0.0,
               "hta_window_drops_last_step": bool(len(st) >= 2)}
    findings: list[Finding] = []
    if dur.size >= 3 and med > 0:
        total = float(dur.sum())
        for k in np.flatnonzero(dur > SLOW_STEP * med).tolist():
            s = st.iloc[k]
            extra = float(dur[k] - med)
            findings.append(Finding(
                kind="slow_iteration", severity=severity_for(extra, total),
                title=f"ProfilerStep#{int(s.step)} took {fmt_ns(dur[k])}, {dur[k] / med:.1f}x the median step",
                track=int(ctx.track[int(s.row)]), track_name=ctx.track_names.get(int(ctx.track[int(s.row)])),
                start_ns=int(s.start_ns), end_ns=int(s.end_ns), metric="step_ns", value=float(dur[k]),
                threshold=SLOW_STEP * med, unit="ns", gain_ns=int(extra), subject=f"ProfilerStep#{int(s.step)}",
                suggestion="compare this step's device breakdown with a median one (data loading, a sync, a recompile)",
            ))
    return AnalyzerResult(NAME, findings, metrics, summary)
