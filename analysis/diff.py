"""Diff of two traces: which ops and engines got slower, which ops are new or gone.

Ops are matched by name and side (device work, or host ops such as ``aten::`` calls and launch
calls: a slower host is a regression too); an op's time is the summed duration of its slices
(stall slices excluded: a wait is not the op).  Engines are matched by role and by their stream
or engine name within their device ("compute stream 7"), not by device index: rank 3's "GPU 3 /
stream 7" is rank 1's "GPU 1 / stream 7".  Their time is active time (work, waits excluded).
When the two runs were recorded on different hardware or with a different world size, the
summary's ``warnings`` say so: the comparison is then not like for like.  A change counts as a regression when it is both
relatively large (``threshold_pct``) and absolutely large (``min_delta_ns``, by default 0.1% of the
baseline run and at least 1 us) so that jitter in tiny ops does not fail a CI job.  The run's total
time is checked the same way: ops can keep their durations while the run slows down between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import DMA, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding
from profiler.model import Trace

NAME = "diff"
COLUMNS = ["name", "side", "base_count", "new_count", "base_ns", "new_ns", "delta_ns", "delta_pct", "status"]


def op_times(ctx: AnalysisContext) -> pd.DataFrame:
    """Per op name and side ("device" or "host"): count and total ns (vectorized over the name dictionary)."""
    parts = []
    host_cls = (HOST,) if not ctx.host_as_compute else ()
    for side, classes in (("device", (*ctx.work_classes, DMA)), ("host", host_cls)):
        if not classes:
            continue
        m = ctx.class_mask(classes)
        codes = ctx.name_code[m]
        n_names = len(ctx.name_words) + 1
        codes = np.where(codes < 0, n_names - 1, codes)
        cnt = np.bincount(codes, minlength=n_names)
        tot = np.bincount(codes, weights=ctx.dur[m].astype(np.float64), minlength=n_names)
        present = np.flatnonzero(cnt > 0)
        words = [*ctx.name_words, ""]
        parts.append(pd.DataFrame({"name": [words[i] or "" for i in present], "side": side,
                                   "count": cnt[present].astype(np.int64), "ns": tot[present].astype(np.int64)}))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["name", "side", "count", "ns"])
    return df.groupby(["name", "side"], as_index=False).sum()  # two dictionary entries may decode alike


def engine_times(ctx: AnalysisContext) -> dict[str, int]:
    """Active time per engine, keyed by role and name within its device (see the module docstring)."""
    out: dict[str, int] = {}
    engines = [e for role in ("compute", "dma") for e in ctx.engine_ids[role]]
    unit_of = ctx.units.track_unit[0]
    units = sorted({int(unit_of[e]) for e in engines}, key=lambda u: ctx.devices[u])
    ordinal = {u: i for i, u in enumerate(units)}
    for role in ("compute", "dma"):
        for e in ctx.engine_ids[role]:
            busy = ctx.busy(e)
            path = ctx.track_names.get(e, str(e)).split(" / ")
            local = " / ".join(path[1:]) or path[0]
            d = ordinal[int(unit_of[e])]
            key = f"{role} {local}" + (f" (device #{d})" if len(units) > 1 else "")
            out[key] = out.get(key, 0) + iv.total(busy) - iv.overlap_total(busy, ctx.stalled(e))
    return out


def run_facts(trace: Trace) -> dict[str, Any]:
    """What the run ran on: hardware names (spec or Kineto deviceProperties) and world size."""
    md = trace.metadata
    hw: set[str] = set()
    if md.hardware:
        hw.add(str(md.hardware))
    for p in md.extra.get("deviceProperties") or []:
        if isinstance(p, dict) and p.get("name"):
            hw.add(str(p["name"]))
    dist = md.extra.get("distributedInfo")
    world = dist.get("world_size") if isinstance(dist, dict) else None
    return {"hardware": sorted(hw), "world_size": world}


def run_warnings(base: Trace, new: Trace) -> list[str]:
    """Why a diff of these two runs may not be like for like."""
    b, n = run_facts(base), run_facts(new)
    out = []
    if b["hardware"] and n["hardware"] and b["hardware"] != n["hardware"]:
        out.append(f"different hardware: base ran on {', '.join(b['hardware'])}, new on {', '.join(n['hardware'])}")
    if b["world_size"] is not None and n["world_size"] is not None and b["world_size"] != n["world_size"]:
        out.append(f"different world size: base {b['world_size']} ranks, new {n['world_size']}")
    return out


def diff(base: Trace, new: Trace, threshold_pct: float = 5.0, min_delta_ns: int | None = None) -> AnalyzerResult:
    """Compare ``new`` against ``base``; findings are the regressions (and significant new ops)."""
    bc, nc = AnalysisContext(base), AnalysisContext(new)
    if min_delta_ns is None:
        min_delta_ns = max(1_000, int(bc.duration * 0.001))
    b, n = op_times(bc), op_times(nc)
    df = b.merge(n, on=["name", "side"], how="outer", suffixes=("_base", "_new"))
    df = df.rename(columns={"count_base": "base_count", "count_new": "new_count", "ns_base": "base_ns", "ns_new": "new_ns"})
    present_base = df["base_ns"].notna()
    present_new = df["new_ns"].notna()
    for c in ("base_count", "new_count", "base_ns", "new_ns"):
        df[c] = df[c].fillna(0).astype(np.int64)
    df["delta_ns"] = df["new_ns"] - df["base_ns"]
    with np.errstate(divide="ignore", invalid="ignore"):
        df["delta_pct"] = np.where(df["base_ns"] > 0, df["delta_ns"] / df["base_ns"].clip(lower=1) * 100, np.nan)
    big = df["delta_ns"].abs() >= min_delta_ns
    status = np.where(~present_base, "new", np.where(~present_new, "removed", "same"))
    status = np.where((status == "same") & big & (df["delta_pct"] > threshold_pct), "regressed", status)
    status = np.where((status == "same") & big & (df["delta_pct"] < -threshold_pct), "improved", status)
    df["status"] = status
    df = df[COLUMNS].sort_values("delta_ns", ascending=False, ignore_index=True)

    eb, en = engine_times(bc), engine_times(nc)
    engines: list[dict[str, Any]] = []
    for k in sorted(set(eb) | set(en)):
        bv, nv = eb.get(k, 0), en.get(k, 0)
        engines.append({"engine": k, "base_ns": bv, "new_ns": nv, "delta_ns": nv - bv,
                        "delta_pct": (nv - bv) / bv * 100 if bv else None})
    both = df[(df["status"] != "new") & (df["status"] != "removed") & big]
    op_reg = float(both["delta_pct"].max()) if len(both) else 0.0
    eng_reg = [e["delta_pct"] for e in engines if e["delta_pct"] is not None and abs(e["delta_ns"]) >= min_delta_ns]
    summary: dict[str, Any] = {
        "base_total_ns": bc.duration, "new_total_ns": nc.duration, "total_delta_ns": nc.duration - bc.duration,
        "total_delta_pct": pct(nc.duration - bc.duration, bc.duration),
        "threshold_pct": threshold_pct, "min_delta_ns": min_delta_ns,
        "op_regression_pct_max": max(op_reg, 0.0), "engine_regression_pct_max": max([0.0, *eng_reg]),
        "regressed": int((df["status"] == "regressed").sum()), "improved": int((df["status"] == "improved").sum()),
        "new_ops": df.loc[df["status"] == "new", "name"].tolist(),
        "removed_ops": df.loc[df["status"] == "removed", "name"].tolist(),
        "engines": engines,
        "warnings": run_warnings(base, new),
    }
    findings = _findings(df, nc, threshold_pct, min_delta_ns)
    total_delta = nc.duration - bc.duration
    summary["total_regressed"] = bool(total_delta >= min_delta_ns and summary["total_delta_pct"] > threshold_pct)
    if summary["total_regressed"]:
        # Ops can keep their own durations while the run gets slower (more waiting between them).
        s, e = nc.span
        findings.append(Finding(
            kind="regression", severity=severity_for(total_delta, nc.duration),
            title=f"run time {fmt_ns(bc.duration)} -> {fmt_ns(nc.duration)} (+{summary['total_delta_pct']:.1f}%)"
                  + ("" if summary["regressed"] else ", though no op got slower: look at stalls and gaps"),
            track=None, track_name=None, start_ns=s, end_ns=e, metric="total_delta_pct",
            value=float(summary["total_delta_pct"]), threshold=threshold_pct, unit="%", gain_ns=int(total_delta),
            suggestion="compare the stall, DMA bubble and gap findings of both runs", subject="total time",
        ))
    return AnalyzerResult(NAME, findings, df, summary)


def _findings(df: pd.DataFrame, nc: AnalysisContext, threshold_pct: float, min_delta_ns: int) -> list[Finding]:
    out = []
    s, e = nc.span
    dur = nc.duration
    for r in df[df["status"].isin(["regressed", "new"])].itertuples(index=False):  # changed ops only
        if r.delta_ns < min_delta_ns:
            continue
        is_new = r.status == "new"
        out.append(Finding(
            kind="new_op" if is_new else "regression", severity=severity_for(r.delta_ns, dur),
            title=(f"{r.name}: new op taking {fmt_ns(r.new_ns)}" if is_new else
                   f"{r.name}: {fmt_ns(r.base_ns)} -> {fmt_ns(r.new_ns)} (+{r.delta_pct:.1f}%)"),
            track=None, track_name=None, start_ns=s, end_ns=e, metric="new_ns" if is_new else "delta_pct",
            value=float(r.new_ns) if is_new else float(r.delta_pct), threshold=float(min_delta_ns) if is_new else threshold_pct,
            unit="ns" if is_new else "%",
            gain_ns=int(r.delta_ns), subject=str(r.name),
            suggestion="check what changed for this op (shapes, dtype, kernel choice, fusion)",
            details={"base_count": int(r.base_count), "new_count": int(r.new_count)},
        ))
    return out
