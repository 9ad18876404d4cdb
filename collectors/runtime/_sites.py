"""Interned region descriptions ("sites").

A region's static description (name, engine, dtype, category, flops, bytes, args) is interned once
into a small integer, so the hot path records one int per event instead of a Python object, and
the flush turns whole columns into dictionary arrays with a single ``take``.  The table is global
and append-only (sites outlive sessions: a ``Region`` built at import time stays valid), and its
size is bounded by the event encoding (see :mod:`collectors.runtime._recorder`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from profiler.model import args_json

#: Bits of a begin event that hold the time since session start; the rest hold the site.
TIME_BITS = 45
#: Sessions longer than this (about 9.7 hours) cannot be decoded unambiguously.
MAX_SESSION_NS = 1 << TIME_BITS
#: Site ids fit in the top bits of an int64 together with an absolute perf_counter_ns value.
MAX_SITES = 1 << 17
#: Site 0 marks point events (instants and flow ends) in a thread's stream.
POINT_SITE = 0
#: Site 1 takes regions once the table is full (their name is lost, their time is kept).
OVERFLOW_SITE = 1

SiteKey = tuple[Any, ...]


@dataclass
class SiteTable:
    """Columns of interned sites (index = site id); appends happen under a lock."""

    names: list[str] = field(default_factory=list)
    engines: list[str | None] = field(default_factory=list)
    dtypes: list[str | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    bytes: list[float] = field(default_factory=list)
    args: list[str | None] = field(default_factory=list)
    index: dict[SiteKey, int] = field(default_factory=dict)
    overflowed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def intern(
        self,
        name: str,
        engine: str | None = None,
        dtype: str | None = None,
        category: str | None = None,
        flops: float | None = None,
        nbytes: float | None = None,
        args: dict[str, Any] | None = None,
    ) -> int:
        """Id of the site with these attributes, adding it if new."""
        a = args_json(args) if args else None
        key = (str(name), engine, dtype, category, flops, nbytes, a)
        sid = self.index.get(key)
        if sid is not None:
            return sid
        with self.lock:
            sid = self.index.get(key)
            if sid is not None:
                return sid
            if len(self.names) >= MAX_SITES:
                # Beyond the encodable range, keep the name but lose per-call attributes.
                self.overflowed += 1
                return self.intern_overflow(str(name))
            sid = len(self.names)
            self.names.append(str(name))
            self.engines.append(None if engine is None else str(engine))
            self.dtypes.append(None if dtype is None else str(dtype))
            self.categories.append(None if category is None else str(category))
            self.flops.append(math.nan if flops is None else float(flops))
            self.bytes.append(math.nan if nbytes is None else float(nbytes))
            self.args.append(a)
            self.index[key] = sid
            return sid

    def intern_overflow(self, name: str) -> int:
        sid = self.index.get((name, None, None, None, None, None, None))
        return OVERFLOW_SITE if sid is None else sid

    def __len__(self) -> int:
        return len(self.names)


SITES = SiteTable()
SITES.intern("<point>")  # site 0: POINT_SITE
SITES.intern("<site table full>")  # site 1: OVERFLOW_SITE
