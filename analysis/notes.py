"""Notes on how far to trust a report: the spec does not fit the trace, work of unknown kind.

A report's numbers are only as good as the match between the trace and the spec it is judged
against.  Judging a CPU-only trace against an accelerator's peaks produces "300000x headroom"
findings that say nothing about the code, so the report says plainly that the two do not match.
Each note is one line of text; :func:`notes` returns them for the run summary (``notes``), which
the text and markdown reports print next to the summary.
"""

from __future__ import annotations

import re

from analysis.context import AnalysisContext

_CPU_SPEC = re.compile(r"\bcpu\b|xeon|epyc|core i[3579]|ryzen|graviton", re.I)


def spec_is_cpu(ctx: AnalysisContext) -> bool:
    """The spec describes a CPU (its name or description says so), not an accelerator."""
    sp = ctx.spec
    return sp is not None and bool(_CPU_SPEC.search(f"{sp.name} {getattr(sp, 'description', '') or ''}"))


def notes(ctx: AnalysisContext) -> list[str]:
    out: list[str] = []
    sp = ctx.spec
    has_device = bool(ctx.n) and not ctx.host_as_compute
    if sp is not None and ctx.n:
        if not has_device and not spec_is_cpu(ctx):
            out.append(f"spec mismatch: {sp.name} is an accelerator but the trace has no device work (only host "
                       "threads); peaks, MFU and roofline headroom compare CPU work with the accelerator")
        elif has_device and spec_is_cpu(ctx):
            out.append(f"spec mismatch: {sp.name} is a CPU but the trace has device work; judge it against "
                       "the accelerator it ran on (--hw)")
    unknown = ctx.trace.metadata.extra.get("unknown_device_categories")
    if isinstance(unknown, dict) and unknown:
        cats = ", ".join(f"{k} ({v})" for k, v in sorted(unknown.items()))
        out.append(f"device work of unknown kind, counted as compute: {cats}")
    return out
