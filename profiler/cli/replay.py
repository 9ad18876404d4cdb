"""``profiler replay TRACE --hw SPEC``: the ops of a real PyTorch trace, measured beside simulated."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail
from profiler.formats import read_trace


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(exists=True, dir_okay=True))
@hw_option(default="a100-sxm")
@click.option("--dtype", default=None, help="simulate every op in this dtype [default: the trace's, as the spec allows]")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True,
              help="simulate the ops (by op and shapes) that took the most measured time, this many")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
@click.option("--chart", type=click.Path(dir_okay=False), help="write a measured-vs-simulated scatter (HTML) here")
def replay(trace_path: str, hw: str, dtype: str | None, limit: int, fmt: str, chart: str | None) -> None:
    """Replay each op of TRACE (a PyTorch profiler trace recorded with record_shapes=True) on
    the simulator and show measured beside simulated time, per op and shapes.

    \b
    Measured: the device kernels an op launched (GPU traces), else its CPU time.
    Simulated: the op alone on --hw at summary detail.  Error = simulated / measured - 1.
    An fp32 matmul measured faster than the spec's fp32 peak ran on TF32 tensor cores:
    it is simulated in tf32 where the spec has it (the row says "as tf32").
    Example:
      profiler replay train.pt.trace.json.gz --hw a100-sxm --limit 20
    Exit status: 0 ok, 2 bad input or usage.
    """
    from collectors.modelimport.replay import error_summary
    from collectors.modelimport.replay import replay as run_replay

    spec = resolve_spec(hw)
    trace = run_or_fail(read_trace, trace_path)
    rows = run_or_fail(run_replay, trace, spec, dtype, limit)
    if rows.empty:
        raise InputError(f"{trace_path}: no op with recorded shapes to replay (record with record_shapes=True)")
    summary = error_summary(rows)
    if fmt == "json":
        doc = {"rows": rows.to_dict("records"), "summary": summary}
        click.echo(json.dumps(doc, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v)))
    elif fmt == "csv":
        click.echo(rows.to_csv(index=False), nl=False)
    else:
        click.echo(f"{trace_path} replayed on {spec.name if spec else '-'}: {len(rows)} op shapes")
        for r in rows.itertuples():
            sim = "–" if r.simulated_ns != r.simulated_ns else f"{r.simulated_ns / 1e3:10.1f} us"
            err = "–" if r.error_pct != r.error_pct else f"{r.error_pct:+.0f}%"
            as_dt = f" as {r.sim_dtype}" if r.sim_dtype and r.sim_dtype != r.dtype else ""
            click.echo(f"  {r.op:<22} {r.shapes[:44]:<44} x{r.count:<5} measured {r.measured_ns / 1e3:10.1f} us  "
                       f"simulated {sim}  {err}{as_dt}")
        if summary.get("rows"):
            click.echo(f"error: median {summary['median_abs_error_pct']:.0f}%, p90 {summary['p90_abs_error_pct']:.0f}%, "
                       f"{summary['within_25_pct']:.0f}% of op shapes within 25%")
    if chart:
        _chart(rows, chart, f"{trace_path} on {spec.name if spec else '-'}")


def _chart(rows: Any, path: str, title: str) -> None:
    import plotly.graph_objects as go

    from profiler.cli.sweep import _write

    ok = rows.dropna(subset=["simulated_ns"])
    hi = float(max(ok["measured_ns"].max(), ok["simulated_ns"].max())) / 1e3 if len(ok) else 1.0
    fig = go.Figure([
        go.Scatter(x=ok["measured_ns"] / 1e3, y=ok["simulated_ns"] / 1e3, mode="markers",
                   text=ok["op"] + " " + ok["shapes"], hovertemplate="%{text}<br>measured %{x:.1f} µs<br>"
                   "simulated %{y:.1f} µs<extra></extra>", name="op shapes"),
        go.Scatter(x=[0, hi], y=[0, hi], mode="lines", line={"dash": "dot"}, name="simulated = measured")])
    fig.update_layout(title=title, xaxis_title="measured (µs)", yaxis_title="simulated (µs)", template="plotly_white")
    _write(path, fig.to_html(include_plotlyjs=True, full_html=True))
