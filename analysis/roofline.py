"""Roofline: is each op limited by compute or by memory bandwidth, and how far from its roof is it?

For every op (grouped by name) we take FLOPs and bytes from the slices that carry them, compute
arithmetic intensity ``ai = flops / bytes`` and achieved FLOP/s, and compare with the attainable
rate ``min(peak[dtype], ai * bandwidth)`` of the memory level the bytes came from (the off-chip
level by default: ``ctx.options["roofline_level"]`` picks another).  ``headroom`` is how many
times faster the op could run at its roof; ``bound`` says which roof it sits under.  A headroom
below 1 means the op ran faster than the off-chip roof allows: its bytes came from on-chip memory
(pick that level with ``roofline_level``).  When the trace shows the device as several identical
engines (one per core), each is judged against its share of the device's peak and bandwidth.

API used by the dashboard (stable):

* :func:`analyze` -> AnalyzerResult whose ``metrics`` has one row per name with columns
  name, count, total_ns, flops, bytes, ai, achieved_flops, dtype, bound, attainable_flops, headroom;
* :func:`ceilings` -> (compute roofs per dtype, memory roofs per level, ridge points);
* :func:`points` -> one roofline point per slice inside a time window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.common import fmt_ns, fmt_rate, severity_for
from analysis.context import COMPUTE, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding
from profiler.hardware import HardwareSpec, canonical_dtype
from profiler.model import Trace

NAME = "roofline"
METRIC_COLUMNS = ["name", "count", "total_ns", "flops", "bytes", "ai", "achieved_flops", "dtype", "bound",
                  "attainable_flops", "headroom"]
#: An op must take this share of compute time before it is worth a finding.
MIN_TIME_SHARE = 0.05
#: ... and be this many times below its roof.
MIN_HEADROOM = 2.0


def ceilings(spec: HardwareSpec, dtypes: list[str] | None = None
             ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
    """Roofs of a device: ({dtype: peak FLOP/s}, {memory level: bytes/s}, {dtype: {level: ridge AI}}).

    ``dtypes`` limits the compute roofs to those dtypes (unsupported ones are skipped); None means
    every dtype the spec has a peak for.  A ridge point is the FLOP/byte where the two roofs meet.
    """
    wanted = [canonical_dtype(d) for d in dtypes] if dtypes is not None else list(spec.peak_flops)
    compute = {d: spec.peak_flops[d] for d in dict.fromkeys(wanted) if d in spec.peak_flops}
    memory = {m.name: m.bandwidth for m in spec.memory}
    ridges = {d: {lvl: peak / bw for lvl, bw in memory.items()} for d, peak in compute.items()}
    return compute, memory, ridges


def _level_bandwidth(ctx: AnalysisContext) -> tuple[str | None, float | None]:
    if ctx.spec is None:
        return None, None
    level = ctx.options.get("roofline_level")
    m = ctx.spec.memory_level(level) if level else ctx.spec.dram
    return m.name, m.bandwidth


def _roofline_rows(ctx: AnalysisContext) -> np.ndarray:
    """Rows that are roofline points: compute work carrying flops or bytes (host work on CPU traces)."""
    cls = ctx.slice_class
    ok = cls == COMPUTE
    if ctx.host_as_compute:
        ok = ok | (cls == HOST)
    return np.flatnonzero(ok & ctx.counted)


def _classify(ai: np.ndarray, achieved: np.ndarray, peak: np.ndarray, share: np.ndarray, ctx: AnalysisContext
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(attainable FLOP/s, bound, headroom) for each point, given its engine's peak and share."""
    _, bw = _level_bandwidth(ctx)
    n = ai.size
    if bw is None:
        # No spec: we cannot place the roofs; say so rather than guess.
        return np.full(n, np.nan), np.full(n, "unknown", dtype=object), np.full(n, np.nan)
    mem_roof = ai * bw * share
    attainable = np.minimum(peak, mem_roof)
    bound = np.where(mem_roof < peak, "memory", "compute").astype(object)
    with np.errstate(divide="ignore", invalid="ignore"):
        headroom = np.where(achieved > 0, attainable / achieved, np.inf)
    return attainable, bound, headroom


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    """Per-op roofline table and findings for ops far below their roof."""
    rows = _roofline_rows(ctx)
    if rows.size == 0:
        return AnalyzerResult(NAME, [], pd.DataFrame(columns=METRIC_COLUMNS),
                              {"points": 0, "note": "no slice carries flops or bytes"})
    codes = ctx.name_code[rows]
    n_names = len(ctx.name_words) + 1
    codes = np.where(codes < 0, n_names - 1, codes)
    dur = ctx.dur[rows].astype(np.float64)
    fl = np.nan_to_num(ctx.flops[rows])
    by = np.nan_to_num(ctx.bytes[rows])
    count = np.bincount(codes, minlength=n_names)
    total = np.bincount(codes, weights=dur, minlength=n_names)
    flops = np.bincount(codes, weights=fl, minlength=n_names)
    byts = np.bincount(codes, weights=by, minlength=n_names)
    # Dominant dtype of each name: the one it spent the most time in.
    dwords = ctx.dtype_of_codes()
    n_dt = len(dwords) + 1
    dcodes = np.where(ctx.dtype_code[rows] < 0, n_dt - 1, ctx.dtype_code[rows])
    mat = np.bincount(codes.astype(np.int64) * n_dt + dcodes, weights=dur, minlength=n_names * n_dt).reshape(n_names, n_dt)
    dom = mat.argmax(axis=1)
    dt_names = [*dwords, ctx.default_dtype]

    present = np.flatnonzero(count > 0)
    name_list = [*ctx.name_words, None]
    df = pd.DataFrame({
        "name": [name_list[i] or "" for i in present],
        "count": count[present].astype(np.int64),
        "total_ns": total[present].astype(np.int64),
        "flops": flops[present],
        "bytes": byts[present],
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        df["ai"] = np.where(df["bytes"] > 0, df["flops"] / df["bytes"], np.inf)
        df["achieved_flops"] = np.where(df["total_ns"] > 0, df["flops"] / df["total_ns"] * 1e9, 0.0)
    df["dtype"] = [dt_names[dom[i]] for i in present]
    # Each name is judged against the (time-weighted) peak of the engines it ran on.
    peak_rows, share_rows = ctx.peaks_for_rows(rows) if ctx.spec is not None else (np.ones(rows.size), np.ones(rows.size))
    w = np.maximum(dur, 1.0)
    wsum = np.bincount(codes, weights=w, minlength=n_names)
    peak_n = np.bincount(codes, weights=np.nan_to_num(peak_rows) * w, minlength=n_names) / np.maximum(wsum, 1)
    share_n = np.bincount(codes, weights=share_rows * w, minlength=n_names) / np.maximum(wsum, 1)
    att, bound, head = _classify(df["ai"].to_numpy(), df["achieved_flops"].to_numpy(), peak_n[present],
                                 share_n[present], ctx)
    df["bound"] = bound
    df["attainable_flops"] = att
    df["headroom"] = head
    df = df[METRIC_COLUMNS].sort_values("total_ns", ascending=False, ignore_index=True)

    findings = _findings(df, ctx)
    level, bw = _level_bandwidth(ctx)
    summary = {
        "points": int(rows.size), "ops": int(len(df)), "memory_level": level, "memory_bandwidth": bw,
        "memory_bound_ns": int(df.loc[df["bound"] == "memory", "total_ns"].sum()),
        "compute_bound_ns": int(df.loc[df["bound"] == "compute", "total_ns"].sum()),
    }
    return AnalyzerResult(NAME, findings, df, summary)


def _findings(df: pd.DataFrame, ctx: AnalysisContext) -> list[Finding]:
    out: list[Finding] = []
    total_time = float(df["total_ns"].sum())
    if total_time <= 0 or ctx.spec is None:
        return out
    s, e = ctx.span
    for r in df.itertuples(index=False):  # one row per op name: a handful, not per slice
        share = r.total_ns / total_time
        if share < MIN_TIME_SHARE or not np.isfinite(r.headroom) or r.headroom < MIN_HEADROOM:
            continue
        gain = int(r.total_ns * (1 - 1 / r.headroom))
        if r.bound == "memory":
            kind, suggestion = "memory_bound_kernel", (
                f"{r.name} is memory-bound (AI {r.ai:.2f} FLOP/B): fuse it with neighbours, keep operands "
                "on-chip or use a smaller dtype to raise its arithmetic intensity")
        else:
            kind, suggestion = "low_compute_efficiency", (
                f"{r.name} is compute-bound but reaches {100 / r.headroom:.0f}% of its roof: check tile "
                "shapes against the array, padding and dtype")
        out.append(Finding(
            kind=kind, severity=severity_for(gain, ctx.duration),
            title=f"{r.name}: {r.bound}-bound at {fmt_rate(r.achieved_flops, 'FLOP/s')}, "
                  f"roof {fmt_rate(r.attainable_flops, 'FLOP/s')} ({r.headroom:.1f}x headroom, {fmt_ns(r.total_ns)})",
            track=None, track_name=None, start_ns=s, end_ns=e, metric="headroom", value=float(r.headroom),
            threshold=MIN_HEADROOM, unit="x", gain_ns=gain, suggestion=suggestion, subject=str(r.name),
            details={"ai": float(r.ai), "dtype": r.dtype, "time_share": share},
        ))
    return out


def points(trace: Trace, spec: HardwareSpec | None, start_ns: int | None = None, end_ns: int | None = None,
           ctx: AnalysisContext | None = None) -> pd.DataFrame:
    """One roofline point per slice overlapping [start_ns, end_ns) (the whole run when None).

    Columns: id, track, name, ts, dur, flops, bytes, dtype, ai, achieved_flops, attainable_flops, bound.
    Pass ``ctx`` to reuse a context already built for this trace.
    """
    c = ctx if ctx is not None else AnalysisContext(trace, spec)
    rows = _roofline_rows(c)
    if start_ns is not None:
        rows = rows[c.end[rows] > start_ns]
    if end_ns is not None:
        rows = rows[c.ts[rows] < end_ns]
    dwords = [*c.dtype_of_codes(), c.default_dtype]
    dcodes = c.dtype_code[rows]
    dtypes = np.array(dwords, dtype=object)[np.where(dcodes < 0, len(dwords) - 1, dcodes)]
    fl = np.nan_to_num(c.flops[rows])
    by = np.nan_to_num(c.bytes[rows])
    dur = c.dur[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        ai = np.where(by > 0, fl / np.where(by > 0, by, 1), np.inf)
        ach = np.where(dur > 0, fl / np.where(dur > 0, dur, 1) * 1e9, 0.0)
    peak, share = c.peaks_for_rows(rows) if c.spec is not None else (np.ones(rows.size), np.ones(rows.size))
    att, bound, _ = _classify(ai, ach, peak, share, c)
    return pd.DataFrame({
        "id": rows.astype(np.int64), "track": c.track[rows], "name": c.names_of(c.name_code[rows]),
        "ts": c.ts[rows], "dur": dur, "flops": fl, "bytes": by, "dtype": dtypes, "ai": ai,
        "achieved_flops": ach, "attainable_flops": att, "bound": bound,
    })
