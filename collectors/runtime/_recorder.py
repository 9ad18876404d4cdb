"""The hot path: regions, instants, counters and flows recorded into per-thread int buffers.

Why it looks like this (measured, see ``bench/bench_sdk.py``):

* A region costs one ``with`` (two Python-level calls, unavoidable), two ``perf_counter_ns`` calls
  and two ``array.append`` calls of a C ``int64``: no per-event Python object is kept.
* A begin event is ONE int64: ``-((site + 1) << TIME_BITS) - now``; an end event is ``now``
  (positive).  The flush recovers the site from the sign and top bits because every time lies in
  ``[session start, session start + 2**TIME_BITS)``.  Pairing begins with ends is done later, in
  bulk, from the bracket structure of the stream (:mod:`collectors.runtime._flush`).
* The current thread's buffer is found through a ``ContextVar`` (about half the cost of a
  ``threading.local`` attribute); each new thread registers its buffer in a list under a lock, so
  nothing is lost under concurrency.  A new session makes a new variable, so buffers of an old
  session are never written again.
* Disabled, ``region()`` returns one shared no-op object after a module-level flag check, and a
  pre-built :class:`Region` runs methods that return at once: the recording methods are swapped in
  on the class only while a session is active, so the enabled path needs no flag check either.

This module is the pure-Python implementation and the state both implementations share (session
flag, buffer registry, point events, decorators).  :mod:`collectors.runtime._native` registers the
C implementation of the hot path (``_cregion.c``); :func:`use` picks which one ``Region`` and
``region()`` come from.  Every session enables all registered implementations, so a region made
before a switch keeps recording.
"""

from __future__ import annotations

import functools
import itertools
import threading
from array import array
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, TypeVar

from collectors.runtime._sites import POINT_SITE, SITES, TIME_BITS

F = TypeVar("F", bound=Callable[..., Any])

_now = perf_counter_ns
_POINT_NEG = -((POINT_SITE + 1) << TIME_BITS)

#: Point kinds stored next to a point marker in a thread's stream.
INSTANT, FLOW_OUT, FLOW_IN = 1, 2, 3


class ThreadBuffer:
    """Everything one thread recorded in one session.

    ``stream`` holds begin/end/point events in program order; points (rare) keep their payload in
    ``points``; counters do not need stream positions and keep three parallel arrays.
    """

    __slots__ = ("c_ids", "c_ts", "c_vals", "ident", "native_id", "points", "stream", "thread_name")

    def __init__(self, stream: Any = None) -> None:
        t = threading.current_thread()
        self.ident = threading.get_ident()
        self.native_id = threading.get_native_id()
        self.thread_name = t.name
        #: ``array('q')`` here, a ``_cregion.Stream`` for the C path: both have ``append`` and
        #: export an int64 buffer.
        self.stream: Any = array("q") if stream is None else stream
        self.points: list[tuple[int, Any, Any, Any]] = []
        self.c_ids = array("q")
        self.c_ts = array("q")
        self.c_vals = array("d")

    def release(self) -> None:
        """Free the recorded events (the buffer may stay reachable from a thread's context)."""
        if isinstance(self.stream, array):
            del self.stream[:]
        else:
            self.stream.clear()
        del self.c_ids[:], self.c_ts[:], self.c_vals[:]
        self.points.clear()


# --------------------------------------------------------------------------- session state
_on = False
_lock = threading.Lock()
_registry: list[ThreadBuffer] = []
_cv_buf: ContextVar[ThreadBuffer] = ContextVar("accel_profiler_buffer")
_cv_ap: ContextVar[Callable[[int], None]] = ContextVar("accel_profiler_append")
_get_buf = _cv_buf.get
_get_ap = _cv_ap.get
_counter_ids: dict[str, int] = {}
_flow_ids = itertools.count(1)


def _register() -> ThreadBuffer:
    """First event of this thread (or context) in this session: make and register its buffer."""
    buf = ThreadBuffer()
    _cv_buf.set(buf)
    _cv_ap.set(buf.stream.append)
    with _lock:
        _registry.append(buf)
    return buf


def register_buffer(buf: ThreadBuffer) -> ThreadBuffer:
    """Add a buffer made by another implementation to this session's registry."""
    with _lock:
        _registry.append(buf)
    return buf


def _py_buffer() -> ThreadBuffer:
    try:
        return _get_buf()
    except LookupError:
        return _register()


@dataclass(frozen=True)
class Implementation:
    """One way of recording regions: its Region type, region(), no-op object and buffer lookup.

    ``enable``/``disable`` run under the recorder's lock when a session starts and stops.
    """

    name: str
    Region: Any
    region: Callable[..., Any]
    noop: Any
    buffer: Callable[[], ThreadBuffer]
    enable: Callable[[], None]
    disable: Callable[[], None]
    #: ``wrap(fn, region) -> callable`` for @traced; ``wrapper.region`` is the region.
    wrap: Callable[[Any, Any], Any]


