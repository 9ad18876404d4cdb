"""``profiler fleet DIR_OR_GLOB``: every trace of many runs and ranks, analyzed in parallel on Dask."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from profiler.cli.analyze import emit
from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail

FORMATS = ("text", "md", "json")


def default_cache_dir() -> Path:
    """Where imported traces are kept: $ACCEL_PROFILER_CACHE, else ~/.cache/accel-profiler/traces."""
    env = os.environ.get("ACCEL_PROFILER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "accel-profiler" / "traces"


@click.command()
@click.argument("sources", metavar="DIR_OR_GLOB...", nargs=-1, required=True)
@hw_option()
@click.option("--scheduler", metavar="ADDRESS",
              help="a running dask.distributed scheduler (tcp://host:8786); default: a local cluster")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="workers of the local cluster [default: the CPU count, at most 8]")
@click.option("--serial", is_flag=True, help="no Dask: analyze the traces one after another in this process")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
              help="folder of imported traces, keyed by content [default: $ACCEL_PROFILER_CACHE or "
                   "~/.cache/accel-profiler/traces]")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text, md (GitHub step summary) or json (one row per trace with its run and rank)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the report here instead of stdout")
@click.option("--budget", "budget_path", type=click.Path(dir_okay=False),
              help="budgets TOML (as for analyze), checked on every trace: any failure exits 1")
@click.option("--threshold", "threshold_pct", type=float, default=5.0, show_default=True,
              help="percent growth of a kernel's median time from one run to the next that is a regression")
def fleet(sources: tuple[str, ...], hw: str | None, scheduler: str | None, workers: int | None, serial: bool,
          cache_dir: str | None, fmt: str, output: str | None, budget_path: str | None, threshold_pct: float) -> None:
    """Analyze every trace under DIR_OR_GLOB (the ranks of many runs) and gather one report.

    \b
    Each trace is imported once into a Parquet trace directory (cached by content hash), analyzed
    on a Dask cluster (a local one by default, or the scheduler at ADDRESS), and the rows are
    gathered: per run and rank, kernel times across ranks, outlier ranks, regressions from one
    run to the next (runs: sub-folders, or file names without their rank, in name order).
    A lost worker loses no result: its traces are analyzed again elsewhere.
    Exit status: 0 ok, 1 a budget failed on some trace, 2 bad input or usage.
    Examples:
      profiler fleet traces/ --format md >> "$GITHUB_STEP_SUMMARY"
      profiler fleet 'runs/*/rank*.json.gz' --scheduler tcp://10.0.0.5:8786 --format json -o fleet.json
    """
    from analysis.budget import load_budgets
    from analysis.fleet import run_fleet
    from profiler.tracesets import expand

    resolve_spec(hw)  # bad --hw is bad input before any work starts
    budgets: dict[str, Any] | None = run_or_fail(load_budgets, budget_path) if budget_path else None
    paths = [str(p) for p in run_or_fail(expand, sources)]
    root = sources[0] if len(sources) == 1 and Path(sources[0]).is_dir() else None
    cache = str(cache_dir or default_cache_dir())
    if serial:
        rep = run_fleet(paths, root, cache, hw, budgets, threshold_pct)
    else:
        with _client(scheduler, workers) as client:
            rep = run_fleet(paths, root, cache, hw, budgets, threshold_pct, mapper=_dask_mapper(client))
    emit(render(rep, fmt, f"accel-profiler fleet: {len(paths)} traces"), output)
    if rep.budgets_failed:
        if output:
            click.echo(f"budgets: {rep.budgets_failed} failed", err=True)
        raise SystemExit(1)


class _client:
    """A Dask client: on the scheduler at ``address``, or on a local cluster closed afterwards."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        self.address, self.workers = address, workers
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        try:
            from dask.distributed import Client, LocalCluster
        except ModuleNotFoundError:
            raise InputError("profiler fleet needs dask.distributed: pip install 'accel-profiler[fleet]' "
                             "(or use --serial)") from None
        if self.address:
            try:
                self.client = Client(self.address, timeout=10)
            except OSError as exc:
                raise InputError(f"--scheduler {self.address}: cannot connect: {exc}") from None
        else:
            n = self.workers or min(os.cpu_count() or 1, 8)
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=40)
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _dask_mapper(client: Any) -> Any:
    """``map`` over the cluster: one task per trace, retried when it fails or its worker dies."""

    def mapper(func: Any, paths: list[str]) -> list[dict[str, Any]]:
        futures = client.map(func, paths, retries=3, pure=False)
        return list(client.gather(futures))

    return mapper


def render(rep: Any, fmt: str, title: str) -> str:
    """The fleet report as text, Markdown or JSON."""
    from analysis.fleet import tables
    from analysis.render import clean, md_table, text_table

    if fmt == "json":
        doc = {"schema": "accel-profiler/fleet-report", "version": 1, "summary": rep.summary,
               "traces": rep.traces.to_dict("records"), "kernels": rep.kernels.to_dict("records"),
               "outliers": rep.outliers.to_dict("records"), "regressions": rep.regressions.to_dict("records"),
               "findings": [f.to_dict() for f in rep.findings]}
        return json.dumps(clean(doc), indent=2) + "\n"
    s = rep.summary
    head = (f"{s['traces']} traces in {s['runs']} runs; {s['cached']} from the cache; {s['errors']} unreadable; "
            f"{s['outliers']} outliers; {s['regressions']} regressions; {s['budgets_failed']} budgets failed")
    out = [f"## {title}" if fmt == "md" else title, "", head, ""]
    for name, headers, rows in tables(rep):
        if fmt == "md":
            out += [f"### {name}", "", md_table(headers, rows) if rows else "(none)"]
        else:
            out += [name, text_table(headers, rows)]
        out.append("")
    out.append("### Findings" if fmt == "md" else "Findings")
    out += [f"- [{f.severity}] {f.title}" for f in rep.findings[:20]] or ["None."]
    return "\n".join(out) + "\n"
