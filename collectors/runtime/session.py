"""Sessions: when the SDK records, and where the trace goes.

``with session("run.pftrace"): ...`` records everything the block (and every thread) does and
writes the file when the block ends, also when it ends with an exception (the exception still
propagates).  ``start(path)``/``stop()`` do the same without a block and register an ``atexit``
hook, so a script that never calls ``stop()`` still leaves its trace behind.

What a session survives:

* **A bad file system.**  The trace goes to a temporary sibling that replaces the target only once
  it is complete (:func:`profiler.formats.write_trace`): a full disk or an interrupted write leaves
  the previous file as it was.
* **SIGTERM and SIGHUP.**  A session with a path, started in the main thread, handles the signals
  that would kill the process (those still at their default action): it writes the trace, then
  the default action (termination) takes its course.  A handler the program installed itself is
  left alone (when it exits, by ``sys.exit``, the trace is written as at any exit); ignored
  signals stay ignored.  A signal that arrives while a session starts or stops is handled right
  after.
* **fork.**  A forked child keeps recording, into fresh buffers (the parent's events stay the
  parent's), and writes its own file: ``run.<pid>.pftrace`` next to the parent's ``run.pftrace``.
  Children of ``multiprocessing`` (which end with ``os._exit``, skipping ``atexit``) write theirs
  when the child finishes.
* **Too many events.**  The buffers of a session hold at most ``memory_limit`` bytes (default: the
  environment variable ``ACCEL_PROFILER_SDK_MEMORY_MB``, else 1 GiB or a quarter of the physical
  memory, whichever is less); what does not fit is dropped and counted (``sdk_memory_limit`` in
  the trace's import statistics) and a warning says so at stop.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from collectors.runtime import _recorder
from collectors.runtime._sites import SITES
from profiler.model import Trace

_current: Session | None = None
#: Signals that write the trace before the process goes on with them.
FLUSH_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
#: Handlers that were in place before a session installed its own, by signal.
_saved_handlers: dict[int, Any] = {}
#: >0 while this module starts or stops a session (a signal then waits until it is done).
_busy = 0
_pending_signal: int | None = None


def default_memory_limit() -> int:
    """Bytes a session's buffers may hold unless told otherwise (see the module docstring)."""
    env = os.environ.get("ACCEL_PROFILER_SDK_MEMORY_MB", "").strip()
    if env:
        try:
            return max(0, int(float(env) * (1 << 20)))
        except ValueError:
            warnings.warn(f"ACCEL_PROFILER_SDK_MEMORY_MB={env!r} is not a number; using the default",
                          RuntimeWarning, stacklevel=2)
    limit = 1 << 30
    try:
        limit = min(limit, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4)
    except (ValueError, OSError, AttributeError):
        pass
    return limit


def pid_path(path: Path, pid: int) -> Path:
    """``run.pftrace`` -> ``run.<pid>.pftrace`` (``run.json.gz`` -> ``run.<pid>.json.gz``)."""
    suffixes = path.suffixes
    keep = suffixes[-2:] if path.suffix.lower() == ".gz" and len(suffixes) >= 2 else suffixes[-1:]
    ext = "".join(keep)
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    return path.with_name(f"{stem}.{pid}{ext}")


