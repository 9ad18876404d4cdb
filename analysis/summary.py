"""The run-level summary: the handful of numbers a person (or a CI budget) looks at first.

Keys (all present; a number is None when the trace or spec cannot supply it):

* ``total_ns``, ``start_ns``, ``end_ns``: the run's extent;
* ``mfu``: FLOPs at each dtype's peak / run time (model FLOPs utilization, 0..1);
* ``hfu``: the same FLOPs over the time compute engines were active (how well the work that ran
  used the hardware; idle time does not count against it);
* ``mbu``: off-chip bytes / run time / off-chip bandwidth (memory-bandwidth utilization);
* ``headline``: the device breakdown (:func:`analysis.breakdown.headline`): idle / compute /
  non-compute time over the devices' spans; ``compute_active_ns`` / ``compute_active_pct`` and
  ``idle_pct`` / ``non_compute_pct`` are its numbers, so compute excludes communication and idle is
  the time no work ran (not a mean over streams);
* ``engine_active_ns``: per engine (its work, communication included, waits excluded);
* ``stall_pct``, ``dma_bubble_pct``: shares of the run (percent);
* ``notes``: lines on how far to trust the report (:mod:`analysis.notes`: the spec does not fit
  the trace, device work of unknown kind);
* ``findings_by_severity``, ``max_severity``;
* ``top_bottlenecks``: the five costliest findings (id, kind, severity, title, gain_ns);
* ``op_regression_pct_max``, ``engine_regression_pct_max``: present when a baseline was given.
"""

from __future__ import annotations

from typing import Any

from analysis.breakdown import headline
from analysis.context import AnalysisContext
from analysis.findings import SEVERITIES, AnalyzerResult, Finding
from analysis.notes import notes

SUMMARY_KEYS = ("total_ns", "start_ns", "end_ns", "mfu", "hfu", "mbu", "compute_active_ns", "compute_active_pct",
                "engine_active_ns", "stall_pct", "dma_bubble_pct", "idle_pct", "findings", "findings_by_severity",
                "max_severity", "top_bottlenecks", "hardware")


def _get(results: dict[str, AnalyzerResult], name: str, key: str, default: Any = None) -> Any:
    r = results.get(name)
    return r.summary.get(key, default) if r is not None else default


def run_summary(ctx: AnalysisContext, results: dict[str, AnalyzerResult], findings: list[Finding]) -> dict[str, Any]:
    s, e = ctx.span
    head = _get(results, "overlap", "headline") or headline(ctx)
    by_sev = {sev: 0 for sev in SEVERITIES}
    for f in findings:
        by_sev[f.severity] += 1
    worst = max((f.severity for f in findings), key=SEVERITIES.index, default=None)
    out: dict[str, Any] = {
        "total_ns": int(ctx.duration), "start_ns": int(s), "end_ns": int(e),
        "hardware": ctx.spec.name if ctx.spec is not None else None,
        "mfu": _get(results, "utilization", "mfu"),
        "hfu": _get(results, "utilization", "hfu"),
        "mbu": _get(results, "utilization", "mbu"),
        "achieved_flops": _get(results, "utilization", "achieved_flops"),
        "compute_active_ns": head["compute_ns"] if head["span_ns"] else None,
        "compute_active_pct": head["compute_pct"],
        "non_compute_pct": head["non_compute_pct"],
        "headline": head,
        "engine_active_ns": _get(results, "utilization", "engine_active_ns", {}),
        "stall_pct": _get(results, "stalls", "stall_pct"),
        "dma_bubble_pct": _get(results, "dma_bubbles", "bubble_pct"),
        "idle_pct": head["idle_pct"],
        "findings": len(findings),
        "notes": notes(ctx),
        "findings_by_severity": by_sev,
        "max_severity": worst,
        "top_bottlenecks": [
            {"id": f.id, "kind": f.kind, "severity": f.severity, "title": f.title, "gain_ns": int(f.gain_ns)}
            for f in findings[:5]
        ],
    }
    if "diff" in results:
        out["op_regression_pct_max"] = results["diff"].summary.get("op_regression_pct_max")
        out["engine_regression_pct_max"] = results["diff"].summary.get("engine_regression_pct_max")
        out["total_delta_pct"] = results["diff"].summary.get("total_delta_pct")
    return out
