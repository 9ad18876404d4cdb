"""Kernel-type breakdown: time in computation, communication and memory ops, and in their overlaps.

HolisticTraceAnalysis' ``get_gpu_kernel_breakdown``: every moment a device is busy is labelled by
the set of op types running then, so the labels split the busy time exactly (they add up to it):
"COMPUTATION", "COMMUNICATION", "MEMORY", "COMPUTATION overlapping COMMUNICATION", ...  The type of
an op is its slice class (communication: collective kernels by name; memory: copies, sets and
DMA requests; computation: the other device work), the same classes as the device breakdown.
Per op name: count, total and mean time, type (the per-kernel table of HTA's breakdown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.common import pct
from analysis.context import COMM, COMPUTE, DMA, AnalysisContext
from analysis.device_ops import device_ops
from analysis.findings import AnalyzerResult

NAME = "kernel_types"
TYPES = ("COMPUTATION", "COMMUNICATION", "MEMORY")
_TYPE_OF = {COMPUTE: "COMPUTATION", COMM: "COMMUNICATION", DMA: "MEMORY"}
COLUMNS = ["device", "kernel_type", "ns", "pct"]


def label(mask: int) -> str:
    return " overlapping ".join(t for b, t in enumerate(TYPES) if mask >> b & 1)


def exclusive_times(sets: list[iv.Intervals]) -> np.ndarray:
    """Time covered by exactly each combination of the given sets (index = bit mask)."""
    pts = np.sort(np.concatenate([np.concatenate([s[0], s[1]]) for s in sets]))
    if pts.size:  # distinct points by sort + compare (np.unique's hash path is far slower here)
        pts = pts[np.concatenate([[True], pts[1:] != pts[:-1]])]
    out = np.zeros(1 << len(sets), dtype=np.int64)
    if pts.size < 2:
        return out
    lo, hi = pts[:-1], pts[1:]
    mask = np.zeros(lo.size, dtype=np.int64)
    for b, (s, e) in enumerate(sets):
        if s.size:
            k = np.searchsorted(s, lo, side="right") - 1
            inside = (k >= 0) & (lo < e[np.maximum(k, 0)])
            mask |= inside.astype(np.int64) << b
    return np.bincount(mask, weights=(hi - lo).astype(np.float64), minlength=out.size).astype(np.int64)


def analyze(ctx: AnalysisContext, keep: np.ndarray | None = None) -> AnalyzerResult:
    ops = device_ops(ctx, keep)
    rows = []
    cls = ctx.slice_class[ops.rows]
    for d in np.flatnonzero(np.bincount(ops.device, minlength=len(ctx.devices))).tolist():
        on = ops.device == d
        if keep is None:  # the unit's class unions, shared with the device breakdown (cached)
            sets = [ctx.class_set((c,), d) for c in (COMPUTE, COMM, DMA)]
        else:
            sets = [iv.merge(ctx.ts[ops.rows[on & (cls == c)]], ctx.end[ops.rows[on & (cls == c)]])
                    for c in (COMPUTE, COMM, DMA)]
        ex = exclusive_times(sets)
        busy = int(ex[1:].sum())
        for m in np.argsort(-ex, kind="stable").tolist():
            if m and ex[m] > 0:
                rows.append({"device": ctx.devices[d], "kernel_type": label(m), "ns": int(ex[m]),
                             "pct": pct(int(ex[m]), busy)})
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    # Per (type, name): grouped on integer codes; strings only for the top rows.
    n_names = len(ctx.name_words) + 1
    code = np.where(ctx.name_code[ops.rows] < 0, n_names - 1, ctx.name_code[ops.rows]).astype(np.int64)
    key = cls.astype(np.int64) * n_names + code  # a small key space: bincount, no sort
    cnt_all = np.bincount(key, minlength=8 * n_names)
    uk = np.flatnonzero(cnt_all)
    cnt = cnt_all[uk]
    tot = np.bincount(key, weights=ctx.dur[ops.rows].astype(float), minlength=8 * n_names)[uk]
    words = [*ctx.name_words, ""]
    best = np.argsort(-tot, kind="stable")[:20]
    top = [{"type": _TYPE_OF.get(int(uk[i] // n_names), ""), "name": words[int(uk[i] % n_names)] or "",
            "count": int(cnt[i]), "total_ns": int(tot[i]), "mean_ns": float(tot[i] / cnt[i])} for i in best.tolist()]
    summary = {"by_type_ns": {r["kernel_type"]: r["ns"] for r in rows},
               "top_kernels": top}
    return AnalyzerResult(NAME, [], metrics, summary)