IMPLEMENTATIONS: dict[str, Implementation] = {}
#: Point events and @traced follow the selected implementation (see :func:`use`).
_buffer: Callable[[], ThreadBuffer] = _py_buffer
_current: Implementation


def activate() -> list[ThreadBuffer]:
    """Start recording into fresh buffers; returns the (growing) list of registered buffers."""
    global _on, _registry
    with _lock:
        # Enable first: the C path trusts a thread's cached buffer only while the generation that
        # enabling bumps is unchanged, so it must change before the old registry is let go.
        # Threads registering meanwhile wait for the lock and land in the new registry.
        for impl in IMPLEMENTATIONS.values():
            impl.enable()
        _registry = []
        _on = True
        return _registry


def deactivate() -> None:
    """Stop recording; events arriving later land in buffers nobody reads."""
    global _on
    with _lock:
        _on = False
        for impl in IMPLEMENTATIONS.values():
            impl.disable()


def is_active() -> bool:
    return _on


def use(name: str) -> Implementation:
    """Select the implementation new regions come from (``"c"`` or ``"python"``), between sessions."""
    global _buffer, _current
    impl = IMPLEMENTATIONS.get(name)
    if impl is None:
        raise ValueError(f"unknown or unavailable SDK implementation {name!r}; have {sorted(IMPLEMENTATIONS)}")
    with _lock:
        if _on:
            raise RuntimeError("cannot switch the SDK implementation while a session records")
        _current = impl
        _buffer = impl.buffer
    return impl


def current() -> Implementation:
    """The selected implementation."""
    return _current


def counter_names() -> list[str]:
    """Counter names by id (the ids stored in ``ThreadBuffer.c_ids``)."""
    with _lock:
        out = [""] * len(_counter_ids)
        for k, v in _counter_ids.items():
            out[v] = k
        return out


