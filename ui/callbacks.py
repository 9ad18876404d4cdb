"""The dashboard's callbacks as plain functions of the registry and their inputs.

Each function takes the :class:`~ui.state.Registry` and the values Dash would pass (plus, where
it matters, which input fired), and returns what the outputs get, so tests call them directly
without a browser.  :func:`register` wires them to the page; the hidden stores they read and write
are described in :mod:`ui.layout`.
"""

from __future__ import annotations

import base64
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from dash import ALL, Dash, Input, Output, State, callback_context, dcc, html, no_update

from profiler.errors import ProfilerError
from profiler.model import Trace, parse_args
from ui import layout as ly
from ui import rangestats as rs
from ui import roofline as rl
from ui import viewdata as vd
from ui.fmt import MISSING, fmt_ns
from ui.perfetto import perfetto_bytes
from ui.state import LoadedTrace, Registry
from ui.uploads import add_upload, content_cap, upload_contents, upload_name


# ------------------------------------------------------------------ helpers
def current(reg: Registry, key: Any) -> LoadedTrace:
    """The trace ``key`` names, else the first one loaded."""
    lt = reg.get(key)
    return lt if lt is not None else reg.traces[min(reg.traces)]


def window_of(lt: LoadedTrace, view: dict[str, Any] | None) -> tuple[int, int]:
    """The absolute [t0, t1) nanoseconds of a view-state store: its selected range when there is
    one, else its window; both are nanoseconds from the trace's start.  Anything unusable means
    the whole run."""
    s, e = lt.index.span
    v = view if isinstance(view, dict) else {}
    try:
        rng = v.get("range")
        a, b = (rng[0], rng[1]) if isinstance(rng, list) and len(rng) == 2 else (v["t0"], v["t1"])
        a, b = float(a), float(b)
        if not (np.isfinite(a) and np.isfinite(b)):
            return s, e
        t0, t1 = lt.origin + int(round(a)), lt.origin + int(round(b))
    except (KeyError, TypeError, ValueError, OverflowError):
        return s, e
    t0, t1 = max(t0, s), min(t1, e)
    return t0, max(t1, t0 + 1)


def prepare(lt: LoadedTrace, spec: Any) -> LoadedTrace:
    """Build what the first view needs (index, decoded columns, rows, analysis, roofline points)
    before the page asks, so a first view costs what a zoom costs."""
    _ = lt.index, lt.columns, lt.max_depth, lt.tree
    ly.report_of(lt, spec)
    rl.table(lt, spec)
    return lt


def read_upload(contents: str, filename: str | None, max_bytes: int, max_content: int | None = None) -> Trace:
    """Decode a dcc.Upload payload and read it as a trace; ProfilerError on anything wrong.

    ``max_content``: largest decompressed content (:func:`ui.uploads.content_cap`).
    """
    filename = upload_name(filename)  # a message for NUL, "..", over-long or non-text names
    contents = upload_contents(contents)
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
    from profiler.formats.source import limited_content

    name = filename
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        try:
            with limited_content(max_content or max(max_bytes * 16, 256 << 20)):
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


def slice_nav(lt: LoadedTrace, sid: int, pad: float = 2.5) -> dict[str, Any]:
    """A ``nav`` request showing slice ``sid`` selected, with ``pad`` times its length either side."""
    ix = lt.index
    ts, dur = int(ix.ts[sid] - lt.origin), int(ix.dur[sid])
    w = max(dur * pad, 1000)
    return {"key": lt.key, "sel": int(sid), "ts": ts, "dur": dur, "track": int(ix.track[sid]),
            "t0": ts - w, "t1": ts + dur + w}


def finding_track(lt: LoadedTrace, finding: Any) -> int | None:
    """The track a finding is about: its own, else the worst of the engines it groups (the
    analyzers list them worst first as track paths), else None (the whole run)."""
    if finding.track is not None:
        return int(finding.track)
    engines = (finding.details or {}).get("engines")
    if isinstance(engines, str):
        try:
            import ast

            engines = ast.literal_eval(engines)
        except (ValueError, SyntaxError):
            engines = None
    if not isinstance(engines, list) or not engines:
        return None
    paths = lt.cached("track_paths", lambda: {" / ".join(lt.trace.track_path(int(t))): int(t)
                                              for t in lt.trace.tracks["id"].to_pylist()})
    return paths.get(str(engines[0]))


