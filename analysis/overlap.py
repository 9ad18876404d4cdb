"""Overlap and idle breakdown: where each engine's time went, and whether data movement hid.

Per engine (like HolisticTraceAnalysis' temporal breakdown): compute, communication, memory
copy/set, stalled and idle time, each as a share of the run.  Per device: how much of the DMA
time and of the communication time ran under compute (hidden) rather than alone (exposed), and the
unit's temporal breakdown as HolisticTraceAnalysis defines it (idle / compute / non-compute over the
span of its work), from :func:`analysis.breakdown.device_breakdown`, the same numbers as the headline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.breakdown import combine, device_breakdown
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import COMM, COMPUTE, DMA, HOST, AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "overlap"
#: Exposed communication above this share of the run is a finding.
EXPOSED_COMM_PCT = 5.0
COLUMNS = ["engine", "track_name", "role", "compute_ns", "comm_ns", "memory_ns", "stalled_ns", "idle_ns",
           "compute_pct", "comm_pct", "memory_pct", "stalled_pct", "idle_pct"]


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    dur = ctx.duration
    rows = []
    for role in ("compute", "dma"):
        for e in ctx.engine_ids[role]:
            r = ctx.rows_of_engine(e)
            top = r[ctx.depth[r] == 0]
            cls = ctx.slice_class[top]
            d = ctx.dur[top]
            by = np.bincount(cls, weights=d, minlength=6)
            compute = by[COMPUTE] + (by[HOST] if ctx.host_as_compute else 0)
            stalled = iv.total(ctx.stalled(e))
            busy = iv.total(ctx.busy(e))
            idle = max(dur - busy - stalled + iv.overlap_total(ctx.busy(e), ctx.stalled(e)), 0)
            rows.append({
                "engine": e, "track_name": ctx.track_names.get(e, str(e)), "role": role,
                "compute_ns": int(compute), "comm_ns": int(by[COMM]), "memory_ns": int(by[DMA]),
                "stalled_ns": int(stalled), "idle_ns": int(idle),
            })
    metrics = pd.DataFrame(rows, columns=COLUMNS[:9])
    for k in ("compute", "comm", "memory", "stalled", "idle"):
        metrics[f"{k}_pct"] = metrics[f"{k}_ns"] / dur * 100 if dur else 0.0
    comp = metrics[metrics["role"] == "compute"]
    devices = device_breakdown(ctx)
    head = combine(devices, ctx.host_as_compute)
    summary = {
        # The device breakdown's idle share (analysis.breakdown): one definition everywhere.
        "idle_pct": head["idle_pct"],
        "stalled_pct": float(comp["stalled_pct"].mean()) if len(comp) else None,
        "headline": head,
        "devices": devices,
    }
    findings = []
    s, e = ctx.span
    for dv in devices:  # one per device
        exposed = dv["comm_exposed_ns"]
        if dur and pct(exposed, dur) >= EXPOSED_COMM_PCT:
            findings.append(Finding(
                kind="exposed_communication", severity=severity_for(exposed, dur),
                title=f"{dv['device']}: {fmt_ns(exposed)} of communication not overlapped with compute "
                      f"({dv['comm_overlap_pct']:.0f}% hidden)",
                track=None, track_name=dv["device"], start_ns=s, end_ns=e, metric="comm_exposed_pct",
                value=pct(exposed, dur), threshold=EXPOSED_COMM_PCT, unit="%", gain_ns=int(exposed),
                suggestion="overlap collectives with compute (bucketed all-reduce, async collectives, separate stream)",
                subject="communication",
            ))
    return AnalyzerResult(NAME, findings, metrics, summary)
