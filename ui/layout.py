"""The page: toolbar and header, the canvas timeline with its docked details panel, the panels that
follow the timeline's window (range statistics, longest slices, roofline), findings, comparison.

State between callbacks lives in hidden stores only: ``trace-key`` (the trace shown),
``view-state`` (written by the timeline: window, selection, range, collapsed groups), ``nav``
(a request from a panel to the timeline: show this slice, window or track), ``highlight``.
"""

from __future__ import annotations

import re
from typing import Any

from dash import dash_table, dcc, html

from profiler.hardware import HardwareSpec
from profiler.model import Trace
from ui import rangestats as rs
from ui import roofline as rl
from ui.fmt import MISSING, fmt_ns, share
from ui.state import LoadedTrace, Registry

TABLE_STYLE: dict[str, Any] = {"style_table": {"overflowX": "auto"}, "style_cell": {"fontSize": 12, "padding": "2px 6px",
                                                                                   "textAlign": "left"}}


_US = re.compile(r"(?<=\d) ?us\b")


def micro(text: str) -> str:
    """Analyzer text with "us" spelled "µs", the one spelling the dashboard uses."""
    return _US.sub(" µs", text)


def report_of(lt: LoadedTrace, spec: HardwareSpec | None) -> Any:
    """The analysis report of a trace (cached); None when the analyzers failed on it."""
    from profiler.errors import ProfilerError

    def make() -> Any:
        from analysis import run_all

        try:
            return run_all(lt.trace, spec)
        except ProfilerError:
            return None

    return lt.cached("report", make)


def trace_options(reg: Registry) -> list[dict[str, str]]:
    opts = [{"label": f"{lt.label}", "value": f"key:{k}"} for k, lt in reg.traces.items()]
    loaded = {str(lt.source) for lt in reg.traces.values() if lt.source}
    opts += [{"label": f"open {p.name}", "value": f"file:{i}"} for i, p in enumerate(reg.openable()) if str(p) not in loaded]
    return opts


def summary(lt: LoadedTrace, spec: HardwareSpec | None) -> list[Any]:
    rep = report_of(lt, spec)
    s = rep.summary if rep is not None else {}
    start, end = lt.index.span
    top = micro(rep.findings[0].title) if rep is not None and rep.findings else MISSING
    items = [("trace", lt.label), ("total", fmt_ns(s.get("total_ns", end - start))), ("MFU", share(s.get("mfu"))),
             ("bandwidth", share(s.get("mbu"))), ("hardware", s.get("hardware") or MISSING), ("top bottleneck", top)]
    out = [html.Span([html.B(k + ": "), str(v)], className="summary-item") for k, v in items]
    split = headline_text(rep)
    if split is not None:
        out.insert(2, html.Span([html.B("idle / compute / non-compute: "), split], className="summary-item",
                                id="headline"))
    imported = import_stats_line(lt.trace)
    return out if imported is None else [*out, imported]


def headline_text(rep: Any) -> str | None:
    """"20.2 % / 0.8 % / 79.0 %" from :func:`analysis.breakdown.headline`, the same numbers as the
    summary and the report (None when the analyzers failed or the trace has no such split)."""
    if rep is None:
        return None
    try:
        from analysis.breakdown import headline
    except ImportError:
        return None
    h = headline(rep)
    vals = [h.get("idle_pct"), h.get("compute_pct"), h.get("non_compute_pct")]
    if all(v is None for v in vals):
        return None
    return " / ".join(MISSING if v is None else f"{v:.1f} %" for v in vals)


def import_stats_line(trace: Trace) -> Any | None:
    """The header's "import: N events read, D dropped, R repaired", a warning when events were dropped.

    A trace that lost events still draws a plausible timeline, so the loss must show where the
    totals are read.  The reasons (text from the trace's importer) are listed on hover (title)
    and in an expandable list; they are plain children and attribute values, never markup.
    """
    st = trace.metadata.import_stats
    dropped, repaired = st.events_dropped, st.events_repaired
    if not (st.events_read or dropped or repaired):
        return None  # built in memory (a simulator, the demo): nothing was imported
    text = f"import: {st.events_read:,} events read, {dropped:,} dropped, {repaired:,} repaired"
    reasons = [f"dropped {n:,}: {k}" for k, n in sorted(st.dropped.items())]
    reasons += [f"repaired {n:,}: {k}" for k, n in sorted(st.repaired.items())]
    cls = "summary-item import-stats" + (" import-warn" if dropped else "")
    if not reasons:
        return html.Span(text, id="import-stats", className=cls)
    return html.Details([html.Summary(("⚠ " if dropped else "") + text),
                         html.Ul([html.Li(r) for r in reasons], id="import-reasons")],
                        id="import-stats", className=cls, title="\n".join(reasons))


