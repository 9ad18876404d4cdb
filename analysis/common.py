"""Small shared helpers for analyzers: severity from cost, number formatting."""

from __future__ import annotations

import math


def severity_for(gain_ns: float, duration_ns: float) -> str:
    """Severity from the share of the run a finding costs: 20% is high, 40% critical.

    Ranking by time cost (not by how alarming a ratio looks) is what makes the top of the list
    the thing worth fixing first.
    """
    if duration_ns <= 0:
        return "info"
    share = gain_ns / duration_ns
    if share >= 0.40:
        return "critical"
    if share >= 0.20:
        return "high"
    if share >= 0.05:
        return "medium"
    if share >= 0.01:
        return "low"
    return "info"


def fmt_ns(ns: float) -> str:
    """Human time: 1.234 ms."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.0f} ns"


def fmt_rate(v: float, unit: str) -> str:
    """1.2e12 -> '1.20 T<unit>'."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "-"
    for p, s in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= s:
            return f"{v / s:.2f} {p}{unit}"
    return f"{v:.2f} {unit}"


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0