def largest_gap(lt: LoadedTrace, track: int, t0: int, t1: int) -> tuple[int, int] | None:
    """The longest stretch in [t0, t1) with no top-level slice on ``track`` (start, end), if any."""
    ix = lt.index
    a, b = ix.visible_range(track, t0, t1)
    idx = np.arange(a, b)
    idx = idx[ix.depth[idx] == 0]
    if idx.size < 2:
        return None
    ends = np.maximum.accumulate(ix.end[idx])[:-1]
    gaps = ix.ts[idx][1:] - ends
    k = int(np.argmax(gaps))
    return (int(ends[k]), int(ix.ts[idx][k + 1])) if gaps[k] > 0 else None


def worst_instance(lt: LoadedTrace, finding: Any) -> tuple[int | None, int | None]:
    """(track, slice) a finding should jump to: the longest slice it is about on its (worst)
    track in its window: named like its subject when it has one, a stall when it is about
    waiting.  The slice is None when no slice fits (a finding about gaps)."""
    ix, c = lt.index, lt.columns
    s, e = int(finding.start_ns), int(finding.end_ns)
    track = finding_track(lt, finding)
    tracks = list(ix.ranges) if track is None else [track, *lt.tree.descendants(track)]
    parts = []
    for t in tracks:
        a, b = ix.visible_range(t, s, max(e, s + 1))
        if b > a:
            parts.append(np.arange(a, b))
    if not parts:
        return track, None
    ids = np.concatenate(parts)
    subject = getattr(finding, "subject", "") or ""
    if subject and subject in c["names"]:
        named = ids[c["name"][ids] == c["names"].index(subject)]
        ids = named if named.size else ids
    text = f"{finding.kind} {finding.metric}".lower()
    if "stall" in text or "wait" in text or "bubble" in text:
        stalled = ids[ix.stall[ids]]
        ids = stalled if stalled.size else ids
    if not ids.size:
        return track, None
    sid = int(ids[np.argmax(ix.dur[ids])])
    return (int(ix.track[sid]) if track is None else track), sid


# ------------------------------------------------------------------ callbacks
def open_trace(reg: Registry, trigger: str | None, choice: str | None, contents: str | None, filename: str | None,
               key: int) -> tuple[Any, Any, Any, Any]:
    """Pick a trace the command line allowed, or read an upload: (trace-key, message, options, value)."""
    nothing = (no_update, no_update, no_update, no_update)
    try:
        if trigger == "upload":
            if not contents:
                return nothing
            trace = read_upload(contents, filename, reg.max_upload_bytes, content_cap(reg))
            lt = add_upload(reg, trace, upload_name(filename))  # within the upload memory budget
        else:
            kind, _, val = str(choice).partition(":")
            if kind == "key":
                if reg.get(val) is None or int(val) == key:
                    return nothing
                lt = current(reg, val)
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
                return nothing
    except ProfilerError as exc:
        return no_update, html.Span(f"Could not open: {exc}", className="error"), ly.trace_options(reg), f"key:{key}"
    prepare(lt, reg.spec)
    return lt.key, html.Span(f"Opened {lt.label}", className="ok"), ly.trace_options(reg), f"key:{lt.key}"


def on_trace(reg: Registry, key: int) -> tuple[Any, ...]:
    """A trace was opened: header, findings, comparison choices, and the panels reset."""
    lt = current(reg, key)
    others = [{"label": o.label, "value": o.key} for o in reg.traces.values() if o.key != lt.key]
    return (ly.summary(lt, reg.spec), ly.findings(lt, reg.spec), others, {"name": None},
            html.Span("Click a slice.", className="muted"))


