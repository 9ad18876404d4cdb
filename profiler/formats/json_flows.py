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