# --------------------------------------------------------------------------------- regions
class Region:
    """A named region: a context manager, cheap to reuse from one call site.

    It keeps no per-call state, so one object may be entered from many threads and recursively.
    Build it once (``STEP = Region("step")``) for the cheapest path, or call :func:`region`.
    """

    __slots__ = ("_neg", "name", "site")

    def __init__(
        self,
        name: str,
        flops: float | None = None,
        bytes: float | None = None,  # noqa: A002 - the trace column's name
        dtype: str | None = None,
        engine: str | None = None,
        category: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.site = SITES.intern(name, engine, dtype, category, flops, bytes, args)
        self._neg = -((self.site + 1) << TIME_BITS)

    def __enter__(self) -> Region:  # replaced by _enter_on/_enter_off
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        return None

    def __call__(self, fn: Any) -> Any:
        raise TypeError("a region is a context manager; decorate functions with @traced or @traced('name')")

    def __repr__(self) -> str:
        return f"Region({self.name!r}, site={self.site})"


def _enter_on(self: Region) -> Region:
    try:
        ap = _get_ap()
    except LookupError:
        ap = _register().stream.append
    ap(self._neg - _now())
    return self


def _exit_on(self: Region, et: Any, ev: Any, tb: Any) -> None:
    try:
        ap = _get_ap()
    except LookupError:  # the session began inside this region: nothing to close
        return None
    ap(_now())
    return None


def _enter_off(self: Region) -> Region:
    return self


def _exit_off(self: Region, et: Any, ev: Any, tb: Any) -> None:
    return None


Region.__enter__ = _enter_off  # type: ignore[method-assign]
Region.__exit__ = _exit_off  # type: ignore[method-assign]


def _py_enable() -> None:
    global _cv_buf, _cv_ap, _get_buf, _get_ap
    _cv_buf = ContextVar("accel_profiler_buffer")
    _cv_ap = ContextVar("accel_profiler_append")
    _get_buf = _cv_buf.get
    _get_ap = _cv_ap.get
    Region.__enter__ = _enter_on  # type: ignore[method-assign]
    Region.__exit__ = _exit_on  # type: ignore[method-assign]


def _py_disable() -> None:
    Region.__enter__ = _enter_off  # type: ignore[method-assign]
    Region.__exit__ = _exit_off  # type: ignore[method-assign]


class FlowRegion(Region):
    """A region that is the target of a flow (``region(..., flow_from=handle)``)."""

    __slots__ = ("flow",)

    def __init__(self, name: str, flow: int, **attrs: Any) -> None:
        super().__init__(name, **attrs)
        self.flow = flow

    def __enter__(self) -> Region:
        Region.__enter__(self)
        if _on:
            flow_in(self.flow)
        return self


class _Noop:
    """The shared object ``region()`` returns while no session records."""

    __slots__ = ()

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        return None

    def __call__(self, fn: Any) -> Any:
        raise TypeError("a region is a context manager; decorate functions with @traced or @traced('name')")


NOOP = _Noop()
_by_name: dict[str, Region] = {}


def region_factory(region_cls: Any, flow_cls: Any, noop: Any, by_name: dict[str, Any]) -> Any:
    """Build ``region()`` over one implementation's Region, FlowRegion, no-op object and name cache.

    The Python and the C implementation share this logic; only the classes differ.
    """

    def region(
        name: str,
        flops: float | None = None,
        bytes: float | None = None,  # noqa: A002
        dtype: str | None = None,
        engine: str | None = None,
        category: str | None = None,
        flow_from: int | None = None,
        args: dict[str, Any] | None = None,
    ) -> Any:
        """A region to use in ``with``: ``with region("attn", flops=2*n*d*d, engine="mxu"): ...``.

        ``engine`` puts the slice on that engine's track (one track per engine, queue or stream)
        instead of the thread's.  ``flow_from`` takes a handle from :func:`flow_out` and draws an
        arrow from that region to this one.  Without a session this returns a shared no-op object.
        """
        if not _on:
            return noop
        if flops is None and bytes is None and dtype is None and engine is None and category is None \
                and flow_from is None and args is None:
            r = by_name.get(name)
            if r is None:
                r = by_name[name] = region_cls(name)
            return r
        if flow_from is not None:
            return flow_cls(name, flow_from, flops=flops, bytes=bytes, dtype=dtype, engine=engine,
                            category=category, args=args)
        return region_cls(name, flops, bytes, dtype, engine, category, args)

    return region


region = region_factory(Region, FlowRegion, NOOP, _by_name)

def traced(
    fn: Any = None,
    /,
    name: str | None = None,
    *,
    flops: float | None = None,
    bytes: float | None = None,  # noqa: A002
    dtype: str | None = None,
    engine: str | None = None,
    category: str | None = None,
) -> Any:
    """Decorator: ``@traced``, ``@traced("name")`` or ``@traced(name=..., engine=...)``.

    Every call of the function becomes a region (its qualified name by default).  Without a
    session the wrapper costs one flag check on top of the call.
    """
    if isinstance(fn, str):
        name, fn = fn, None

    def deco(f: F) -> F:
        site = _current.Region(str(name or getattr(f, "__qualname__", repr(f))), flops, bytes, dtype, engine,
                               category)
        return functools.update_wrapper(_current.wrap(f, site), f)  # type: ignore[no-any-return]

    return deco(fn) if fn is not None else deco


def _py_wrap(f: Callable[..., Any], site: Region) -> Callable[..., Any]:
    def wrapper(*a: Any, **k: Any) -> Any:
        if _on:
            with site:
                return f(*a, **k)
        return f(*a, **k)

    wrapper.region = site  # type: ignore[attr-defined]
    return wrapper


# ---------------------------------------------------------------------------- point events
def instant(name: str, args: dict[str, Any] | None = None, engine: str | None = None) -> None:
    """A zero-duration marker on this thread's track (or on ``engine``'s track)."""
    if not _on:
        return
    buf = _buffer()
    buf.stream.append(_POINT_NEG - _now())
    buf.points.append((INSTANT, str(name), engine, args))


def counter(name: str, value: float) -> None:
    """Sample a counter (one counter track per name), e.g. ``counter("queue_depth", len(q))``."""
    if not _on:
        return
    cid = _counter_ids.get(name)
    if cid is None:
        with _lock:
            cid = _counter_ids.setdefault(name, len(_counter_ids))
    buf = _buffer()
    buf.c_ids.append(cid)
    buf.c_ts.append(_now())
    buf.c_vals.append(value)


def flow_out(name: str | None = None) -> int:
    """Start an arrow from the innermost open region of this thread; returns its handle.

    Pass the handle to :func:`flow_in` (inside the target region) or ``region(flow_from=...)``;
    handles work across threads.
    """
    fid = next(_flow_ids)
    if _on:
        buf = _buffer()
        buf.stream.append(_POINT_NEG - _now())
        buf.points.append((FLOW_OUT, fid, name, None))
    return fid


def flow_in(handle: int) -> None:
    """End the arrow ``handle`` at the innermost open region of this thread."""
    if not _on:
        return
    buf = _buffer()
    buf.stream.append(_POINT_NEG - _now())
    buf.points.append((FLOW_IN, int(handle), None, None))


PYTHON = Implementation("python", Region, region, NOOP, _py_buffer, _py_enable, _py_disable, _py_wrap)
IMPLEMENTATIONS["python"] = PYTHON
_current = PYTHON
