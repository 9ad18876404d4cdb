"""Uploaded traces: their names checked, their size bounded, and old ones evicted by a memory budget.

Why: every upload used to stay in the server for good (50 uploads took it from 167 MB to 936 MB),
a file name with a NUL, ``..`` or 300 bytes made the upload handler fail with HTTP 500, and a
4 MB gzip upload could decompress to gigabytes.  Here:

* :func:`upload_name` turns the browser's file name into a plain base name or refuses it with a
  message (:class:`ProfilerError`, shown on the page);
* :class:`BudgetRegistry` keeps uploads while their estimated memory fits
  :func:`upload_budget` (``ACCEL_PROFILER_UPLOAD_BUDGET``; default a sixteenth of the available
  memory, between 256 and 512 MiB) and evicts the least recently used ones beyond it; traces
  named on the command line are never evicted, nor the upload just added;
* the same budget caps the decompressed content of an upload (a trace that cannot fit the
  budget cannot be kept anyway);
* the ``--trace-dir`` listing is fixed when the server starts, with symlinks resolved, and an
  entry is offered only while it still resolves inside its folder.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError
from profiler.formats.source import available_memory, parse_size
from profiler.hardware import HardwareSpec
from profiler.model import Trace
from ui.state import TRACE_SUFFIXES, LoadedTrace, Registry

BUDGET_ENV = "ACCEL_PROFILER_UPLOAD_BUDGET"
#: Longest file name most file systems accept, in bytes (ext4, APFS, NTFS in UTF-16 units).
MAX_NAME_BYTES = 255
#: Memory a loaded trace takes beyond its Arrow tables (timeline index, decoded columns, analysis),
#: as a multiple of the tables' size.  ASSUMPTION, on the safe side of a measurement: 50 uploads of
#: a 0.75 MB Kineto trace (a100_nccl_2ranks_rank0) grew the server by ~1.9x their table bytes.
OVERHEAD = 3.0


def upload_name(filename: Any) -> str:
    """The base name of an uploaded file, or a ProfilerError that says what is wrong with it."""
    if filename is None:
        return "upload"
    if not isinstance(filename, str):
        raise ProfilerError("the upload's file name is not text")
    if "\x00" in filename:
        raise ProfilerError("the upload's file name contains a NUL character")
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if any(ord(c) < 32 for c in name):
        raise ProfilerError("the upload's file name contains control characters")
    if name in ("", ".", ".."):
        raise ProfilerError(f"{filename[:80]!r} is not a file name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ProfilerError(f"the upload's file name is longer than {MAX_NAME_BYTES} bytes")
    return name


def upload_contents(contents: Any) -> str:
    """The data URL of an upload, checked to be text (a dcc.Upload always sends one)."""
    if not isinstance(contents, str):
        raise ProfilerError("the upload is empty or malformed")
    return contents


def upload_budget() -> int:
    """Bytes of memory uploaded traces may take together."""
    env = os.environ.get(BUDGET_ENV)
    if env:
        return parse_size(env)
    avail = available_memory() or (2 << 30)
    return max(256 << 20, min(512 << 20, avail // 16))


def trace_bytes(trace: Trace) -> int:
    """Estimated memory of a loaded trace: its Arrow tables times :data:`OVERHEAD`."""
    return int(sum(trace.table(n).nbytes for n in Trace.TABLES) * OVERHEAD)


def listing(trace_dirs: list[Path]) -> list[tuple[Path, Path]]:
    """(resolved file, resolved folder) for each trace file directly inside a ``--trace-dir``.

    Made once, when the server starts: a file or symlink added later is not offered, and an
    entry whose real path lies outside its folder (a symlink out of it) is left out.
    """
    out: list[tuple[Path, Path]] = []
    for d in trace_dirs:
        try:
            root = d.resolve(strict=True)
            entries = sorted(root.iterdir())
        except OSError:
            continue
        for p in entries:
            if not p.name.lower().endswith(TRACE_SUFFIXES):
                continue
            try:
                real = p.resolve(strict=True)
            except OSError:
                continue
            if real.parent != root and root not in real.parents:
                continue
            if real.is_file() or (real / "trace.json").is_file():
                out.append((real, root))
    return out


class BudgetRegistry(Registry):
    """A :class:`Registry` whose uploads live within a memory budget (least recently used go first)
    and whose ``--trace-dir`` listing is fixed at start (:func:`listing`)."""

    def __init__(self, spec: HardwareSpec | None, files: list[Path] | None = None,
                 trace_dirs: list[Path] | None = None, max_upload_bytes: int = 200 << 20,
                 budget: int | None = None) -> None:
        super().__init__(spec, files=files, trace_dirs=[], max_upload_bytes=max_upload_bytes)
        self.trace_dirs = list(trace_dirs or [])
        self._listed = listing(self.trace_dirs)
        self.budget = upload_budget() if budget is None else budget
        self._uploads: OrderedDict[int, int] = OrderedDict()  # key -> estimated bytes, oldest use first
        self._budget_lock = threading.Lock()
        self.evicted = 0

    def openable(self) -> list[Path]:
        """Files named on the command line, then the listing made at start, each still inside its folder."""
        out = list(self.files)
        for real, root in self._listed:
            try:
                now = real.resolve(strict=True)
            except OSError:
                continue
            if now == real and (root in now.parents):
                out.append(real)
        return out

    def get(self, key: Any) -> LoadedTrace | None:
        lt = super().get(key)
        if lt is not None:
            with self._budget_lock:
                if lt.key in self._uploads:
                    self._uploads.move_to_end(lt.key)
        return lt

    def add_upload(self, trace: Trace, label: str) -> LoadedTrace:
        """Keep an uploaded trace, evicting the least recently used uploads beyond the budget."""
        lt = self.add(trace, label)
        with self._budget_lock:
            self._uploads[lt.key] = trace_bytes(trace)
            total = sum(self._uploads.values())
            for key in list(self._uploads):
                if total <= self.budget or key == lt.key:
                    break
                total -= self._uploads.pop(key)
                self.traces.pop(key, None)
                self.evicted += 1
        return lt

    def uploads_bytes(self) -> int:
        with self._budget_lock:
            return sum(self._uploads.values())


def add_upload(reg: Registry, trace: Trace, label: str) -> LoadedTrace:
    """Keep an upload in ``reg``: within its budget when it has one."""
    if isinstance(reg, BudgetRegistry):
        return reg.add_upload(trace, label)
    return reg.add(trace, label)


def content_cap(reg: Registry) -> int:
    """Largest decompressed content an upload may have: the upload budget when ``reg`` has one."""
    return reg.budget if isinstance(reg, BudgetRegistry) else max(reg.max_upload_bytes * 16, 256 << 20)


__all__ = ["BUDGET_ENV", "BudgetRegistry", "add_upload", "content_cap", "listing", "trace_bytes", "upload_budget",
           "upload_contents", "upload_name"]
