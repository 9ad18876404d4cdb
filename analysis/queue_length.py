"""Launch-queue length per stream, and the time a stream's queue was full.

Queue length (HolisticTraceAnalysis' definition): the number of ops launched on a stream that
have not started yet.  It goes up by one when the host launches an op (the launch slice's start)
and down by one when the op starts on the device.  A long queue means the host runs ahead (good:
the device never waits for launches); a queue at the runtime's limit means the host blocks in
the launch call until a slot frees up (CUDA: 1024 pending launches per stream).

* :func:`time_series` - the step function per stream: one row per change (stream, ts, length);
  :func:`with_queue_counters` adds it to a trace as one counter track per stream;
* :func:`analyze` - per stream: count/mean/std/min/percentiles/max of the samples (as HTA's
  ``get_queue_length_summary``), the time-weighted mean (ours: the samples' mean weighs a burst
  of launches as much as a long steady stretch), and the time at or above ``max_queue_length``
  (HTA's ``get_time_spent_blocked_on_full_queue``), with a finding when that time matters.

Only ops with a visible launch count (HTA: ops joined to a runtime launch by correlation id).
Where ts ties between a launch and a start, the start is counted first.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.common import fmt_ns, pct, severity_for
from analysis.context import AnalysisContext
from analysis.device_ops import device_ops, stream_labels
from analysis.findings import AnalyzerResult, Finding
from profiler.model import Trace

NAME = "queue_length"
#: CUDA's per-stream limit of pending launches (HTA's default ``max_queue_length``).
MAX_QUEUE_LENGTH = 1024
#: Time blocked on a full queue above this share of the run is a finding.
BLOCKED_PCT = 5.0
COLUMNS = ["stream", "count", "mean", "std", "min", "p25", "p50", "p75", "max", "time_weighted_mean",
           "blocked_ns", "blocked_pct"]


def time_series(ctx: AnalysisContext, keep: np.ndarray | None = None) -> pd.DataFrame:
    """Queue length per stream as a step function: columns stream, ts, queue_length."""
    ops = device_ops(ctx, keep)
    launched = ops.launch >= 0
    if not launched.any():
        return pd.DataFrame({"stream": pd.Series(dtype=object), "ts": pd.Series(dtype=np.int64),
                             "queue_length": pd.Series(dtype=np.int64)})
    st = ops.stream[launched]
    t_up = ctx.ts[ops.launch[launched]]
    t_down = ctx.ts[ops.rows[launched]]
    stream = np.concatenate([st, st])
    ts = np.concatenate([t_up, t_down])
    step = np.concatenate([np.ones(st.size, np.int64), -np.ones(st.size, np.int64)])
    order = np.lexsort((step, ts, stream))  # at a tie the start (-1) comes first
    stream, ts, step = stream[order], ts[order], step[order]
    run = np.cumsum(step)
    first = np.flatnonzero(np.concatenate([[True], stream[1:] != stream[:-1]]))
    base = np.repeat(run[first] - step[first], np.diff(np.append(first, stream.size)))
    return pd.DataFrame({"stream": stream_labels(stream, ops.names), "ts": ts, "queue_length": run - base})



def with_queue_counters(trace: Trace) -> Trace:
    """``trace`` plus one counter track per stream ("<stream> queue length", under the stream's
    device), holding :func:`time_series`: the queue shows next to the stream on a timeline."""
    ctx = AnalysisContext(trace)
    series = time_series(ctx)
    if series.empty:
        return trace
    ops = device_ops(ctx)
    parents = trace.tracks["parent"].to_pylist()
    ids = trace.tracks["id"].to_pylist()
    parent_of = dict(zip(ids, parents, strict=True))
    first_track = {ops.names[int(k)]: int(ctx.track[ops.rows[i]]) for i, k in enumerate(ops.stream.tolist())}
    names = sorted(series["stream"].unique())
    new_id = {nm: max(ids) + 1 + i for i, nm in enumerate(names)}
    tracks = pa.table({
        "id": pa.array([new_id[nm] for nm in names], pa.int64()),
        "parent": pa.array([parent_of.get(first_track[nm]) for nm in names], pa.int64()),
        "name": pa.array([f"{nm.split(' / ')[-1]} queue length" for nm in names], pa.string()),
        "kind": pa.array(["counter"] * len(names), pa.string()),
        "device": pa.array([None] * len(names), pa.string()),
        "sort_index": pa.array([1_000_000 + i for i in range(len(names))], pa.int32()),
        "attrs": pa.array([json.dumps({"series": "queue_length", "stream": nm}) for nm in names], pa.string()),
    }).cast(trace.tracks.schema)
    counters = pa.table({"track": pa.array(series["stream"].map(new_id).to_numpy(np.int64)),
                         "ts": pa.array(series["ts"].to_numpy(np.int64)),
                         "value": pa.array(series["queue_length"].to_numpy(np.float64))}).cast(trace.counters.schema)
    allc = pa.concat_tables([trace.counters, counters])
    allc = allc.take(pc.sort_indices(allc, [("track", "ascending"), ("ts", "ascending")]))
    return Trace(pa.concat_tables([trace.tracks, tracks]), trace.slices, allc, trace.instants, trace.flows,
                 trace.metadata)


def summarize(series: pd.DataFrame, run_end: int, max_queue_length: int = MAX_QUEUE_LENGTH,
              run_ns: int = 0) -> pd.DataFrame:
    """Per-stream statistics of a :func:`time_series` (see the module docstring)."""
    rows = []
    for stream, g in series.groupby("stream", sort=True, observed=True):
        q = g["queue_length"].to_numpy()
        t = g["ts"].to_numpy()
        held = np.diff(np.append(t, max(run_end, int(t[-1]))))  # how long each value lasted
        blocked = int(held[q >= max_queue_length].sum())
        p25, p50, p75 = np.percentile(q, [25, 50, 75])
        rows.append({"stream": stream, "count": int(q.size), "mean": float(q.mean()),
                     "std": float(q.std(ddof=1)) if q.size > 1 else 0.0, "min": int(q.min()),
                     "p25": float(p25), "p50": float(p50), "p75": float(p75), "max": int(q.max()),
                     "time_weighted_mean": float((q * held).sum() / held.sum()) if held.sum() else float(q.mean()),
                     "blocked_ns": blocked, "blocked_pct": pct(blocked, run_ns) if run_ns else 0.0})
    return pd.DataFrame(rows, columns=COLUMNS)


def analyze(ctx: AnalysisContext, max_queue_length: int | None = None) -> AnalyzerResult:
    limit = int(max_queue_length or ctx.options.get("max_queue_length") or MAX_QUEUE_LENGTH)
    series = time_series(ctx)
    metrics = summarize(series, ctx.span[1], limit, ctx.duration)
    summary = {"max_queue_length": limit, "streams": int(len(metrics)),
               "queue_length_max": int(metrics["max"].max()) if len(metrics) else 0,
               "blocked_ns": int(metrics["blocked_ns"].sum()) if len(metrics) else 0}
    findings = []
    s, e = ctx.span
    for r in metrics.itertuples(index=False):
        if r.blocked_pct >= BLOCKED_PCT:
            findings.append(Finding(
                kind="launch_queue_full", severity=severity_for(r.blocked_ns, ctx.duration),
                title=f"{r.stream}: launch queue full ({limit}) for {fmt_ns(r.blocked_ns)}; the host blocks in launches",
                track=None, track_name=str(r.stream), start_ns=s, end_ns=e, metric="blocked_pct",
                value=float(r.blocked_pct), threshold=BLOCKED_PCT, unit="%", gain_ns=0, subject=str(r.stream),
                suggestion="the device is the bottleneck here: the host's time is free for other work "
                           "(data loading, the next step's preparation)",
            ))
    return AnalyzerResult(NAME, findings, metrics, summary)
