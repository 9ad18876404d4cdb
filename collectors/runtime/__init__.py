"""A low-overhead tracing SDK for Python programs.

::

    from collectors.runtime import session, region, traced, counter, instant, flow_out

    @traced                          # every call is a region
    def load(batch): ...

    with session("run.pftrace"):     # .pftrace, .json or .trace: picked by extension
        with region("step"):
            with region("matmul", flops=2 * m * n * k, bytes=nbytes, dtype="bf16", engine="mxu"):
                f = flow_out()
            with region("copy", engine="dma0", flow_from=f):
                ...
            counter("queue_depth", 3)
            instant("checkpoint")

Each thread records into its own int64 buffer; nothing is turned into trace rows until the
session stops.  ``flops`` and ``bytes`` may differ on every call: they are stored with each event
(the name, dtype, engine and category are interned once per call site).  For the cheapest region
build it once per call site: ``STEP = Region("step")`` then ``with STEP:``.  Without a session,
``region()`` returns a shared no-op object.  Bad values (``flops="n/a"``, a non-string engine)
raise TypeError/ValueError in the caller before anything is recorded.

A session survives what a long run meets (see :mod:`collectors.runtime.session`): SIGTERM and
SIGHUP write the trace before the process goes on with the signal; a forked child (``os.fork``,
``multiprocessing``) writes its own ``run.<pid>.pftrace``; the buffers are capped
(``memory_limit``, ``ACCEL_PROFILER_SDK_MEMORY_MB``) with counted drops; the file is replaced only
once the new one is complete; a signal handler may record regions itself.

The hot path (``Region``, ``region()``, the no-op object) is C when the package was installed
with a compiler at hand (``_cregion.c``), pure Python otherwise; both record the same events.
``implementation()`` says which one is in use; the environment variable
``ACCEL_PROFILER_SDK=python`` (or ``c``) picks one at import, :func:`use` switches between sessions
(``Region`` and ``region`` here are rebound; objects made before keep working).
"""

import os
import warnings
from typing import Any

from collectors.runtime import _native, _recorder
from collectors.runtime._recorder import counter, flow_in, flow_out, instant, is_active, traced
from collectors.runtime.session import Session, current, session, start, stop

Region: Any = _recorder.Region
region: Any = _recorder.region


def use(name: str) -> None:
    """Record with the ``"c"`` or ``"python"`` implementation from now on (not during a session)."""
    global Region, region
    impl = _recorder.use(name)
    Region, region = impl.Region, impl.region


def implementation() -> str:
    """``"c"`` or ``"python"``: where ``Region`` and ``region`` come from."""
    return _recorder.current().name


def available() -> list[str]:
    """Implementations this installation has (``"c"`` needs the compiled extension)."""
    return sorted(_recorder.IMPLEMENTATIONS)


def _default() -> str:
    auto = "c" if "c" in _recorder.IMPLEMENTATIONS else "python"
    want = os.environ.get("ACCEL_PROFILER_SDK", "").strip().lower()
    if want in ("", "auto"):
        return auto
    if want not in ("c", "python"):
        warnings.warn(f"ACCEL_PROFILER_SDK={want!r} is neither 'c' nor 'python'; using {auto!r}",
                      RuntimeWarning, stacklevel=2)
        return auto
    if want == "c" and auto != "c":
        warnings.warn(f"ACCEL_PROFILER_SDK=c but {_native.UNAVAILABLE}; using the Python implementation",
                      RuntimeWarning, stacklevel=2)
        return "python"
    return want


use(_default())

__all__ = [
    "Region",
    "Session",
    "available",
    "counter",
    "current",
    "flow_in",
    "flow_out",
    "implementation",
    "instant",
    "is_active",
    "region",
    "session",
    "start",
    "stop",
    "traced",
    "use",
]
