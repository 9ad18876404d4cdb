"""Interned region descriptions ("sites") and the checks every SDK value passes first.

A region's static description (name, engine, dtype, category, args) is interned once into a small
integer, so the hot path records one int per event instead of a Python object, and the flush turns
whole columns into dictionary arrays with a single ``take``.  Numbers that vary per call (flops,
bytes) are not part of a site: they are stored with each event (see :mod:`collectors.runtime._recorder`).

The table is global and append-only (sites outlive sessions: a ``Region`` built at import time
stays valid), and its size is bounded by the event encoding.  It takes no lock: a signal handler
that opens a region while the interrupted code is interning a site must neither wait for that code
(it never resumes until the handler returns) nor see it half done.  Each step is one atomic
operation under the GIL: an id is drawn from a counter, its whole record is stored under the id,
then the key is published with ``dict.setdefault`` (a racing thread's id stays valid, just unused).

Values are checked before anything is stored, so a bad argument raises in the caller and leaves
the table, the session and every later session intact.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from profiler.model import args_json

#: Bits of a begin event that hold the time since session start; the rest hold the site.
TIME_BITS = 45
#: Sessions longer than this (about 9.7 hours) cannot be decoded unambiguously.
MAX_SESSION_NS = 1 << TIME_BITS
#: Site ids are below this.  An encoded begin carries ``site | METRICS_FLAG`` when its two number
#: words (flops, bytes) follow it; both fit the top bits of an int64 next to an absolute
#: perf_counter_ns value.
MAX_SITES = 1 << 16
METRICS_FLAG = MAX_SITES
#: Site 0 marks point events (instants and flow ends) in a thread's stream.
POINT_SITE = 0
#: Site 1 takes regions once the table is full (their name is lost, their time is kept).
OVERFLOW_SITE = 1
#: The int64 bits of the float64 that stands for "no value" (a positive quiet NaN: number words
#: are never negative, so they never look like a begin event).
NAN_BITS = 0x7FF8000000000000

SiteKey = tuple[str, str | None, str | None, str | None, str | None]


def check_label(value: Any, what: str) -> str | None:
    """A region's engine, dtype or category: a string or None (TypeError otherwise)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"region {what} must be a string or None, not {type(value).__name__}")


def check_name(value: Any) -> str:
    """A region's name: a string (TypeError otherwise)."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"region name must be a string, not {type(value).__name__}")


def check_number(value: Any, what: str) -> float:
    """A region's flops or bytes: a finite number >= 0, or None (NaN: unknown).

    TypeError for what is not a number (strings included, and bools, which are almost certainly a
    mistake), ValueError for negative, infinite or NaN values.  The C path checks the same.
    """
    if value is None:
        return math.nan
    if isinstance(value, (bool, str, bytes, bytearray)) or not (
            hasattr(type(value), "__float__") or hasattr(type(value), "__index__")):
        raise TypeError(f"region {what} must be a number or None, not {type(value).__name__}")
    f = float(value)
    if not (f >= 0.0 and f != math.inf):
        raise ValueError(f"region {what} must be a finite number >= 0, got {f!r}")
    return f + 0.0  # -0.0 -> 0.0: its bits would be negative


def check_args(args: Any) -> str | None:
    """A region's or instant's args: a dict (serialized here) or None."""
    if args is None:
        return None
    if not isinstance(args, dict):
        raise TypeError(f"region args must be a dict or None, not {type(args).__name__}")
    try:
        return args_json(args)
    except (TypeError, ValueError) as e:  # orjson: too deep, unsupported key
        raise TypeError(f"region args cannot be serialized: {e}") from None


class SiteTable:
    """Interned sites by id; lock-free (see the module docstring)."""

    def __init__(self) -> None:
        self.records: dict[int, SiteKey] = {}
        self.index: dict[SiteKey, int] = {}
        self.overflowed = 0
        self._ids = itertools.count()

    def intern(
        self,
        name: Any,
        engine: Any = None,
        dtype: Any = None,
        category: Any = None,
        args: Any = None,
    ) -> int:
        """Id of the site with these attributes, adding it if new (values are checked first)."""
        key = (check_name(name), check_label(engine, "engine"), check_label(dtype, "dtype"),
               check_label(category, "category"), check_args(args))
        sid = self.index.get(key)
        if sid is not None:
            return sid
        sid = next(self._ids)
        if sid >= MAX_SITES:
            # Beyond the encodable range, keep the name when it has a site, lose the rest.
            self.overflowed += 1
            return self.index.get((key[0], None, None, None, None), OVERFLOW_SITE)
        self.records[sid] = key
        return self.index.setdefault(key, sid)

    def columns(self) -> tuple[list[str], list[str | None], list[str | None], list[str | None], list[str | None]]:
        """names, engines, dtypes, categories, args by site id (a site being added reads as a gap)."""
        records = dict(self.records)
        n = max(records, default=-1) + 1
        gap: SiteKey = ("<unknown site>", None, None, None, None)
        rows = [records.get(i, gap) for i in range(n)]
        names = [r[0] for r in rows]
        return names, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]

    def __len__(self) -> int:
        return max(self.records, default=-1) + 1


SITES = SiteTable()
SITES.intern("<point>")  # site 0: POINT_SITE
SITES.intern("<site table full>")  # site 1: OVERFLOW_SITE