def findings(lt: LoadedTrace, spec: HardwareSpec | None) -> list[Any]:
    rep = report_of(lt, spec)
    if rep is None or not rep.findings:
        return [html.Div("No findings.", className="muted")]
    return [
        html.Button([html.Span(f.severity, className=f"sev sev-{f.severity}"), f" {micro(f.title)} ",
                     html.Span(f"(costs {fmt_ns(f.gain_ns)})", className="muted")],
                    id={"type": "finding", "index": i}, className="finding", n_clicks=0, title=micro(f.suggestion))
        for i, f in enumerate(rep.findings[:30])
    ]


def _table(id_: str, columns: list[str], **kw: Any) -> Any:
    table = dash_table.DataTable  # type: ignore[attr-defined]
    return table(id=id_, columns=[{"name": c.replace("_", " "), "id": c} for c in columns], data=[],
                 sort_action="native", page_size=12, **TABLE_STYLE, **kw)


def layout(reg: Registry, key: int, offline_perfetto: bool) -> Any:
    lt = reg.traces[key]
    return html.Div([
        html.Div([
            html.H3("accel-profiler", className="title"),
            dcc.Dropdown(id="trace-select", options=trace_options(reg), value=f"key:{key}", clearable=False,
                         className="trace-select"),
            dcc.Upload(html.Button("Open file…"), id="upload", multiple=False, className="upload"),
            dcc.Dropdown(id="compare-select", options=[], placeholder="compare with…", className="trace-select"),
            html.Button("Download .pftrace", id="download-btn", n_clicks=0),
            html.Button("Open in Perfetto", id="perfetto-btn", n_clicks=0),
            dcc.Download(id="download"),
        ], className="toolbar"),
        html.Div(id="message", className="message"),
        html.Div(summary(lt, reg.spec), id="summary", className="summary"),
        html.Div([
            html.Div(id="tl", className="timeline"),
            html.Div([
                html.H4("Selected slice"),
                html.Div("Click a slice.", id="details", className="muted"),
                html.H4("Findings (most costly first)"),
                html.Div(findings(lt, reg.spec), id="findings"),
            ], className="details-pane", id="details-pane"),
        ], className="main"),
        html.Div([
            html.Div([html.H4("Range statistics", id="stats-title"),
                      html.Div(id="stats-caption", className="muted"),
                      _table("stats-names", rs.NAME_COLUMNS[:-1]),
                      _table("stats-tracks", rs.TRACK_COLUMNS)], className="stats-pane"),
            html.Div([html.H4("Longest slices in the window"),
                      _table("longest", rs.LONGEST_COLUMNS[:-1], cell_selectable=True)], className="longest-pane"),
        ], className="bottom"),
        html.Div([
            html.Div([
                html.H4("Roofline of the window"),
                dcc.Graph(id="roofline", config={"displaylogo": False}),
                html.Div(id="roofline-note", className="roof-note"),
            ], className="roofline-pane"),
            html.Div([
                _table("roof-table", rl.TABLE_COLUMNS, row_selectable=False, cell_selectable=True),
                html.H4("Comparison"),
                html.Div("Pick a trace to compare with.", id="compare", className="muted"),
            ], className="compare-pane"),
        ], className="bottom"),
        dcc.Store(id="trace-key", data=key),
        dcc.Store(id="view-state", data=None),
        dcc.Store(id="nav", data=None),
        dcc.Store(id="highlight", data={"name": None}),
        dcc.Store(id="perfetto-info", data=None),
        dcc.Store(id="offline", data=offline_perfetto),
    ])
