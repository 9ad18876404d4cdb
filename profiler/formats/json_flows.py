"""Binding flow events to slices, vectorized.

A Chrome flow event is a point (thread, ts); it attaches to a slice by rule: the *enclosing*
slice (the deepest slice of that thread containing ts; flow starts, and ends with ``"bp": "e"``)
or the *next* slice (the first slice of that thread starting at or after ts).  Kineto writes one
flow pair per kernel launch, so a big trace has hundreds of thousands of these points.

Both rules are sorted searches over the slices in canonical order (thread, ts, longest first).
For "enclosing", the last slice starting at or before ts is the answer whenever it contains ts
(it is the deepest such slice: slices of a thread form a stack); Kineto's points sit exactly on
their launch or kernel, so that is nearly always the case.  Only the rest need the nesting
parents, computed then (one numpy pass per nesting level).
"""

from __future__ import annotations

import numpy as np

from profiler.nesting import Nesting, canonical_order, nest


class Binder:
    """Slices of some threads, sorted once, answering flow-point queries."""

    def __init__(self, thread: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> None:
        self.n = int(ts.size)
        self._in = (thread, ts, dur)
        self._nst: Nesting | None = None
        if self.n == 0:
            return
        o = canonical_order(thread, ts, dur)
        self.order = o
        self.th_c, self.ts_c, self.dur_c = thread[o], ts[o], dur[o]
        # Dense thread numbers and one packed (thread, ts) key, when it fits in int64.
        self.threads = np.unique(self.th_c)
        self.t0, t1 = int(self.ts_c.min()), int(self.ts_c.max())
        self.span = t1 - self.t0 + 1
        self.key: np.ndarray | None = None
        if self.threads.size * self.span < 2**62:
            dense = np.searchsorted(self.threads, self.th_c)
            self.key = dense * self.span + (self.ts_c - self.t0)

    def _nesting(self) -> Nesting:
        if self._nst is None:
            thread, ts, dur = self._in
            self._nst = nest(thread, ts, dur)  # the same canonical_order inside: indices agree
        return self._nst

    def _search(self, q_th: np.ndarray, q_ts: np.ndarray, side: str) -> np.ndarray:
        """Position in canonical (thread, ts) order of each query: thread segment, then ts inside it."""
        lo = np.searchsorted(self.th_c, q_th, side="left")
        hi = np.searchsorted(self.th_c, q_th, side="right")
        if self.key is not None:
            dense = np.minimum(np.searchsorted(self.threads, q_th), self.threads.size - 1)
            t_rel = np.clip(q_ts - self.t0, 0, self.span - 1)
            pos = np.searchsorted(self.key, dense * self.span + t_rel, side=side)  # type: ignore[call-overload]
            # Clipped times: before every slice of the thread, or after all of them.
            pos = np.where(q_ts < self.t0, lo, np.where(q_ts - self.t0 >= self.span, hi, pos))
            return np.clip(pos, lo, hi)  # a thread without slices: lo == hi
        out = np.empty(q_th.size, dtype=np.int64)
        for t in np.unique(q_th).tolist():
            m = q_th == t
            a, b = int(lo[m][0]), int(hi[m][0])
            out[m] = a + np.searchsorted(self.ts_c[a:b], q_ts[m], side=side)  # type: ignore[call-overload]
        return out

    def enclosing(self, q_thread: np.ndarray, q_ts: np.ndarray) -> np.ndarray:
        """Input index of the deepest slice on ``q_thread`` containing ``q_ts`` (-1 when none).

        The last slice starting at or before q_ts is either the answer or a descendant of it
        (slices of a thread form a stack), so walking up its parents finds the answer.
        """
        if self.n == 0:
            return np.full(q_ts.size, -1, dtype=np.int64)
        th_c, ts_c, dur_c = self.th_c, self.ts_c, self.dur_c
        pos = self._search(q_thread, q_ts, "right") - 1
        valid = pos >= 0
        pos = np.where(valid, pos, 0)
        valid &= th_c[pos] == q_thread
        cand = np.where(valid, pos, -1)
        for _ in range(self.n + 1):
            c = np.maximum(cand, 0)
            end = ts_c[c] + dur_c[c]
            inside = (cand >= 0) & ((q_ts < end) | ((dur_c[c] == 0) & (ts_c[c] == q_ts)))
            move = (cand >= 0) & ~inside
            if not move.any():
                break
            cand = np.where(move, self._nesting().parent[c], cand)
        return np.where(cand >= 0, self.order[np.maximum(cand, 0)], -1)

    def next(self, q_thread: np.ndarray, q_ts: np.ndarray) -> np.ndarray:
        """Input index of the first (outermost) slice on ``q_thread`` starting at or after ``q_ts``."""
        if self.n == 0:
            return np.full(q_ts.size, -1, dtype=np.int64)
        pos = self._search(q_thread, q_ts, "left")
        ok = pos < self.n
        pos_c = np.minimum(pos, self.n - 1)
        ok &= self.th_c[pos_c] == q_thread
        return np.where(ok, self.order[pos_c], -1)


def link_points(new_chain: np.ndarray, can_start: np.ndarray, can_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source position, destination position) of every flow among points sorted by (chain, time).

    A chain is the flow points of one (id, cat, name).  Like Perfetto, an "f" does not close its
    chain: every step or end links from the latest start or step of its chain before it, so one
    launch fanning out to several device ops (Kineto's one-to-many ``ac2g``) keeps all of its
    flows, and a reused id (s f s f) links each end to its own start.  An end that comes before
    every start of its chain (Kineto's device clock can put a kernel's "f" a little before its
    launch's "s") links from the chain's first start.

    ``can_start``: s and t points; ``can_end``: t and f points.
    """
    n = int(new_chain.size)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    idx = np.arange(n, dtype=np.int64)
    heads = np.flatnonzero(new_chain)
    chain_no = np.cumsum(new_chain) - 1
    head = heads[chain_no]
    latest = np.maximum.accumulate(np.where(can_start, idx, -1))
    prev = np.concatenate([[-1], latest[:-1]])  # the latest start strictly before each point
    first = np.minimum.reduceat(np.where(can_start, idx, n), heads)[chain_no]
    src = np.where(prev >= head, prev, np.where(first < n, first, -1))
    src = np.where(src == idx, -1, src)  # a step never links to itself
    dst = np.flatnonzero(can_end & (src >= 0))
    return src[dst], dst


def flow_kinds(src_point: np.ndarray, dst_slice: np.ndarray) -> dict[str, int]:
    """Flows counted by shape: one-to-one, sharing a source (one-to-many), sharing a destination
    (many-to-one; a flow can be both of the last two)."""
    if src_point.size == 0:
        return {"one_to_one": 0, "one_to_many": 0, "many_to_one": 0}
    _, s_inv, s_cnt = np.unique(src_point, return_inverse=True, return_counts=True)
    _, d_inv, d_cnt = np.unique(dst_slice, return_inverse=True, return_counts=True)
    fan_out = s_cnt[s_inv] > 1
    fan_in = d_cnt[d_inv] > 1
    return {"one_to_one": int((~fan_out & ~fan_in).sum()), "one_to_many": int(fan_out.sum()),
            "many_to_one": int(fan_in.sum())}