def render_roofline(reg: Registry, view: dict[str, Any] | None, hl: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    """Roofline, op table and the note naming ops above their roof, for the window (or selected
    range) the timeline shows."""
    if not isinstance(view, dict) or reg.get(view.get("key")) is None:
        return no_update, no_update, no_update
    lt = current(reg, view["key"])
    t0, t1 = window_of(lt, view)
    s, e = lt.index.span
    a, b = (None, None) if (t0 <= s and t1 >= e) else (t0, t1)
    df = rl.table(lt, reg.spec, a, b)
    fig = rl.figure(df, rl.judged_by(lt, reg.spec), (hl or {}).get("name"))
    rows = df[rl.TABLE_COLUMNS]
    return (fig, rows.replace([np.inf, -np.inf], None).astype(object).where(rows.notna(), None).to_dict("records"),
            rl.above_note(df))


def range_stats(reg: Registry, view: dict[str, Any] | None) -> tuple[Any, Any, Any, Any]:
    """(caption, per-name rows, per-track rows, longest slices) of the window or selected range."""
    if not isinstance(view, dict) or reg.get(view.get("key")) is None:
        return no_update, no_update, no_update, no_update
    lt = current(reg, view["key"])
    t0, t1 = window_of(lt, view)
    ids = rs.in_window(lt, t0, t1)
    what = "selected range" if view.get("range") else "window"
    caption = (f"{what} {fmt_ns(t0 - lt.origin)} – {fmt_ns(t1 - lt.origin)} from the start "
               f"({fmt_ns(t1 - t0)}), {ids.size:,} slices on every track")
    return caption, rs.by_name(lt, ids, t0, t1), rs.by_track(lt, ids, t0, t1), rs.longest(lt, ids)


def details(lt: LoadedTrace, sid: int) -> Any:
    """One slice's table (metrics it lacks shown as "–") and the flows into and out of it, each a
    button that shows the other end on the timeline."""
    c = lt.columns
    ix = lt.index
    name = c["names"][c["name"][sid]] if c["name"][sid] >= 0 else ""
    m = vd.slice_metrics(lt, sid)
    rows = [("name", name), ("track", " / ".join(lt.trace.track_path(int(ix.track[sid])))),
            ("start", fmt_ns(float(ix.ts[sid] - lt.origin)) + " from the start"), ("duration", fmt_ns(float(ix.dur[sid]))),
            ("category", (c["cats"][c["cat"][sid]] if c["cat"][sid] >= 0 else None) or MISSING),
            ("flops", m["flops"]), ("bytes", m["bytes"]), ("dtype", m["dtype"]),
            ("arithmetic intensity", m["ai"]), ("achieved", m["achieved"])]
    args = parse_args(lt.trace.slices["args"][sid].as_py())
    for k, v in list(args.items())[:12]:
        rows.append((str(k), json.dumps(v)[:200] if not isinstance(v, str) else v[:200]))
    fr = lt.trace.flows["from_slice"].to_numpy()
    to = lt.trace.flows["to_slice"].to_numpy()

    def link(other: int) -> Any:
        nm = c["names"][c["name"][other]] if c["name"][other] >= 0 else ""
        text = f"{nm} on {' / '.join(lt.trace.track_path(int(ix.track[other])))} (ends {fmt_ns(float(ix.end[other] - lt.origin))})"
        return html.Li(html.Button(text, id={"type": "flow", "index": int(other)}, className="flow-link", n_clicks=0))

    waited_on = [link(int(a)) for a in fr[to == sid][:20]]
    # A stall may name what it waited for by slice id (the simulator's ``waits_for``) instead of a flow.
    w = args.get("waits_for")
    if isinstance(w, int) and not isinstance(w, bool) and 0 <= w < ix.n and w != sid and w not in fr[to == sid]:
        waited_on.append(link(w))
    waited_by = [link(int(b)) for b in to[fr == sid][:20]]
    return html.Div([
        html.Table([html.Tr([html.Td(k, className="muted"), html.Td(v)]) for k, v in rows]),
        html.Div([html.B("waited on: "), html.Ul(waited_on) if waited_on else "no flow into it"], id="flows-in"),
        html.Div([html.B("waited on it: "), html.Ul(waited_by) if waited_by else "no flow out of it"], id="flows-out"),
    ])


def on_select(reg: Registry, view: dict[str, Any] | None) -> Any:
    if not isinstance(view, dict) or view.get("sel") is None or reg.get(view.get("key")) is None:
        return html.Span("Click a slice.", className="muted")
    lt = current(reg, view["key"])
    try:
        sid = int(view["sel"])
    except (TypeError, ValueError):
        return no_update
    if not 0 <= sid < lt.index.n:
        return no_update
    return details(lt, sid)


def on_flow(reg: Registry, trigger: Any, clicks: list[int] | None, key: int) -> Any:
    """A flow's other end was clicked: select and show it."""
    if not isinstance(trigger, dict) or not any(clicks or []):
        return no_update
    lt = current(reg, key)
    sid = int(trigger.get("index", -1))
    return slice_nav(lt, sid) if 0 <= sid < lt.index.n else no_update


def on_finding(reg: Registry, trigger: Any, clicks: list[int] | None, key: int) -> tuple[Any, Any]:
    """A finding was clicked: show its worst instance on its track selected (else its window)."""
    if not isinstance(trigger, dict) or not any(clicks or []):
        return no_update, no_update
    lt = current(reg, key)
    rep = ly.report_of(lt, reg.spec)
    i = int(trigger.get("index", -1))
    if rep is None or not 0 <= i < len(rep.findings):
        return no_update, no_update
    f = rep.findings[i]
    track = finding_track(lt, f)
    hl = {"name": None, "track": track, "finding": f.id}
    gap = largest_gap(lt, track, int(f.start_ns), int(f.end_ns)) if track is not None and "gap" in f.kind else None
    if gap is not None:  # a finding about idle time: show its longest gap
        w = max((gap[1] - gap[0]) // 4, 500)
        return hl, {"key": lt.key, "t0": gap[0] - w - lt.origin, "t1": gap[1] + w - lt.origin, "track": track}
    track, sid = worst_instance(lt, f)
    if sid is not None:
        nav = slice_nav(lt, sid)
        nav["track"] = track
        return hl, nav
    s, e = max(int(f.start_ns), lt.index.span[0]), min(int(f.end_ns), lt.index.span[1])
    return hl, {"key": lt.key, "t0": s - lt.origin, "t1": max(e, s + 1) - lt.origin, "track": track}


def on_roof_click(reg: Registry, trigger: str | None, click: dict[str, Any] | None, cell: dict[str, Any] | None,
                  rows: list[dict[str, Any]] | None, key: int) -> tuple[Any, Any]:
    """A roofline dot or op-table row: highlight that op and show its longest slice."""
    lt = current(reg, key)
    name = None
    if trigger == "roofline" and click:
        cd = click["points"][0].get("customdata")
        name = _unesc(cd[0]) if cd else None
    elif cell and rows and cell.get("row") is not None and cell["row"] < len(rows):
        name = rows[cell["row"]].get("name")
    if not name or name not in lt.columns["names"]:
        return no_update, no_update
    code = lt.columns["names"].index(name)
    hits = np.flatnonzero(lt.columns["name"] == code)
    sid = int(hits[np.argmax(lt.index.dur[hits])])
    return {"name": name}, slice_nav(lt, sid)


def on_longest(reg: Registry, cell: dict[str, Any] | None, rows: list[dict[str, Any]] | None, key: int) -> Any:
    """A row of the longest-slices table: show that slice."""
    if not cell or not rows or cell.get("row") is None or cell["row"] >= len(rows):
        return no_update
    lt = current(reg, key)
    sid = rows[cell["row"]].get("id")
    return slice_nav(lt, int(sid)) if isinstance(sid, int) and 0 <= sid < lt.index.n else no_update


def on_download(reg: Registry, key: int) -> tuple[Any, Any]:
    lt = current(reg, key)
    try:
        data = perfetto_bytes(lt)
    except ProfilerError as exc:
        return no_update, html.Span(str(exc), className="error")
    stem = Path(lt.label).name.split(".")[0] or "trace"
    return dcc.send_bytes(data, f"{stem}.pftrace"), no_update


def on_perfetto(reg: Registry, n: int, key: int, view: dict[str, Any] | None, off: bool) -> dict[str, Any]:
    lt = current(reg, key)
    v = view if isinstance(view, dict) and view.get("key") == lt.key else None
    t0, t1 = window_of(lt, {k: x for k, x in (v or {}).items() if k != "range"} or None)
    return {"trace": f"/perfetto-trace/{lt.key}.pftrace", "vis_start": t0, "vis_end": t1,
            "title": lt.label, "offline": bool(off), "n": n}


def on_compare(reg: Registry, other: int | None, key: int) -> Any:
    if other is None:
        return no_update
    base, cur = reg.get(other), current(reg, key)
    if base is None:
        return html.Span("That trace is not loaded.", className="error")
    return compare_table(base, cur)


def _unesc(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def compare_table(base: LoadedTrace, cur: LoadedTrace) -> Any:
    """The diff analyzer's op table (baseline -> current), numbers rounded for reading."""
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
    for col in df.columns:
        if df[col].dtype.kind == "f":
            df[col] = df[col].round(1 if col.endswith("pct") else 3)
    table = ly.dash_table.DataTable  # type: ignore[attr-defined]
    pct = res.summary.get("total_delta_pct")
    return html.Div([
        html.Div(f"{base.label} → {cur.label}: total {fmt_ns(res.summary.get('base_total_ns'))} → "
                 f"{fmt_ns(res.summary.get('new_total_ns'))} ({f'{pct:+.1f} %' if pct is not None else MISSING})",
                 id="compare-total"),
        table(columns=[{"name": str(c).replace("_", " "), "id": str(c)} for c in df.columns],
              data=df.astype(object).where(df.notna(), None).to_dict("records"), sort_action="native",
              page_size=10, **ly.TABLE_STYLE),
    ])


# ------------------------------------------------------------------ wiring
def _trig(fn: Any, reg: Registry) -> Any:
    """``fn(reg, trigger, *args)`` as a Dash callback of ``*args`` (``trigger``: the fired input's id)."""

    def run(*args: Any) -> Any:
        return fn(reg, callback_context.triggered_id, *args)

    return run


def register(app: Dash, reg: Registry) -> None:
    """Connect the callbacks above to the page's components and stores."""
    p = partial
    app.callback(Output("trace-key", "data"), Output("message", "children"), Output("trace-select", "options"),
                 Output("trace-select", "value"), Input("trace-select", "value"), Input("upload", "contents"),
                 State("upload", "filename"), State("trace-key", "data"),
                 prevent_initial_call=True)(_trig(open_trace, reg))
    app.callback(Output("summary", "children"), Output("findings", "children"), Output("compare-select", "options"),
                 Output("highlight", "data"), Output("details", "children"),
                 Input("trace-key", "data"), prevent_initial_call=True)(p(on_trace, reg))
    # The timeline draws the trace in the store, and shows what a panel asks for.
    app.clientside_callback("function(k) { window.accelTimeline.open(k); return window.dash_clientside.no_update; }",
                            Output("tl", "title"), Input("trace-key", "data"))
    app.clientside_callback("function(n) { window.accelTimeline.navigate(n); return window.dash_clientside.no_update; }",
                            Output("tl", "className"), Input("nav", "data"), prevent_initial_call=True)
    app.callback(Output("roofline", "figure"), Output("roof-table", "data"), Output("roofline-note", "children"),
                 Input("view-state", "data"),
                 Input("highlight", "data"))(p(render_roofline, reg))
    app.callback(Output("stats-caption", "children"), Output("stats-names", "data"), Output("stats-tracks", "data"),
                 Output("longest", "data"), Input("view-state", "data"))(p(range_stats, reg))
    app.callback(Output("details", "children", allow_duplicate=True), Input("view-state", "data"),
                 prevent_initial_call=True)(p(on_select, reg))
    app.callback(Output("nav", "data"), Input({"type": "flow", "index": ALL}, "n_clicks"), State("trace-key", "data"),
                 prevent_initial_call=True)(_trig(on_flow, reg))
    app.callback(Output("highlight", "data", allow_duplicate=True), Output("nav", "data", allow_duplicate=True),
                 Input({"type": "finding", "index": ALL}, "n_clicks"), State("trace-key", "data"),
                 prevent_initial_call=True)(_trig(on_finding, reg))
    app.callback(Output("highlight", "data", allow_duplicate=True), Output("nav", "data", allow_duplicate=True),
                 Input("roofline", "clickData"), Input("roof-table", "active_cell"),
                 State("roof-table", "derived_viewport_data"), State("trace-key", "data"),
                 prevent_initial_call=True)(_trig(on_roof_click, reg))
    app.callback(Output("nav", "data", allow_duplicate=True), Input("longest", "active_cell"),
                 State("longest", "derived_viewport_data"), State("trace-key", "data"),
                 prevent_initial_call=True)(p(on_longest, reg))
    app.callback(Output("download", "data"), Output("message", "children", allow_duplicate=True),
                 Input("download-btn", "n_clicks"), State("trace-key", "data"),
                 prevent_initial_call=True)(lambda n, key: on_download(reg, key))
    app.callback(Output("perfetto-info", "data"), Input("perfetto-btn", "n_clicks"), State("trace-key", "data"),
                 State("view-state", "data"), State("offline", "data"), prevent_initial_call=True)(p(on_perfetto, reg))
    app.clientside_callback(
        "function(info) { if (info) { window.accelProfiler.openPerfetto(info); } return ''; }",
        Output("perfetto-btn", "title"), Input("perfetto-info", "data"), prevent_initial_call=True)
    app.callback(Output("compare", "children"), Input("compare-select", "value"), State("trace-key", "data"),
                 prevent_initial_call=True)(p(on_compare, reg))

