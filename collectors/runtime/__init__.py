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
session stops.  For the cheapest region build it once per call site: ``STEP = Region("step")``
then ``with STEP:``.  Without a session, ``region()`` returns a shared no-op object.
"""

from collectors.runtime._recorder import (
    Region,
    counter,
    flow_in,
    flow_out,
    instant,
    is_active,
    region,
    traced,
)
from collectors.runtime.session import Session, current, session, start, stop

__all__ = [
    "Region",
    "Session",
    "counter",
    "current",
    "flow_in",
    "flow_out",
    "instant",
    "is_active",
    "region",
    "session",
    "start",
    "stop",
    "traced",
]
