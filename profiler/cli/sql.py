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
@click.argument("trace_path", metavar="TRACE", type=click.Path(exists=True, dir_okay=True))
@click.argument("sql_text", metavar="SQL")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array of row objects")
@click.option("--limit", type=int, default=200, show_default=True, help="rows to print in the table view")
def sql(trace_path: str, sql_text: str, as_csv: bool, as_json: bool, limit: int) -> None:
    """Run SQL over TRACE's tables: slices, tracks, counters, instants, flows, slices_x.

    \b
    Names are plain strings; times are int64 ns.  slices_x adds track_name, track_kind, device.
    Example:
      profiler sql run.trace "SELECT name, count(*) n, sum(dur)/1e6 ms FROM slices GROUP BY name ORDER BY ms DESC LIMIT 10"
    """
    from analysis.sql import query

    trace = run_or_fail(read_trace, trace_path)
    table = run_or_fail(query, trace, sql_text)
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
