"""Chrome trace-event JSON reader (object form ``{"traceEvents": [...]}`` or a bare array).

Phases: X, B/E (matched per thread), i/I/n/R instants, C counters (one counter track per
process, name and series key), s/t/f flows (and flow v2 ``bind_id``), M metadata (process and
thread names and sort indices).  One group track per pid, one track per (pid, tid).  ``ts`` and
``dur`` are microseconds; they become exact int64 nanoseconds.  ``displayTimeUnit`` only says how
a viewer should *display* times (the spec keeps ``ts`` in microseconds), so it is recorded in
``metadata.extra`` and does not scale anything.  Files written by our own writer carry the exact
track tree and a time base under ``otherData.accel_profiler`` and come back unchanged.
"""

from __future__ import annotations

from pathlib import Path

from profiler.formats.json_events import decode_file
from profiler.formats.json_import import JsonImporter
from profiler.model import Trace


def read_chrome_json(path: str | Path) -> Trace:
    """Read a Chrome trace-event JSON file (``.gz`` too) into a Trace."""
    return JsonImporter(decode_file(path)).run()
