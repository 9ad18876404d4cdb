"""Vectorized interval arithmetic over int64 nanosecond [start, end) intervals.

Every analyzer asks the same questions of millions of slices: how much of this engine's time was
busy, how much of A overlapped B, what was idle between two instants.  These helpers answer them
with sorts, cumulative sums and ``searchsorted`` so no per-slice Python loop ever runs.
A "set" below means sorted, disjoint intervals as two arrays (starts, ends), what :func:`merge`
returns.
"""

from __future__ import annotations

import numpy as np

Intervals = tuple[np.ndarray, np.ndarray]


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def merge(starts: np.ndarray, ends: np.ndarray) -> Intervals:
    """Union of intervals as a sorted disjoint set (touching intervals are joined)."""
    s = _i64(starts)
    e = _i64(ends)
    if s.size == 0:
        return s, e
    if s.size > 1 and not (s[1:] >= s[:-1]).all():
        # Concatenated per-track runs are already sorted piecewise: timsort merges runs fast.
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, s.size - 1)
    return s[first], run_end[last]


def total(iv: Intervals) -> int:
    """Summed length of a disjoint set."""
    return int((iv[1] - iv[0]).sum())


def covered_before(iv: Intervals, t: np.ndarray | int) -> np.ndarray:
    """Measure of ``iv`` inside (-inf, t] for each t (the set must be sorted and disjoint)."""
    s, e = iv
    tt = np.asarray(t, dtype=np.int64)
    if s.size == 0:
        return np.zeros(tt.shape, dtype=np.int64)
    lengths = e - s
    cum = np.concatenate([[0], np.cumsum(lengths)])
    k = np.searchsorted(s, tt, side="right") - 1
    kk = np.clip(k, 0, s.size - 1)
    partial = np.clip(tt - s[kk], 0, lengths[kk])
    out = np.where(k >= 0, cum[kk] + partial, 0)
    return out.astype(np.int64)


def overlap_each(starts: np.ndarray, ends: np.ndarray, iv: Intervals) -> np.ndarray:
    """For each interval [starts[i], ends[i]): how long it overlaps the set ``iv``."""
    return covered_before(iv, _i64(ends)) - covered_before(iv, _i64(starts))


def overlap_total(a: Intervals, b: Intervals) -> int:
    """Length of the intersection of two disjoint sets."""
    if a[0].size == 0 or b[0].size == 0:
        return 0
    small, big = (a, b) if a[0].size <= b[0].size else (b, a)
    return int(overlap_each(small[0], small[1], big).sum())


def per_window(iv: Intervals, edges: np.ndarray) -> np.ndarray:
    """Measure of the set inside each window [edges[i], edges[i+1])."""
    c = covered_before(iv, _i64(edges))
    return np.diff(c)


def complement(iv: Intervals, lo: int, hi: int) -> Intervals:
    """Gaps of a disjoint set inside [lo, hi)."""
    s, e = iv
    if s.size == 0:
        return (np.array([lo], dtype=np.int64), np.array([hi], dtype=np.int64)) if hi > lo else _empty()
    gs = np.concatenate([[lo], e])
    ge = np.concatenate([s, [hi]])
    gs = np.maximum(gs, lo)
    ge = np.minimum(ge, hi)
    keep = ge > gs
    return gs[keep], ge[keep]


def intersect(a: Intervals, b: Intervals) -> Intervals:
    """Intersection of two disjoint sets, as a disjoint set."""
    if a[0].size == 0 or b[0].size == 0:
        return _empty()
    # Each piece of the intersection starts at max(starts) of an overlapping (a, b) pair; walk
    # every a-interval against the b-intervals it touches via searchsorted ranges.
    lo = np.searchsorted(b[1], a[0], side="right")  # first b ending after a starts
    hi = np.searchsorted(b[0], a[1], side="left")  # first b starting at/after a ends
    cnt = np.maximum(hi - lo, 0)
    if cnt.sum() == 0:
        return _empty()
    ai = np.repeat(np.arange(a[0].size), cnt)
    offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    bi = np.repeat(lo, cnt) + offs
    s = np.maximum(a[0][ai], b[0][bi])
    e = np.minimum(a[1][ai], b[1][bi])
    keep = e > s
    return s[keep], e[keep]


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """Parts of ``a`` not covered by ``b`` (both disjoint sets)."""
    if a[0].size == 0:
        return _empty()
    lo = int(min(a[0][0], b[0][0] if b[0].size else a[0][0]))
    hi = int(max(a[1][-1], b[1][-1] if b[1].size else a[1][-1]))
    return intersect(a, complement(b, lo, hi))


def _empty() -> Intervals:
    z = np.zeros(0, dtype=np.int64)
    return z, z.copy()


def depth_over_time(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many intervals are open at each start: (start times, count just after each).

    Sorting starts and ends separately (each usually a few sorted runs, which the stable sort
    merges cheaply) and counting ends with ``searchsorted`` avoids sorting 2n mixed events.
    The maximum of the counts is the peak concurrency.
    """
    s = np.sort(_i64(starts), kind="stable")
    e = np.sort(_i64(ends), kind="stable")
    if s.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    opened = np.searchsorted(s, s, side="right")
    closed = np.searchsorted(e, s, side="right")
    return s, (opened - closed).astype(np.int64)


def open_integral(starts_sorted: np.ndarray, ends_sorted: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Integral over (-inf, t] of the number of open intervals, for each t.

    Each interval contributes ``clip(t - s, 0, e - s)`` = (t - s if s <= t) - (t - e if e <= t),
    so prefix sums over the sorted starts and sorted ends give it exactly with two searchsorted.
    """
    tt = np.asarray(t, dtype=np.int64)
    cs = np.concatenate([[0], np.cumsum(starts_sorted, dtype=np.float64)])
    ce = np.concatenate([[0], np.cumsum(ends_sorted, dtype=np.float64)])
    ns = np.searchsorted(starts_sorted, tt, side="right")
    ne = np.searchsorted(ends_sorted, tt, side="right")
    return (ns * tt.astype(np.float64) - cs[ns]) - (ne * tt.astype(np.float64) - ce[ne])
