"""The Pareto front of a table: rows no other row beats on both of two costs (lower is better).

Shared by the sweep (which marks its front), the CLI chart and the dashboard's sweep view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def pareto_front(rows: Iterable[dict[str, Any]], cost: str, latency: str = "latency_ns") -> list[dict[str, Any]]:
    """Rows no other row beats on both ``latency`` and ``cost``, by increasing cost.

    A row is dominated when another is no worse on both and strictly better on one; rows with an
    ``error`` or a missing value never count.
    """
    ok = [r for r in rows if r.get(latency) is not None and r.get(cost) is not None and not r.get("error")]
    ok.sort(key=lambda r: (r[cost], r[latency]))
    front: list[dict[str, Any]] = []
    best = float("inf")
    for r in ok:
        if r[latency] < best:
            front.append(r)
            best = r[latency]
    return front
