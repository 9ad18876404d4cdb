"""Render a Report: plain text (terminal), Markdown (GitHub step summary), JSON, JUnit XML.

The JSON document's shape is :data:`analysis.report_schema.REPORT_SCHEMA` (prose in
``analysis/schema.md``); every number is finite or null so any JSON parser reads it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from analysis.common import fmt_ns, fmt_rate

if TYPE_CHECKING:
    from analysis import Report
    from analysis.budget import BudgetResult

SCHEMA_ID = "accel-profiler/analysis-report"
SCHEMA_VERSION = 1
_SEV_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}


def clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return clean(df.to_dict(orient="records"))


def report_to_dict(report: Report, budgets: list[BudgetResult] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "version": SCHEMA_VERSION,
        "trace": clean(report.extra.get("trace", {})),
        "hardware": report.spec.name if report.spec is not None else None,
        "summary": clean(report.summary),
        "findings": [clean(f.to_dict()) for f in report.findings],
        "analyzers": {
            name: {"summary": clean(r.summary), "metrics": _records(r.metrics)} for name, r in report.results.items()
        },
        "budgets": [clean(b.to_dict()) for b in budgets] if budgets is not None else [],
        "passed": all(b.passed for b in budgets) if budgets else True,
    }
    return doc


def to_json(report: Report, budgets: list[BudgetResult] | None = None) -> str:
    return json.dumps(report_to_dict(report, budgets), indent=2, allow_nan=False)


# ------------------------------------------------------------------ markdown
def _fmt_frac(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}%"


def _fmt_pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}%"


def _summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("total time", fmt_ns(s.get("total_ns", 0))),
        ("MFU", _fmt_frac(s.get("mfu"))),
        ("HFU (while active)", _fmt_frac(s.get("hfu"))),
        ("memory-bandwidth utilization", _fmt_frac(s.get("mbu"))),
        ("achieved", fmt_rate(s.get("achieved_flops") or 0.0, "FLOP/s")),
        ("compute active (waits excluded)", f"{fmt_ns(s.get('compute_active_ns') or 0)} ({_fmt_pct(s.get('compute_active_pct'))})"),
        ("stalled", _fmt_pct(s.get("stall_pct"))),
        ("DMA bubbles", _fmt_pct(s.get("dma_bubble_pct"))),
        ("idle", _fmt_pct(s.get("idle_pct"))),
    ]
    if "op_regression_pct_max" in s:
        rows.append(("worst op regression vs baseline", _fmt_pct(s.get("op_regression_pct_max"))))
        rows.append(("total time vs baseline", _fmt_pct(s.get("total_delta_pct"))))
    return rows


def _import_stats(report: Report) -> dict[str, Any]:
    st = report.extra.get("trace", {}).get("import_stats")
    return st if isinstance(st, dict) else {}


def import_lines(report: Report) -> list[str]:
    """What the importer read and what it dropped or repaired, by reason (empty when unknown).

    Why in the report: a finding on a trace that lost events at import may be an artifact of the
    loss, so the reader sees the loss next to the findings.
    """
    st = _import_stats(report)
    if not st:
        return []
    out = [f"{st.get('events_read', 0)} events read, {st.get('events_dropped', 0)} dropped, "
           f"{st.get('events_repaired', 0)} repaired"]
    for what in ("dropped", "repaired"):
        for reason, n in sorted((st.get(what) or {}).items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"{what} {n}: {reason}")
    kinds = report.extra.get("trace", {}).get("flow_kinds")
    if isinstance(kinds, dict) and any(kinds.values()):
        out.append("flows: " + ", ".join(f"{n} {k.replace('_', '-')}" for k, n in kinds.items()))
    return out


def text_table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """Columns padded to their widest cell (terminal reports); a "(none)" line when no rows."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out if rows else [*out, indent + "(none)"])


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def to_markdown(report: Report, budgets: list[BudgetResult] | None = None, title: str | None = None,
                top: int = 10) -> str:
    s = report.summary
    parts = [f"## {title or 'accel-profiler analysis'}"]
    parts += [f"> **note:** {n}" for n in s.get("notes") or []]  # before the findings they qualify
    if budgets:
        failed = [b for b in budgets if not b.passed]
        verdict = f"❌ {len(failed)} of {len(budgets)} budgets failed" if failed else f"✅ all {len(budgets)} budgets passed"
        parts.append(f"**{verdict}**")
        parts.append(md_table(["budget", "result", "detail"],
                               [[b.name, "✅ pass" if b.passed else "❌ FAIL", b.message] for b in budgets]))
    if report.findings:
        parts.append(f"### Top findings ({len(report.findings)} total)")
        parts.append(md_table(
            ["", "severity", "finding", "est. gain", "suggestion"],
            [[_SEV_ICON.get(f.severity, ""), f.severity, f.title, fmt_ns(f.gain_ns), f.suggestion]
             for f in report.findings[:top]]))
    else:
        parts.append("### No findings")
    parts.append("### Run summary")
    parts.append(md_table(["metric", "value"], [[k, v] for k, v in _summary_rows(s)]))
    st = _import_stats(report)
    if st:
        parts.append("### Import")
        lost = [[what, reason, str(n)] for what in ("dropped", "repaired")
                for reason, n in sorted((st.get(what) or {}).items(), key=lambda kv: (-kv[1], kv[0]))]
        line = import_lines(report)[0]
        parts.append(line + (":\n\n" + md_table(["", "reason", "events"], lost) if lost else ""))
    util = report.results.get("utilization")
    if util is not None and len(util.metrics):
        parts.append("### Engines")
        parts.append(md_table(
            ["engine", "role", "active", "busy", "stalled", "achieved"],
            [[r.track_name, r.role, fmt_ns(r.active_ns), f"{100 * r.busy_fraction:.1f}%", fmt_ns(r.stalled_ns),
              fmt_rate(r.achieved_flops, "FLOP/s") if r.role == "compute" else fmt_rate(r.achieved_bandwidth, "B/s")]
             for r in util.metrics.itertuples(index=False)][:20]))
    roof = report.results.get("roofline")
    if roof is not None and len(roof.metrics):
        parts.append("### Roofline (top ops by time)")
        parts.append(md_table(
            ["op", "count", "time", "AI (FLOP/B)", "achieved", "bound", "headroom"],
            [[r.name, str(r.count), fmt_ns(r.total_ns), f"{r.ai:.2f}" if math.isfinite(r.ai) else "inf",
              fmt_rate(r.achieved_flops, "FLOP/s"), r.bound,
              f"{r.headroom:.1f}x" if math.isfinite(r.headroom) else "-"]
             for r in roof.metrics.head(top).itertuples(index=False)]))
    d = report.results.get("diff")
    if d is not None and len(d.metrics):
        parts.append("### Changes vs baseline (largest first)")
        parts.append(md_table(
            ["op", "status", "base", "new", "delta"],
            [[r.name, r.status, fmt_ns(r.base_ns), fmt_ns(r.new_ns),
              f"{r.delta_pct:+.1f}%" if r.delta_pct == r.delta_pct else "n/a"]
             for r in d.metrics.head(top).itertuples(index=False)]))
    return "\n\n".join(parts) + "\n"


