"""DMA efficiency: are the transfers big enough, the queues kept busy, and each tensor loaded once?

* average transfer size per queue, with a finding when transfers are so small that the fixed
  per-transfer latency (``spec.dma.latency_ns``) takes at least as long as moving the bytes;
* bandwidth achieved while a queue was transferring, against the spec's per-queue bandwidth,
  and the time a queue sat idle between its first and its last transfer;
* pending-DMA depth over time (transfers in flight across all queues): the parallelism the
  memory system was offered;
* the same tensor loaded more than once (same ``src``, ``address``, ``tensor`` or ``name`` arg):
  bytes and time a larger on-chip buffer or a different loop order would have saved.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis import intervals as iv
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "dma_efficiency"
#: Small-transfer threshold when the spec gives no DMA latency (bytes).
SMALL_TRANSFER_BYTES = 64 * 1024
#: Args that identify the tensor a transfer moves, in order of preference.
TENSOR_KEYS = ("tensor", "address", "name", "src")
#: Values that name a place, not a tensor ("src": "dram" says where from, not what).
_PLACES = {"dram", "sram", "hbm", "l2", "l1", "host", "device", "cpu", "gpu", "vmem", "smem", "peer", "", "null"}
COLUMNS = ["engine", "track_name", "transfers", "bytes", "avg_bytes", "busy_ns", "span_ns", "idle_in_span_ns",
           "achieved_bandwidth", "bandwidth_utilization"]


def _transfer_rows(ctx: AnalysisContext) -> np.ndarray:
    return ctx.transfer_rows


def coalescing_gain(transfers: int, total_bytes: float, small_bytes: float, latency_ns: float, busy_ns: int) -> int:
    """DMA time saved by coalescing a queue's transfers into ones of at least ``small_bytes``.

    Each transfer pays the fixed latency once; moving the same bytes in ``ceil(total / small)``
    transfers pays it that many times instead, so the saving is the latency of the transfers that
    disappear, bounded by the queue's busy time.  No latency in the spec: nothing to derive from.
    """
    if latency_ns <= 0 or small_bytes <= 0 or transfers <= 0:
        return 0
    after = max(1, math.ceil(total_bytes / small_bytes))
    return int(max(0, min(busy_ns, (transfers - after) * latency_ns)))


def _small_threshold(ctx: AnalysisContext) -> float:
    if ctx.spec is not None and ctx.spec.dma.latency_ns > 0:
        return ctx.spec.dma.latency_ns * 1e-9 * ctx.spec.dma.bandwidth
    return float(SMALL_TRANSFER_BYTES)


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    rows = _transfer_rows(ctx)
    dur = ctx.duration
    if rows.size == 0:
        return AnalyzerResult(NAME, [], pd.DataFrame(columns=COLUMNS), {"transfers": 0})
    eng = ctx.engine[ctx.track[rows]]
    order = np.argsort(eng, kind="stable")
    rows, eng = rows[order], eng[order]
    bounds = np.flatnonzero(np.append(True, eng[1:] != eng[:-1]))
    ends = np.append(bounds[1:], eng.size)
    per_queue_bw = ctx.spec.dma.bandwidth if ctx.spec is not None else None
    recs = []
    for a, b in zip(bounds, ends, strict=True):  # one iteration per queue
        r = rows[a:b]
        e = int(eng[a])
        busy = iv.merge(ctx.ts[r], ctx.end[r])
        busy_ns = iv.total(busy)
        span = int(busy[1][-1] - busy[0][0])
        nbytes = float(np.nansum(ctx.bytes[r]))
        achieved = nbytes / busy_ns * 1e9 if busy_ns else 0.0
        recs.append({
            "engine": e, "track_name": ctx.track_names.get(e, str(e)), "transfers": int(r.size), "bytes": nbytes,
            "avg_bytes": nbytes / r.size, "busy_ns": busy_ns, "span_ns": span, "idle_in_span_ns": span - busy_ns,
            "achieved_bandwidth": achieved,
            "bandwidth_utilization": achieved / per_queue_bw if per_queue_bw else None,
        })
    metrics = pd.DataFrame(recs, columns=COLUMNS)
    starts, depth = iv.depth_over_time(ctx.ts[rows], ctx.end[rows])
    ends = np.sort(ctx.end[rows], kind="stable")
    lo, hi = ctx.span
    edges = ctx.window_edges
    integral = iv.open_integral(starts, ends, np.concatenate([[lo, hi], edges]))
    mean_depth = float((integral[1] - integral[0]) / (hi - lo)) if hi > lo else 0.0
    win = [round(float(v), 4) for v in np.diff(integral[2:]) / np.maximum(np.diff(edges), 1)]
    redundant = _redundant_loads(ctx, rows)
    summary: dict[str, Any] = {
        "transfers": int(rows.size), "bytes": float(metrics["bytes"].sum()),
        "avg_bytes": float(metrics["bytes"].sum() / rows.size), "small_transfer_bytes": _small_threshold(ctx),
        "max_pending": int(depth.max()) if depth.size else 0, "mean_pending": mean_depth,
        "pending_by_window": win, "redundant": redundant,
    }
    return AnalyzerResult(NAME, _findings(ctx, metrics, redundant, dur), metrics, summary)


def _redundant_loads(ctx: AnalysisContext, rows: np.ndarray) -> dict[str, Any]:
    """Tensors moved more than once, by their identifying arg."""
    col = ctx.trace.slices["args"].take(pa.array(rows))
    if col.null_count == len(col):
        return {"tensors": 0, "bytes": 0.0, "ns": 0, "top": []}
    places = pa.array(sorted(_PLACES | ({m.name.lower() for m in ctx.spec.memory} if ctx.spec else set())))
    key: pa.Array | None = None
    for k in TENSOR_KEYS:
        vals = ctx.arg_array(rows, k)
        vals = pc.if_else(pc.is_in(pc.utf8_lower(vals), value_set=places), "", vals)
        key = vals if key is None else pc.if_else(pc.equal(key, ""), vals, key)
    assert key is not None
    enc = key.dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    words = enc.dictionary.to_pylist()
    has = np.array([w != "" for w in words])[codes]
    if not has.any():
        return {"tensors": 0, "bytes": 0.0, "ns": 0, "top": []}
    c = codes[has]
    cnt = np.bincount(c, minlength=len(words))
    byt = np.bincount(c, weights=np.nan_to_num(ctx.bytes[rows][has]), minlength=len(words))
    ns = np.bincount(c, weights=ctx.dur[rows][has].astype(float), minlength=len(words))
    rep = np.flatnonzero(cnt > 1)
    extra_bytes = byt[rep] * (cnt[rep] - 1) / cnt[rep]
    extra_ns = ns[rep] * (cnt[rep] - 1) / cnt[rep]
    top = rep[np.argsort(-extra_ns)[:5]]
    return {
        "tensors": int(rep.size), "bytes": float(extra_bytes.sum()), "ns": int(extra_ns.sum()),
        "top": [{"tensor": words[i], "loads": int(cnt[i]), "bytes": float(byt[i]), "ns": int(ns[i])} for i in top],
    }


def _findings(ctx: AnalysisContext, metrics: pd.DataFrame, redundant: dict[str, Any], dur: int) -> list[Finding]:
    out: list[Finding] = []
    if dur <= 0:
        return out
    s, e = ctx.span
    small = _small_threshold(ctx)
    lat = ctx.spec.dma.latency_ns if ctx.spec is not None else 0.0
    for r in metrics.itertuples(index=False):  # one row per queue
        if r.avg_bytes < small and r.busy_ns > 0.01 * dur:
            gain = coalescing_gain(int(r.transfers), float(r.avg_bytes) * int(r.transfers), small, lat, int(r.busy_ns))
            out.append(Finding(
                kind="small_transfers", severity=severity_for(gain, dur) if gain else "low",
                title=f"{r.track_name}: {r.transfers} transfers average {r.avg_bytes:,.0f} B "
                      f"(below {small:,.0f} B, where per-transfer latency dominates)",
                track=int(r.engine), track_name=r.track_name, start_ns=s, end_ns=e, metric="avg_bytes",
                value=float(r.avg_bytes), threshold=small, unit="B", gain_ns=gain,
                suggestion="coalesce transfers: bigger tiles, contiguous layouts, batched descriptors",
                subject="small_transfers",
            ))
    if redundant["tensors"] and redundant["ns"] >= 0.01 * dur:
        t0 = redundant["top"][0]
        out.append(Finding(
            kind="redundant_load", severity=severity_for(redundant["ns"], dur),
            title=f"{redundant['tensors']} tensors loaded more than once: {redundant['bytes']:,.0f} B and "
                  f"{fmt_ns(redundant['ns'])} of repeated DMA (worst: {t0['tensor']} x{t0['loads']})",
            track=None, track_name=None, start_ns=s, end_ns=e, metric="redundant_pct",
            value=pct(redundant["ns"], dur), threshold=1.0, unit="%", gain_ns=int(redundant["ns"]),
            suggestion="keep reused tiles resident on-chip or reorder the loop so each tile is loaded once",
            subject="redundant_load", details={"top": redundant["top"]},
        ))
    return out
