"""The replay view: a ``profiler replay --format json`` result (measured beside simulated per op).

``/replay/<i>`` shows a scatter of simulated against measured time per (op, shapes) with the
``simulated = measured`` diagonal, a histogram of the error, and the rows as a table.  Strings
from the file are HTML-escaped in the table and JSON-escaped inside the chart's script.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ui.sweep_view import _js, _num, load_result


def load_replay(path: str | Path) -> dict[str, Any]:
    """A ``profiler replay --format json`` result (``rows`` and ``summary``)."""
    doc = load_result(path, "replay", "rows")
    return {**doc, "summary": doc.get("summary") or {}}


def page(rep: dict[str, Any]) -> str:
    esc = html.escape
    ok = [r for r in rep["rows"] if _num(r.get("measured_ns")) and _num(r.get("simulated_ns")) is not None]
    xs = [float(r["measured_ns"]) / 1e3 for r in ok]
    ys = [float(r["simulated_ns"]) / 1e3 for r in ok]
    hi = max(xs + ys + [1.0])
    text = [f"{r.get('op')} {r.get('shapes')} x{r.get('count')}" for r in ok]
    scatter = [{"type": "scatter", "mode": "markers", "name": "op shapes", "x": xs, "y": ys, "text": text,
                "hovertemplate": "%{text}<br>measured %{x:.1f} µs<br>simulated %{y:.1f} µs<extra></extra>"},
               {"type": "scatter", "mode": "lines", "name": "simulated = measured", "x": [0, hi], "y": [0, hi],
                "line": {"dash": "dot"}}]
    errs = [_num(r.get("error_pct")) for r in ok if _num(r.get("error_pct")) is not None]
    hist = [{"type": "histogram", "x": errs, "name": "error %", "xbins": {"size": 10}}]
    s = rep["summary"]
    line = (f"{s.get('rows', 0)} op shapes; median |error| {s['median_abs_error_pct']:.0f}%, "
            f"p90 {s['p90_abs_error_pct']:.0f}%, {s['within_25_pct']:.0f}% within 25%") if s.get("rows") else ""
    cols = ["op", "shapes", "dtype", "sim_dtype", "count", "measured_ns", "simulated_ns", "error_pct"]
    body = "".join("<tr>" + "".join(f"<td>{esc(str(r.get(c, '–')))}</td>" for c in cols) + "</tr>" for r in rep["rows"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>replay: {esc(rep['label'])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:16px}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
.charts{{display:flex;gap:12px}} .charts div{{flex:1;height:380px}}</style>
<script src="/assets/vendor/plotly-cartesian.min.js"></script></head><body>
<h2>measured vs simulated: {esc(rep['label'])}</h2><p id="summary">{esc(line)}</p>
<div class="charts"><div id="scatter"></div><div id="errors"></div></div>
<table id="rows"><thead><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr></thead><tbody>{body}</tbody></table>
<script>
Plotly.newPlot("scatter", {_js(scatter)}, {_js({"xaxis": {"title": {"text": "measured (µs)"}},
                                                 "yaxis": {"title": {"text": "simulated (µs)"}}, "margin": {"t": 30}})});
Plotly.newPlot("errors", {_js(hist)}, {_js({"xaxis": {"title": {"text": "error (simulated / measured - 1, %)"}},
                                            "yaxis": {"title": {"text": "op shapes"}}, "margin": {"t": 30}})});
</script></body></html>"""


def register_replays(server: Any, replays: list[dict[str, Any]]) -> None:
    """``/replay/<i>`` on the dashboard's Flask server."""

    @server.route("/replay/<int:i>")
    def _replay(i: int) -> Any:
        if not 0 <= i < len(replays):
            return "not found", 404
        return page(replays[i])
