"""Server-side state: the traces the dashboard may show, and what is precomputed for each.

Traces stay on the server (a browser gets views of them, never the slices); the page refers to a
trace by an integer key.  The files that may be opened are fixed when the server starts (the
command line's TRACE arguments and the trace files found in ``--trace-dir`` folders): the browser
chooses among them by key and never sends a path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from profiler.columns import dict_codes, numpy_column
from profiler.hardware import HardwareSpec
from profiler.model import Trace
from profiler.stall_labels import is_stall_label
from ui.lod import TimelineIndex
from ui.tracks import TrackTree

#: File names the trace-directory listing offers (everything the format registry can detect).
TRACE_SUFFIXES = (".pftrace", ".perfetto-trace", ".pb", ".json", ".json.gz", ".pftrace.gz", ".trace")


def is_stall(category: str | None, name: str | None) -> bool:
    """Stalls are slices whose category or name says so: the analyzers' rule
    (:func:`profiler.stall_labels.is_stall_label`), so the timeline and the findings agree."""
    return is_stall_label(category, name)


@dataclass
class LoadedTrace:
    """A trace plus the arrays the timeline, roofline and findings need, computed on first use."""

    key: int
    label: str
    trace: Trace
    source: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def index(self) -> TimelineIndex:
        return TimelineIndex(self.trace, self.stall_mask)

    @cached_property
    def stall_mask(self) -> np.ndarray:
        """True for slices that are waiting time (their category or name says so, see :func:`is_stall`)."""
        c = self.columns
        by_cat = np.array([is_stall(k, None) for k in c["cats"]] + [False], dtype=bool)
        by_name = np.array([is_stall(None, n) for n in c["names"]] + [False], dtype=bool)
        mask: np.ndarray = by_cat[c["cat"]] | by_name[c["name"]]
        return mask

    @cached_property
    def tree(self) -> TrackTree:
        return TrackTree.of(self.trace)

    @cached_property
    def columns(self) -> dict[str, Any]:
        """Decoded slice columns for hover text and highlighting."""
        s = self.trace.slices
        name, names = dict_codes(s["name"])
        cat, cats = dict_codes(s["category"])
        dt, dts = dict_codes(s["dtype"])
        return {"name": name, "names": names, "cat": cat, "cats": cats, "dtype": dt, "dtypes": dts,
                "flops": numpy_column(s["flops"]), "bytes": numpy_column(s["bytes"])}

    @cached_property
    def max_depth(self) -> dict[int, int]:
        ix = self.index
        return {t: int(ix.depth[a:b].max()) for t, (a, b) in ix.ranges.items() if b > a}

    @property
    def origin(self) -> int:
        return self.index.span[0]

    def cached(self, key: str, make: Any) -> Any:
        """Memoize an expensive derived value (analysis report, roofline table) per trace."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]


class Registry:
    """Loaded traces by key, plus the files the command line allowed to be opened."""

    def __init__(self, spec: HardwareSpec | None, files: list[Path] | None = None,
                 trace_dirs: list[Path] | None = None, max_upload_bytes: int = 200 << 20) -> None:
        self.spec = spec
        self.max_upload_bytes = max_upload_bytes
        self.traces: dict[int, LoadedTrace] = {}
        self._next = 0
        self._lock = threading.Lock()
        self.trace_dirs = list(trace_dirs or [])
        self.files: list[Path] = list(files or [])

    def add(self, trace: Trace, label: str, source: Path | None = None) -> LoadedTrace:
        with self._lock:
            lt = LoadedTrace(self._next, label, trace, source)
            self.traces[lt.key] = lt
            self._next += 1
            return lt

    def get(self, key: Any) -> LoadedTrace | None:
        try:
            return self.traces.get(int(key))
        except (TypeError, ValueError):
            return None

    def openable(self) -> list[Path]:
        """Files named on the command line, then trace files directly inside each ``--trace-dir``."""
        out = list(self.files)
        for d in self.trace_dirs:
            try:
                entries = sorted(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if p.name.lower().endswith(TRACE_SUFFIXES) and (p.is_file() or (p / "trace.json").is_file()):
                    out.append(p)
        return out
