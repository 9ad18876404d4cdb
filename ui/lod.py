"""Level of detail for the timeline, computed on the server.

A browser cannot draw a million slices, and does not need to: at any zoom only slices wider than
about a pixel can be told apart.  :class:`TimelineIndex` sorts each track's slices once per trace;
:meth:`TimelineIndex.view` then finds the visible slices of every row with two binary searches,
sends the ones at least ``min_px`` wide as bars (at most ``max_bars`` in all, widest first), and
merges everything else on the top level into per-pixel-bin fractions, so the bytes sent per view
depend on the screen width, not on the trace size.  Working and stalled time are binned apart (a
stall slice is time an engine waited: drawing it as busy hides the stall when zoomed out).  Busy
time is conserved: the time drawn as top-level bars plus the time in both kinds of bins equals the
covered time of the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from profiler.model import Trace


@dataclass
class ViewRow:
    """One row of the timeline: the tracks whose slices it shows (several when a group is collapsed)."""

    tracks: list[int]
    counter_track: int | None = None


@dataclass
class View:
    """What one view sends: bars, busy-fraction bins per row, counter polylines, and counts."""

    t0: int
    t1: int
    width_px: int
    nbins: int
    bar_ids: np.ndarray  # slice ids drawn as bars
    bar_rows: np.ndarray  # row index of each bar
    busy: np.ndarray  # float64 [rows, nbins]: working fraction of each bin from slices not drawn as bars
    stall: np.ndarray  # float64 [rows, nbins]: stalled fraction of each bin from slices not drawn as bars
    counters: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # row -> (ts, value)
    visible: int = 0  # slices overlapping the window
    binned: int = 0  # top-level slices merged into bins

    @property
    def bin_ns(self) -> float:
        return (self.t1 - self.t0) / self.nbins

    def bin_centers(self) -> np.ndarray:
        return self.t0 + (np.arange(self.nbins) + 0.5) * self.bin_ns


def coverage(start: np.ndarray, end: np.ndarray, t0: int, t1: int, nbins: int,
             group: np.ndarray | None = None, ngroups: int = 1) -> np.ndarray:
    """Fraction of each of ``nbins`` equal bins of [t0, t1) covered by the intervals [start, end).

    Vectorized for intervals of any length: the partial first and last bins are added with
    ``bincount`` and the whole bins in between through a difference array.  With ``group``,
    returns one row of bins per group.  Overlapping intervals add up (callers pass non-overlapping ones).
    """
    out = np.zeros(ngroups * nbins, dtype=np.float64)
    if start.size == 0 or t1 <= t0:
        return out.reshape(ngroups, nbins)
    bw = (t1 - t0) / nbins
    fs = (np.clip(start, t0, t1) - t0) / bw
    fe = (np.clip(end, t0, t1) - t0) / bw
    keep = fe > fs
    fs, fe = fs[keep], fe[keep]
    g = np.zeros(fs.size, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)[keep] * nbins
    b0 = np.minimum(fs.astype(np.int64), nbins - 1)
    b1 = np.minimum(fe.astype(np.int64), nbins - 1)
    same = b0 == b1
    out += np.bincount(g[same] + b0[same], weights=fe[same] - fs[same], minlength=out.size)
    d = ~same
    out += np.bincount(g[d] + b0[d], weights=(b0[d] + 1) - fs[d], minlength=out.size)
    out += np.bincount(g[d] + b1[d], weights=fe[d] - b1[d], minlength=out.size)
    # Whole bins strictly between b0 and b1: +1 from b0+1, -1 from b1 (per group row).
    inner = d & (b1 > b0 + 1)
    if inner.any():
        diff = np.zeros(ngroups * nbins + 1, dtype=np.float64)
        np.add.at(diff, g[inner] + b0[inner] + 1, 1.0)
        np.add.at(diff, g[inner] + b1[inner], -1.0)
        out += np.cumsum(diff)[:-1]
    return out.reshape(ngroups, nbins)


#: Visible slices handled at once by :meth:`TimelineIndex.view` (bounds its temporaries).
CHUNK = 1 << 16


class TimelineIndex:
    """Per-track sorted slice arrays of one trace, built once and queried per view."""

    def __init__(self, trace: Trace, stall: np.ndarray | None = None) -> None:
        s = trace.slices
        self.n = s.num_rows
        self.track = s["track"].to_numpy()
        self.ts = s["ts"].to_numpy()
        self.dur = s["dur"].to_numpy()
        self.end = self.ts + self.dur
        self.depth = s["depth"].to_numpy()
        #: True for slices that are time an engine waited (binned apart from working time).
        self.stall = np.zeros(self.n, dtype=bool) if stall is None else np.asarray(stall, dtype=bool)
        self.span = trace.time_span()
        track_ids = trace.tracks["id"].to_numpy()
        # Slices are sorted by (track, ts): each track is one contiguous run.
        lo = np.searchsorted(self.track, track_ids, "left")
        hi = np.searchsorted(self.track, track_ids, "right")
        self.ranges = {int(t): (int(a), int(b)) for t, a, b in zip(track_ids, lo, hi, strict=True)}
        # Running maximum of ends per track: monotonic, so "first slice ending after t0" is a binary search.
        self.max_end = np.empty_like(self.end)
        for a, b in self.ranges.values():
            if b > a:
                self.max_end[a:b] = np.maximum.accumulate(self.end[a:b])
        c = trace.counters
        self.counters: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if c.num_rows:
            ct = c["track"].to_numpy()
            cts = c["ts"].to_numpy()
            cv = c["value"].to_numpy()
            order = np.lexsort((cts, ct))
            ct, cts, cv = ct[order], cts[order], cv[order]
            for t in np.unique(ct):
                a, b = np.searchsorted(ct, [t, t + 1])
                self.counters[int(t)] = (cts[a:b], cv[a:b])
        self.counter_max = {t: float(np.nanmax(v)) if v.size else 1.0 for t, (_, v) in self.counters.items()}

    def visible_range(self, track: int, t0: int, t1: int) -> tuple[int, int]:
        """Row range [a, b) of ``track``'s slices that may overlap [t0, t1) (every one in it does, but
        nested children of a long slice: those ending before t0 are filtered by the caller)."""
        a, b = self.ranges.get(track, (0, 0))
        if a == b:
            return a, a
        lo = a + int(np.searchsorted(self.max_end[a:b], t0, "right"))
        hi = a + int(np.searchsorted(self.ts[a:b], t1, "left"))
        return lo, max(lo, hi)

    def view(self, t0: int, t1: int, rows: list[ViewRow], width_px: int = 1200, bin_px: int = 2,
             min_px: float = 1.0, max_bars: int = 3000, chunk: int = CHUNK) -> View:
        """Bars, bins and counters for the window [t0, t1) drawn ``width_px`` pixels wide.

        Visible slices are taken ``chunk`` at a time, so a view's temporaries stay a few MB
        whatever the window holds (a whole run of millions of slices): memory that malloc keeps
        and reuses, rather than fresh pages faulted in for every request.
        """
        t0, t1 = int(t0), int(max(t1, t0 + 1))
        width_px = max(int(width_px), 10)
        nbins = max(width_px // max(bin_px, 1), 1)
        px_per_ns = width_px / (t1 - t0)
        busy = np.zeros((len(rows), nbins))
        stall = np.zeros((len(rows), nbins))
        # Candidates for bars (drawable and at least min_px wide): id, row, width in pixels.
        cand: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        parts: list[tuple[np.ndarray, int, bool]] = []
        pending = visible = binned = 0

        def add_bins(idx: np.ndarray, row: np.ndarray) -> int:
            """Bin the top-level slices among ``idx`` (work and stall apart); how many."""
            top = self.depth[idx] == 0
            idx, row = idx[top], row[top]
            st = self.stall[idx]
            busy[:] += coverage(self.ts[idx[~st]], self.end[idx[~st]], t0, t1, nbins, row[~st], len(rows))
            stall[:] += coverage(self.ts[idx[st]], self.end[idx[st]], t0, t1, nbins, row[st], len(rows))
            return int(idx.size)

        def flush() -> None:
            nonlocal pending, visible, binned
            if not parts:
                return
            idx = np.concatenate([p[0] for p in parts])
            row = np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts])
            drawable = np.concatenate([np.full(p[0].size, p[2], dtype=bool) for p in parts])
            parts.clear()
            pending = 0
            visible += idx.size
            px = (np.minimum(self.end[idx], t1) - np.maximum(self.ts[idx], t0)) * px_per_ns
            wide = drawable & (px >= min_px)
            cand.append((idx[wide], row[wide], px[wide]))
            binned += add_bins(idx[~wide], row[~wide])

        for r, vrow in enumerate(rows):
            for t in vrow.tracks:
                a, b = self.visible_range(t, t0, t1)
                for lo in range(a, b, chunk):  # one track of millions of slices: in chunks too
                    idx = np.arange(lo, min(b, lo + chunk), dtype=np.int64)
                    idx = idx[self.end[idx] > t0]
                    if idx.size:
                        parts.append((idx, r, len(vrow.tracks) == 1))
                        pending += idx.size
                        if pending >= chunk:
                            flush()
        flush()
        counters = self._counters(t0, t1, rows, nbins)
        ids = np.concatenate([c[0] for c in cand]) if cand else np.zeros(0, np.int64)
        bar_rows = np.concatenate([c[1] for c in cand]) if cand else np.zeros(0, np.int64)
        if ids.size > max_bars:  # the widest make bars; the rest are binned like narrow ones
            px = np.concatenate([c[2] for c in cand])
            keep = np.zeros(ids.size, dtype=bool)
            keep[np.argpartition(-px, max_bars - 1)[:max_bars]] = True
            binned += add_bins(ids[~keep], bar_rows[~keep])
            ids, bar_rows = ids[keep], bar_rows[keep]
        # A collapsed group's row shows the mean fractions of its tracks.
        per_row = np.array([max(len(vr.tracks), 1) for vr in rows], dtype=np.float64)[:, None]
        busy /= per_row
        stall /= per_row
        return View(t0, t1, width_px, nbins, ids, bar_rows, busy, stall, counters, visible=visible, binned=binned)

    def _counters(self, t0: int, t1: int, rows: list[ViewRow], nbins: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Counter samples in the window; more than two per bin are reduced to each bin's maximum."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for r, row in enumerate(rows):
            if row.counter_track is None or row.counter_track not in self.counters:
                continue
            ts, v = self.counters[row.counter_track]
            a = max(int(np.searchsorted(ts, t0, "right")) - 1, 0)
            b = int(np.searchsorted(ts, t1, "right"))
            ts, v = ts[a:b], v[a:b]
            if ts.size > 2 * nbins:
                edges = t0 + np.arange(nbins) * ((t1 - t0) / nbins)
                starts = np.unique(np.searchsorted(ts, edges, "left"))
                starts = starts[starts < ts.size]
                v = np.maximum.reduceat(v, starts)
                ts = ts[starts]
            out[r] = (ts, v)
        return out
