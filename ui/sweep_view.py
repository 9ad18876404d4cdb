"""The sweep view: a ``profiler sweep --format json`` result as a page beside the dashboard.

``/sweep/<i>`` shows latency against a cost proxy (``?cost=sram_bytes|dram_bandwidth|peak_flops``),
one colour per dtype, the Pareto front as a line, and the points as a table with the front
marked; ``/sweep`` lists the loaded sweeps.  The page is built on the server from numbers only:
every string from the file (keys, values, errors) is HTML-escaped in the table and JSON-escaped
(``<`` as ``\\u003c``) inside the chart's script, so a sweep file cannot inject markup.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError
from profiler.pareto import pareto_front

COSTS = ("dram_bandwidth", "sram_bytes", "peak_flops")
_LABELS = {"dram_bandwidth": "DRAM bandwidth (GB/s)", "sram_bytes": "on-chip SRAM (MiB)",
           "peak_flops": "peak (TFLOP/s)"}
_SCALE = {"dram_bandwidth": 1e9, "sram_bytes": 2**20, "peak_flops": 1e12}
_FIXED = ("dtype", "latency_ns", "tflops", "flops", "dram_bytes", "sram_bytes", "dram_bandwidth", "peak_flops",
          "pareto", "error")


class ResultFileError(ProfilerError):
    """A file that is not the JSON result of the verb that should have written it."""


def load_result(path: str | Path, verb: str, key: str) -> dict[str, Any]:
    """A ``profiler VERB --format json`` result: its document, whose ``key`` must be a list of rows
    (objects), plus ``label`` (the file name); anything else raises :class:`ResultFileError`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResultFileError(f"{p}: not a {verb} result: {exc}") from None
    rows = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(x, dict) for x in rows):
        raise ResultFileError(f"{p}: not a {verb} result (no '{key}' list; write one with profiler {verb} --format json)")
    return {**doc, "label": p.name}


def load_sweep(path: str | Path) -> dict[str, Any]:
    """A ``profiler sweep --format json`` result (``points``)."""
    return load_result(path, "sweep", "points")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _js(obj: Any) -> str:
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(sweep: dict[str, Any], cost: str) -> str:
    """The view of one sweep (see the module docstring)."""
    cost = cost if cost in COSTS else COSTS[0]
    pts = [p for p in sweep["points"] if _num(p.get("latency_ns")) is not None and _num(p.get(cost)) is not None]
    keys = sorted({k for p in sweep["points"] for k in p if k not in _FIXED})
    front = pareto_front(pts, cost)
    on_front = {id(p) for p in front}
    traces: list[dict[str, Any]] = []
    for d in sorted({str(p.get("dtype")) for p in pts}):
        sel = [p for p in pts if str(p.get("dtype")) == d]
        traces.append({"type": "scatter", "mode": "markers", "name": d,
                       "x": [float(p[cost]) / _SCALE[cost] for p in sel],
                       "y": [float(p["latency_ns"]) / 1e6 for p in sel],
                       "text": [", ".join(f"{k}={p.get(k)}" for k in keys) for p in sel],
                       "hovertemplate": "%{text}<br>%{y:.3f} ms<extra>%{fullData.name}</extra>"})
    traces.append({"type": "scatter", "mode": "lines", "name": "Pareto front", "line": {"dash": "dot"},
                   "x": [float(p[cost]) / _SCALE[cost] for p in front],
                   "y": [float(p["latency_ns"]) / 1e6 for p in front]})
    layout = {"xaxis": {"title": {"text": _LABELS[cost]}}, "yaxis": {"title": {"text": "latency (ms)"}},
              "margin": {"t": 30}, "legend": {"orientation": "h", "y": -0.2}}
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in [*keys, "dtype", "latency", cost, "front", "error"])
    body = []
    for p in sweep["points"]:
        lat = _num(p.get("latency_ns"))
        cv = _num(p.get(cost))
        cells = [*(str(p.get(k, "–")) for k in keys), str(p.get("dtype")),
                 f"{lat / 1e6:.3f} ms" if lat is not None else "–",
                 f"{cv / _SCALE[cost]:.1f}" if cv is not None else "–", "★" if id(p) in on_front else "",
                 str(p.get("error") or "")]
        body.append("<tr" + (' class="front"' if id(p) in on_front else "") + ">"
                    + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    links = " · ".join(f'<a href="?cost={c}"' + (' class="on"' if c == cost else "") + f">{esc(_LABELS[c])}</a>"
                       for c in COSTS)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep: {esc(sweep['label'])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:16px}} table{{border-collapse:collapse}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}} tr.front{{background:#eef6ee}}
a.on{{font-weight:bold}}</style>
<script src="/assets/vendor/plotly-cartesian.min.js"></script></head><body>
<h2>sweep: {esc(sweep['label'])}</h2>
<p>latency against {links} &nbsp;({len(pts)} points, {len(front)} on the Pareto front)</p>
<div id="chart" style="height:420px"></div>
<table id="points"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<script>Plotly.newPlot("chart", {_js(traces)}, {_js(layout)}, {{"displaylogo": false}});</script>
</body></html>"""


def register_sweeps(server: Any, sweeps: list[dict[str, Any]]) -> None:
    """``/sweep`` (the list) and ``/sweep/<i>`` on the dashboard's Flask server."""
    from flask import request

    @server.route("/sweep")
    def _sweeps() -> Any:
        items = "".join(f'<li><a href="/sweep/{i}">{html.escape(s["label"])}</a></li>' for i, s in enumerate(sweeps))
        return f"<!doctype html><html><body><h2>sweeps</h2><ul>{items or '<li>none loaded</li>'}</ul></body></html>"

    @server.route("/sweep/<int:i>")
    def _sweep(i: int) -> Any:
        if not 0 <= i < len(sweeps):
            return "not found", 404
        return page(sweeps[i], str(request.args.get("cost", COSTS[0]))[:32])
