"""The timeline figure: plotly dicts built from one LOD :class:`~ui.lod.View`.

Figures are plain dicts (no ``go.Figure`` validation, which costs more than the LOD itself) with
numbers rounded to what a screen can show.  x is microseconds from the trace's start.  Bars are
horizontal plotly bars (``base`` = start, ``x`` = duration), one trace per category so the legend
explains the colours; stall slices are red and hatched; busy fractions of merged sub-pixel slices
are a heatmap under the bars; counters are small filled polylines inside their own rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ui.lod import View, ViewRow
from ui.state import LoadedTrace
from ui.tracks import Row

PALETTE = ("#4C78A8", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC", "#F58518")
STALL_COLOR = "#E45756"
ROW_PX = 26
HOVER = ("<b>%{customdata[1]}</b><br>%{customdata[2]:.3f} µs<br>flops %{customdata[3]:.3s}"
         "<br>bytes %{customdata[4]:.3s}B<br>dtype %{customdata[5]}<br>AI %{customdata[6]:.3g} FLOP/B"
         "<br>achieved %{customdata[7]:.3s}FLOP/s<extra>%{fullData.name}</extra>")


def is_stall(category: str | None, name: str | None) -> bool:
    """Stalls are slices whose category or name says so (``stall``, ``wait``, ``idle``)."""
    text = f"{category or ''} {name or ''}".lower()
    return "stall" in text or text.startswith("wait") or " wait" in text or "idle" in text


def category_color(categories: list[str | None], cat: str | None) -> str:
    names = sorted(c for c in categories if c)
    return PALETTE[names.index(cat) % len(PALETTE)] if cat in names else PALETTE[-1]


def rows_for(lt: LoadedTrace, collapsed: set[int]) -> list[Row]:
    return lt.tree.rows(collapsed, lt.max_depth)


def view_of(lt: LoadedTrace, rows: list[Row], t0: int, t1: int, width_px: int) -> View:
    return lt.index.view(t0, t1, [r.view for r in rows], width_px=width_px)


def _us(lt: LoadedTrace, ns: np.ndarray | float) -> Any:
    return np.round((np.asarray(ns, dtype=np.float64) - lt.origin) / 1e3, 3)


def _nan_none(a: np.ndarray, digits: int = 4) -> list[float | None]:
    return [None if not np.isfinite(v) else float(f"{v:.{digits}g}") for v in a.tolist()]


def _bar_y(lt: LoadedTrace, rows: list[Row], ids: np.ndarray, row_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row centre offset by nesting depth (depth 0 on top), and bar thickness."""
    levels = np.array([min(r.max_depth, 3) + 1 for r in rows], dtype=np.float64)[row_idx]
    h = 0.8 / levels
    d = np.minimum(lt.index.depth[ids], levels - 1)
    return np.round(row_idx - 0.4 + (d + 0.5) * h, 3), np.round(h * 0.92, 3)


