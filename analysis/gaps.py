"""Gaps: idle time between consecutive ops on each engine, and the stretches the host caused.

A gap between two ops on an accelerator is either waiting for data (see :mod:`analysis.stalls`)
or waiting for the host to issue the next op.  The second shows in Kineto traces as a kernel
whose launch call (the flow from the host's ``cudaLaunchKernel`` to the kernel) only started
after the previous kernel had finished: the device ran dry because the CPU was too slow.  Runs of
such gaps are host-bound stretches; the fix is on the CPU side (CUDA graphs, bigger kernels,
less Python per step), not on the device.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.common import fmt_ns, pct, severity_for
from analysis.context import COMPUTE, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "gaps"
GAP_PCT = 10.0
HOST_BOUND_PCT = 5.0
COLUMNS = ["engine", "track_name", "ops", "gaps", "gap_ns", "gap_p50_ns", "gap_p95_ns", "gap_max_ns",
           "host_bound_gaps", "host_bound_ns"]


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    dur = ctx.duration
    rows = []
    stretches: list[dict[str, object]] = []
    for e in ctx.engine_ids["compute"]:
        r = ctx.rows_of_engine(e)
        # Only compute ops: a gap between two collectives (an NCCL stream, a device's link) is the
        # other ranks or the data not being ready, not an op too small to keep the engine busy.
        work = r[(ctx.depth[r] == 0) & (ctx.slice_class[r] == COMPUTE)]
        name = ctx.track_names.get(e, str(e))
        if work.size < 2:
            rows.append({"engine": e, "track_name": name, "ops": int(work.size), "gaps": 0, "gap_ns": 0,
                         "gap_p50_ns": 0, "gap_p95_ns": 0, "gap_max_ns": 0, "host_bound_gaps": 0, "host_bound_ns": 0})
            continue
        work = work[np.argsort(ctx.ts[work], kind="stable")]
        prev_end = np.maximum.accumulate(ctx.end[work[:-1]])
        nxt = work[1:]
        gap = np.maximum(ctx.ts[nxt] - prev_end, 0)
        # Stall slices inside a gap are waits already explained: leave them to the stall analyzer.
        stall_rows = r[ctx.is_stall[r]]
        if stall_rows.size:
            from analysis import intervals as iv

            gap = gap - iv.overlap_each(prev_end, prev_end + gap, ctx.stalled(e))
        src = ctx.gating_source[nxt]
        # In a CPU-only trace the host threads are the engines: a thread waiting on another
        # thread is a dependency (the stall analyzer counts it), not a device the host failed to feed.
        launched_by_host = (src >= 0) & (ctx.slice_class[np.maximum(src, 0)] == HOST) & (not ctx.host_as_compute)
        src_end = np.where(launched_by_host, ctx.end[np.maximum(src, 0)], prev_end)
        hb = np.clip(np.minimum(src_end, ctx.ts[nxt]) - prev_end, 0, gap)
        pos = gap[gap > 0]
        rows.append({
            "engine": e, "track_name": name, "ops": int(work.size), "gaps": int(pos.size), "gap_ns": int(pos.sum()),
            "gap_p50_ns": int(np.percentile(pos, 50)) if pos.size else 0,
            "gap_p95_ns": int(np.percentile(pos, 95)) if pos.size else 0,
            "gap_max_ns": int(pos.max()) if pos.size else 0,
            "host_bound_gaps": int((hb > 0).sum()), "host_bound_ns": int(hb.sum()),
        })
        stretches += _stretches(hb, prev_end, ctx.ts[nxt], e, name)
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    n_eng = max(len(metrics), 1)
    gap_ns = int(metrics["gap_ns"].sum()) if len(metrics) else 0
    hb_ns = int(metrics["host_bound_ns"].sum()) if len(metrics) else 0
    stretches.sort(key=lambda s: -int(s["host_bound_ns"]))  # type: ignore[call-overload]
    summary = {"gap_ns": gap_ns, "gap_pct": pct(gap_ns, dur * n_eng), "host_bound_ns": hb_ns,
               "host_bound_pct": pct(hb_ns, dur * n_eng), "host_bound_stretches": stretches[:10]}
    return AnalyzerResult(NAME, _findings(ctx, metrics, stretches), metrics, summary)


def _stretches(hb: np.ndarray, prev_end: np.ndarray, next_ts: np.ndarray, engine: int, name: str) -> list[dict[str, object]]:
    """Runs of consecutive host-bound gaps, the longest few, as time windows."""
    flag = hb > 0
    if not flag.any():
        return []
    run_id = np.cumsum(~flag)  # gaps of one run share an id
    ids = run_id[flag]
    sums = np.bincount(ids, weights=hb[flag])
    counts = np.bincount(ids)
    first = np.full(sums.size, np.iinfo(np.int64).max)
    last = np.zeros(sums.size, dtype=np.int64)
    np.minimum.at(first, ids, prev_end[flag])
    np.maximum.at(last, ids, next_ts[flag])
    top = np.argsort(-sums)[:5]
    return [{"engine": engine, "track_name": name, "start_ns": int(first[i]), "end_ns": int(last[i]),
             "gaps": int(counts[i]), "host_bound_ns": int(sums[i])} for i in top if counts[i] > 0]


def _findings(ctx: AnalysisContext, metrics: pd.DataFrame, stretches: list[dict[str, object]]) -> list[Finding]:
    out: list[Finding] = []
    dur = ctx.duration
    if dur <= 0:
        return out
    s, e = ctx.span
    for r in metrics.itertuples(index=False):  # one row per engine
        other = r.gap_ns - r.host_bound_ns
        if pct(other, dur) >= GAP_PCT:
            out.append(Finding(
                kind="engine_gaps", severity=severity_for(other, dur),
                title=f"{r.track_name}: {r.gaps} gaps between ops add up to {fmt_ns(r.gap_ns)} "
                      f"({pct(r.gap_ns, dur):.1f}%), p95 {fmt_ns(r.gap_p95_ns)}",
                track=int(r.engine), track_name=r.track_name, start_ns=s, end_ns=e, metric="gap_pct",
                value=pct(other, dur), threshold=GAP_PCT, unit="%", gain_ns=int(other),
                suggestion="fuse small ops or batch them so the engine does not go idle between them",
                subject="gaps", details={"gap_max_ns": int(r.gap_max_ns)},
            ))
        if pct(r.host_bound_ns, dur) >= HOST_BOUND_PCT:
            mine = [x for x in stretches if x["engine"] == r.engine]
            ws, we = (int(mine[0]["start_ns"]), int(mine[0]["end_ns"])) if mine else (s, e)  # type: ignore[call-overload]
            out.append(Finding(
                kind="host_bound", severity=severity_for(r.host_bound_ns, dur),
                title=f"{r.track_name}: idle {fmt_ns(r.host_bound_ns)} waiting for the host to launch work "
                      f"({r.host_bound_gaps} launches came late)",
                track=int(r.engine), track_name=r.track_name, start_ns=ws, end_ns=we, metric="host_bound_pct",
                value=pct(r.host_bound_ns, dur), threshold=HOST_BOUND_PCT, unit="%", gain_ns=int(r.host_bound_ns),
                suggestion="reduce per-op host overhead: CUDA graphs, torch.compile, larger fused kernels",
                subject="host_bound",
            ))
    return out
