"""Utilization: how much of the run each engine was doing useful work, and how fast.

* busy fraction per engine over the run and per time window (union of its top-level slices;
  explicit stall slices are waiting, not work, so they are excluded from "active");
* achieved FLOP/s and MFU against the spec's peak for each dtype the work ran in;
* achieved bandwidth against each memory level (off-chip levels see the DMA traffic, or the
  compute ops' bytes when the trace has no DMA engines; on-chip levels see the operand bytes).

The run-level numbers here (``summary``) are what :mod:`analysis.summary` and the CI budgets use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import COMM, COMPUTE, DMA, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "utilization"
#: Engines busier than this (fraction of the run) do not get a low-utilization finding.
LOW_BUSY = 0.5


def _flops_by_dtype(ctx: AnalysisContext, rows_mask: np.ndarray) -> dict[str, float]:
    words = [*ctx.dtype_of_codes(), ctx.default_dtype]
    codes = ctx.dtype_code[rows_mask]
    codes = np.where(codes < 0, len(words) - 1, codes)
    sums = np.bincount(codes, weights=np.nan_to_num(ctx.flops[rows_mask]), minlength=len(words))
    out: dict[str, float] = {}
    for w, v in zip(words, sums, strict=True):
        if v > 0:
            out[w] = out.get(w, 0.0) + float(v)
    return out


def work_mask(ctx: AnalysisContext) -> np.ndarray:
    """Slices whose flops/bytes count as compute work (host work too on CPU-only traces)."""
    cls = ctx.slice_class
    ok = (cls == COMPUTE) | (cls == COMM)
    if ctx.host_as_compute:
        ok |= cls == HOST
    return ok


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    dur_run = ctx.duration
    engines = ctx.engine_ids
    rows = []
    edges = ctx.window_edges
    win_len = np.diff(edges).astype(float)
    windows: dict[str, list[float]] = {}
    for role in ("compute", "dma"):
        for e in engines[role]:
            busy = ctx.busy(e)
            stalled = ctx.stalled(e)
            active = iv.total(busy) - iv.overlap_total(busy, stalled)  # stalls nested in work are waits too
            erows = ctx.rows_of_engine(e)
            fl = float(np.nansum(ctx.flops[erows][ctx.counted_flops[erows]]))
            by = float(np.nansum(ctx.bytes[erows][ctx.counted_bytes[erows]]))
            name = ctx.track_names.get(e, str(e))
            rows.append({
                "engine": e, "track_name": name, "role": role, "slices": int(erows.size),
                "active_ns": int(active), "stalled_ns": iv.total(stalled),
                "busy_fraction": active / dur_run if dur_run else 0.0,
                "flops": fl, "achieved_flops": fl / active * 1e9 if active else 0.0,
                "bytes": by, "achieved_bandwidth": by / active * 1e9 if active else 0.0,
            })
            with np.errstate(invalid="ignore", divide="ignore"):
                windows[name] = np.round(iv.per_window(busy, edges) / np.maximum(win_len, 1), 6).tolist()
    metrics = pd.DataFrame(rows, columns=["engine", "track_name", "role", "slices", "active_ns", "stalled_ns",
                                          "busy_fraction", "flops", "achieved_flops", "bytes", "achieved_bandwidth"])

    compute_busy = ctx.union_busy(engines["compute"])
    compute_active = iv.total(compute_busy)
    work = work_mask(ctx)
    flops_dt = _flops_by_dtype(ctx, work & ctx.counted_flops)
    total_flops = float(sum(flops_dt.values()))
    secs = dur_run / 1e9
    mfu = hfu = None
    if ctx.spec is not None and secs > 0 and total_flops > 0:  # no FLOP counts: unknown, not 0%
        peak_secs = sum(v / (ctx.peak_for(d) or np.inf) for d, v in flops_dt.items())  # seconds at peak
        mfu = peak_secs / secs
        hfu = peak_secs / (compute_active / 1e9) if compute_active else 0.0
    bw = _bandwidth(ctx, work & ctx.counted_bytes, secs)
    summary = {
        "duration_ns": int(dur_run), "start_ns": ctx.span[0], "end_ns": ctx.span[1],
        "compute_engines": len(engines["compute"]), "dma_engines": len(engines["dma"]),
        "compute_active_ns": int(compute_active),
        "compute_active_pct": pct(compute_active, dur_run),
        "engine_active_ns": {r["track_name"]: r["active_ns"] for r in rows},
        "flops": total_flops, "flops_by_dtype": flops_dt,
        "achieved_flops": total_flops / secs if secs else 0.0,
        "mfu": mfu, "hfu": hfu,
        "bandwidth": bw["levels"], "mbu": bw["mbu"], "dram_bytes": bw["dram_bytes"],
        "windows": {"edges_ns": edges.tolist(), "busy_fraction": windows},
        "host_as_compute": ctx.host_as_compute,
    }
    return AnalyzerResult(NAME, _findings(ctx, metrics, summary), metrics, summary)


def _bandwidth(ctx: AnalysisContext, work: np.ndarray, secs: float) -> dict[str, object]:
    """Achieved bytes/s against each memory level, and memory-bandwidth utilization (off-chip)."""
    dma_rows = (ctx.slice_class == DMA) & ctx.counted_bytes
    dram_bytes = float(np.nansum(ctx.bytes[dma_rows])) if dma_rows.any() else float(np.nansum(ctx.bytes[work]))
    onchip_bytes = float(np.nansum(ctx.bytes[work]))
    levels: dict[str, dict[str, float | None]] = {}
    mbu = None
    if ctx.spec is not None and secs > 0:
        for m in ctx.spec.memory:
            b = dram_bytes if m.kind == "dram" else onchip_bytes
            levels[m.name] = {"bytes": b, "achieved": b / secs, "peak": m.bandwidth, "utilization": b / secs / m.bandwidth}
        mbu = dram_bytes / secs / ctx.spec.dram.bandwidth if dram_bytes > 0 else None  # no byte counts: unknown
    return {"levels": levels, "mbu": mbu, "dram_bytes": dram_bytes}


def _findings(ctx: AnalysisContext, metrics: pd.DataFrame, summary: dict[str, object]) -> list[Finding]:
    out: list[Finding] = []
    dur = ctx.duration
    if dur <= 0:
        return out
    s, e = ctx.span
    # One finding per unit (a GPU, a core, a process), judged on the union of its compute engines:
    # an empty side stream next to a busy one, or a launcher thread next to the worker threads,
    # does not make the unit underused.
    comp = metrics[metrics["role"] == "compute"]
    unit_of = ctx.units.track_unit[0]
    for _, g in comp.groupby(comp["engine"].map(lambda t: int(unit_of[int(t)])), sort=False):
        engines = [int(x) for x in g["engine"]]
        active = iv.total(ctx.union_busy(engines)) if len(engines) > 1 else int(g["active_ns"].iloc[0])
        frac = active / dur
        if frac >= LOW_BUSY:
            continue
        r = g.sort_values("active_ns", ascending=False).iloc[0]  # the busiest engine names the unit
        idle = dur - active
        floor_ns, floor_engine = _run_floor(ctx, metrics)
        gain = low_utilization_gain(dur, active, floor_ns)
        where = r.track_name if len(engines) == 1 else f"{ctx.devices[int(unit_of[int(r.engine)])]} ({len(engines)} engines)"
        out.append(Finding(
            kind="low_utilization", severity=severity_for(gain, dur),
            title=f"{where} active {100 * frac:.1f}% of the run ({fmt_ns(active)} of {fmt_ns(dur)})",
            track=int(r.engine), track_name=r.track_name, start_ns=s, end_ns=e, metric="busy_fraction",
            value=float(frac), threshold=LOW_BUSY, unit="fraction", gain_ns=gain,
            suggestion="feed the engine: overlap data movement with compute, batch small ops, remove host syncs",
            details={"stalled_ns": int(g["stalled_ns"].sum()), "engines": len(engines), "idle_ns": int(idle),
                     "floor_ns": floor_ns, "floor_engine": floor_engine},
        ))
    return out


def _run_floor(ctx: AnalysisContext, metrics: pd.DataFrame) -> tuple[int, str | None]:
    """(busy time, name) of the busiest engine of the run: a device engine or a host thread.

    A host thread counts because a device waiting on launches cannot be fed faster than the thread
    issues them: that lost time belongs to the ``host_bound`` finding, not to this one.
    """
    best: tuple[int, str | None] = (0, None)
    for r in metrics.itertuples(index=False):
        if r.role in ("compute", "dma") and int(r.active_ns) > best[0]:
            best = (int(r.active_ns), str(r.track_name))
    for e in ctx.engine_ids["host"]:
        busy = iv.total(ctx.busy(e))
        if busy > best[0]:
            best = (int(busy), ctx.track_names.get(e, str(e)))
    return best


def low_utilization_gain(duration_ns: int, active_ns: int, floor_ns: int) -> int:
    """Run time an underused unit could give back, derived from the trace.

    Each engine's work is taken as fixed: however well the unit is fed, the run cannot end before
    the busiest device engine has done its work (``floor_ns``).  So the gain is the run time above
    that floor, and never more than the unit's idle time: ``min(idle, duration - floor)``.  A unit
    idle because a DMA queue is saturated gains little (the DMA is the floor); one idle with
    nothing else busy could gain all of its idle time.
    """
    idle = max(duration_ns - active_ns, 0)
    return int(max(0, min(idle, duration_ns - max(floor_ns, active_ns))))
