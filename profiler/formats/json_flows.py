"""Binding flow events to slices, vectorized.

A Chrome flow event is a point (thread, ts); it attaches to a slice by rule: the *enclosing*
slice (the deepest slice of that thread containing ts; flow starts, and ends with ``"bp": "e"``)
or the *next* slice (the first slice of that thread starting at or after ts).  Kineto writes one
flow pair per kernel launch, so a big trace has hundreds of thousands of these points: both rules
run as sorted searches plus a walk up the nesting parents, one numpy pass per nesting level.
"""

from __future__ import annotations

import numpy as np

from profiler.nesting import nest


class Binder:
    """Slices of some threads, sorted and nested once, answering flow-point queries."""

    def __init__(self, thread: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> None:
        self.n = int(ts.size)
        self.nst = nest(thread, ts, dur)
        o = self.nst.order
        self.th_c, self.ts_c, self.dur_c = thread[o], ts[o], dur[o]

    def _search(self, q_th: np.ndarray, q_ts: np.ndarray, side: str) -> np.ndarray:
        """Position in canonical (thread, ts) order of each query: thread segment, then ts inside it."""
        lo = np.searchsorted(self.th_c, q_th, side="left")
        hi = np.searchsorted(self.th_c, q_th, side="right")
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
        th_c, ts_c, dur_c, nst = self.th_c, self.ts_c, self.dur_c, self.nst
        pos = self._search(q_thread, q_ts, "right") - 1
        valid = pos >= 0
        pos = np.where(valid, pos, 0)
        valid &= th_c[pos] == q_thread
        cand = np.where(valid, pos, -1)
        for _ in range(int(nst.depth.max()) + 2):
            c = np.maximum(cand, 0)
            end = ts_c[c] + dur_c[c]
            inside = (cand >= 0) & ((q_ts < end) | ((dur_c[c] == 0) & (ts_c[c] == q_ts)))
            move = (cand >= 0) & ~inside
            if not move.any():
                break
            cand = np.where(move, nst.parent[c], cand)
        return np.where(cand >= 0, nst.order[np.maximum(cand, 0)], -1)

    def next(self, q_thread: np.ndarray, q_ts: np.ndarray) -> np.ndarray:
        """Input index of the first (outermost) slice on ``q_thread`` starting at or after ``q_ts``."""
        if self.n == 0:
            return np.full(q_ts.size, -1, dtype=np.int64)
        pos = self._search(q_thread, q_ts, "left")
        ok = pos < self.n
        pos_c = np.minimum(pos, self.n - 1)
        ok &= self.th_c[pos_c] == q_thread
        return np.where(ok, self.nst.order[pos_c], -1)
