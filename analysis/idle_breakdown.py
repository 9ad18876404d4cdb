"""Why each stream sat idle: waiting for the host, for the next kernel's launch overhead, or other.

Every gap between two consecutive ops of a stream is put in one category (HolisticTraceAnalysis'
idle time breakdown):

* ``host_wait``: the next op's launch started after the previous op ended; the device drained
  its queue and waited for the host to launch more;
* ``kernel_wait``: not a host wait, and shorter than ``consecutive_kernel_delay`` (30 us, HTA's
  default in its microsecond units): the overhead of starting back-to-back kernels;
* ``other``: the rest; the op was launched but waited for something else (another stream's
  event, a collective's peer).

It is a breakdown, not a finding source: host-bound stretches are reported by
:mod:`analysis.gaps`, so the same time is not reported twice.  Gaps are measured per stream
(a stream's kernels and copies together, as CUDA orders them), from one op's end to the next
op's start; the first op of a stream has no gap before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.context import AnalysisContext
from analysis.device_ops import device_ops
from analysis.findings import AnalyzerResult

NAME = "idle_breakdown"
CATEGORIES = ("host_wait", "kernel_wait", "other")
#: Gaps shorter than this between launched-ahead kernels are launch overhead (HTA: 30 us).
CONSECUTIVE_KERNEL_DELAY_NS = 30_000
COLUMNS = ["stream", "category", "idle_ns", "idle_ratio", "count", "mean_ns", "p50_ns", "max_ns"]


def _gap_arrays(ctx: AnalysisContext, keep: np.ndarray | None, delay_ns: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(stream code, gap start, gap length, category code) of every gap, and the stream names."""
    ops = device_ops(ctx, keep)
    r = ops.rows
    z = np.zeros(0, dtype=np.int64)
    if r.size < 2:
        return z, z, z, z, ops.names
    same = ops.stream[1:] == ops.stream[:-1]
    # Running end within a stream (ops can nest or overlap on its two tracks): streams are
    # shifted apart in time so one running maximum restarts at each stream's first op.
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    seg = np.repeat(np.arange(first.size), np.diff(np.append(first, r.size)))
    span = int(ctx.end[r].max() - ctx.ts[r].min()) + 1
    off = seg.astype(np.int64) * span - int(ctx.ts[r].min())
    prev_end = np.maximum.accumulate(ctx.end[r] + off) - off
    nxt = np.flatnonzero(same) + 1
    before = prev_end[nxt - 1]
    gap = np.maximum(ctx.ts[r[nxt]] - before, 0)
    launch = ops.launch[nxt]
    host_wait = (launch >= 0) & (ctx.ts[np.maximum(launch, 0)] > before)
    kernel_wait = ~host_wait & (gap < delay_ns)
    cat = np.where(host_wait, 0, np.where(kernel_wait, 1, 2))
    return ops.stream[nxt], before, gap, cat, ops.names


def gaps(ctx: AnalysisContext, keep: np.ndarray | None = None,
         delay_ns: int = CONSECUTIVE_KERNEL_DELAY_NS) -> pd.DataFrame:
    """Every idle gap of every stream: stream, start_ns, gap_ns, category (code into CATEGORIES)."""
    st, before, gap, cat, names = _gap_arrays(ctx, keep, delay_ns)
    return pd.DataFrame({"stream": np.array(names, dtype=object)[st] if st.size else np.zeros(0, dtype=object),
                         "start_ns": before, "gap_ns": gap, "category": cat})


def analyze(ctx: AnalysisContext, keep: np.ndarray | None = None) -> AnalyzerResult:
    delay = int(ctx.options.get("consecutive_kernel_delay_ns") or CONSECUTIVE_KERNEL_DELAY_NS)
    st, _, gap, cat, names = _gap_arrays(ctx, keep, delay)
    ops = device_ops(ctx, keep)
    n_cat = len(CATEGORIES)
    # Per (stream, category) on integer keys: sums and counts by bincount, max and median from
    # one sort by (key, gap).
    key = st * n_cat + cat
    size = len(names) * n_cat
    tot = np.bincount(key, weights=gap.astype(np.float64), minlength=size)
    cnt = np.bincount(key, minlength=size)
    g_max = int(gap.max()) + 1 if gap.size else 1
    if size * g_max < 2**62:  # one int64 sort of (key, gap) packed together
        packed = np.sort(key * g_max + gap)
        ks, gs = packed // g_max, packed % g_max
    else:
        order = np.lexsort((gap, key))
        ks, gs = key[order], gap[order]
    lo = np.searchsorted(ks, np.arange(size), side="left")
    hi = np.searchsorted(ks, np.arange(size), side="right")
    rows = []
    present: np.ndarray = np.flatnonzero(np.bincount(ops.stream, minlength=len(names))) if ops.stream.size \
        else np.zeros(0, dtype=np.int64)
    for code in sorted(np.asarray(present).tolist(), key=lambda c: names[c]):
        stream_total = float(tot[code * n_cat:(code + 1) * n_cat].sum())
        for c, name in enumerate(CATEGORIES):
            k = code * n_cat + c
            n, a, b = int(cnt[k]), int(lo[k]), int(hi[k])
            rows.append({"stream": names[code], "category": name, "idle_ns": int(tot[k]),
                         "idle_ratio": float(tot[k] / stream_total) if stream_total else 0.0, "count": n,
                         "mean_ns": float(tot[k] / n) if n else 0.0,
                         "p50_ns": float(np.median(gs[a:b])) if n else 0.0, "max_ns": int(gs[b - 1]) if n else 0})
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    by_cat = {name: int(metrics.loc[metrics["category"] == name, "idle_ns"].sum()) for name in CATEGORIES}
    total = sum(by_cat.values())
    summary = {"consecutive_kernel_delay_ns": delay, "idle_ns": by_cat,
               "idle_ratio": {k: (v / total if total else 0.0) for k, v in by_cat.items()}}
    return AnalyzerResult(NAME, [], metrics, summary)
