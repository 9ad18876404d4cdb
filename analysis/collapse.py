"""Fold findings about identical parallel engines into one.

A 25-core device stalls the same way on every core; 25 copies of one finding bury everything
else.  Findings of the same kind and subject whose track names differ only in their numbers
(``core3 / matrix``, ``core17 / matrix``) become one finding about ``core* / matrix``.  The
engines run side by side, so the time to gain is the largest single engine's, not the sum.
"""

from __future__ import annotations

import re
from dataclasses import replace

from analysis.findings import Finding

_DIGITS = re.compile(r"\d+")


def collapse_parallel(findings: list[Finding]) -> list[Finding]:
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    order: list[tuple[str, str, str]] = []
    for f in findings:
        key = (f.kind, f.subject, _DIGITS.sub("*", f.track_name) if f.track_name else "")
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(f)
    out: list[Finding] = []
    for key in order:
        g = groups[key]
        if len(g) == 1 or not key[2]:
            out += g
            continue
        worst = max(g, key=lambda f: f.gain_ns)
        names = [f.track_name for f in g]
        details = dict(worst.details)
        details.update({"engines": names, "engine_count": len(g), "values": [f.value for f in g]})
        out.append(replace(
            worst, id="", track=None, track_name=key[2], details=details,
            title=f"{len(g)} engines ({key[2]}), worst: {worst.title}",
        ))
    return out
