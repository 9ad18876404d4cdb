"""The C implementation of the SDK's hot path, registered when it was built and can be trusted.

``_cregion`` (``_cregion.c``, compiled by the package install when a compiler is present)
provides a ``Region`` type whose ``__enter__``/``__exit__`` are C methods, a ``Span`` (one use of a
region's site with its own flops and bytes), a C no-op object for disabled regions, a C ``region()``
and the C wrapper ``@traced`` returns.  They write the same int64 events as the Python path
(:mod:`collectors.runtime._recorder`) into per-thread ``_cregion.Stream`` buffers that the flush
reads through the buffer protocol without a copy.  Everything that is not per-region (interning
a site, registering a thread, point events, flows, args) stays in Python.

The extension is used only if it imports and its clock is ``time.perf_counter_ns``'s clock (a
C timestamp read between two Python ones must lie between them): timestamps of C regions and of
Python-recorded events and session bounds share one time line.  ``UNAVAILABLE`` says why not.
"""

from __future__ import annotations

import importlib
from time import perf_counter_ns
from typing import Any

from collectors.runtime import _recorder
from collectors.runtime._recorder import IMPLEMENTATIONS, Implementation, ThreadBuffer
from collectors.runtime._sites import METRICS_FLAG, SITES, TIME_BITS

UNAVAILABLE: str | None = None

try:
    _cregion: Any = importlib.import_module("collectors.runtime._cregion")
except ImportError as e:  # not built (no compiler at install time) or built for another Python
    _cregion = None
    UNAVAILABLE = f"the C extension collectors.runtime._cregion is not importable ({e})"


def _clock_agrees() -> bool:
    """True when the extension reads the clock ``time.perf_counter_ns`` reads."""
    for _ in range(16):
        a = perf_counter_ns()
        c = _cregion.now()
        b = perf_counter_ns()
        if not a <= c <= b:
            return False
    return True


if _cregion is not None and not _clock_agrees():
    UNAVAILABLE = "the C extension's clock does not agree with time.perf_counter_ns"
    _cregion = None


if _cregion is not None:
    Region = _cregion.Region
    NOOP = _cregion.NOOP
    _by_name: dict[str, Any] = {}
    _by_key: dict[tuple[Any, ...], Any] = {}

    #: ``region()`` when the C fast path does not apply (first use of a site, flow_from, args,
    #: values that need a check with a message).
    _slow_region = _recorder.region_factory(Region, NOOP, _by_name, _by_key, _cregion.Span)

    def _register() -> ThreadBuffer:
        """A thread's first C event in this session: its buffer, with a C stream, registered."""
        return _recorder.register_buffer(ThreadBuffer(_cregion.Stream()))

    _cregion.configure(intern=SITES.intern, register=_register, slow_region=_slow_region, by_name=_by_name,
                       by_key=_by_key, time_bits=TIME_BITS, metrics_flag=METRICS_FLAG)
    # One memory budget for the C streams and the Python-level buffers (points, counters).
    _recorder.set_pool(_cregion.take, _cregion.set_budget)
    C = Implementation("c", Region, _cregion.region, NOOP, _cregion.current_buffer, _cregion.enable,
                       _cregion.disable, _cregion.Traced)
    IMPLEMENTATIONS["c"] = C
