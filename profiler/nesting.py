"""Vectorized slice nesting: canonical order, depth, and detection of overlaps that do not nest.

Every consumer of a trace (Perfetto, chrome://tracing, our timeline, the analyzers) assumes that
the slices of one track form a stack: a slice either contains another or is disjoint from it.
Real traces break this now and then (async GPU work on one stream, rounding in exported
timestamps), so the builder needs to find the offenders quickly for millions of slices.
No per-slice Python loop runs here: depth comes from sorted end times and ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Nesting:
    """Result of :func:`nest`; arrays are in canonical order (see ``order``)."""

    order: np.ndarray  # permutation: canonical position -> input position
    depth: np.ndarray  # int32 depth of each slice, canonical order
    parent: np.ndarray  # canonical index of the enclosing slice, -1 at depth 0
    overhang: np.ndarray  # ns by which a slice ends after its parent (0 when properly nested)


def _combined_key(track_dense: np.ndarray, t: np.ndarray, n_tracks: int) -> np.ndarray | None:
    """Pack (track, time) into one sortable int64, or None when it would overflow."""
    if t.size == 0:
        return t.astype(np.int64)
    tmin = int(t.min())
    span = int(t.max()) - tmin + 1
    if span <= 0 or n_tracks * span >= 2**62:
        return None
    return track_dense.astype(np.int64) * span + (t - tmin)


def _dense_rank_pairs(track: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Fallback key when packing overflows: the dense rank of each (track, time) pair."""
    order = np.lexsort((t, track))
    tr, tt = track[order], t[order]
    new = np.empty(order.size, dtype=bool)
    if order.size:
        new[0] = True
        new[1:] = (tr[1:] != tr[:-1]) | (tt[1:] != tt[:-1])
    rank = np.cumsum(new) - 1
    out = np.empty(order.size, dtype=np.int64)
    out[order] = rank
    return out


def canonical_order(track: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Permutation sorting by (track, ts, -dur, input position).

    One stable argsort of a packed (track, ts) key, then a small lexsort of the tied runs only:
    about 4x faster than a 4-key lexsort on a million slices.
    """
    n = ts.size
    tmin = int(ts.min())
    span = int(ts.max()) - tmin + 1
    tmin_track = int(track.min())
    n_tr = int(track.max()) - tmin_track + 1
    if span <= 0 or n_tr * span >= 2**62:
        return np.lexsort((np.arange(n), -dur, ts, track))
    key = (track - tmin_track) * span + (ts - tmin)
    if n and bool((key[1:] > key[:-1]).all()):
        return np.arange(n)  # already canonical: importers usually emit in order
    order = np.argsort(key, kind="stable")
    k = key[order]
    tie = k[1:] == k[:-1]
    if tie.any():
        m = np.zeros(n, dtype=bool)
        m[1:] |= tie
        m[:-1] |= tie
        sub = order[m]
        order[m] = sub[np.lexsort((-dur[sub], key[sub]))]
    return order


def parents_from_depth(depth: np.ndarray) -> np.ndarray:
    """Parent of each slice in canonical order: the last slice before it one level up (-1 at depth 0).

    One sort of (depth, position) and one sorted search, O(n log n) whatever the depth: a loop
    over depth levels cost O(n * depth), minutes for 100k fully nested slices.
    """
    depth = np.asarray(depth, dtype=np.int64)
    n = depth.size
    parent = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return parent
    idx = np.arange(n, dtype=np.int64)
    key = depth * n + idx  # (depth, position) packed: depth <= n, so it fits int64 below 3e9 slices
    order = np.argsort(key, kind="stable")
    keys = key[order]
    child = np.flatnonzero(depth > 0)
    # Rightmost entry below (depth - 1, own position): the last slice one level up that comes first.
    at = np.searchsorted(keys, (depth[child] - 1) * n + child, side="left") - 1
    cand = order[np.maximum(at, 0)]
    ok = (at >= 0) & (depth[cand] == depth[child] - 1)
    parent[child[ok]] = cand[ok]
    return parent


def nest(track: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> Nesting:
    """Sort slices canonically (track, ts, longest first) and compute depth and parent.

    Ends are exclusive: a slice that starts exactly where another ends is its sibling.
    A zero-duration slice never encloses anything.
    """
    n = int(ts.size)
    track = np.asarray(track, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    dur = np.asarray(dur, dtype=np.int64)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Nesting(empty, empty.astype(np.int32), empty, empty)

    order = canonical_order(track, ts, dur)
    tr, st, du = track[order], ts[order], dur[order]
    en = st + du

    # Position of each slice inside its track, and dense track numbers.
    track_start = np.empty(n, dtype=bool)
    track_start[0] = True
    track_start[1:] = tr[1:] != tr[:-1]
    track_dense = np.cumsum(track_start) - 1
    first_of_track = np.flatnonzero(track_start)
    local_idx = np.arange(n) - first_of_track[track_dense]

    # Zero-duration slices before i in the same track (they close at once).
    zero = du == 0
    zcum = np.cumsum(zero) - zero
    zcum = zcum - zcum[first_of_track][track_dense]

    # P_i: positive-duration slices of the track whose end <= ts_i.
    n_tracks = int(track_dense[-1]) + 1
    pos = ~zero
    both_t = np.concatenate([en[pos], st])
    both_tr = np.concatenate([track_dense[pos], track_dense])
    key = _combined_key(both_tr, both_t, n_tracks)
    if key is None:
        key = _dense_rank_pairs(both_tr, both_t)
    n_pos = int(pos.sum())
    end_keys = np.sort(key[:n_pos])
    start_keys = key[n_pos:]
    ends_le = np.searchsorted(end_keys, start_keys, side="right")
    # Only ends in the same track count: subtract ends of earlier tracks.
    track_first_key = start_keys[first_of_track]
    ends_before_track = np.searchsorted(end_keys, track_first_key, side="left")
    # An end equal to the track's first start time but belonging to an earlier track cannot
    # share a key (different track numbers), so "left" on the first start is exact.
    p = ends_le - ends_before_track[track_dense]
    depth = (local_idx - zcum - p).astype(np.int32)
    np.maximum(depth, 0, out=depth)

    parent = parents_from_depth(depth)
    overhang = np.zeros(n, dtype=np.int64)
    has_parent = parent >= 0
    overhang[has_parent] = np.maximum(en[has_parent] - en[parent[has_parent]], 0)
    return Nesting(order=order, depth=depth, parent=parent, overhang=overhang)
