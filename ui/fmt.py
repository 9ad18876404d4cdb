"""How the dashboard writes numbers: one unit spelling ("µs"), "–" for what is missing.

These are display helpers only (the analyzers keep their own text formats); each name has one
meaning: ``share`` is a fraction shown as a rounded percentage.
"""

from __future__ import annotations

import math

MISSING = "–"


def _missing(v: float | None) -> bool:
    return v is None or not isinstance(v, (int, float)) or not math.isfinite(v)


def fmt_ns(ns: float | None) -> str:
    """A duration in the largest unit that keeps it >= 1: ``1.234 ms``, ``12 ns``."""
    if _missing(ns):
        return MISSING
    assert ns is not None
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.4g} {unit}"
    return f"{ns:.0f} ns"


def fmt_si(v: float | None, unit: str = "") -> str:
    """A quantity with an SI prefix and three significant digits: ``1.5 GB``, ``312 TFLOP/s``."""
    if _missing(v):
        return MISSING
    assert v is not None
    for p, s in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= s:
            return f"{v / s:.3g} {p}{unit}"
    return f"{v:.3g} {unit}".rstrip()


def fmt_sig(v: float | None, unit: str = "") -> str:
    """A plain number with three significant digits, no exponent in the usual range: ``1000 FLOP/B``,
    ``271 FLOP/B``, ``0.123 FLOP/B``."""
    if _missing(v):
        return MISSING
    assert v is not None
    return f"{float(f'{v:.3g}'):g} {unit}".rstrip()


def share(v: float | None) -> str:
    """A fraction (0.423) as a percentage rounded to one decimal (``42.3 %``)."""
    return MISSING if _missing(v) else f"{100 * v:.1f} %"  # type: ignore[operator]