class Session:
    """One recording: start, stop, the resulting :class:`Trace` and the file it was written to."""

    def __init__(self, path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
                 device: str = "device", memory_limit: int | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.fmt = fmt
        # Checked now: a bad value found at stop would cost the whole recording.
        for what, v in (("name", name), ("device", device), ("fmt", fmt)):
            if v is not None and not isinstance(v, str):
                raise TypeError(f"session {what} must be a string, not {type(v).__name__}")
        self.name = name or Path(sys.argv[0] or "python").name or "python"
        self.device = device
        if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                         or memory_limit < 0):
            raise ValueError(f"memory_limit must be a number of bytes >= 0, got {memory_limit!r}")
        self.memory_limit = default_memory_limit() if memory_limit is None else memory_limit
        self.trace: Trace | None = None
        self._buffers: list[_recorder.ThreadBuffer] = []
        self._t0 = 0
        self._t1 = 0
        self._epoch_offset = 0
        self._atexit = False
        self._parent_pid: int | None = None
        if self.path is not None:
            # Fail before the run, not after it, when the extension names no format.
            from profiler.formats import format_for_output

            format_for_output(self.path, fmt)

    @property
    def active(self) -> bool:
        return _current is self

    def start(self) -> Session:
        global _current, _busy
        if _current is not None:
            raise RuntimeError("a profiling session is already active; stop it first")
        _busy += 1
        try:
            self._epoch_offset = time.time_ns() - time.perf_counter_ns()
            self._t0 = time.perf_counter_ns()
            _current = self
            self._buffers = _recorder.activate(self.memory_limit)
            if self.path is not None:
                _install_flush_handlers()
                import multiprocessing.util as mp_util

                mp_util.register_after_fork(self, Session._after_multiprocessing_fork)
        finally:
            _busy -= 1
        _deliver_pending()
        return self

    def stop(self) -> Trace:
        """Stop recording, build the trace, write it when a path was given; returns the trace."""
        global _current, _busy
        if _current is not self:
            if self.trace is not None:
                return self.trace
            raise RuntimeError("this session is not active")
        _busy += 1
        try:
            return self._stop()
        finally:
            _busy -= 1
            _deliver_pending()

    def _stop(self) -> Trace:
        global _current
        _recorder.deactivate()
        self._t1 = time.perf_counter_ns()
        _current = None
        _restore_flush_handlers()
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
            "memory_limit_bytes": self.memory_limit,
        }
        if self._parent_pid is not None:
            extra["parent_pid"] = self._parent_pid
        try:
            self.trace = build_trace(self._buffers, SITES, _recorder.counter_names(), self._t0, self._t1,
                                     self.name, self.device, extra)
        finally:
            for buf in self._buffers:  # old buffers may stay reachable from thread contexts: free them
                buf.release()
            self._buffers = []
        dropped = self.trace.metadata.import_stats.dropped.get("sdk_memory_limit", 0)
        if dropped:
            warnings.warn(f"profiling buffers reached their memory limit ({self.memory_limit} bytes): "
                          f"{dropped} events were not recorded", RuntimeWarning, stacklevel=3)
        if self.path is not None:
            from profiler.formats import write_trace

            write_trace(self.trace, self.path, self.fmt)  # all or nothing (profiler.atomic)
        return self.trace

    def _continue_in_child(self) -> None:
        """Right after a fork, in the child: record into fresh buffers, write to a file of its own."""
        inherited = self._buffers
        self._parent_pid = os.getppid()
        if self.path is not None:
            self.path = pid_path(self.path, os.getpid())
        self._t0 = time.perf_counter_ns()
        self._buffers = _recorder.activate(self.memory_limit)
        for buf in inherited:  # the parent's events: the parent writes them
            buf.release()

    def _after_multiprocessing_fork(self) -> None:
        """In a ``multiprocessing`` child (it ends with ``os._exit``): write when the child finishes."""
        if _current is self:
            import multiprocessing.util as mp_util

            mp_util.Finalize(None, self._at_exit, exitpriority=100)

    def _at_exit(self) -> None:
        if _current is self:
            self.stop()

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        self.stop()  # writes the trace also when the block raised; the exception propagates


# ----------------------------------------------------------------------------------- signals
def _install_flush_handlers() -> None:
    """Write the trace on SIGTERM/SIGHUP where they would kill the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in FLUSH_SIGNALS:
        old = signal.getsignal(sig)
        if old is not signal.SIG_DFL:  # ignored, the program's own handler, set outside Python, or ours
            continue
        signal.signal(sig, _on_signal)
        _saved_handlers[sig] = old


def _restore_flush_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # the handlers stay; with no session they only pass the signal on
    for sig, old in list(_saved_handlers.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, old)
        del _saved_handlers[sig]


def _on_signal(signum: int, frame: Any) -> None:
    """Write the active session's trace, then go on as the process would have without us."""
    global _pending_signal
    if _busy:  # interrupted this module starting or stopping a session: handle it right after
        _pending_signal = signum
        return
    prev = _saved_handlers.get(signum)
    if prev is None:  # restored already (the signal waited for a stop): what is in place now
        cur = signal.getsignal(signum)
        prev = signal.SIG_DFL if cur is None or cur is _on_signal else cur
    s = _current
    if s is not None:
        try:
            s.stop()
        except Exception as e:  # the signal must still take its course
            print(f"accel-profiler: could not write the trace on signal {signum}: {e}", file=sys.stderr)
    if callable(prev):
        prev(signum, frame)
        return
    if prev is signal.SIG_IGN:
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signum, signal.SIG_DFL)
    _saved_handlers.pop(signum, None)
    os.kill(os.getpid(), signum)  # the default action, now that the trace is written


def _deliver_pending() -> None:
    global _pending_signal
    sig, _pending_signal = _pending_signal, None
    if sig is not None and not _busy:
        _on_signal(sig, None)


# -------------------------------------------------------------------------------------- fork
def _after_fork_in_child() -> None:
    global _busy, _pending_signal
    _busy, _pending_signal = 0, None
    _recorder.after_fork_in_child()
    if _current is not None:
        _current._continue_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------- functions
def session(path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
            device: str = "device", memory_limit: int | None = None) -> Session:
    """A session to use in ``with``; ``path``'s extension picks the format (.pftrace, .json, .trace).

    ``memory_limit``: bytes the buffers may hold (see the module docstring for the default).
    """
    return Session(path, fmt=fmt, name=name, device=device, memory_limit=memory_limit)


def start(path: str | Path | None = None, *, fmt: str | None = None, name: str | None = None,
          device: str = "device", memory_limit: int | None = None) -> Session:
    """Start recording now; the trace is written by :func:`stop` or at interpreter exit."""
    s = Session(path, fmt=fmt, name=name, device=device, memory_limit=memory_limit).start()
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
