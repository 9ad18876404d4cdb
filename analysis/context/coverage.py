"""Which slices' FLOPs and bytes count toward totals, so nested work is never counted twice.

A framework op and the kernel inside it can both carry FLOPs; only the outermost one counts.  The
walk uses the model's stored parent column: one vectorized pass per nesting level.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from analysis.context.columns import SliceColumns


def covered(has: np.ndarray, parent: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(some ancestor has it, some descendant has it) for a per-slice flag."""
    n = has.size
    anc = np.zeros(n, dtype=bool)
    desc = np.zeros(n, dtype=bool)
    if n == 0 or int(depth.max()) == 0:
        return anc, desc
    maxd = int(depth.max())
    if maxd > _LEVEL_LOOP_MAX_DEPTH:
        return _covered_by_doubling(has, parent, maxd)
    levels = [np.flatnonzero(depth == d) for d in range(maxd + 1)]
    for d in range(1, maxd + 1):
        at = levels[d]
        p = parent[at]
        anc[at] = anc[p] | has[p]
    for d in range(maxd, 0, -1):
        at = levels[d]
        flag = has[at] | desc[at]
        desc[parent[at[flag]]] = True
    return anc, desc


#: Deeper than this, :func:`covered` jumps by powers of two instead of walking level by level
#: (one pass per level is O(n x depth): seconds per call for 100k fully nested slices).
_LEVEL_LOOP_MAX_DEPTH = 64


def _covered_by_doubling(has: np.ndarray, parent: np.ndarray, maxd: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`covered` in O(n log depth): ancestors 2**k levels up, for k up to log2(depth)."""
    k_max = max(1, int(maxd).bit_length())  # 2**k_max > maxd
    ups = [parent]  # ups[k][i]: the ancestor 2**k levels above i, -1 past the root
    for _ in range(k_max - 1):
        u = ups[-1]
        ups.append(np.where(u >= 0, u[np.maximum(u, 0)], -1))
    # anc: OR of ``has`` over the first 2**k ancestors, doubled k_max times.
    anc = np.where(parent >= 0, has[np.maximum(parent, 0)], False)
    for u in ups:  # after step k: the first 2**(k+1) ancestors
        anc = anc | np.where(u >= 0, anc[np.maximum(u, 0)], False)
    # desc: every carrier marks all its ancestors; a mark of 2**(k+1) levels splits into two of 2**k.
    marks = has.copy()
    for u in reversed(ups):
        up = marks & (u >= 0)
        marks = marks.copy()
        marks[u[up]] = True
    desc = np.zeros(has.size, dtype=bool)
    desc[parent[marks & (parent >= 0)]] = True
    return anc, desc


class Coverage:
    """Outermost-carrier masks for FLOPs and bytes (stall slices carry neither)."""

    def __init__(self, cols: SliceColumns, is_stall: np.ndarray) -> None:
        self.cols = cols
        self.is_stall = is_stall

    @cached_property
    def _flops(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        has = ~np.isnan(self.cols.flops) & ~self.is_stall
        anc, desc = covered(has, self.cols.parent, self.cols.depth)
        return has, anc, desc

    @cached_property
    def counted_flops(self) -> np.ndarray:
        """Slices whose flops count toward totals: no enclosing slice already carries flops."""
        has, anc, _ = self._flops
        return has & ~anc

    @cached_property
    def counted_bytes(self) -> np.ndarray:
        """Slices whose bytes count toward totals (outermost slices carrying bytes)."""
        has = ~np.isnan(self.cols.bytes) & ~self.is_stall
        anc, _ = covered(has, self.cols.parent, self.cols.depth)
        return has & ~anc

    @cached_property
    def counted(self) -> np.ndarray:
        """Roofline points: outermost slices with flops, plus slices with bytes but no flops
        anywhere above or below them (pure data movement ops)."""
        has_f, anc_f, desc_f = self._flops
        has_b = ~np.isnan(self.cols.bytes) & ~self.is_stall
        return (has_f & ~anc_f) | (has_b & ~has_f & ~anc_f & ~desc_f & self.counted_bytes)