def bar_traces(lt: LoadedTrace, rows: list[Row], ids: np.ndarray, row_idx: np.ndarray,
               name: str | None = None, style: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Horizontal bars for slices ``ids``: one trace per category (or one named ``name``)."""
    if ids.size == 0:
        return []
    c = lt.columns
    ix = lt.index
    y, width = _bar_y(lt, rows, ids, row_idx)
    flops = c["flops"][ids]
    nbytes = c["bytes"][ids]
    dur = ix.dur[ids].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ai = flops / nbytes
        achieved = flops / (dur * 1e-9)
    names = c["names"]
    dtypes = c["dtypes"]
    custom = [
        [int(i), esc(names[n]) if n >= 0 else "", round(d / 1e3, 3), f, b, dtypes[t] if t >= 0 else "-", a, ach]
        for i, n, d, f, b, t, a, ach in zip(
            ids.tolist(), c["name"][ids].tolist(), dur.tolist(), _nan_none(flops), _nan_none(nbytes),
            c["dtype"][ids].tolist(), _nan_none(ai), _nan_none(achieved), strict=True)
    ]
    base = _us(lt, ix.ts[ids])
    xdur = np.round(dur / 1e3, 3)
    groups: dict[str, np.ndarray]
    if name is not None:
        groups = {name: np.arange(ids.size)}
    else:
        cats = c["cats"]
        codes = c["cat"][ids]
        stall = np.array([is_stall(cats[k] if k >= 0 else None, names[n] if n >= 0 else None)
                          for k, n in zip(codes.tolist(), c["name"][ids].tolist(), strict=True)], dtype=bool)
        groups = {}
        for k in np.unique(codes[~stall]):
            groups[cats[k] if k >= 0 else "(none)"] = np.flatnonzero((codes == k) & ~stall)
        if stall.any():
            groups["stall"] = np.flatnonzero(stall)
    out = []
    for gname, sel in groups.items():
        if style is not None:
            marker = dict(style)
        elif gname == "stall":
            marker = {"color": STALL_COLOR, "pattern": {"shape": "/", "fgcolor": "#7a1010", "size": 5}}
        else:
            marker = {"color": category_color(c["cats"], gname)}
        out.append({
            "type": "bar", "orientation": "h", "name": esc(gname), "base": base[sel], "x": xdur[sel], "y": y[sel],
            "width": width[sel] if width.ndim else width, "marker": marker,
            "customdata": [custom[i] for i in sel.tolist()], "hovertemplate": HOVER,
            "showlegend": name is None,
        })
    return out


def busy_trace(lt: LoadedTrace, view: View) -> dict[str, Any] | None:
    """Heatmap of busy fractions (0 -> transparent), one cell per bin per row."""
    if not view.busy.size or not (view.busy > 0).any():
        return None
    z = np.round(view.busy, 2)
    zl: list[list[float | None]] = [[v if v > 0 else None for v in row] for row in z.tolist()]
    return {
        "type": "heatmap", "name": "busy", "x": _us(lt, view.bin_centers()), "y": list(range(view.busy.shape[0])),
        "z": zl, "zmin": 0, "zmax": 1, "showscale": False, "ygap": 3, "hoverongaps": False,
        "colorscale": [[0, "rgba(76,120,168,0.25)"], [1, "rgba(40,70,120,1)"]],
        "hovertemplate": "busy %{z:.0%} (merged slices)<extra></extra>",
    }


def counter_traces(lt: LoadedTrace, view: View, rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for r, (ts, v) in view.counters.items():
        if not ts.size:
            continue
        vmax = lt.index.counter_max.get(rows[r].track, 1.0) or 1.0
        x = _us(lt, np.clip(ts, view.t0, view.t1))
        y = np.round(r + 0.42 - 0.84 * np.clip(v / vmax, 0, 1), 3)
        out.append({
            "type": "scatter", "mode": "lines", "name": esc(rows[r].label), "x": np.concatenate([[x[0]], x, [x[-1]]]),
            "y": np.concatenate([[r + 0.42], y, [r + 0.42]]), "line": {"shape": "hv", "width": 1, "color": "#2E7D32"},
            "fill": "toself", "fillcolor": "rgba(46,125,50,0.3)", "showlegend": False,
            "customdata": np.concatenate([[np.nan], np.round(v, 4), [np.nan]]),
            "hovertemplate": f"{template_text(rows[r].label)}: %{{customdata:.4g}}<extra></extra>",
        })
    return out


def row_of_tracks(rows: list[Row]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, r in enumerate(rows):
        for t in r.view.tracks:
            out[t] = i
        if r.view.counter_track is not None:
            out[r.view.counter_track] = i
    return out


def flow_annotations(lt: LoadedTrace, rows: list[Row], slice_id: int | None) -> list[dict[str, Any]]:
    """Arrows from what ``slice_id`` waited on and to what waited on it."""
    if slice_id is None or lt.trace.flows.num_rows == 0:
        return []
    fr = lt.trace.flows["from_slice"].to_numpy()
    to = lt.trace.flows["to_slice"].to_numpy()
    sel = (fr == slice_id) | (to == slice_id)
    rot = row_of_tracks(rows)
    ix = lt.index
    out = []
    for a, b in zip(fr[sel][:50].tolist(), to[sel][:50].tolist(), strict=True):
        ra, rb = rot.get(int(ix.track[a])), rot.get(int(ix.track[b]))
        if ra is None or rb is None:
            continue
        out.append({
            "x": float(_us(lt, ix.ts[b])), "y": rb, "ax": float(_us(lt, ix.end[a])), "ay": ra,
            "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "showarrow": True, "arrowhead": 3,
            "arrowwidth": 1.5, "arrowcolor": "#333", "text": "",
        })
    return out


def highlight_ids(lt: LoadedTrace, view: View, rows: list[Row], name: str | None, limit: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Visible slices named ``name`` (however narrow), with their rows, at most ``limit``."""
    if not name or name not in lt.columns["names"]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code = lt.columns["names"].index(name)
    ids_l, rows_l = [], []
    ix = lt.index
    for r, row in enumerate(rows):
        if len(row.view.tracks) != 1:
            continue
        a, b = ix.visible_range(row.view.tracks[0], view.t0, view.t1)
        idx = np.arange(a, b)
        idx = idx[(lt.columns["name"][idx] == code) & (ix.end[idx] > view.t0)]
        ids_l.append(idx[:limit])
        rows_l.append(np.full(min(idx.size, limit), r))
    if not ids_l:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ids_l)[:limit].astype(np.int64), np.concatenate(rows_l)[:limit].astype(np.int64)


