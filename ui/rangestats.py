"""Statistics of a time window over every track: per slice name, per track, and the longest slices.

The window is what the timeline shows (or the range selected in it), so the tables follow every
zoom.  Slices are found per track by two binary searches in the timeline index (no pass over the
whole trace for a narrow window).  Rules, stated once:

* per name: ``count`` slices overlapping the window, ``total`` their time inside it, ``mean`` and
  ``max`` their whole durations;
* per track: ``busy`` and ``stall`` are the shares of the window covered by top-level working and
  stall slices; ``bytes`` are the slices' bytes prorated by the part of each inside the window
  (a transfer is assumed to move its bytes evenly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ui.fmt import MISSING, fmt_ns, fmt_si
from ui.state import LoadedTrace

NAME_COLUMNS = ["name", "count", "total", "mean", "max", "total_ns"]
TRACK_COLUMNS = ["track", "slices", "busy_pct", "stall_pct", "bytes"]
LONGEST_COLUMNS = ["name", "track", "start", "duration", "id"]


def in_window(lt: LoadedTrace, t0: int, t1: int) -> np.ndarray:
    """Ids of every slice overlapping [t0, t1), track by track."""
    ix = lt.index
    parts = []
    for t in ix.ranges:
        a, b = ix.visible_range(t, t0, t1)
        if b > a:
            idx = np.arange(a, b, dtype=np.int64)
            parts.append(idx[ix.end[idx] > t0])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _clipped(lt: LoadedTrace, ids: np.ndarray, t0: int, t1: int) -> np.ndarray:
    ix = lt.index
    return (np.minimum(ix.end[ids], t1) - np.maximum(ix.ts[ids], t0)).astype(np.float64)


def by_name(lt: LoadedTrace, ids: np.ndarray, t0: int, t1: int, limit: int = 200) -> list[dict[str, Any]]:
    """count, total in window, mean and max duration per slice name, most time first."""
    if not ids.size:
        return []
    c = lt.columns
    code = c["name"][ids].astype(np.int64) + 1  # -1 (no name) -> 0
    n = len(c["names"]) + 1
    inside = _clipped(lt, ids, t0, t1)
    dur = lt.index.dur[ids].astype(np.float64)
    count = np.bincount(code, minlength=n)
    total = np.bincount(code, weights=inside, minlength=n)
    whole = np.bincount(code, weights=dur, minlength=n)
    mx = np.zeros(n)
    np.maximum.at(mx, code, dur)
    present = np.flatnonzero(count)
    present = present[np.argsort(-total[present], kind="stable")][:limit]
    names = [""] + [x or "" for x in c["names"]]
    return [{"name": names[k] or "(unnamed)", "count": int(count[k]), "total": fmt_ns(total[k]),
             "mean": fmt_ns(whole[k] / count[k]), "max": fmt_ns(mx[k]), "total_ns": float(total[k])} for k in present]


def by_track(lt: LoadedTrace, ids: np.ndarray, t0: int, t1: int) -> list[dict[str, Any]]:
    """busy %, stall % of the window and bytes moved in it, per track that has slices in it."""
    if not ids.size:
        return []
    ix = lt.index
    track = ix.track[ids].astype(np.int64)
    nt = int(track.max()) + 1
    inside = _clipped(lt, ids, t0, t1)
    top = ix.depth[ids] == 0
    stall = ix.stall[ids]
    busy = np.bincount(track[top & ~stall], weights=inside[top & ~stall], minlength=nt)
    stalled = np.bincount(track[top & stall], weights=inside[top & stall], minlength=nt)
    count = np.bincount(track, minlength=nt)
    nbytes = lt.columns["bytes"][ids]
    has = np.isfinite(nbytes)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(ix.dur[ids] > 0, inside / ix.dur[ids], 1.0)
    moved = np.bincount(track[has], weights=(nbytes * frac)[has], minlength=nt)
    with_bytes = np.bincount(track[has], minlength=nt) > 0
    span = float(t1 - t0)
    out = []
    for t in np.flatnonzero(count).tolist():
        out.append({"track": " / ".join(lt.trace.track_path(t)), "slices": int(count[t]),
                    "busy_pct": round(100 * busy[t] / span, 1), "stall_pct": round(100 * stalled[t] / span, 1),
                    "bytes": fmt_si(moved[t], "B") if with_bytes[t] else MISSING, "track_id": t})
    return out


def longest(lt: LoadedTrace, ids: np.ndarray, n: int = 50) -> list[dict[str, Any]]:
    """The ``n`` longest slices overlapping the window (whole durations), longest first."""
    if not ids.size:
        return []
    ix, c = lt.index, lt.columns
    dur = ix.dur[ids]
    k = min(n, ids.size)
    top = ids[np.argpartition(-dur, k - 1)[:k]] if ids.size > k else ids
    top = top[np.argsort(-ix.dur[top], kind="stable")]
    out = []
    for i in top.tolist():
        nm = c["names"][c["name"][i]] if c["name"][i] >= 0 else ""
        out.append({"name": nm or "(unnamed)", "track": " / ".join(lt.trace.track_path(int(ix.track[i]))),
                    "start": fmt_ns(float(ix.ts[i] - lt.origin)), "duration": fmt_ns(float(ix.dur[i])), "id": int(i)})
    return out
