"""Stalls: time a compute engine spends waiting, and what it waited for.

Two kinds of waiting are counted on every compute engine:

* explicit stall slices (category "stall"), whose cause comes from their args (``cause``,
  ``waits_for``) or, when absent, from the flow into the stall or into the work that follows it;
* implicit waits: an idle gap between two pieces of work while the next one's dependency (the
  incoming flow that finished last: a DMA, a semaphore signal, another engine's output) was still
  running.  The part of the gap already covered by an explicit stall slice is not counted twice.

A wait's cause is what it waited for, so the fix is aimed at the right engine: a DMA-bound wait
wants prefetching, a semaphore wait wants a different schedule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import DMA, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "stalls"
#: A cause must cost this share of the run before it becomes a finding.
MIN_SHARE = 0.02
COLUMNS = ["engine", "track_name", "kind", "cause", "waits_for", "count", "stall_ns"]

_SUGGEST = {
    "dma": "prefetch the data earlier (double-buffer the tile, issue the DMA one step ahead)",
    "semaphore": "reorder work so the signalling engine finishes earlier, or split the dependency",
    "dependency": "the engine waits for another engine's output: overlap independent work with it",
    "unknown": "find what the engine waits for (add cause/waits_for args or flows to the trace)",
}


def _source_label(ctx: AnalysisContext, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cause, waits_for) strings for flow sources (-1: none)."""
    has = src >= 0
    cause = np.full(src.size, "unknown", dtype=object)
    waits = np.full(src.size, "", dtype=object)
    if has.any():
        s = src[has]
        cls = ctx.slice_class[s]
        cause[has] = np.where(cls == DMA, "dma", "dependency")
        names = ctx.names_of(ctx.name_code[s])
        tnames = np.array([ctx.track_names.get(int(t), "") for t in ctx.track[s]], dtype=object)
        waits[has] = tnames + ": " + names
    return cause, waits


def _waits_for(ctx: AnalysisContext, srows: np.ndarray) -> np.ndarray:
    """What each stall slice says it waits for: "engine: name" when the args give both
    (``waits_for_engine``/``waits_for_name``), else the ``waits_for`` arg as written."""
    eng = np.asarray(ctx.arg_values(srows, "waits_for_engine"), dtype=object)
    nm = np.asarray(ctx.arg_values(srows, "waits_for_name"), dtype=object)
    raw = np.asarray(ctx.arg_values(srows, "waits_for"), dtype=object)
    both = np.where((eng != "") & (nm != ""), eng + ": " + nm, np.where(nm != "", nm, eng))
    return np.where(both != "", both, raw)


