"""The device breakdown: idle / compute / non-compute time of each device, computed one way.

This is the headline every surface shows (the run summary, the text/markdown report, the
dashboard header): they all call :func:`headline` (or read the summary it filled), so the numbers
cannot disagree with each other.

Per device (a unit: a GPU, an MTIA chip, a core; in a CPU-only trace a process whose threads do
the work), over the span from its first to its last piece of work, as HolisticTraceAnalysis'
temporal breakdown defines it:

* ``compute``: time any compute kernel runs (communication kernels are *not* compute);
* ``non_compute``: time only copies, sets, DMA requests or communication run;
* ``idle``: time nothing runs (waits and event markers are not work, so they are idle time).

The three add up to the span.  :func:`headline` sums the devices (times and spans), so for one
device it is that device's row and for several it is the share of all device time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis import intervals as iv
from analysis.common import pct
from analysis.context import COMM, COMPUTE, DMA, HOST, AnalysisContext
from analysis.device_ops import slices_of_roles
from profiler.model import Trace

DEVICE_KEYS = ("device", "span_ns", "idle_ns", "compute_ns", "non_compute_ns", "dma_ns", "comm_ns",
               "idle_pct", "compute_pct", "non_compute_pct", "comm_pct")


def _row(dev: str, c: iv.Intervals, dm: iv.Intervals, cm: iv.Intervals) -> dict[str, Any] | None:
    """One device's row from its compute, DMA and communication sets (the one formula)."""
    if c[0].size == 0 and dm[0].size == 0 and cm[0].size == 0:
        return None
    allw = iv.merge(np.concatenate([c[0], dm[0], cm[0]]), np.concatenate([c[1], dm[1], cm[1]]))
    span = int(allw[1][-1] - allw[0][0]) if allw[0].size else 0
    busy, comp = iv.total(allw), iv.total(c)
    dma_ns, comm_ns = iv.total(dm), iv.total(cm)
    dma_ov, comm_ov = iv.overlap_total(c, dm), iv.overlap_total(c, cm)
    return {
        "device": dev or "(device)", "span_ns": span, "idle_ns": span - busy, "compute_ns": comp,
        "non_compute_ns": busy - comp, "dma_ns": dma_ns, "comm_ns": comm_ns,
        "idle_pct": pct(span - busy, span), "compute_pct": pct(comp, span),
        "non_compute_pct": pct(busy - comp, span), "comm_pct": pct(comm_ns, span),
        "dma_overlapped_ns": dma_ov, "dma_overlap_pct": pct(dma_ov, dma_ns),
        "comm_overlapped_ns": comm_ov, "comm_overlap_pct": pct(comm_ov, comm_ns),
        "comm_exposed_ns": comm_ns - comm_ov,
    }