def to_text(report: Report, budgets: list[BudgetResult] | None = None, title: str | None = None, top: int = 10) -> str:
    lines = [title or "accel-profiler analysis", ""]
    w = max(len(k) for k, _ in _summary_rows(report.summary))
    lines += [f"  {k.ljust(w)}  {v}" for k, v in _summary_rows(report.summary)]
    lines += [f"note: {n}" for n in report.summary.get("notes") or []]
    imp = import_lines(report)
    if imp:
        lines += ["", f"import: {imp[0]}"] + [f"  {x}" for x in imp[1:]]
    if budgets:
        lines += ["", "budgets:"]
        lines += [f"  {'PASS' if b.passed else 'FAIL'}  {b.name}: {b.message}" for b in budgets]
    lines += ["", f"findings ({len(report.findings)}):" if report.findings else "no findings"]
    for f in report.findings[:top]:
        lines.append(f"  [{f.severity}] {f.title}")
        lines.append(f"      gain ~{fmt_ns(f.gain_ns)}; {f.suggestion}  ({f.id})")
    return "\n".join(lines) + "\n"


def to_junit(report: Report, budgets: list[BudgetResult] | None = None, suite: str = "accel-profiler budgets") -> str:
    """JUnit XML: one testcase per budget, failures carry the budget's message."""
    budgets = budgets or []
    failures = sum(1 for b in budgets if not b.passed)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name={quoteattr(suite)} tests="{len(budgets)}" failures="{failures}">',
           f'  <testsuite name={quoteattr(suite)} tests="{len(budgets)}" failures="{failures}" errors="0">']
    for b in budgets:
        out.append(f'    <testcase classname="budgets" name={quoteattr(b.name)}>')
        if not b.passed:
            out.append(f"      <failure message={quoteattr(b.message)}>{escape(b.message)}</failure>")
        out.append(f"      <system-out>{escape(b.message)}</system-out>")
        out.append("    </testcase>")
    top = "\n".join(f"[{f.severity}] {f.title}" for f in report.findings[:10])
    out.append(f"    <system-out>{escape(top)}</system-out>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def render(report: Report, fmt: str, budgets: list[BudgetResult] | None = None, title: str | None = None) -> str:
    if fmt == "json":
        return to_json(report, budgets)
    if fmt == "md":
        return to_markdown(report, budgets, title)
    if fmt == "junit":
        return to_junit(report, budgets)
    return to_text(report, budgets, title)
