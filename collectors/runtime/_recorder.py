"""The hot path: regions, instants, counters and flows recorded into per-thread int buffers.

Why it looks like this (measured, see ``bench/bench_sdk.py``):

* A region costs one ``with`` (two Python-level calls, unavoidable), two clock reads and two
  appends of a C ``int64``: no per-event Python object is kept.
* A begin event is ONE int64: ``-((site + 1) << TIME_BITS) - now``; an end event is ``now``
  (positive).  The flush recovers the site from the sign and top bits because every time lies in
  ``[session start, session start + 2**TIME_BITS)``.  A region with numbers (flops, bytes) sets
  ``METRICS_FLAG`` in its site and writes the two float64s right after its begin, in the same
  append (so nothing, not even a signal handler, can come between them); their bits are never
  negative, so they cannot be mistaken for a begin.  Pairing begins with ends is done later, in
  bulk, from the bracket structure of the stream (:mod:`collectors.runtime._flush`).
* The current thread's buffer is found through a ``ContextVar`` (about half the cost of a
  ``threading.local`` attribute); each new thread appends its buffer to the session's list (one
  atomic ``list.append``), so nothing is lost under concurrency.  A new session makes a new
  variable, so buffers of an old session are never written again.
* Disabled, ``region()`` returns one shared no-op object after a module-level flag check, and a
  pre-built :class:`Region` runs methods that return at once: the recording methods are swapped in
  on the class only while a session is active, so the enabled path needs no flag check either.
* Nothing on the recording path takes a lock, so a signal handler that records while the
  interrupted code is recording (or interning a site) neither deadlocks nor corrupts it.
* Memory is capped per session (:func:`activate`): buffers draw chunks from one budget, and when
  it is spent new regions, points and counter samples are dropped and counted (the end of a region
  whose begin was kept is always written, so every kept region stays whole).

This module is the pure-Python implementation and the state both implementations share (session
flag, buffer registry, point events, decorators).  :mod:`collectors.runtime._native` registers the
C implementation of the hot path (``_cregion.c``); :func:`use` picks which one ``Region`` and
``region()`` come from.  Every session enables all registered implementations, so a region made
before a switch keeps recording.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import struct
import threading
from array import array
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, TypeVar

from collectors.runtime._sites import (
    MAX_SITES,
    METRICS_FLAG,
    NAN_BITS,
    POINT_SITE,
    SITES,
    TIME_BITS,
    check_args,
    check_label,
    check_name,
    check_number,
)

F = TypeVar("F", bound=Callable[..., Any])

_now = perf_counter_ns
_POINT_NEG = -((POINT_SITE + 1) << TIME_BITS)
_METRICS_NEG = METRICS_FLAG << TIME_BITS
_INF = math.inf
_NAN = math.nan
_pack2 = struct.Struct("<dd").pack
_unpack2 = struct.Struct("<qq").unpack
_pack1 = struct.Struct("<d").pack
_unpack1 = struct.Struct("<q").unpack

#: Point kinds stored next to a point marker in a thread's stream.
INSTANT, FLOW_OUT, FLOW_IN = 1, 2, 3
#: Memory drawn from the session budget at a time (bytes).
CHUNK_BYTES = 1 << 18
CHUNK_WORDS = CHUNK_BYTES // 8
#: What a point event (instant, flow end) or a counter sample holds in memory, about (bytes):
#: a stream word plus a 4-tuple and its fields; three array items.
POINT_BYTES = 128
COUNTER_BYTES = 24


class ThreadBuffer:
    """Everything one thread recorded in one session.

    ``stream`` holds begin/end/point events in program order; points (rare) keep their payload,
    with the time their stream marker holds, in ``points``; counters do not need stream positions
    and keep (id, time, value bits) triples in ``counters``, each written by one call.
    ``limit``/``extra_left`` are what this buffer may still use of the session budget without
    asking; ``dropped`` counts events refused for lack of budget, ``drop_depth`` the refused
    regions still open (their ends are refused too).
    """

    __slots__ = ("counters", "drop_depth", "dropped", "extra_left", "ident", "limit", "native_id", "points",
                 "stream", "thread_name")

    def __init__(self, stream: Any = None) -> None:
        t = threading.current_thread()
        self.ident = threading.get_ident()
        self.native_id = threading.get_native_id()
        self.thread_name = t.name
        #: ``array('q')`` here, a ``_cregion.Stream`` for the C path: both have ``append`` and
        #: export an int64 buffer.
        self.stream: Any = array("q") if stream is None else stream
        self.points: list[tuple[int, Any, Any, Any, int]] = []
        self.counters = array("q")
        self.limit = 0
        self.extra_left = 0
        self.dropped = 0
        self.drop_depth = 0

    def release(self) -> None:
        """Free the recorded events (the buffer may stay reachable from a thread's context)."""
        if isinstance(self.stream, array):
            del self.stream[:]
        else:
            self.stream.clear()
        del self.counters[:]
        self.points.clear()

    def total_dropped(self) -> int:
        """Events refused for lack of budget, by Python code and by the C stream."""
        return self.dropped + int(getattr(self.stream, "dropped", 0))


# --------------------------------------------------------------------------- session state
_on = False
#: Taken only by session start/stop and :func:`use`, never while recording.
_lock = threading.Lock()
_registry: list[ThreadBuffer] = []
_cv_buf: ContextVar[ThreadBuffer] = ContextVar("accel_profiler_buffer")
_get_buf = _cv_buf.get
_counter_ids: dict[str, int] = {}
_counter_seq = itertools.count()
_flow_ids = itertools.count(1)


def _register() -> ThreadBuffer:
    """First event of this thread (or context) in this session: make and register its buffer."""
    buf = ThreadBuffer()
    _cv_buf.set(buf)
    _registry.append(buf)  # atomic: no lock a signal handler could wait on
    return buf


def register_buffer(buf: ThreadBuffer) -> ThreadBuffer:
    """Add a buffer made by another implementation to this session's registry."""
    _registry.append(buf)
    return buf


def _py_buffer() -> ThreadBuffer:
    try:
        return _get_buf()
    except LookupError:
        return _register()


# ------------------------------------------------------------------------------ the budget
_py_left = 0


def _py_take(nbytes: int) -> bool:
    """Take ``nbytes`` of the session budget (without the C extension; approximate under threads)."""
    global _py_left
    if _py_left < nbytes:
        return False
    _py_left -= nbytes
    return True


def _py_set_budget(nbytes: int) -> None:
    global _py_left
    _py_left = int(nbytes)


#: ``take(nbytes) -> bool`` and ``set_budget(nbytes)``; the C extension provides one pool shared
#: by its streams and by the Python-level buffers (:mod:`collectors.runtime._native`).
_take: Callable[[int], bool] = _py_take
_set_budget: Callable[[int], None] = _py_set_budget


def set_pool(take: Callable[[int], bool], set_budget: Callable[[int], None]) -> None:
    """Draw every buffer's memory from this pool."""
    global _take, _set_budget
    _take, _set_budget = take, set_budget


def _grant(buf: ThreadBuffer) -> bool:
    """More room for a pure-Python stream: one chunk of the budget, or False when it is spent."""
    if _take(CHUNK_BYTES):
        buf.limit += CHUNK_WORDS
        return True
    return False


def _admit(buf: ThreadBuffer, nbytes: int) -> bool:
    """Room for one point or counter sample (False, counted, when the budget is spent)."""
    if buf.extra_left < nbytes:
        if not _take(CHUNK_BYTES):
            buf.dropped += 1
            return False
        buf.extra_left += CHUNK_BYTES
    buf.extra_left -= nbytes
    return True


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


def activate(memory_limit: int) -> list[ThreadBuffer]:
    """Start recording into fresh buffers that may hold ``memory_limit`` bytes in all.

    Returns the (growing) list of registered buffers.
    """
    global _on, _registry
    with _lock:
        _set_budget(max(0, int(memory_limit)))
        # Enable first: the C path trusts a thread's cached buffer only while the generation that
        # enabling bumps is unchanged, so it must change before the old registry is let go.
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


def after_fork_in_child() -> None:
    """In a forked child: a fresh lock (the parent's may have been held by a thread that is gone)."""
    global _lock
    _lock = threading.Lock()


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
    """Counter names by id (the ids stored in ``ThreadBuffer.counters``)."""
    items = dict(_counter_ids)
    out = [""] * (max(items.values(), default=-1) + 1)
    for k, v in items.items():
        out[v] = k
    return out


def metric_words(flops: float | None, nbytes: float | None) -> tuple[int, int]:
    """The two int64 words that carry a region's flops and bytes (checked values; None or NaN: unknown)."""
    a, b = _unpack2(_pack2(_NAN if flops is None else flops, _NAN if nbytes is None else nbytes))
    return (NAN_BITS if a < 0 or flops != flops else a, NAN_BITS if b < 0 or nbytes != nbytes else b)


# --------------------------------------------------------------------------------- regions
class Region:
    """A named region: a context manager, cheap to reuse from one call site.

    It keeps no per-call state, so one object may be entered from many threads and recursively.
    Build it once (``STEP = Region("step")``) for the cheapest path, or call :func:`region`.
    ``flops``/``bytes`` given here are recorded with every use.
    """

    __slots__ = ("_neg", "_payload", "name", "site")

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
        f, b = check_number(flops, "flops"), check_number(bytes, "bytes")
        self.site = SITES.intern(name, engine, dtype, category, args)
        self.name = check_name(name)
        self._neg = -((self.site + 1) << TIME_BITS)
        self._payload: tuple[int, int] | None = None
        if flops is not None or bytes is not None:
            self._payload = metric_words(f, b)
            self._neg -= _METRICS_NEG

    def __enter__(self) -> Region:  # replaced by _enter_on/_enter_off
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        return None

    def __call__(self, fn: Any) -> Any:
        raise TypeError("a region is a context manager; decorate functions with @traced or @traced('name')")

    def __repr__(self) -> str:
        return f"Region({self.name!r}, site={self.site})"


def _py_with_metrics(base: Region, flops: float | None, nbytes: float | None) -> Region:
    """``base``'s site with these numbers (checked values): one object per ``region()`` call.

    ``base`` comes from a cache of number-free regions, so its ``_neg`` has no flag yet.
    """
    r = _new_region(Region)
    r.name = base.name
    r.site = base.site
    r._neg = base._neg - _METRICS_NEG
    if _NAN_IS_NAN_BITS:
        r._payload = _unpack2(_pack2(_NAN if flops is None else flops, _NAN if nbytes is None else nbytes))
    else:
        r._payload = metric_words(flops, nbytes)
    return r


_new_region = object.__new__
#: math.nan's bits are the "no value" word on common platforms: then no per-call check is needed.
_NAN_IS_NAN_BITS = _unpack2(_pack2(_NAN, _NAN)) == (NAN_BITS, NAN_BITS)


def _enter_on(self: Region) -> Region:
    try:
        buf = _get_buf()
    except LookupError:
        buf = _register()
    st = buf.stream
    p = self._payload
    if p is None:
        if len(st) < buf.limit or _grant(buf):
            st.append(self._neg - _now())
            return self
    elif len(st) + 2 < buf.limit or _grant(buf):
        st.extend((self._neg - _now(), p[0], p[1]))  # one call: begin and numbers stay together
        return self
    buf.drop_depth += 1
    buf.dropped += 1
    return self


def _exit_on(self: Region, et: Any, ev: Any, tb: Any) -> None:
    try:
        buf = _get_buf()
    except LookupError:  # the session began inside this region: nothing to close
        return None
    if buf.drop_depth:
        buf.drop_depth -= 1
    else:
        buf.stream.append(_now())
    return None


def _enter_off(self: Region) -> Region:
    return self


def _exit_off(self: Region, et: Any, ev: Any, tb: Any) -> None:
    return None


Region.__enter__ = _enter_off  # type: ignore[method-assign]
Region.__exit__ = _exit_off  # type: ignore[method-assign]


def _py_enable() -> None:
    global _cv_buf, _get_buf
    _cv_buf = ContextVar("accel_profiler_buffer")
    _get_buf = _cv_buf.get
    Region.__enter__ = _enter_on  # type: ignore[method-assign]
    Region.__exit__ = _exit_on  # type: ignore[method-assign]


def _py_disable() -> None:
    Region.__enter__ = _enter_off  # type: ignore[method-assign]
    Region.__exit__ = _exit_off  # type: ignore[method-assign]


class FlowRegion:
    """A region that is the target of a flow (``region(..., flow_from=handle)``): wraps any region."""

    __slots__ = ("flow", "inner")

    def __init__(self, inner: Any, flow: int) -> None:
        self.inner = inner
        self.flow = flow

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def __enter__(self) -> FlowRegion:
        self.inner.__enter__()
        if _on:
            flow_in(self.flow)
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        self.inner.__exit__(et, ev, tb)

    def __call__(self, fn: Any) -> Any:
        raise TypeError("a region is a context manager; decorate functions with @traced or @traced('name')")


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
_by_key: dict[tuple[Any, ...], Region] = {}


def region_factory(region_cls: Any, noop: Any, by_name: dict[str, Any], by_key: dict[tuple[Any, ...], Any],
                   with_metrics: Callable[[Any, float | None, float | None], Any]) -> Any:
    """Build ``region()`` over one implementation's Region, no-op object, caches and number carrier.

    The Python and the C implementation share this logic (the C ``region()`` runs it only for
    calls its fast path does not take: ``flow_from``, ``args``, bad values).  ``by_name`` caches
    the region of a bare name, ``by_key`` the site of (name, dtype, engine, category);
    ``with_metrics(base, flops, bytes)`` makes the per-call region that carries the numbers (checked
    values, None where not given).
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
        instead of the thread's.  ``flops``/``bytes`` may change from call to call: they are stored
        with each event.  ``flow_from`` takes a handle from :func:`flow_out` and draws an arrow
        from that region to this one.  Without a session this returns a shared no-op object.
        Bad values raise TypeError/ValueError before anything is recorded.
        """
        if not _on:
            return noop
        if flops is None and bytes is None and dtype is None and engine is None and category is None \
                and flow_from is None and args is None:
            r = by_name.get(name)
            if r is None:
                r = region_cls(name)
                if len(by_name) < MAX_SITES:
                    by_name[name] = r
            return r
        # Numbers: a plain finite float >= 0 as is, anything else through the full check.
        f = flops if type(flops) is float and 0.0 < flops < _INF else (
            None if flops is None else check_number(flops, "flops"))
        b = bytes if type(bytes) is float and 0.0 < bytes < _INF else (
            None if bytes is None else check_number(bytes, "bytes"))
        handle = None if flow_from is None else operator.index(flow_from)
        if args is not None:
            base = region_cls(name, dtype=dtype, engine=engine, category=category, args=args)
        else:
            # The caches the C fast path reads: bare sites by name, others by these four values.
            # Only checked values get in, so a hit needs no check.
            bare = dtype is None and engine is None and category is None
            cache: dict[Any, Any] = by_name if bare else by_key
            k: Any = name if bare else (name, dtype, engine, category)
            try:
                base = cache.get(k)
            except TypeError:  # unhashable: the checks below say what is wrong
                base = None
            if base is None:
                key = (check_name(name), check_label(dtype, "dtype"), check_label(engine, "engine"),
                       check_label(category, "category"))
                base = region_cls(key[0], dtype=key[1], engine=key[2], category=key[3])
                if len(cache) < MAX_SITES:
                    cache[key[0] if bare else key] = base
        r = base if f is None and b is None else with_metrics(base, f, b)
        return r if handle is None else FlowRegion(r, handle)

    return region


region = region_factory(Region, NOOP, _by_name, _by_key, _py_with_metrics)


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
        return functools.update_wrapper(_current.wrap(f, site), f)  # type: ignore[return-value]

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
def _point(kind: int, a: Any, b: Any, c: Any) -> None:
    """Record a point event in this thread's stream with its payload (when the budget allows)."""
    buf = _buffer()
    if _admit(buf, POINT_BYTES):
        t = _now()
        # Payload first (a flush sees the payload of every marker it sees); the time pairs them
        # even when a signal handler records its own point in between.
        buf.points.append((kind, a, b, c, t))
        buf.stream.append(_POINT_NEG - t)


def instant(name: str, args: dict[str, Any] | None = None, engine: str | None = None) -> None:
    """A zero-duration marker on this thread's track (or on ``engine``'s track)."""
    if not _on:
        return
    _point(INSTANT, check_name(name), check_label(engine, "engine"), check_args(args))


def counter(name: str, value: float) -> None:
    """Sample a counter (one counter track per name), e.g. ``counter("queue_depth", len(q))``."""
    if not _on:
        return
    name = check_name(name)
    if isinstance(value, (bool, str, bytes, bytearray)):
        raise TypeError(f"counter value must be a number, not {type(value).__name__}")
    v = float(value)
    cid = _counter_ids.get(name)
    if cid is None:
        cid = _counter_ids.setdefault(name, next(_counter_seq))  # atomic; a lost race wastes an id
    buf = _buffer()
    if _admit(buf, COUNTER_BYTES):
        buf.counters.extend((cid, _now(), _unpack1(_pack1(v))[0]))  # one call: a triple stays whole


def flow_out(name: str | None = None) -> int:
    """Start an arrow from the innermost open region of this thread; returns its handle.

    Pass the handle to :func:`flow_in` (inside the target region) or ``region(flow_from=...)``;
    handles work across threads.
    """
    fid = next(_flow_ids)
    if _on:
        _point(FLOW_OUT, fid, check_label(name, "flow name"), None)
    return fid


def flow_in(handle: int) -> None:
    """End the arrow ``handle`` at the innermost open region of this thread."""
    if not _on:
        return
    _point(FLOW_IN, operator.index(handle), None, None)


PYTHON = Implementation("python", Region, region, NOOP, _py_buffer, _py_enable, _py_disable, _py_wrap)
IMPLEMENTATIONS["python"] = PYTHON
_current = PYTHON
