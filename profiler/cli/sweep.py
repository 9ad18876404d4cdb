"""``profiler sweep WORKLOAD_OR_MODEL``: what-if grids over the machine, the workload and the dtype."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail

FORMATS = ("text", "csv", "json")


def _parse_vary(items: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for it in items:
        if "=" not in it:
            raise InputError(f"--vary {it!r}: expected key=v1,v2,...")
        k, v = it.split("=", 1)
        vals = [x.strip() for x in v.split(",") if x.strip()]
        if not vals:
            raise InputError(f"--vary {it!r}: no values")
        out[k.strip()] = vals
    return out


def _fmt(v: Any, key: str) -> str:
    if v is None:
        return "–"
    if key == "latency_ns":
        return f"{v / 1e6:.3f} ms"
    if key in ("sram_bytes", "dram_bytes"):
        return f"{v / 2**20:.1f} MiB"
    if key == "dram_bandwidth":
        return f"{v / 1e9:.1f} GB/s"
    if key == "peak_flops":
        return f"{v / 1e12:.1f} TFLOP/s"
    if key == "tflops":
        return f"{v:.2f}"
    return str(v)


@click.command()
@click.argument("workload")
@hw_option(default="edge-npu")
@click.option("--vary", "vary", multiple=True, metavar="KEY=V1,V2,...",
              help="a simulator option (dram_bandwidth, sram_bytes, cores, dma_engines, ...) or a workload "
                   "field (M, layers, batch, ...) to sweep; repeat for a grid")
@click.option("--dtype", "dtypes", default=None, metavar="D1,D2,...", help="matmul dtypes to sweep (fp16,int8,fp8)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="fixed option or field for every point")
@click.option("--cost", type=click.Choice(["sram_bytes", "dram_bandwidth", "peak_flops"]), default="dram_bandwidth",
              show_default=True, help="cost proxy the Pareto front puts latency against")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the table here instead of stdout")
@click.option("--chart", type=click.Path(dir_okay=False), help="write the Pareto chart (HTML) here")
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="processes [default: the CPU count]")
@click.option("--layer-dtype", "layer_dtypes", multiple=True, metavar="PATTERN=DTYPE",
              help="mixed precision: matrix ops whose name matches PATTERN (glob, e.g. 'layer0.*') in DTYPE; "
                   "first match wins; the others in the point's dtype")
@click.option("--gains", "gains", default=None, metavar="HIGH,LOW",
              help="also rank the ops by the time LOW precision saves over HIGH (e.g. fp16,int8)")
def sweep(workload: str, hw: str, vary: tuple[str, ...], dtypes: str | None, sets: tuple[str, ...], cost: str,
          fmt: str, output: str | None, chart: str | None, jobs: int | None, layer_dtypes: tuple[str, ...],
          gains: str | None) -> None:
    """Simulate WORKLOAD_OR_MODEL over a grid and tabulate latency against machine cost.

    \b
    Every point runs at summary detail in a pool of processes; points that cannot run (a dtype
    the chip lacks) are rows with their error.  The Pareto front (fastest for its cost) is marked.
    Each GEMM shape also tries the plans the mapper found for it at the other points and keeps the
    fastest, so more bandwidth is never slower (shared_plans counts the GEMM shapes that took one).
    Examples:
      profiler sweep llm-decode-7b --hw edge-npu --vary dram_bandwidth=34e9,68e9,136e9 --dtype fp16,int8
      profiler sweep encoder.onnx --hw edge-npu --vary sram_bytes=8e6,16e6,32e6 --cost sram_bytes --chart p.html
      profiler sweep llm-decode-7b --hw edge-npu --dtype fp16 --layer-dtype 'layer*.ffn_*=int8' --gains fp16,int8
      profiler sweep path/to/config.json --hw edge-npu --vary seq_len=512,2048 --dtype fp16,int8
    Exit status: 0 ok, 2 bad input or usage.
    """
    from collectors.modelimport import is_model_path, load_model
    from collectors.simulator import workload_from_name
    from collectors.simulator.families import hf_workload, is_hf_config
    from collectors.simulator.sweep import pareto_front, precision_gains, run_sweep
    from profiler.cli.simulate import _parse_sets

    spec = resolve_spec(hw)
    assert spec is not None
    grid_vary = _parse_vary(vary)
    base = _parse_sets(sets)
    dts: list[str | None] = [d.strip() for d in dtypes.split(",") if d.strip()] if dtypes else [None]
    try:
        if is_model_path(workload):
            w = run_or_fail(load_model, workload)
        elif is_hf_config(workload):  # a HuggingFace config.json; --set mode=prefill picks the prompt pass
            w = hf_workload(workload, base.pop("mode", "decode"))
        else:
            w = workload_from_name(workload)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if layer_dtypes:
        from collectors.simulator.sweep import LayerDtypes

        pairs = []
        for item in layer_dtypes:
            pat, sep, dt = item.partition("=")
            if not sep or not pat.strip() or not dt.strip():
                raise InputError(f"--layer-dtype {item!r}: expected PATTERN=DTYPE")
            pairs.append((pat.strip(), dt.strip()))
        w = LayerDtypes(w, tuple(pairs))
    rows = run_sweep(w, spec, grid_vary, dts, base, jobs)
    if all(r.get("error") for r in rows):
        raise InputError(f"no point of the sweep ran: {rows[0]['error']}")
    front_ids = {id(r) for r in pareto_front(rows, cost)}
    for r in rows:
        r["pareto"] = id(r) in front_ids
    gain_rows = None
    if gains:
        hi, _, lo = gains.partition(",")
        if not lo:
            raise InputError("--gains expects HIGH,LOW (e.g. fp16,int8)")
        gain_rows = run_or_fail(precision_gains, w, spec, hi.strip(), lo.strip())
    text = render(rows, list(grid_vary), cost, fmt, gain_rows)
    if output:
        _write(output, text)
    else:
        click.echo(text, nl=False)
    if chart:
        write_chart(rows, list(grid_vary), cost, chart, f"{workload} on {spec.name}")


def render(rows: list[dict[str, Any]], keys: list[str], cost: str, fmt: str,
           gains: list[dict[str, Any]] | None = None) -> str:
    cols = [*keys, "dtype", "latency_ns", "tflops", "dram_bytes", cost, "pareto", "shared_plans", "error"]
    if fmt == "json":
        # each point's GEMM plans beside the points (the points stay flat rows for tables and charts)
        plans = [{"point": i, **mp} for i, r in enumerate(rows) for mp in r.get("mappings", ())]
        points = [{k: v for k, v in r.items() if k != "mappings"} for r in rows]
        return json.dumps({"points": points, "plans": plans, "gains": gains}, indent=2, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=[*keys, "dtype", "latency_ns", "tflops", "flops", "dram_bytes",
                                              "sram_bytes", "dram_bandwidth", "peak_flops", "pareto", "shared_plans",
                                              "error"],
                            extrasaction="ignore")
        wr.writeheader()
        wr.writerows(rows)
        return buf.getvalue()
    table = [[("*" if c == "pareto" and r.get(c) else "" if c == "pareto" else _fmt(r.get(c), c)) for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in table]
    out.append(f"* on the Pareto front: no other point is both faster and cheaper in {cost}")
    if any(r.get("shared_plans") for r in rows):
        out.append("shared_plans: GEMM shapes run with a plan the mapper found at another point of the sweep "
                   "(faster here than its own pick; --format json lists every point's plans)")
    if gains:
        out += ["", "ops ranked by what the lower precision saves:"]
        hi, lo = [k[:-3] for k in gains[0] if k.endswith("_ns") and k != "gain_ns"][:2]
        out += [f"  {g['op']}: {g[hi + '_ns'] / 1e3:.1f} us -> {(g[lo + '_ns'] or 0) / 1e3:.1f} us "
                f"(saves {g['gain_ns'] / 1e3:.1f} us, {g['gain_pct']:.0f}%)" for g in gains]
    return "\n".join(out) + "\n"


def write_chart(rows: list[dict[str, Any]], keys: list[str], cost: str, path: str, title: str) -> None:
    """Latency against the cost proxy, one colour per dtype, the Pareto front as a line (HTML)."""
    import plotly.graph_objects as go

    from collectors.simulator.sweep import pareto_front

    ok = [r for r in rows if not r.get("error")]
    fig = go.Figure()
    for d in sorted({str(r["dtype"]) for r in ok}):
        pts = [r for r in ok if str(r["dtype"]) == d]
        fig.add_trace(go.Scatter(
            x=[r[cost] for r in pts], y=[r["latency_ns"] / 1e6 for r in pts], mode="markers", name=d,
            text=[", ".join(f"{k}={r[k]}" for k in keys) for r in pts],
            hovertemplate="%{text}<br>latency %{y:.3f} ms<br>" + cost + " %{x:.3s}<extra>" + d + "</extra>"))
    front = pareto_front(ok, cost)
    fig.add_trace(go.Scatter(x=[r[cost] for r in front], y=[r["latency_ns"] / 1e6 for r in front],
                             mode="lines", name="Pareto front", line={"dash": "dot"}))
    fig.update_layout(title=title, xaxis_title=cost, yaxis_title="latency (ms)", template="plotly_white")
    _write(path, fig.to_html(include_plotlyjs=True, full_html=True))


def _write(path: str, text: str) -> None:
    """All or nothing: a temporary sibling renamed over ``path``."""
    from profiler.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
