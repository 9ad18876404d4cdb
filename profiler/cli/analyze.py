"""``profiler analyze TRACE``: bottlenecks, roofline and CI budgets in one command.

Exit status: 0 when every budget passes (or none is given), 1 when a budget fails, 2 on bad input
(unreadable trace, invalid spec or budget file).  ``--format md`` writes a GitHub step summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail
from profiler.formats import read_trace

FORMATS = ("text", "md", "json", "junit")


def emit(text: str, output: str | None) -> None:
    """Write to a file (``-o``) or stdout."""
    if output:
        from profiler.atomic import atomic_path

        try:
            with atomic_path(output) as tmp:  # all or nothing: a failed write keeps the old report
                tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{output}: cannot write: {exc.strerror}") from None
    else:
        click.echo(text, nl=False)


@click.command()
@click.argument("trace_paths", metavar="TRACE...", nargs=-1, required=True)
@hw_option()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (terminal), md (GitHub step summary), json (schema: analysis/schema.md), junit (one testcase per budget)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the report here instead of stdout")
@click.option("--budget", "budget_path", type=click.Path(dir_okay=False), help="budgets TOML: failing any exits 1")
@click.option("--baseline", "baseline_path", type=click.Path(exists=True, dir_okay=True),
              help="baseline trace: adds per-op/per-engine deltas and the regression budgets")
@click.option("--threshold", "threshold_pct", type=float, default=5.0, show_default=True,
              help="percent slower than the baseline that counts as an op regression")
@click.option("--top", type=int, default=10, show_default=True, help="findings to list")
def analyze(trace_paths: tuple[str, ...], hw: str | None, fmt: str, output: str | None, budget_path: str | None,
            baseline_path: str | None, threshold_pct: float, top: int) -> None:
    """Find what limits TRACE: utilization, stalls, DMA bubbles, roofline, gaps, regressions.

    \b
    Examples:
      profiler analyze run.pftrace --hw h100-sxm
      profiler analyze run.trace --hw edge-npu --budget budget.toml --format md >> "$GITHUB_STEP_SUMMARY"
      profiler analyze new.json --baseline old.json --budget budget.toml --format junit -o budgets.xml
      profiler analyze rank0.json rank1.json      (or a folder of them: the ranks of one job together)

    Several traces (or a folder holding several) are taken as the ranks of one job: each rank is
    analyzed as on its own, then clocks are aligned on matching collectives and a per-rank table,
    the collectives (skew, bus bandwidth) and the stragglers are reported; budgets apply to
    every rank.
    """
    from profiler.tracesets import expand

    paths = run_or_fail(expand, trace_paths)
    if len(paths) > 1:
        if baseline_path:
            raise InputError("--baseline compares one trace with another; give one TRACE with it")
        _analyze_ranks([str(p) for p in paths], hw, fmt, output, budget_path, top)
        return
    trace_path = str(paths[0])
    from analysis import run_all
    from analysis.budget import evaluate, load_budgets
    from analysis.render import render, to_markdown, to_text

    spec = resolve_spec(hw)
    budgets: dict[str, Any] | None = run_or_fail(load_budgets, budget_path) if budget_path else None
    trace = run_or_fail(read_trace, trace_path)
    baseline = run_or_fail(read_trace, baseline_path) if baseline_path else None
    report = run_or_fail(run_all, trace, spec, baseline=baseline, options={"threshold_pct": threshold_pct})
    results = run_or_fail(evaluate, budgets, report.summary, budget_path) if budgets is not None else None
    title = f"accel-profiler analysis: {Path(trace_path).name}" + (f" vs {Path(baseline_path).name}" if baseline_path else "")
    if fmt == "md":
        text = to_markdown(report, results, title, top)
    elif fmt == "text":
        text = to_text(report, results, title, top)
    else:
        text = render(report, fmt, results, title)
    emit(text, output)
    if output and results is not None:
        # The file holds the details; the terminal still gets the verdict.
        failed = [r for r in results if not r.passed]
        click.echo(f"budgets: {len(results) - len(failed)} passed, {len(failed)} failed"
                   + "".join(f"\n  FAIL {r.name}: {r.message}" for r in failed), err=True)
    if results is not None and not all(r.passed for r in results):
        raise SystemExit(1)


def _analyze_ranks(paths: list[str], hw: str | None, fmt: str, output: str | None, budget_path: str | None,
                   top: int) -> None:
    """``analyze`` of several traces: the ranks of one job (see :mod:`analysis.ranks`)."""
    from analysis.budget import evaluate, load_budgets
    from analysis.ranks import analyze_ranks
    from analysis.render_ranks import render

    if fmt == "junit":
        raise InputError("--format junit reports budgets of one trace; use text, md or json for several")
    spec = resolve_spec(hw)
    budgets: dict[str, Any] | None = run_or_fail(load_budgets, budget_path) if budget_path else None
    traces = [run_or_fail(read_trace, p) for p in paths]
    rep = run_or_fail(analyze_ranks, traces, paths, spec)
    title = f"accel-profiler analysis: {len(paths)} ranks"
    emit(render(rep, fmt, title, top), output)
    if budgets is None:
        return
    failed = []
    for r in rep.ranks:
        for res in run_or_fail(evaluate, budgets, rep.reports[r].summary, budget_path):
            if not res.passed:
                failed.append(f"rank {r}: {res.name}: {res.message}")
    click.echo(f"budgets: {len(rep.ranks)} ranks checked, {len(failed)} failed" + "".join(f"\n  FAIL {f}" for f in failed),
               err=True)
    if failed:
        raise SystemExit(1)
