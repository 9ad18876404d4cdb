"""Sessions: when the SDK records, and where the trace goes.

``with session("run.pftrace"): ...`` records everything the block (and every thread) does and
writes the file when the block ends, also when it ends with an exception (the exception still
propagates).  ``start(path)``/``stop()`` do the same without a block and register an ``atexit``
hook, so a script that never calls ``stop()`` still leaves its trace behind.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import Any

from collectors.runtime import _recorder
from collectors.runtime._sites import SITES
from profiler.model import Trace

_current: Session | None = None


class Session:
    """One recording: start, stop, the resulting :class:`Trace` and the file it was written to."""

    def __init__(self, path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
                 device: str = "device") -> None:
        self.path = None if path is None else Path(path)
        self.fmt = fmt
        self.name = name or Path(sys.argv[0] or "python").name or "python"
        self.device = device
        self.trace: Trace | None = None
        self._buffers: list[_recorder.ThreadBuffer] = []
        self._t0 = 0
        self._t1 = 0
        self._epoch_offset = 0
        self._atexit = False
        if self.path is not None:
            # Fail before the run, not after it, when the extension names no format.
            from profiler.formats import format_for_output

            format_for_output(self.path, fmt)

    @property
    def active(self) -> bool:
        return _current is self

    def start(self) -> Session:
        global _current
        if _current is not None:
            raise RuntimeError("a profiling session is already active; stop it first")
        self._epoch_offset = time.time_ns() - time.perf_counter_ns()
        self._t0 = time.perf_counter_ns()
        _current = self
        self._buffers = _recorder.activate()
        return self

    def stop(self) -> Trace:
        """Stop recording, build the trace, write it when a path was given; returns the trace."""
        global _current
        if _current is not self:
            if self.trace is not None:
                return self.trace
            raise RuntimeError("this session is not active")
        _recorder.deactivate()
        self._t1 = time.perf_counter_ns()
        _current = None
        if self._atexit:
            atexit.unregister(self._at_exit)
            self._atexit = False
        from collectors.runtime._flush import build_trace

        extra: dict[str, Any] = {
            "collector": "collectors.runtime",
            "pid": os.getpid(),
            "epoch_offset_ns": self._epoch_offset,
            "session_start_ns": self._t0,
            "session_stop_ns": self._t1,
        }
        try:
            self.trace = build_trace(self._buffers, SITES, _recorder.counter_names(), self._t0, self._t1,
                                     self.name, self.device, extra)
        finally:
            for buf in self._buffers:  # old buffers may stay reachable from thread contexts: free them
                buf.release()
            self._buffers = []
        if self.path is not None:
            from profiler.formats import write_trace

            write_trace(self.trace, self.path, self.fmt)
        return self.trace

    def _at_exit(self) -> None:
        if _current is self:
            self.stop()

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        self.stop()  # writes the trace also when the block raised; the exception propagates


def session(path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
            device: str = "device") -> Session:
    """A session to use in ``with``; ``path``'s extension picks the format (.pftrace, .json, .trace)."""
    return Session(path, fmt=fmt, name=name, device=device)


def start(path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
          device: str = "device") -> Session:
    """Start recording now; the trace is written by :func:`stop` or at interpreter exit."""
    s = Session(path, fmt=fmt, name=name, device=device).start()
    atexit.register(s._at_exit)
    s._atexit = True
    return s


def stop() -> Trace:
    """Stop the active session (see :func:`start`) and return its trace."""
    if _current is None:
        raise RuntimeError("no profiling session is active")
    return _current.stop()


def current() -> Session | None:
    return _current