def device_breakdown(ctx: AnalysisContext, keep: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per device holding work: the times above plus DMA and communication overlap.

    ``keep`` (a slice mask) restricts the work to some slices, e.g. one iteration or the window
    HolisticTraceAnalysis reads (:func:`analysis.iterations.hta_window`).
    """
    rows: list[dict[str, Any]] = []
    compute_classes = (COMPUTE, HOST) if ctx.host_as_compute else (COMPUTE,)
    if keep is None:
        for d, dev in enumerate(ctx.devices):
            r = _row(dev, ctx.class_set(compute_classes, d), ctx.class_set((DMA,), d), ctx.class_set((COMM,), d))
            if r is not None:
                rows.append(r)
        return rows
    top = keep & (ctx.depth == 0)
    sets = {}
    for name, classes in (("c", compute_classes), ("dm", (DMA,)), ("cm", (COMM,))):
        sets[name] = top & ctx.class_mask(classes)
        if not ctx.host_as_compute:
            sets[name] &= slices_of_roles(ctx, ("compute", "dma"))
    for d, dev in enumerate(ctx.devices):
        on = ctx.slice_device == d
        got = [iv.merge(ctx.ts[m & on], ctx.end[m & on]) for m in (sets["c"], sets["dm"], sets["cm"])]
        r = _row(dev, *got)
        if r is not None:
            rows.append(r)
    return rows


def _grouped_union(ts: np.ndarray, end: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Length of the union of intervals per group, all groups at once.

    Groups are shifted apart in time (group g by g x the whole extent) so one merge over all of
    them never joins intervals of two groups; each merged piece then belongs to one group.
    """
    out = np.zeros(n_groups, dtype=np.int64)
    if ts.size == 0:
        return out
    t0 = int(ts.min())
    extent = int(end.max()) - t0 + 1
    off = group.astype(np.int64) * extent - t0
    s, e = iv.merge(ts + off, end + off)
    return out + np.bincount(s // extent, weights=(e - s).astype(np.float64), minlength=n_groups).astype(np.int64)


def grouped_breakdown(ctx: AnalysisContext, group: np.ndarray, n_groups: int) -> list[dict[str, Any]]:
    """:func:`device_breakdown` of every group of slices at once (``group``: per slice, -1 = none).

    One vectorized pass per device instead of one per group and device: what per-iteration
    breakdowns of a long run need.  Rows: group, device and the breakdown's times and shares.
    """
    compute_classes = (COMPUTE, HOST) if ctx.host_as_compute else (COMPUTE,)
    top = (ctx.depth == 0) & (group >= 0)
    if not ctx.host_as_compute:
        top &= slices_of_roles(ctx, ("compute", "dma"))
    is_c = ctx.class_mask(compute_classes)
    any_work = is_c | ctx.class_mask((DMA, COMM))
    rows: list[dict[str, Any]] = []
    for d, dev in enumerate(ctx.devices):
        m = top & any_work & (ctx.slice_device == d)
        if not m.any():
            continue
        g, ts, end, c = group[m], ctx.ts[m], ctx.end[m], is_c[m]
        busy = _grouped_union(ts, end, g, n_groups)
        comp = _grouped_union(ts[c], end[c], g[c], n_groups)
        lo = np.full(n_groups, np.iinfo(np.int64).max)
        hi = np.full(n_groups, np.iinfo(np.int64).min)
        np.minimum.at(lo, g, ts)
        np.maximum.at(hi, g, end)
        for k in np.flatnonzero(busy > 0).tolist():
            span = int(hi[k] - lo[k])
            rows.append({"group": k, "device": dev or "(device)", "span_ns": span, "idle_ns": span - int(busy[k]),
                         "compute_ns": int(comp[k]), "non_compute_ns": int(busy[k] - comp[k]),
                         "idle_pct": pct(span - int(busy[k]), span), "compute_pct": pct(int(comp[k]), span),
                         "non_compute_pct": pct(int(busy[k] - comp[k]), span)})
    return rows


def combine(rows: list[dict[str, Any]], host_only: bool = False) -> dict[str, Any]:
    """The headline of a set of device rows: summed times over summed spans."""
    tot = {k: sum(int(r[k]) for r in rows) for k in ("span_ns", "idle_ns", "compute_ns", "non_compute_ns",
                                                      "comm_ns", "dma_ns")}
    span = tot["span_ns"]
    return {**tot, "devices": len(rows), "basis": "host threads" if host_only else "devices",
            "idle_pct": pct(tot["idle_ns"], span) if span else None,
            "compute_pct": pct(tot["compute_ns"], span) if span else None,
            "non_compute_pct": pct(tot["non_compute_ns"], span) if span else None,
            "comm_pct": pct(tot["comm_ns"], span) if span else None}


def headline(source: AnalysisContext | Trace | Any) -> dict[str, Any]:
    """Idle / compute / non-compute of the run: the numbers to put at the top of any view.

    ``source`` is an :class:`AnalysisContext`, a :class:`~profiler.model.Trace`, or a
    :class:`analysis.Report` (whose summary already holds it: no recomputation).
    Keys: ``span_ns``, ``idle_ns``, ``compute_ns``, ``non_compute_ns``, ``comm_ns``, ``dma_ns``,
    ``idle_pct``, ``compute_pct``, ``non_compute_pct``, ``comm_pct`` (None without device work),
    ``devices`` (how many) and ``basis`` ("devices", or "host threads" in a CPU-only trace).
    """
    summary = getattr(source, "summary", None)
    if isinstance(summary, dict) and isinstance(summary.get("headline"), dict):
        return dict(summary["headline"])
    ctx = source if isinstance(source, AnalysisContext) else AnalysisContext(source)
    return combine(device_breakdown(ctx), ctx.host_as_compute)
