"""Analyzers: turn a trace into findings (what is slow, why, how much to gain) and metrics tables.

Stable API (the dashboard and the CLI use exactly this)::

    from analysis import run_all, Report
    report = run_all(trace, spec)          # spec: HardwareSpec | None
    report.results["roofline"].metrics     # AnalyzerResult per analyzer name
    report.findings                        # every finding, most costly first (analysis.findings.rank)
    report.summary                         # run-level numbers, see analysis.summary.SUMMARY_KEYS
    report.to_dict()                       # JSON-ready, schema in analysis/schema.md

    from analysis import roofline
    from analysis.context import AnalysisContext
    ctx = AnalysisContext(trace, spec)     # decoded columns, shared by analyzers (or reuse one)
    roofline.analyze(ctx).metrics          # one row per op name: name, count, total_ns, flops, bytes,
                                           # ai, achieved_flops, dtype, bound, attainable_flops, headroom
    roofline.ceilings(spec, ["bf16"])      # ({dtype: FLOP/s}, {level: B/s}, {dtype: {level: ridge AI}})
    roofline.points(trace, spec, start_ns=None, end_ns=None)   # one point per slice in a window

    from analysis.budget import load_budgets, evaluate          # CI budgets -> BudgetResult list
    from analysis.render import render                          # text | md | json | junit
    from analysis.diff import diff                              # diff(base, new, threshold_pct)
    from analysis.sql import query                              # DuckDB SQL over the trace tables

Each analyzer is one module with ``analyze(ctx: AnalysisContext) -> AnalyzerResult``; they share an
:class:`analysis.context.AnalysisContext` so a trace's columns are decoded once.  When ``spec`` is
None and the trace names a preset in ``metadata.hardware`` that preset is used; without any spec the
analyses that need peaks (MFU, roofline bound) report ``None``/"unknown" instead of guessing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from analysis.collapse import collapse_parallel
from analysis.context import AnalysisContext
from analysis.findings import AnalyzerResult, Finding, rank
from profiler.errors import SpecError
from profiler.hardware import HardwareSpec, load_spec, preset_names
from profiler.model import Trace

#: Analyzers run by :func:`run_all`, in order (module names under ``analysis``).
ANALYZERS: tuple[str, ...] = ("utilization", "stalls", "dma_bubbles", "roofline", "overlap", "dma_efficiency", "gaps",
                              "iterations", "idle_breakdown", "queue_length", "launch_stats", "kernel_types",
                              "kernel_sequences")


@dataclass
class Report:
    """Everything :func:`run_all` found: per-analyzer results, ranked findings, a run summary."""

    results: dict[str, AnalyzerResult]
    findings: list[Finding]
    summary: dict[str, Any]
    spec: HardwareSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``profiler analyze --format json`` document)."""
        from analysis.render import report_to_dict

        return report_to_dict(self)


def spec_for(trace: Trace, spec: HardwareSpec | None) -> HardwareSpec | None:
    """The spec to judge a trace by: the given one, else the preset the trace was made for."""
    if spec is not None:
        return spec
    hw = trace.metadata.hardware
    if hw and hw in preset_names():
        try:
            return load_spec(hw)
        except SpecError:
            return None
    return None


def run_all(trace: Trace, spec: HardwareSpec | None = None, *, analyzers: tuple[str, ...] | None = None,
            baseline: Trace | None = None, windows: int = 20, options: dict[str, Any] | None = None) -> Report:
    """Run every analyzer (or the named ones) on ``trace`` and rank what they found.

    ``baseline`` adds the ``diff`` analyzer (this trace against the baseline).
    """
    from analysis.summary import run_summary

    ctx = AnalysisContext(trace, spec_for(trace, spec), windows=windows, options=options)
    results: dict[str, AnalyzerResult] = {}
    for name in analyzers or ANALYZERS:
        mod = importlib.import_module(f"analysis.{name}")
        results[name] = mod.analyze(ctx)
    if baseline is not None:
        from analysis import diff

        results["diff"] = diff.diff(baseline, trace, threshold_pct=float((options or {}).get("threshold_pct", 5.0)))
    findings = rank(collapse_parallel([f for r in results.values() for f in r.findings]))
    summary = run_summary(ctx, results, findings)
    md = trace.metadata
    info = {"source": md.source, "source_format": md.source_format, "hardware": md.hardware,
            "tracks": trace.tracks.num_rows, "slices": trace.slices.num_rows, "flows": trace.flows.num_rows,
            "import_stats": md.import_stats.to_dict(),
            "flow_kinds": md.extra.get("flow_kinds")}
    return Report(results=results, findings=findings, summary=summary, spec=ctx.spec, extra={"trace": info})


__all__ = ["ANALYZERS", "AnalysisContext", "AnalyzerResult", "Finding", "Report", "rank", "run_all", "spec_for"]
