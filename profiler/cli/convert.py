"""``profiler convert IN -o OUT``: between every format we read and write."""

from __future__ import annotations

import click

from profiler.cli.options import run_or_fail
from profiler.formats import FORMATS, read_trace, write_trace


@click.command()
@click.argument("src", metavar="IN", type=click.Path(exists=True, dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="output path; its extension picks the format")
@click.option("--format", "fmt", type=click.Choice(sorted(n for n, f in FORMATS.items() if f.writer)), default=None,
              help="output format when the extension does not say (.pftrace, .json, .trace, optionally .gz)")
def convert(src: str, output: str, fmt: str | None) -> None:
    """Convert a trace IN to another format.

    \b
    profiler convert run.pt.trace.json.gz -o run.pftrace   # open in ui.perfetto.dev
    profiler convert run.pftrace -o run.json               # chrome://tracing JSON
    profiler convert run.json -o run.trace                 # Parquet trace directory
    """
    trace = run_or_fail(read_trace, src)
    written = run_or_fail(write_trace, trace, output, fmt)
    s = trace.summary()
    click.echo(f"wrote {output} ({written}): {s['slices']:,} slices, {s['counters']:,} counters, "
               f"{s['flows']:,} flows on {s['tracks']:,} tracks")
