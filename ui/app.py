"""The Dash app: layout and callbacks linking timeline, roofline, findings and details.

State that is large (traces, their indexes, analysis reports) stays in :class:`ui.state.Registry`
on the server; the page holds only small stores: the trace key, the time window, what is
highlighted and which slice is selected.  Every view is recomputed from those by the LOD, and a
zoom on an unchanged trace is sent as a ``dash.Patch`` (data and axis range only).
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from dash import ALL, Dash, Input, Output, Patch, State, callback_context, dash_table, dcc, html, no_update
from dash.exceptions import DependencyException

from profiler.errors import ProfilerError
from profiler.hardware import HardwareSpec
from profiler.model import Trace, parse_args
from ui import roofline as rl
from ui import timeline as tl
from ui.perfetto import perfetto_bytes, register_routes
from ui.state import LoadedTrace, Registry

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_WIDTH = 1100


# ------------------------------------------------------------------ helpers
def fmt_ns(ns: float | None) -> str:
    if ns is None or not np.isfinite(ns):
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.0f} ns"


def fmt_si(v: float | None, unit: str = "") -> str:
    if v is None or not np.isfinite(v):
        return "-"
    for p, s in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= s:
            return f"{v / s:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def report_of(lt: LoadedTrace, spec: HardwareSpec | None) -> Any:
    """The analysis report of a trace (cached); None when the analyzers failed on it."""

    def make() -> Any:
        from analysis import run_all

        try:
            return run_all(lt.trace, spec)
        except ProfilerError:
            return None

    return lt.cached("report", make)


def prepare(lt: LoadedTrace, spec: HardwareSpec | None) -> LoadedTrace:
    """Build everything the first view needs (index, decoded columns, analysis, roofline points)
    before the page asks, so a first view costs what a zoom costs."""
    _ = lt.index, lt.columns, lt.max_depth, lt.tree
    report_of(lt, spec)
    rl.table(lt, spec)
    return lt


def read_upload(contents: str, filename: str | None, max_bytes: int) -> Trace:
    """Decode a dcc.Upload payload and read it as a trace; ProfilerError on anything wrong."""
    try:
        _, b64 = contents.split(",", 1)
    except ValueError:
        raise ProfilerError(f"{filename}: the upload is empty or malformed") from None
    if len(b64) * 3 // 4 > max_bytes:
        raise ProfilerError(f"{filename}: larger than the {max_bytes / 2**20:.0f} MB upload limit (--max-upload-mb)")
    try:
        data = base64.b64decode(b64, validate=False)
    except ValueError:
        raise ProfilerError(f"{filename}: the upload is not valid base64") from None
    if len(data) > max_bytes:
        raise ProfilerError(f"{filename}: larger than the {max_bytes / 2**20:.0f} MB upload limit (--max-upload-mb)")
    from profiler.formats import read_trace

    name = Path(filename or "upload").name
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / (name or "upload")
        p.write_bytes(data)
        try:
            trace = read_trace(p)
        except ProfilerError as exc:
            raise ProfilerError(str(exc).replace(str(p), name)) from None
        except ModuleNotFoundError:
            raise ProfilerError(f"{name}: no reader for this format is installed") from None
        except Exception as exc:  # a reader's own bug must not take the dashboard down
            raise ProfilerError(f"{name}: could not be read ({type(exc).__name__})") from None
    if trace.slices.num_rows == 0 and trace.counters.num_rows == 0:
        raise ProfilerError(f"{name}: holds no slices or counters")
    return trace


def trace_options(reg: Registry) -> list[dict[str, str]]:
    opts = [{"label": f"{lt.label}", "value": f"key:{k}"} for k, lt in reg.traces.items()]
    loaded = {str(lt.source) for lt in reg.traces.values() if lt.source}
    opts += [{"label": f"open {p.name}", "value": f"file:{i}"} for i, p in enumerate(reg.openable()) if str(p) not in loaded]
    return opts


# ------------------------------------------------------------------- layout
def _summary(lt: LoadedTrace, spec: HardwareSpec | None) -> list[Any]:
    rep = report_of(lt, spec)
    s = rep.summary if rep is not None else {}
    start, end = lt.index.span
    top = rep.findings[0].title if rep is not None and rep.findings else "-"
    items = [("trace", lt.label), ("total", fmt_ns(s.get("total_ns", end - start))), ("MFU", pct(s.get("mfu"))),
             ("bandwidth", pct(s.get("mbu"))), ("hardware", s.get("hardware") or "-"), ("top bottleneck", top)]
    out = [html.Span([html.B(k + ": "), str(v)], className="summary-item") for k, v in items]
    imported = import_stats_line(lt.trace)
    return out if imported is None else [*out, imported]


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


def _findings(lt: LoadedTrace, spec: HardwareSpec | None) -> list[Any]:
    rep = report_of(lt, spec)
    if rep is None or not rep.findings:
        return [html.Div("No findings.", className="muted")]
    return [
        html.Button([html.Span(f.severity, className=f"sev sev-{f.severity}"), f" {f.title} ",
                     html.Span(f"(costs {fmt_ns(f.gain_ns)})", className="muted")],
                    id={"type": "finding", "index": i}, className="finding", n_clicks=0, title=f.suggestion)
        for i, f in enumerate(rep.findings[:30])
    ]


def _group_options(lt: LoadedTrace) -> list[dict[str, Any]]:
    return [{"label": " / ".join(lt.trace.track_path(g)), "value": g} for g in lt.tree.groups()]


def layout(reg: Registry, key: int, offline_perfetto: bool) -> Any:
    lt = reg.traces[key]
    s, e = lt.index.span
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
        html.Div(_summary(lt, reg.spec), id="summary", className="summary"),
        html.Div([
            html.Div([
                html.Div([html.Span("collapse groups: ", className="muted"),
                          dcc.Checklist(id="collapse", options=_group_options(lt), value=[], inline=True)]),
                dcc.Graph(id="timeline", config={"displaylogo": False, "scrollZoom": True,
                                                 "modeBarButtonsToAdd": ["select2d"]}),
                html.Div([html.H4("Findings (most costly first)"), html.Div(_findings(lt, reg.spec), id="findings")],
                         className="findings-pane"),
            ], className="timeline-pane"),
            html.Div([
                dcc.Graph(id="roofline", config={"displaylogo": False}),
                dash_table.DataTable(  # type: ignore[attr-defined]
                    id="roof-table", columns=[{"name": c, "id": c} for c in rl.TABLE_COLUMNS], data=[],
                    sort_action="native", page_size=10, row_selectable=False, cell_selectable=True,
                    style_table={"overflowX": "auto"}, style_cell={"fontSize": 12, "padding": "2px 6px"},
                ),
            ], className="roofline-pane"),
        ], className="main"),
        html.Div([
            html.Div([html.H4("Selected slice"), html.Div("Click a slice.", id="details", className="muted")],
                     className="details-pane"),
            html.Div([html.H4("Comparison"), html.Div("Pick a trace to compare with.", id="compare", className="muted")],
                     className="compare-pane"),
        ], className="bottom"),
        html.Pre(id="view-info", className="view-info"),
        dcc.Store(id="trace-key", data=key),
        dcc.Store(id="view", data={"t0": s, "t1": e}),
        dcc.Store(id="range-select", data=None),
        dcc.Store(id="highlight", data={"name": None, "track": None}),
        dcc.Store(id="selected", data=None),
        dcc.Store(id="width", data=DEFAULT_WIDTH),
        dcc.Store(id="rendered", data=None),
        dcc.Store(id="perfetto-info", data=None),
        dcc.Store(id="offline", data=offline_perfetto),
    ])


# ---------------------------------------------------------------- callbacks
def create_app(reg: Registry, initial: int | None = None, lean_plotly: bool = True) -> Dash:
    """The dashboard for the traces in ``reg`` (``initial``: key shown first).

    ``lean_plotly=False`` lets dcc.Graph fetch Dash's full plotly.js bundle instead of the
    cartesian one in assets/vendor (bench_ui compares the two).
    """
    # vendor/ (the plotly.js bundle) is served from the assets folder but loaded by plotly-loader.js
    # asynchronously, not by a blocking script tag.
    app = Dash(__name__, assets_folder=str(ASSETS), assets_path_ignore=["vendor"],  # type: ignore[arg-type]
               assets_ignore="" if lean_plotly else r"^plotly-loader\.js$",
               title="accel-profiler", update_title=None, suppress_callback_exceptions=True)
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = int(reg.max_upload_bytes * 1.4) + (1 << 20)
    offline = register_routes(server, reg)
    # Dash answers a component-suite path outside its packages (``../../etc/passwd``) by raising;
    # refuse it as "not found" instead of a server error.
    server.register_error_handler(DependencyException, lambda exc: ("not found", 404))
    first = initial if initial is not None else min(reg.traces)
    for lt in reg.traces.values():
        prepare(lt, reg.spec)
    app.layout = lambda: layout(reg, first, offline)
    spec = reg.spec

    def current(key: Any) -> LoadedTrace:
        lt = reg.get(key)
        return lt if lt is not None else reg.traces[first]

    # -- open a trace: pick one the command line allowed, or upload one
    @app.callback(
        Output("trace-key", "data"), Output("message", "children"), Output("trace-select", "options"),
        Output("trace-select", "value"),
        Input("trace-select", "value"), Input("upload", "contents"), State("upload", "filename"),
        State("trace-key", "data"), prevent_initial_call=True,
    )
    def open_trace(choice: str | None, contents: str | None, filename: str | None, key: int) -> Any:
        trig = callback_context.triggered_id
        try:
            if trig == "upload":
                if not contents:
                    return no_update, no_update, no_update, no_update
                trace = read_upload(contents, filename, reg.max_upload_bytes)
                lt = reg.add(trace, Path(filename or "upload").name)
            else:
                kind, _, val = str(choice).partition(":")
                if kind == "key":
                    if reg.get(val) is None or int(val) == key:
                        return no_update, no_update, no_update, no_update
                    lt = current(val)
                elif kind == "file":
                    files = reg.openable()
                    if not val.isdigit() or int(val) >= len(files):
                        raise ProfilerError("that trace is no longer offered")
                    from profiler.formats import read_trace

                    path = files[int(val)]
                    try:
                        lt = reg.add(read_trace(path), path.name, path)
                    except ModuleNotFoundError:
                        raise ProfilerError(f"{path.name}: no reader for this format is installed") from None
                else:
                    return no_update, no_update, no_update, no_update
        except ProfilerError as exc:
            return no_update, html.Span(f"Could not open: {exc}", className="error"), trace_options(reg), f"key:{key}"
        prepare(lt, spec)
        return lt.key, html.Span(f"Opened {lt.label}", className="ok"), trace_options(reg), f"key:{lt.key}"

    @app.callback(
        Output("view", "data"), Output("summary", "children"), Output("findings", "children"),
        Output("collapse", "options"), Output("collapse", "value"), Output("highlight", "data"),
        Output("selected", "data"), Output("compare-select", "options"),
        Input("trace-key", "data"), prevent_initial_call=True,
    )
    def on_trace(key: int) -> Any:
        lt = current(key)
        s, e = lt.index.span
        others = [{"label": o.label, "value": o.key} for o in reg.traces.values() if o.key != lt.key]
        return ({"t0": s, "t1": e}, _summary(lt, spec), _findings(lt, spec), _group_options(lt), [],
                {"name": None, "track": None}, None, others)

    app.clientside_callback(
        "function(k) { const g = document.getElementById('timeline');"
        " return g && g.offsetWidth > 300 ? g.offsetWidth - 160 : window.dash_clientside.no_update; }",
        Output("width", "data"), Input("trace-key", "data"),
    )

    # -- zoom / pan / box-select on the timeline
    # The browser turns a zoom into the view itself, so a zoom costs one round trip (the timeline)
    # and cannot be lost: relayoutData holds only plotly's latest event, and Dash drops the answer
    # of a server callback whose inputs changed while it was in flight, so a zoom sent to the
    # server and followed at once by another relayout event (plotly's own autosize when the first
    # figure arrives, a resize) used to vanish.  Here only events that ask for a window change the
    # view (others leave it alone), and a timeline request still in flight for an older window is
    # dropped for the latest.  The window goes as microseconds from the trace's start, as plotly
    # has it (nanosecond timestamps may exceed a double's integers); the server adds the origin.
    app.clientside_callback(
        """function(r) {
            const nu = window.dash_clientside.no_update;
            if (!r) { return nu; }
            const n = performance.now();
            if (r['xaxis.autorange']) { return {auto: true, n: n}; }
            let a, b;
            if ('xaxis.range[0]' in r && 'xaxis.range[1]' in r) { a = r['xaxis.range[0]']; b = r['xaxis.range[1]']; }
            else if (Array.isArray(r['xaxis.range'])) { a = r['xaxis.range'][0]; b = r['xaxis.range'][1]; }
            else { return nu; }
            a = Number(a); b = Number(b);
            if (!isFinite(a) || !isFinite(b)) { return nu; }
            return {x0: Math.min(a, b), x1: Math.max(a, b), n: n};
        }""",
        Output("view", "data", allow_duplicate=True), Input("timeline", "relayoutData"), prevent_initial_call=True,
    )

    @app.callback(
        Output("range-select", "data"), Input("timeline", "selectedData"), State("trace-key", "data"),
        prevent_initial_call=True,
    )
    def on_select(selected: dict[str, Any] | None, key: int) -> Any:
        lt = current(key)
        rng = (selected or {}).get("range", {}).get("x")
        if not rng:
            return None
        return {"t0": int(lt.origin + rng[0] * 1e3), "t1": int(lt.origin + rng[1] * 1e3)}

    # -- the timeline itself
    @app.callback(
        Output("timeline", "figure"), Output("rendered", "data"), Output("view-info", "children"),
        Input("view", "data"), Input("collapse", "value"), Input("highlight", "data"), Input("selected", "data"),
        Input("width", "data"), State("trace-key", "data"), State("rendered", "data"),
    )
    def render_timeline(view: dict[str, int], collapsed: list[int] | None, hl: dict[str, Any] | None,
                        selected: int | None, width: int | None, key: int, rendered: dict[str, Any] | None) -> Any:
        lt = current(key)
        rows = tl.rows_for(lt, set(collapsed or []))
        t0, t1 = window_of(lt, view)
        v = tl.view_of(lt, rows, t0, t1, int(width or DEFAULT_WIDTH))
        hl = hl or {}
        state = {"key": lt.key, "collapsed": sorted(collapsed or []), "width": width}
        info = json.dumps({"key": lt.key, "t0": v.t0, "t1": v.t1, "rows": len(rows), "bars": int(v.bar_ids.size),
                           "visible": v.visible, "binned": v.binned, "nbins": v.nbins,
                           "highlight": hl.get("name"), "track": hl.get("track"), "selected": selected})
        data = tl.figure_data(lt, v, rows, hl.get("name"))
        lay = tl.figure_layout(lt, v, rows, selected, hl.get("track"))
        if rendered == state:
            p = Patch()
            p["data"] = data
            p["layout"]["xaxis"]["range"] = lay["xaxis"]["range"]
            p["layout"]["shapes"] = lay["shapes"]
            p["layout"]["annotations"] = lay["annotations"]
            return p, no_update, info
        return {"data": data, "layout": lay}, state, info

    # -- roofline follows the window (or the box-selected range).  It listens to the timeline's
    # view-info, not to the view store, so it is computed and drawn after the timeline: the first
    # view and every zoom show the timeline without waiting for the roofline.
    @app.callback(
        Output("roofline", "figure"), Output("roof-table", "data"),
        Input("view-info", "children"), Input("range-select", "data"), Input("highlight", "data"),
        State("trace-key", "data"),
    )
    def render_roofline(info: str | None, sel: dict[str, int] | None, hl: dict[str, Any] | None, key: int) -> Any:
        try:
            shown = json.loads(info) if info else None
        except ValueError:
            shown = None
        if not isinstance(shown, dict):
            return no_update, no_update
        lt = current(shown.get("key", key))
        w = sel or {"t0": int(shown["t0"]), "t1": int(shown["t1"])}
        s, e = lt.index.span
        t0, t1 = (None, None) if (w["t0"] <= s and w["t1"] >= e) else (w["t0"], w["t1"])
        df = rl.table(lt, spec, t0, t1)
        fig = rl.figure(df, rl.judged_by(lt, spec), (hl or {}).get("name"))
        return fig, df.replace([np.inf, -np.inf], None).to_dict("records")

    # -- click a roofline dot or table row: highlight that op and zoom to its first slice
    @app.callback(
        Output("highlight", "data", allow_duplicate=True), Output("view", "data", allow_duplicate=True),
        Input("roofline", "clickData"), Input("roof-table", "active_cell"), State("roof-table", "derived_viewport_data"),
        State("trace-key", "data"), prevent_initial_call=True,
    )
    def on_roof_click(click: dict[str, Any] | None, cell: dict[str, Any] | None, rows: list[dict[str, Any]] | None,
                      key: int) -> Any:
        lt = current(key)
        name = None
        if callback_context.triggered_id == "roofline" and click:
            cd = click["points"][0].get("customdata")
            name = _unesc(cd[0]) if cd else None
        elif cell and rows and cell.get("row") is not None and cell["row"] < len(rows):
            name = rows[cell["row"]].get("name")
        if not name or name not in lt.columns["names"]:
            return no_update, no_update
        code = lt.columns["names"].index(name)
        hits = np.flatnonzero(lt.columns["name"] == code)
        first = hits[np.argmin(lt.index.ts[hits])]
        ts, dur = int(lt.index.ts[first]), int(lt.index.dur[first])
        pad = max(dur * 4, 1000)
        return {"name": name, "track": int(lt.index.track[first])}, {"t0": ts - pad, "t1": ts + dur + pad}

    # -- click a finding: zoom to its window, highlight its track
    @app.callback(
        Output("highlight", "data", allow_duplicate=True), Output("view", "data", allow_duplicate=True),
        Input({"type": "finding", "index": ALL}, "n_clicks"), State("trace-key", "data"), prevent_initial_call=True,
    )
    def on_finding(clicks: list[int], key: int) -> Any:
        trig = callback_context.triggered_id
        if not trig or not any(clicks or []):
            return no_update, no_update
        lt = current(key)
        rep = report_of(lt, spec)
        if rep is None or trig["index"] >= len(rep.findings):
            return no_update, no_update
        f = rep.findings[trig["index"]]
        s, e = max(int(f.start_ns), lt.index.span[0]), min(int(f.end_ns), lt.index.span[1])
        return {"name": None, "track": f.track, "finding": f.id}, {"t0": s, "t1": max(e, s + 1)}

    # -- click a slice: details with its flows
    @app.callback(
        Output("selected", "data", allow_duplicate=True), Output("details", "children"),
        Input("timeline", "clickData"), State("trace-key", "data"), prevent_initial_call=True,
    )
    def on_slice_click(click: dict[str, Any] | None, key: int) -> Any:
        if not click:
            return no_update, no_update
        cd = click["points"][0].get("customdata")
        if not isinstance(cd, list) or not cd or not isinstance(cd[0], int):
            return no_update, no_update
        lt = current(key)
        sid = int(cd[0])
        if not 0 <= sid < lt.index.n:
            return no_update, no_update
        return sid, details(lt, sid)

    # -- download as Perfetto, open in Perfetto
    @app.callback(
        Output("download", "data"), Output("message", "children", allow_duplicate=True),
        Input("download-btn", "n_clicks"), State("trace-key", "data"), prevent_initial_call=True,
    )
    def on_download(n: int, key: int) -> Any:
        lt = current(key)
        try:
            data = perfetto_bytes(lt)
        except ProfilerError as exc:
            return no_update, html.Span(str(exc), className="error")
        stem = Path(lt.label).name.split(".")[0] or "trace"
        return dcc.send_bytes(data, f"{stem}.pftrace"), no_update

    @app.callback(
        Output("perfetto-info", "data"), Input("perfetto-btn", "n_clicks"), State("trace-key", "data"),
        State("view", "data"), State("offline", "data"), prevent_initial_call=True,
    )
    def on_perfetto(n: int, key: int, view: dict[str, int], off: bool) -> Any:
        lt = current(key)
        t0, t1 = window_of(lt, view)
        return {"trace": f"/perfetto-trace/{lt.key}.pftrace", "vis_start": t0, "vis_end": t1,
                "title": lt.label, "offline": bool(off), "n": n}

    app.clientside_callback(
        "function(info) { if (info) { window.accelProfiler.openPerfetto(info); } return ''; }",
        Output("perfetto-btn", "title"), Input("perfetto-info", "data"), prevent_initial_call=True,
    )

    # -- compare with another loaded trace
    @app.callback(Output("compare", "children"), Input("compare-select", "value"), State("trace-key", "data"),
                  prevent_initial_call=True)
    def on_compare(other: int | None, key: int) -> Any:
        if other is None:
            return no_update
        base, cur = reg.get(other), current(key)
        if base is None:
            return html.Span("That trace is not loaded.", className="error")
        return compare_table(base, cur)

    return app


def window_of(lt: LoadedTrace, view: dict[str, Any] | None) -> tuple[int, int]:
    """The [t0, t1) nanoseconds a view store asks for.

    The store holds absolute ``t0``/``t1`` (set by the server: a trace opened, a finding or a
    roofline dot clicked), or a zoom from the browser: ``x0``/``x1`` in microseconds from the
    trace's start, or ``auto`` for the whole run.  Anything else means the whole run.
    """
    s, e = lt.index.span
    v = view if isinstance(view, dict) else {}
    try:
        if "t0" in v and "t1" in v:
            t0, t1 = int(v["t0"]), int(v["t1"])
        elif "x0" in v and "x1" in v:
            a, b = float(v["x0"]), float(v["x1"])
            if not (np.isfinite(a) and np.isfinite(b)):
                return s, e
            t0, t1 = lt.origin + int(round(a * 1e3)), lt.origin + int(round(b * 1e3))
        else:
            return s, e
    except (TypeError, ValueError, OverflowError):
        return s, e
    return t0, max(t1, t0 + 1)


def _unesc(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def details(lt: LoadedTrace, sid: int) -> Any:
    """Details of one slice and the flows into it (what it waited on) and out of it (what waited on it)."""
    c = lt.columns
    ix = lt.index
    name = c["names"][c["name"][sid]] if c["name"][sid] >= 0 else ""
    fl, by, dur = c["flops"][sid], c["bytes"][sid], float(ix.dur[sid])
    dt = c["dtypes"][c["dtype"][sid]] if c["dtype"][sid] >= 0 else "-"
    rows = [("name", name), ("track", " / ".join(lt.trace.track_path(int(ix.track[sid])))),
            ("start", fmt_ns(float(ix.ts[sid] - lt.origin))), ("duration", fmt_ns(dur)),
            ("flops", fmt_si(fl)), ("bytes", fmt_si(by, "B")), ("dtype", dt),
            ("arithmetic intensity", f"{fl / by:.3g} FLOP/B" if np.isfinite(fl) and by > 0 else "-"),
            ("achieved", fmt_si(fl / dur * 1e9, "FLOP/s") if np.isfinite(fl) and dur > 0 else "-")]
    args = parse_args(lt.trace.slices["args"][sid].as_py())
    if args:
        rows.append(("args", json.dumps(args)[:400]))
    fr = lt.trace.flows["from_slice"].to_numpy()
    to = lt.trace.flows["to_slice"].to_numpy()

    def link(other: int) -> str:
        nm = c["names"][c["name"][other]] if c["name"][other] >= 0 else ""
        return f"{nm} on {' / '.join(lt.trace.track_path(int(ix.track[other])))} (ends {fmt_ns(float(ix.end[other] - lt.origin))})"

    waited_on = [link(int(a)) for a in fr[to == sid][:20]]
    waited_by = [link(int(b)) for b in to[fr == sid][:20]]
    return html.Div([
        html.Table([html.Tr([html.Td(k, className="muted"), html.Td(v)]) for k, v in rows]),
        html.Div([html.B("waited on: "), html.Ul([html.Li(x) for x in waited_on]) if waited_on else "nothing"],
                 id="flows-in"),
        html.Div([html.B("waited on it: "), html.Ul([html.Li(x) for x in waited_by]) if waited_by else "nothing"],
                 id="flows-out"),
    ])


def compare_table(base: LoadedTrace, cur: LoadedTrace) -> Any:
    """The diff analyzer's op table (baseline -> current)."""
    try:
        from analysis import diff
    except ImportError:
        return html.Span("Comparison needs the diff analyzer, which is not installed.", className="error")
    try:
        res = diff.diff(base.trace, cur.trace)
    except ProfilerError as exc:
        return html.Span(f"Could not compare: {exc}", className="error")
    df = res.metrics
    if df is None or not len(df):
        return html.Span("No differences to show.", className="muted")
    df = df.head(50).replace([np.inf, -np.inf], None)
    table = dash_table.DataTable  # type: ignore[attr-defined]
    return html.Div([
        html.Div(f"{base.label} → {cur.label}: total {fmt_ns(res.summary.get('base_total_ns'))} → "
                 f"{fmt_ns(res.summary.get('new_total_ns'))} ({res.summary.get('total_delta_pct', 0):+.1f}%)",
                 id="compare-total"),
        table(columns=[{"name": str(c), "id": str(c)} for c in df.columns],
                             data=df.astype(object).where(df.notna(), None).to_dict("records"), sort_action="native",
                             page_size=10, style_cell={"fontSize": 12}, style_table={"overflowX": "auto"}),
    ])
