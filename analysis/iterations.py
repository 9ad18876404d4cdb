"""Iterations: the ``ProfilerStep#N`` ranges of a training loop, and each one's device breakdown.

torch.profiler wraps every ``schedule`` step in a host range ``ProfilerStep#N``.  Device work
belongs to the iteration whose step holds the host op that launched it (its incoming flow's
source): a kernel launched late in step 5 may run after step 5's range ended, and still is
step 5's work.  Device work without a launch belongs to the step it starts in.

* :func:`iteration_of` - per slice, the iteration index (-1: outside every step);
* :func:`hta_window` - the slices HolisticTraceAnalysis keeps when it reads a trace: with two or
  more steps it drops the last one (it is often cut short) and device work whose launch it
  cannot see; with fewer it keeps everything.  Comparisons with HTA use this window;
* :func:`select_steps` - the trace cut to some steps (per-iteration filtering: analyse one
  iteration, or all but a warm-up);
* :func:`analyze` - per iteration and device: span, idle, compute, non-compute (the
  :mod:`analysis.breakdown` formula on that iteration's work), and a finding for a step much
  slower than the median step.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.breakdown import grouped_breakdown
from analysis.common import fmt_ns, severity_for
from analysis.context import AnalysisContext
from analysis.device_ops import slices_of_roles
from analysis.findings import AnalyzerResult, Finding
from profiler.model import Trace

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
        host = slices_of_roles(ctx, ("host",), rows)
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
    host = slices_of_roles(ctx, ("host",))
    keep = host & (ctx.ts < last)
    src = ctx.gating_source
    dev = ~host & (src >= 0)
    keep[dev] = host[src[dev]] & (ctx.ts[src[dev]] < last)
    return keep


def select_steps(trace: Trace, step_numbers: list[int]) -> Trace:
    """The trace cut to some ProfilerSteps: what analysing only those iterations needs.

    Kept: every host slice whose top-level ancestor starts inside a selected step (the
    ProfilerStep ranges themselves included), every device slice whose iteration
    (:func:`iteration_of`: its launch's step) is selected, counters and instants inside the
    selected ranges, flows between kept slices.  Tracks stay as they are.
    """
    ctx = AnalysisContext(trace)
    st = steps(ctx)
    chosen = np.flatnonzero(st["step"].isin(step_numbers).to_numpy())
    if chosen.size == 0:
        raise ValueError(f"no ProfilerStep numbered {sorted(step_numbers)}; the trace has {st['step'].tolist()}")
    it = iteration_of(ctx)
    par = ctx.parent
    root = np.arange(ctx.n, dtype=np.int64)
    for _ in range(int(ctx.depth.max()) if ctx.n else 0):
        up = par[root]
        root = np.where(up >= 0, up, root)
    starts, ends = st["start_ns"].to_numpy()[chosen], st["end_ns"].to_numpy()[chosen]
    t = ctx.ts[root]
    k = np.searchsorted(starts, t, side="right") - 1
    in_range = (k >= 0) & (t < ends[np.maximum(k, 0)])
    host = slices_of_roles(ctx, ("host",))
    keep = np.where(host, in_range, np.isin(it, chosen))
    new_id = np.cumsum(keep) - 1
    s = trace.slices.filter(pa.array(keep))
    old_parent = par[keep]
    parent = np.where(old_parent >= 0, new_id[np.maximum(old_parent, 0)], -1)
    s = s.set_column(s.schema.get_field_index("id"), s.schema.field("id"), pa.array(np.arange(int(keep.sum())), pa.int64()))
    s = s.set_column(s.schema.get_field_index("parent"), s.schema.field("parent"),
                     pa.array(parent, pa.int64(), mask=parent < 0))
    f = trace.flows
    fr, to = f["from_slice"].to_numpy(), f["to_slice"].to_numpy()
    fk = keep[fr] & keep[to]
    f = f.filter(pa.array(fk))
    f = f.set_column(f.schema.get_field_index("from_slice"), f.schema.field("from_slice"), pa.array(new_id[fr[fk]], pa.int64()))
    f = f.set_column(f.schema.get_field_index("to_slice"), f.schema.field("to_slice"), pa.array(new_id[to[fk]], pa.int64()))

    def inside(tab: pa.Table) -> pa.Table:
        ts = tab["ts"].to_numpy()
        j = np.searchsorted(starts, ts, side="right") - 1
        return tab.filter(pa.array((j >= 0) & (ts < ends[np.maximum(j, 0)])))

    md = trace.with_metadata().metadata
    md.extra["selected_steps"] = [int(x) for x in st["step"].to_numpy()[chosen]]
    return Trace(trace.tracks, s, inside(trace.counters), inside(trace.instants), f, md)


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    st = steps(ctx)
    it = iteration_of(ctx) if len(st) else np.full(ctx.n, -1, dtype=np.int64)
    per = grouped_breakdown(ctx, it, len(st))
    starts, ends, nums = st["start_ns"].to_numpy(), st["end_ns"].to_numpy(), st["step"].to_numpy()
    rows = [{"iteration": r["group"], "step": int(nums[r["group"]]), "device": r["device"],
             "start_ns": int(starts[r["group"]]), "end_ns": int(ends[r["group"]]),
             "step_ns": int(ends[r["group"]] - starts[r["group"]]), **{c: r[c] for c in COLUMNS[6:]}} for r in per]
    metrics = pd.DataFrame(rows, columns=COLUMNS).sort_values(["iteration", "device"], ignore_index=True)
    dur = ends - starts if len(st) else np.zeros(0)
    med = float(np.median(dur)) if dur.size else 0.0
    summary = {"steps": int(len(st)), "step_numbers": [int(x) for x in nums],
               "step_ns_median": med, "step_ns_max": float(dur.max()) if dur.size else 0.0,
               "hta_window_drops_last_step": bool(len(st) >= 2)}
    findings: list[Finding] = []
    slow = np.flatnonzero(dur > SLOW_STEP * med) if dur.size >= 3 and med > 0 else np.zeros(0, dtype=np.int64)
    if slow.size:  # one finding for all slow steps, named by the slowest
        k = int(slow[np.argmax(dur[slow])])
        extra = float((dur[slow] - med).sum())
        row = int(st["row"].iloc[k])
        others = f" and {slow.size - 1} more" if slow.size > 1 else ""
        findings.append(Finding(
            kind="slow_iteration", severity=severity_for(extra, float(dur.sum())),
            title=f"ProfilerStep#{int(nums[k])}{others} slower than the median step: {fmt_ns(dur[k])}, "
                  f"{dur[k] / med:.1f}x the median {fmt_ns(med)}",
            track=int(ctx.track[row]), track_name=ctx.track_names.get(int(ctx.track[row])),
            start_ns=int(starts[k]), end_ns=int(ends[k]), metric="step_ns", value=float(dur[k]),
            threshold=SLOW_STEP * med, unit="ns", gain_ns=int(extra), subject="iterations",
            suggestion="compare a slow step's device breakdown with a median one (data loading, a sync, a recompile)",
            details={"slow_steps": [int(nums[j]) for j in slow.tolist()]},
        ))
    return AnalyzerResult(NAME, findings, metrics, summary)
