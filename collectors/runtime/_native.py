"""The C implementation of the SDK's hot path, registered when it was built and can be trusted.

``_cregion`` (``_cregion.c``, compiled by the package install when a compiler is present)
provides a ``Region`` type whose ``__enter__``/``__exit__`` are C methods, a C no-op object for
disabled regions, a C ``region(name)`` and the C wrapper ``@traced`` returns.  They write the same int64 events as the Python path
(:mod:`collectors.runtime._recorder`) into per-thread ``_cregion.Stream`` buffers that the flush
reads through the buffer protocol without a copy.  Everything that is not per-region (interning
a site, registering a thread, point events, regions with attributes) stays in Python.

The extension is used only if it imports and its clock is ``time.perf_counter_ns``'s clock (a
C timestamp read between two Python ones must lie between them): timestamps of C regions and of
Python-recorded events and session bounds share one time line.  ``UNAVAILABLE`` says why not.
"""

from __future__ import annotations

import importlib
from time import perf_counter_ns
from typing import Any

from collectors.runtime import _recorder
from collectors.runtime._recorder import IMPLEMENTATIONS, Implementation, ThreadBuffer, flow_in
from collectors.runtime._sites import SITES, TIME_BITS

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

    class FlowRegion(_cregion.Region):  # type: ignore[misc,name-defined]
        """A C region that is the target of a flow (``region(..., flow_from=handle)``)."""

        __slots__ = ("flow",)

        def __init__(self, name: str, flow: int, **attrs: Any) -> None:
            super().__init__(name, **attrs)
            self.flow = flow

        def __enter__(self) -> Any:
            _cregion.Region.__enter__(self)
            if _recorder._on:
                flow_in(self.flow)
            return self

    #: ``region()`` when the C fast path (a cached bare name) does not apply.
    _slow_region = _recorder.region_factory(Region, FlowRegion, NOOP, _by_name)

    def _register() -> ThreadBuffer:
        """A thread's first C event in this session: its buffer, with a C stream, registered."""
        return _recorder.register_buffer(ThreadBuffer(_cregion.Stream()))

    _cregion.configure(intern=SITES.intern, register=_register, slow_region=_slow_region, by_name=_by_name,
                       time_bits=TIME_BITS)
    C = Implementation("c", Region, _cregion.region, NOOP, _cregion.current_buffer, _cregion.enable,
                       _cregion.disable, _cregion.Traced)
    IMPLEMENTATIONS["c"] = C
