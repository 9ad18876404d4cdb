"""Which dependency decided when a slice could start."""

from __future__ import annotations

import numpy as np

from profiler.model import Trace


def gating_source(trace: Trace, end: np.ndarray) -> np.ndarray:
    """For every slice, the row of the incoming-flow source that ended last (-1 when none).

    The latest-finishing dependency is the one that decided when the slice could start, so it is
    what a wait before the slice is attributed to.
    """
    n = end.size
    out = np.full(n, -1, dtype=np.int64)
    f = trace.flows
    if f.num_rows == 0 or n == 0:
        return out
    fr = f["from_slice"].to_numpy()
    to = f["to_slice"].to_numpy()
    order = np.lexsort((end[fr], to))
    fr, to = fr[order], to[order]
    last = np.append(to[1:] != to[:-1], True)
    out[to[last]] = fr[last]
    return out
