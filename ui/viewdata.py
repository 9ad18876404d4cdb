"""What the canvas timeline (``assets/timeline.js``) is sent: row metadata and compact views.

The browser draws only the rows on screen, so a view is asked for a window [t0, t1) *and* a row
range [r0, r1): its cost follows the screen, not the number of tracks (1,058 rows on a 132-core
part) nor the number of slices.  Times travel as nanoseconds from the trace's start (exact in a
double for 104 days; epoch nanoseconds are not); bars are columns (row, start, duration, depth,
category, name) with the names used sent once; the per-pixel bins of merged slices are base64
bytes (0-255 = 0-100 %), working and stalled time apart.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np

from ui.fmt import MISSING, fmt_si, fmt_sig
from ui.lod import View
from ui.state import LoadedTrace
from ui.tracks import Row

#: Row heights in CSS pixels: a header, a collapsed group, a counter, a slice lane.
GROUP_PX, COLLAPSED_PX, COUNTER_PX, LANE_PX, MAX_LANES = 20, 22, 36, 15, 4
MAX_QUERY = 200


def rows_for(lt: LoadedTrace, collapsed: set[int] | frozenset[int]) -> list[Row]:
    """Display rows of ``lt`` with the groups in ``collapsed`` folded into one row each."""
    return lt.tree.rows(collapsed, lt.max_depth)


def view_of(lt: LoadedTrace, rows: list[Row], t0: int, t1: int, width_px: int) -> View:
    return lt.index.view(t0, t1, [r.view for r in rows], width_px=width_px)


def row_height(row: Row) -> int:
    if row.kind == "group" and not row.view.tracks:
        return GROUP_PX
    if row.kind == "collapsed":
        return COLLAPSED_PX
    if row.kind == "counter":
        return COUNTER_PX
    return 5 + LANE_PX * min(row.max_depth + 1, MAX_LANES)


def row_meta(lt: LoadedTrace, rows: list[Row]) -> list[dict[str, Any]]:
    """Label, level, kind, track, height and (counters) unit and maximum of every row."""
    out = []
    for r in rows:
        m: dict[str, Any] = {"label": r.label, "level": r.level, "kind": r.kind, "track": r.track, "h": row_height(r),
                             "lanes": min(r.max_depth + 1, MAX_LANES)}
        if r.kind == "counter":
            m["unit"] = lt.tree.units.get(r.track, "")
            m["max"] = lt.index.counter_max.get(r.track, 0.0)
        out.append(m)
    return out


def groups(lt: LoadedTrace) -> list[dict[str, Any]]:
    """Every group (track with children) for the track picker: id, path, level."""
    tree = lt.tree
    return [{"track": g, "path": " / ".join(lt.trace.track_path(g))} for g in tree.groups()]


def name_matcher(lt: LoadedTrace, query: str | None, regex: bool = False) -> np.ndarray | None:
    """Per name code: does the name match ``query`` (a case-insensitive substring, or a regex)?

    Matching runs over the names dictionary (thousands of strings), never over the slices; the
    result is cached per query.  None for an empty query; ``ValueError`` for a bad regex.
    """
    if not query:
        return None
    query = query[:MAX_QUERY]

    def make() -> np.ndarray:
        names = lt.columns["names"]
        if regex:
            try:
                pat = re.compile(query, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from None
            hit = [bool(n is not None and pat.search(n)) for n in names]
        else:
            q = query.lower()
            hit = [n is not None and q in n.lower() for n in names]
        return np.array([*hit, False], dtype=bool)  # code -1 (no name) at the end

    m: np.ndarray = lt.cached(f"match:{int(regex)}:{query}", make)
    return m


def matches(lt: LoadedTrace, mask: np.ndarray) -> np.ndarray:
    """Slice ids whose name matches, in start-time order (cached per mask)."""
    key = f"matches:{hash(mask.tobytes())}"

    def make() -> np.ndarray:
        ids = np.flatnonzero(mask[lt.columns["name"]])
        return ids[np.argsort(lt.index.ts[ids], kind="stable")]

    out: np.ndarray = lt.cached(key, make)
    return out


def _b64(frac: np.ndarray) -> str:
    return base64.b64encode(np.round(np.clip(frac, 0, 1) * 255).astype(np.uint8).tobytes()).decode("ascii")


def view_payload(lt: LoadedTrace, rows: list[Row], t0: int, t1: int, width_px: int, r0: int, r1: int,
                 match: np.ndarray | None = None, max_marks: int = 4000) -> dict[str, Any]:
    """The view of rows [r0, r1) over [t0, t1) drawn ``width_px`` wide, as plain JSON-able data."""
    r0, r1 = max(0, r0), min(len(rows), max(r1, r0))
    sub = rows[r0:r1]
    v = view_of(lt, sub, t0, t1, width_px)
    ix, c, o = lt.index, lt.columns, lt.origin
    ids = v.bar_ids
    name_codes = c["name"][ids]
    used, local = np.unique(name_codes, return_inverse=True)
    names = c["names"]
    bars = {
        "id": ids.tolist(), "r": (v.bar_rows + r0).tolist(), "x": (ix.ts[ids] - o).tolist(), "w": ix.dur[ids].tolist(),
        "d": ix.depth[ids].tolist(), "n": local.tolist(), "c": c["cat"][ids].tolist(), "s": ix.stall[ids].astype(int).tolist(),
        "m": (match[name_codes].astype(int).tolist() if match is not None else []),
    }
    bins = []
    for i in range(len(sub)):
        b, s = v.busy[i], v.stall[i]
        if b.any() or s.any():
            bins.append({"r": r0 + i, "busy": _b64(b), "stall": _b64(s)})
    counters = []
    for i, (cts, cv) in v.counters.items():
        if cts.size:
            counters.append({"r": r0 + i, "x": (np.clip(cts, t0, t1) - o).tolist(),
                             "v": [float(f"{x:.5g}") for x in cv.tolist()]})
    marks: dict[str, list[int]] = {"r": [], "x": [], "id": []}
    if match is not None:
        for i, row in enumerate(sub):
            for t in row.view.tracks:
                a, b = ix.visible_range(t, t0, t1)
                idx = np.arange(a, b)
                idx = idx[match[c["name"][idx]] & (ix.end[idx] > t0)]
                # one mark per pixel is all a screen can show
                px = ((ix.ts[idx] - t0) * (width_px / (t1 - t0))).astype(np.int64)
                idx = idx[np.unique(px, return_index=True)[1]][:max_marks]
                marks["r"] += [r0 + i] * idx.size
                marks["x"] += (ix.ts[idx] - o).tolist()
                marks["id"] += idx.tolist()
    return {
        "key": lt.key, "t0": t0 - o, "t1": t1 - o, "r0": r0, "r1": r1, "nbins": v.nbins,
        "names": [names[k] if k >= 0 else "" for k in used.tolist()],
        "bars": bars, "bins": bins, "counters": counters, "marks": marks,
        "visible": v.visible, "binned": v.binned,
    }


def slice_metrics(lt: LoadedTrace, sid: int) -> dict[str, str]:
    """A slice's flops, bytes, dtype, arithmetic intensity and achieved rate as the dashboard writes
    them, for the hover and the details panel alike: "–" for what the slice does not carry (flops
    that are missing or zero are missing: a DMA or a stall does no arithmetic, it is not "0.00")."""
    c = lt.columns
    fl, by, dur = float(c["flops"][sid]), float(c["bytes"][sid]), float(lt.index.dur[sid])
    has_fl = np.isfinite(fl) and fl > 0
    has_by = bool(np.isfinite(by))
    return {
        "flops": fmt_si(fl, "FLOP") if has_fl else MISSING,
        "bytes": fmt_si(by, "B") if has_by else MISSING,
        "dtype": (c["dtypes"][c["dtype"][sid]] if c["dtype"][sid] >= 0 else None) or MISSING,
        "ai": fmt_sig(fl / by, "FLOP/B") if has_fl and has_by and by > 0 else MISSING,
        "achieved": fmt_si(fl / dur * 1e9, "FLOP/s") if has_fl and dur > 0 else MISSING,
    }
