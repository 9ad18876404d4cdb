"""``profiler diff BASE NEW``: per-op and per-engine time deltas between two traces.

Device and host ops are compared; engines are matched by role and stream name (not device index);
a warning line says when the two runs ran on different hardware or world sizes.

Exit status 1 when an op, or the whole run, got slower by more than ``--threshold`` percent (and
by more than the noise floor), 0 otherwise, 2 on bad input: usable as a CI gate on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from profiler.cli.analyze import emit
from profiler.cli.options import run_or_fail
from profiler.formats import read_trace


@click.command()
@click.argument("base_path", metavar="BASE", type=click.Path(exists=True, dir_okay=True))
@click.argument("new_path", metavar="NEW", type=click.Path(exists=True, dir_okay=True))
@click.option("--format", "fmt", type=click.Choice(("text", "md", "json", "junit")), default="text", show_default=True)
@click.option("--threshold", "threshold_pct", type=float, default=5.0, show_default=True,
              help="percent slower that counts as a regression")
@click.option("--min-delta-ns", type=int, default=None,
              help="ignore changes smaller than this (default: 0.1%% of the base run, at least 1 us)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here instead of stdout")
@click.option("--top", type=int, default=15, show_default=True, help="ops to list")
def diff(base_path: str, new_path: str, fmt: str, threshold_pct: float, min_delta_ns: int | None,
         output: str | None, top: int) -> None:
    """Compare NEW against BASE: which ops and engines got slower, which are new or gone."""
    from analysis.budget import BudgetResult
    from analysis.common import fmt_ns
    from analysis.diff import diff as run_diff
    from analysis.render import clean, md_table

    base = run_or_fail(read_trace, base_path)
    new = run_or_fail(read_trace, new_path)
    res = run_or_fail(run_diff, base, new, threshold_pct, min_delta_ns)
    s = res.summary
    regressed = res.metrics[res.metrics["status"] == "regressed"]
    passed = regressed.empty and not s["total_regressed"]
    title = f"{Path(new_path).name} vs {Path(base_path).name}"
    verdict = ("no op regressed" if regressed.empty else f"{len(regressed)} ops regressed") + \
        f" beyond {threshold_pct:g}%; run time {s['total_delta_pct']:+.1f}% ({fmt_ns(s['base_total_ns'])} -> " \
        f"{fmt_ns(s['new_total_ns'])}){': REGRESSED' if s['total_regressed'] else ''}"
    df = res.metrics.head(top)

    def delta(v: float) -> str:
        return f"{v:+.1f}%" if v == v else "n/a"

    if fmt == "json":
        text = json.dumps(clean({"base": base_path, "new": new_path, "passed": passed, "summary": s,
                                 "ops": res.metrics.to_dict(orient="records"),
                                 "findings": [f.to_dict() for f in res.findings]}), indent=2, allow_nan=False)
    elif fmt == "md":
        rows = [[r.name, r.status, fmt_ns(r.base_ns), fmt_ns(r.new_ns), delta(r.delta_pct)] for r in df.itertuples(index=False)]
        eng = [[e["engine"], fmt_ns(e["base_ns"]), fmt_ns(e["new_ns"]), delta(e["delta_pct"] if e["delta_pct"] is not None else float("nan"))]
               for e in s["engines"]]
        text = (f"## Trace diff: {title}\n\n**{'✅' if passed else '❌'} {verdict}**\n\n"
                + "".join(f"> **warning:** {w}\n\n" for w in s["warnings"])
                + md_table(["op", "status", "base", "new", "delta"], rows) + "\n\n"
                + (md_table(["engine", "base active", "new active", "delta"], eng) + "\n" if eng else ""))
    elif fmt == "junit":
        from analysis import Report
        from analysis.render import to_junit

        checks = [BudgetResult(f"op:{r.name}", r.status != "regressed", float(r.delta_pct) if r.delta_pct == r.delta_pct else None,
                               threshold_pct, f"{r.name}: {fmt_ns(r.base_ns)} -> {fmt_ns(r.new_ns)} ({delta(r.delta_pct)})")
                  for r in res.metrics.itertuples(index=False) if r.status in ("regressed", "same", "improved")]
        checks.insert(0, BudgetResult("run time", not s["total_regressed"], float(s["total_delta_pct"]), threshold_pct,
                                      f"run time {fmt_ns(s['base_total_ns'])} -> {fmt_ns(s['new_total_ns'])} "
                                      f"({s['total_delta_pct']:+.1f}%)"))
        text = to_junit(Report({"diff": res}, res.findings, s), checks, suite="accel-profiler diff")
    else:
        lines = [title, verdict, *[f"warning: {w}" for w in s["warnings"]], ""]
        names = [str(n) if len(str(n)) <= 60 else str(n)[:57] + "..." for n in df["name"]]
        w = max([len(n) for n in names] + [2])
        lines += [f"  {nm.ljust(w)}  {r.status:9}  {fmt_ns(r.base_ns):>12} -> {fmt_ns(r.new_ns):>12}  {delta(r.delta_pct)}"
                  for nm, r in zip(names, df.itertuples(index=False), strict=True)]
        if s["engines"]:
            lines += ["", "engines (active time):"]
            lines += [f"  {e['engine']}: {fmt_ns(e['base_ns'])} -> {fmt_ns(e['new_ns'])}" for e in s["engines"]]
        text = "\n".join(lines) + "\n"
    emit(text, output)
    if not passed:
        raise SystemExit(1)