def _next_work_row(ctx: AnalysisContext) -> np.ndarray:
    """For each row, the next top-level non-stall row on the same track (-1 when none)."""
    n = ctx.n
    work = (ctx.depth == 0) & ~ctx.is_stall
    idx = np.where(work, np.arange(n), n)
    nxt = np.minimum.accumulate(idx[::-1])[::-1]
    shifted = np.append(nxt[1:], n)
    ok = shifted < n
    same = np.zeros(n, dtype=bool)
    same[ok] = ctx.track[shifted[ok]] == ctx.track[np.flatnonzero(ok)]
    return np.where(ok & same, shifted, -1)


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    engines = ctx.engine_ids["compute"]
    frames: list[pd.DataFrame] = []
    total_stall = 0
    per_engine: dict[str, int] = {}
    next_work = _next_work_row(ctx) if ctx.n else np.zeros(0, dtype=np.int64)
    for e in engines:
        rows = ctx.rows_of_engine(e)
        name = ctx.track_names.get(e, str(e))
        # --- explicit stall slices
        srows = rows[ctx.is_stall[rows]]
        stalled = ctx.stalled(e)
        eng_total = iv.total(stalled)
        if srows.size:
            cause = np.asarray(ctx.arg_values(srows, "cause"), dtype=object)
            waits = _waits_for(ctx, srows)
            src = ctx.gating_source[srows]
            nxt = next_work[srows]
            src = np.where((src < 0) & (nxt >= 0), ctx.gating_source[np.maximum(nxt, 0)], src)
            fcause, fwaits = _source_label(ctx, src)
            cause = np.where(cause == "", fcause, cause)
            waits = np.where(waits == "", fwaits, waits)
            frames.append(pd.DataFrame({"engine": e, "track_name": name, "kind": "explicit", "cause": cause,
                                        "waits_for": waits, "count": 1, "stall_ns": ctx.dur[srows]}))
        # --- implicit waits: gap before work whose dependency was still running
        work = rows[(ctx.depth[rows] == 0) & ~ctx.is_stall[rows]]
        if work.size > 1:
            work = work[np.argsort(ctx.ts[work], kind="stable")]
            prev_end = np.maximum.accumulate(ctx.end[work[:-1]])
            nxt_rows = work[1:]
            src = ctx.gating_source[nxt_rows]
            # A launch from the host is not a dependency on the device: the gaps analyzer
            # reports those as host-bound time.
            has = src >= 0
            if not ctx.host_as_compute:
                has &= ctx.slice_class[np.maximum(src, 0)] != HOST
            dep_end = np.where(has, ctx.end[np.maximum(src, 0)], 0)
            wait_end = np.minimum(ctx.ts[nxt_rows], dep_end)
            wait = np.where(has, np.maximum(wait_end - prev_end, 0), 0)
            m = wait > 0
            if m.any():
                covered = iv.overlap_each(prev_end[m], prev_end[m] + wait[m], stalled)
                w = wait[m] - covered
                keep = w > 0
                if keep.any():
                    c, wf = _source_label(ctx, src[m][keep])
                    frames.append(pd.DataFrame({"engine": e, "track_name": name, "kind": "implicit", "cause": c,
                                                "waits_for": wf, "count": 1, "stall_ns": w[keep]}))
                    eng_total += int(w[keep].sum())
        per_engine[name] = int(eng_total)
        total_stall += eng_total

    if frames:
        raw = pd.concat(frames, ignore_index=True)
        metrics = (raw.groupby(["engine", "track_name", "kind", "cause", "waits_for"], sort=False, as_index=False)
                   .agg(count=("count", "sum"), stall_ns=("stall_ns", "sum"))
                   .sort_values("stall_ns", ascending=False, ignore_index=True))
    else:
        metrics = pd.DataFrame(columns=COLUMNS)
    metrics["stall_ns"] = metrics["stall_ns"].astype(np.int64)
    denom = ctx.duration * max(len(engines), 1)
    by_cause = metrics.groupby("cause")["stall_ns"].sum().sort_values(ascending=False) if len(metrics) else pd.Series(dtype=float)
    summary = {
        "stall_ns": int(total_stall), "stall_pct": pct(total_stall, denom),
        "by_engine": per_engine, "by_cause": {str(k): int(v) for k, v in by_cause.items()},
    }
    return AnalyzerResult(NAME, _findings(ctx, metrics), metrics, summary)


def _findings(ctx: AnalysisContext, metrics: pd.DataFrame) -> list[Finding]:
    out: list[Finding] = []
    dur = ctx.duration
    if not len(metrics) or dur <= 0:
        return out
    s, e = ctx.span
    grouped = metrics.groupby(["engine", "track_name", "cause"], sort=False)
    for (eng, tname, cause), g in grouped:  # one group per engine and cause: a handful
        ns = int(g["stall_ns"].sum())
        if ns < MIN_SHARE * dur:
            continue
        top = g.sort_values("stall_ns", ascending=False).iloc[0]
        waits = str(top["waits_for"]) or "-"
        out.append(Finding(
            kind="stall", severity=severity_for(ns, dur),
            title=f"{tname} waits {fmt_ns(ns)} ({pct(ns, dur):.1f}% of the run) on {cause}"
                  + (f", mostly {waits}" if waits != "-" else ""),
            track=int(eng), track_name=str(tname), start_ns=s, end_ns=e, metric="stall_pct",
            value=pct(ns, dur), threshold=100 * MIN_SHARE, unit="%", gain_ns=ns,
            suggestion=_SUGGEST.get(str(cause), _SUGGEST["dependency"]), subject=str(cause),
            details={"cause": str(cause), "top_waits_for": waits, "count": int(g["count"].sum()),
                     "kinds": sorted(set(g["kind"]))},
        ))
    return out
