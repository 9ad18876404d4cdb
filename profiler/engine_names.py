"""What an engine's name says it does: one rule for whoever names tracks and whoever reads them.

The runtime SDK turns ``region(..., engine="xfer0")`` into a track whose kind comes from the name;
the analyzers infer the role of tracks in foreign traces (Chrome JSON threads, Perfetto tracks)
from their names.  Both ask :func:`is_dma_engine_name`, so an engine is a copy queue in the trace
the SDK writes exactly when the analyzers would call it one in a trace read from elsewhere.
"""

from __future__ import annotations

import re

#: Names that start like a copy/DMA engine ("dma0", "sdma1", "copy_in", "h2d", "xfer", "transfer"),
#: or say so anywhere ("memcpy stream", "npu0 dma 2", "copy engine", "queue d2h").
_DMA_ENGINE = re.compile(
    r"^(?:s?dma|copy|memcpy|memset|h2d|d2h|d2d|xfer|transfer)"
    r"|memcpy|memset|\bdma\b|dma[0-9_ ]|copy engine|\bcopy\b|\bh2d\b|\bd2h\b|\bd2d\b",
    re.I,
)


def is_dma_engine_name(name: str | None) -> bool:
    """True when an engine or track name denotes a memory-copy (DMA) engine."""
    return bool(name) and _DMA_ENGINE.search(name or "") is not None
