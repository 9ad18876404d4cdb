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


class _Labels:
    """Turns integer keys into the (cause, waits_for) strings of a metrics row, once per distinct key.

    Stall rows can number millions; their causes and targets are a handful of distinct values, so
    grouping happens on integer codes and strings are built only for the groups.
    """

    def __init__(self, ctx: AnalysisContext) -> None:
        self.ctx = ctx
        self.n_names = len(ctx.name_words) + 1
        self.words = [*ctx.name_words, ""]

    def source_key(self, src: np.ndarray) -> np.ndarray:
        """(track, name) of flow sources packed in one int64; -1 when there is no source."""
        ok = src >= 0
        s = np.maximum(src, 0)
        code = np.where(self.ctx.name_code[s] < 0, self.n_names - 1, self.ctx.name_code[s]).astype(np.int64)
        return np.where(ok, self.ctx.track[s].astype(np.int64) * self.n_names + code, -1)

    def source_label(self, key: int, src_class: int) -> tuple[str, str]:
        if key < 0:
            return "unknown", ""
        track, code = divmod(int(key), self.n_names)
        cause = "dma" if src_class == DMA else "dependency"
        return cause, f"{self.ctx.track_names.get(track, str(track))}: {self.words[code] or ''}"


def _grouped(cols: list[np.ndarray], dur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct key rows, count, summed dur) over small non-negative-or--1 int key columns.

    The columns are packed into one int64 (mixed radix) so grouping is a 1-D unique, which is
    far faster than ``np.unique(axis=0)`` on millions of rows.
    """
    cols64 = [np.asarray(c, dtype=np.int64) + 1 for c in cols]  # -1 (absent) -> 0
    radix = [int(c.max()) + 1 if c.size else 1 for c in cols64]
    if float(np.prod(np.array(radix, dtype=float))) < 2**62:
        packed = np.zeros(cols64[0].size, dtype=np.int64)
        for c, r in zip(cols64, radix, strict=True):
            packed = packed * r + c
        uniq_p, inv = np.unique(packed, return_inverse=True)
        out = np.empty((uniq_p.size, len(cols64)), dtype=np.int64)
        rest = uniq_p.copy()
        for j in range(len(cols64) - 1, -1, -1):
            rest, out[:, j] = np.divmod(rest, radix[j])
        uniq = out - 1
    else:
        uniq, inv = np.unique(np.stack(cols64, axis=1), axis=0, return_inverse=True)
        uniq = uniq - 1
    inv = inv.ravel()
    return (uniq, np.bincount(inv, minlength=len(uniq)),
            np.bincount(inv, weights=dur.astype(np.float64), minlength=len(uniq)))


def _explicit(ctx: AnalysisContext, lab: _Labels, e: int, name: str, rows: np.ndarray,
              srows: np.ndarray) -> list[dict[str, object]]:
    """Metrics rows for explicit stall slices: cause and target from the args, else from flows.

    Targets read "engine: name" when the args give ``waits_for_engine``/``waits_for_name``, else
    the ``waits_for`` arg as written, else the source of the flow into the stall (or into the
    work right after it).
    """
    cause_c, cause_w = ctx.arg_codes(srows, "cause")
    eng_c, eng_w = ctx.arg_codes(srows, "waits_for_engine")
    nm_c, nm_w = ctx.arg_codes(srows, "waits_for_name")
    raw_c, raw_w = ctx.arg_codes(srows, "waits_for")
    src = ctx.gating_source[srows]
    nxt = _next_work(ctx, rows, srows)
    src = np.where((src < 0) & (nxt >= 0), ctx.gating_source[np.maximum(nxt, 0)], src)
    skey = lab.source_key(src)
    scls = np.where(src >= 0, ctx.slice_class[np.maximum(src, 0)], -1)
    uniq, cnt, tot = _grouped([cause_c, eng_c, nm_c, raw_c, skey, scls], ctx.dur[srows])
    out: list[dict[str, object]] = []
    for (cc, ec, nc, rc, sk, sc), k, t in zip(uniq.tolist(), cnt.tolist(), tot.tolist(), strict=True):
        fcause, fwaits = lab.source_label(sk, sc)
        eng, nm = eng_w[ec], nm_w[nc]
        waits = f"{eng}: {nm}" if eng and nm else (nm or eng or raw_w[rc] or fwaits)
        out.append({"engine": e, "track_name": name, "kind": "explicit", "cause": cause_w[cc] or fcause,
                     "waits_for": waits, "count": k, "stall_ns": int(t)})
    return out


def _implicit(ctx: AnalysisContext, lab: _Labels, e: int, name: str, rows: np.ndarray,
              stalled: tuple[np.ndarray, np.ndarray]) -> tuple[list[dict[str, object]], int]:
    """Metrics rows for waits in gaps before work whose dependency was still running."""
    work = rows[(ctx.depth[rows] == 0) & ~ctx.is_stall[rows]]
    if work.size < 2:
        return [], 0
    work = work[np.argsort(ctx.ts[work], kind="stable")]
    prev_end = np.maximum.accumulate(ctx.end[work[:-1]])
    nxt_rows = work[1:]
    src = ctx.gating_source[nxt_rows]
    # A launch from the host is not a dependency on the device: the gaps analyzer reports
    # those as host-bound time.
    has = src >= 0
    if not ctx.host_as_compute:
        has &= ctx.slice_class[np.maximum(src, 0)] != HOST
    dep_end = np.where(has, ctx.end[np.maximum(src, 0)], 0)
    wait = np.where(has, np.maximum(np.minimum(ctx.ts[nxt_rows], dep_end) - prev_end, 0), 0)
    m = wait > 0
    if not m.any():
        return [], 0
    w = wait[m] - iv.overlap_each(prev_end[m], prev_end[m] + wait[m], stalled)
    keep = w > 0
    if not keep.any():
        return [], 0
    s_src = src[m][keep]
    uniq, cnt, tot = _grouped([lab.source_key(s_src), ctx.slice_class[s_src]], w[keep])
    out: list[dict[str, object]] = []
    for (sk, sc), k, t in zip(uniq.tolist(), cnt.tolist(), tot.tolist(), strict=True):
        c, wf = lab.source_label(sk, sc)
        out.append({"engine": e, "track_name": name, "kind": "implicit", "cause": c, "waits_for": wf,
                    "count": k, "stall_ns": int(t)})
    return out, int(w[keep].sum())


def _next_work(ctx: AnalysisContext, rows: np.ndarray, srows: np.ndarray) -> np.ndarray:
    """For each stall row, the next top-level non-stall row on the same track (-1 when none)."""
    work = rows[(ctx.depth[rows] == 0) & ~ctx.is_stall[rows]]
    work = np.sort(work)
    k = np.searchsorted(work, srows, side="right")
    ok = k < work.size
    nxt = np.where(ok, work[np.minimum(k, max(work.size - 1, 0))] if work.size else -1, -1)
    same = ok & (ctx.track[np.maximum(nxt, 0)] == ctx.track[srows])
    return np.where(same, nxt, -1)


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    engines = ctx.engine_ids["compute"]
    lab = _Labels(ctx)
    records: list[dict[str, object]] = []
    total_stall = 0
    per_engine: dict[str, int] = {}
    for e in engines:
        rows = ctx.rows_of_engine(e)
        name = ctx.track_names.get(e, str(e))
        srows = rows[ctx.is_stall[rows]]
        stalled = ctx.stalled(e)
        eng_total = iv.total(stalled)
        if srows.size:
            records += _explicit(ctx, lab, e, name, rows, srows)
        implicit, implicit_ns = _implicit(ctx, lab, e, name, rows, stalled)
        records += implicit
        eng_total += implicit_ns
        per_engine[name] = int(eng_total)
        total_stall += eng_total

    if records:
        raw = pd.DataFrame(records, columns=COLUMNS)
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
