"""``profiler sql TRACE "SELECT ..."``: ad-hoc SQL over a trace's tables (DuckDB)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click

from profiler.cli.options import run_or_fail
from profiler.formats import read_trace


def _json_default(v: Any) -> Any:
    """DuckDB sums are HUGEINT/DECIMAL: numbers stay numbers in JSON."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return str(v)


@click.command()
@click.argument("trace_paths", metavar="TRACE...", nargs=-1, required=True)
@click.argument("sql_text", metavar="SQL")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
              help="with several traces: folder of imported traces [default: as profiler fleet's]")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array of row objects")
@click.option("--limit", type=int, default=200, show_default=True, help="rows to print in the table view")
def sql(trace_paths: tuple[str, ...], sql_text: str, cache_dir: str | None, as_csv: bool, as_json: bool,
        limit: int) -> None:
    """Run SQL over TRACE's tables: slices, tracks, counters, instants, flows, slices_x.

    \b
    Names are plain strings; times are int64 ns.  slices_x adds track_name, track_kind, device.
    Several TRACEs (or folders, or globs): every view spans all of them, with leading columns
    trace, run and rank (ids are per trace: join on trace and id); each file is imported once
    into the Parquet cache and read in place.
    Examples:
      profiler sql run.trace "SELECT name, count(*) n, sum(dur)/1e6 ms FROM slices GROUP BY name ORDER BY ms DESC LIMIT 10"
      profiler sql runs/ "SELECT run, rank, sum(dur)/1e6 ms FROM slices_x WHERE track_kind = 'compute' GROUP BY 1, 2"
    """
    from analysis.sql import query, query_dirs
    from profiler.tracesets import expand

    paths = run_or_fail(expand, trace_paths)
    if len(paths) == 1:
        table = run_or_fail(query, run_or_fail(read_trace, paths[0]), sql_text)
    else:
        table = run_or_fail(query_dirs, run_or_fail(_entries, paths, trace_paths, cache_dir), sql_text)
    if as_json:
        click.echo(json.dumps(table.to_pylist(), default=_json_default))
        return
    if as_csv:
        import io

        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        click.echo(buf.getvalue().decode(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(*table.column_names)
    for row in table.slice(0, limit).to_pylist():
        t.add_row(*("" if v is None else str(v) for v in row.values()))
    console = Console()
    console.print(t)
    if table.num_rows > limit:
        console.print(f"({table.num_rows - limit:,} more rows; use --limit, --csv or --json)")


def _entries(paths: list[Any], args: tuple[str, ...], cache_dir: str | None) -> list[dict[str, Any]]:
    """Each trace's Parquet directory (imported once into the cache), run and rank."""
    from pathlib import Path

    from profiler.cache import cached_trace_dir
    from profiler.cli.fleet import default_cache_dir
    from profiler.store import read_metadata
    from profiler.tracesets import rank_of, run_of

    root = args[0] if len(args) == 1 and Path(args[0]).is_dir() else None
    out = []
    for p in paths:
        d = cached_trace_dir(p, cache_dir or default_cache_dir())
        md = read_metadata(d)
        out.append({"trace": str(p), "dir": str(d), "run": run_of(p, root), "rank": rank_of(md, str(p))})
    return out
