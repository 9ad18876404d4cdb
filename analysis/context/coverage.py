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