def figure_data(lt: LoadedTrace, view: View, rows: list[Row], highlight: str | None = None) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    busy = busy_trace(lt, view)
    if busy:
        data.append(busy)
    data += bar_traces(lt, rows, view.bar_ids, view.bar_rows)
    data += counter_traces(lt, view, rows)
    hid, hrow = highlight_ids(lt, view, rows, highlight)
    if hid.size:
        # Highlighted slices are at least 3 px wide so they can be seen at any zoom.
        tr = bar_traces(lt, rows, hid, hrow, name=f"selected: {highlight}",
                        style={"color": "#FFD400", "line": {"color": "#000", "width": 1.5}})
        min_us = 3 * (view.t1 - view.t0) / view.width_px / 1e3
        for t in tr:
            t["x"] = np.maximum(t["x"], round(min_us, 3))
            t["showlegend"] = True
        data += tr
    return data


def figure_layout(lt: LoadedTrace, view: View, rows: list[Row], selected: int | None = None,
                  track: int | None = None) -> dict[str, Any]:
    shapes = []
    if track is not None:
        rot = row_of_tracks(rows)
        r = rot.get(int(track))
        if r is None:
            r = next((i for i, row in enumerate(rows) if row.track == track), None)
        if r is not None:
            shapes.append({"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": r - 0.5, "y1": r + 0.5,
                           "fillcolor": "rgba(255,212,0,0.25)", "line": {"width": 0}, "layer": "below"})
    if selected is not None and 0 <= selected < lt.index.n:
        rot = row_of_tracks(rows)
        r = rot.get(int(lt.index.track[selected]))
        if r is not None:
            shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": float(_us(lt, lt.index.ts[selected])),
                           "x1": float(_us(lt, lt.index.end[selected])), "y0": r - 0.45, "y1": r + 0.45,
                           "line": {"color": "#000", "width": 2}, "fillcolor": "rgba(0,0,0,0)"})
    labels = [("&nbsp;" * 3 * r.level) + (f"<b>{esc(r.label)}</b>" if r.kind in ("group", "collapsed") else esc(r.label))
              for r in rows]
    return {
        "barmode": "overlay", "dragmode": "zoom", "hovermode": "closest", "uirevision": lt.key,
        "height": max(len(rows) * ROW_PX + 90, 250), "margin": {"l": 150, "r": 10, "t": 10, "b": 40},
        "xaxis": {"range": [float(_us(lt, view.t0)), float(_us(lt, view.t1))], "title": {"text": "time (µs)"},
                  "showgrid": True, "zeroline": False},
        "yaxis": {"range": [len(rows) - 0.5, -0.5], "tickmode": "array", "tickvals": list(range(len(rows))),
                  "ticktext": labels, "fixedrange": True, "showgrid": False, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        "shapes": shapes, "annotations": flow_annotations(lt, rows, selected), "plot_bgcolor": "#fafafa",
    }


def esc(text: str) -> str:
    """Tick labels are rendered as plotly pseudo-HTML: escape trace-supplied names."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def template_text(text: str) -> str:
    """Trace-supplied text placed inside a plotly hovertemplate: escaped, and ``%{`` (a template
    field) written as an entity so a name can never pull in other data."""
    return esc(text).replace("%{", "&#37;{")


def figure(lt: LoadedTrace, view: View, rows: list[Row], highlight: str | None = None,
           selected: int | None = None, track: int | None = None) -> dict[str, Any]:
    return {"data": figure_data(lt, view, rows, highlight), "layout": figure_layout(lt, view, rows, selected, track)}


__all__ = ["ViewRow", "figure", "rows_for", "view_of"]
