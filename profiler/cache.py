"""Traces imported once: a cache of Parquet trace directories keyed by the source's content.

Importing a 200 MB Kineto JSON takes seconds; loading its Parquet directory takes a fraction of
that.  ``cached_trace(path, cache_dir)`` hashes the file's bytes (SHA-256, streamed), and reads
``<cache_dir>/<hash>.trace`` when an earlier run stored it, else imports the file and stores it.
The key is the content, not the name or mtime, so a renamed or re-copied file still hits and an
edited one never does.  A trace directory is stored whole under a temporary name and renamed into
place, so concurrent workers (Dask) and interrupted runs never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from profiler.model import Trace
from profiler.store import is_trace_dir, load_trace, save_trace

_CHUNK = 1 << 20


def content_key(path: str | Path) -> str:
    """SHA-256 of a trace file's bytes (of a trace directory: of its files, in name order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def cached_trace(path: str | Path, cache_dir: str | Path) -> tuple[Trace, bool]:
    """(trace, True when it came from the cache) for the trace file ``path``."""
    if is_trace_dir(path):
        return load_trace(path), True  # already columnar: nothing to cache
    entry = Path(cache_dir) / f"{content_key(path)}.trace"
    if is_trace_dir(entry):
        return load_trace(entry), True
    return _store(path, entry), False


def cached_trace_dir(path: str | Path, cache_dir: str | Path) -> Path:
    """The Parquet trace directory holding ``path`` (itself when it is one; imported once otherwise)."""
    if is_trace_dir(path):
        return Path(path)
    entry = Path(cache_dir) / f"{content_key(path)}.trace"
    if not is_trace_dir(entry):
        _store(path, entry)
    return entry


def _store(path: str | Path, entry: Path) -> Trace:
    """Import ``path`` and store it as ``entry`` (whole, under a temporary name first)."""
    from profiler.formats import read_trace

    trace = read_trace(path)
    cache = entry.parent
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=cache))
    try:
        save_trace(trace, tmp)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not is_trace_dir(entry):  # not another worker's copy that got there first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return trace
