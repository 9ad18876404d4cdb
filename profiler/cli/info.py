"""``profiler info TRACE``: what a trace holds, in one screen."""

from __future__ import annotations

import json
from typing import Any

import click

from profiler.cli.options import run_or_fail
from profiler.formats import detect_format, read_trace


def _fmt_ns(ns: int) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns} ns"


@click.command()
@click.argument("trace_paths", metavar="[TRACE ...]", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--tracks/--no-tracks", default=False, help="list every track with its slice count")
def info(trace_paths: tuple[str, ...], as_json: bool, tracks: bool) -> None:
    """Summarize TRACE: events, tracks, time span and import statistics.

    TRACE is any supported file (Chrome/Kineto JSON, Perfetto protobuf, .gz of either) or a
    trace directory; the format is detected from the content.  Several TRACEs (or a folder of
    them) are summarized one after the other, each with its rank when it has one (``--json``: a
    list).  Without TRACE, the bundled sample trace is summarized.
    """
    from profiler.tracesets import expand

    if not trace_paths:
        from sample_traces import default_sample

        trace_paths = (str(default_sample()),)
    paths = [str(p) for p in run_or_fail(expand, trace_paths)]
    summaries = [_show(p, as_json, tracks) for p in paths]
    if as_json:
        click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2, default=str))


def _show(trace_path: str, as_json: bool, tracks: bool) -> dict[str, Any]:
    """One trace's summary: printed as a table, or returned for ``--json``."""
    from profiler.tracesets import rank_of, world_size_of

    fmt = run_or_fail(detect_format, trace_path)
    trace = run_or_fail(read_trace, trace_path, fmt)
    summary = trace.summary()
    summary["detected_format"] = fmt
    summary["path"] = trace_path
    summary["rank"] = rank_of(trace, trace_path)
    summary["world_size"] = world_size_of(trace)
    if as_json:
        return summary
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{trace_path}  ({fmt})", show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    kinds = ", ".join(f"{k} {v}" for k, v in summary["track_kinds"].items())
    rows = [
        ("tracks", f"{summary['tracks']:,}  ({kinds})"),
        ("slices", f"{summary['slices']:,}"),
        ("counters", f"{summary['counters']:,}"),
        ("instants", f"{summary['instants']:,}"),
        ("flows", f"{summary['flows']:,}"),
        ("time span", f"{_fmt_ns(summary['duration_ns'])}  ({summary['start_ns']:,} .. {summary['end_ns']:,} ns)"),
        ("hardware", str(summary["hardware"] or "-")),
    ]
    if summary["rank"] is not None:
        rows.append(("rank", f"{summary['rank']}" + (f" of {summary['world_size']}" if summary["world_size"] else "")))
    st = summary["import_stats"]
    rows.append(("events read", f"{st['events_read']:,}"))
    rows.append(("dropped", f"{st['events_dropped']:,}" + "".join(f"\n  {k}: {v:,}" for k, v in st["dropped"].items())))
    rows.append(("repaired", f"{st['events_repaired']:,}" + "".join(f"\n  {k}: {v:,}" for k, v in st["repaired"].items())))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if tracks:
        import numpy as np

        counts = np.bincount(trace.slices["track"].to_numpy(), minlength=trace.tracks.num_rows) if trace.slices.num_rows else None
        tt = Table("id", "track", "kind", "device", "slices")
        for i, row in enumerate(trace.tracks.to_pylist()):
            n = int(counts[i]) if counts is not None and i < len(counts) else 0
            tt.add_row(str(row["id"]), " / ".join(trace.track_path(row["id"])), row["kind"], row["device"] or "", f"{n:,}")
        console.print(tt)
    return summary
