"""AnalysisContext: a trace decoded once into numpy columns that every analyzer shares.

Running eight analyzers over ten million slices must not decode the Arrow tables eight times, so
the context wires a few small parts, each computing on first use and keeping its result for the
next analyzer:

* :class:`~analysis.context.columns.SliceColumns` - the slice table as numpy columns (``ts``,
  ``end``, ``depth``, the model's stored ``parent``, dictionary codes of names and dtypes);
* :mod:`~analysis.context.classes` - what each slice is (compute, DMA, comm, stall, host, other);
* :class:`~analysis.context.engines.Engines` - track roles, engines and their rows, the run span;
  :class:`~analysis.context.engines.BusySets` - per-engine busy and stall intervals;
* :class:`~analysis.context.units.Units` - per-unit (core, GPU) unions of slice classes;
* :class:`~analysis.context.coverage.Coverage` - which FLOPs/bytes count (outermost carriers);
* :class:`~analysis.context.args.ArgReader` - keys out of the JSON args, vectorized;
* :class:`~analysis.context.ceilings.Ceilings` - the peak each slice is judged against.

The context itself only wires them and keeps the short names analyzers use (``ctx.ts``,
``ctx.busy(e)``, ``ctx.class_set(...)``): each such name forwards to the part that owns it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from analysis.context.args import ArgReader
from analysis.context.ceilings import Ceilings
from analysis.context.classes import CLASS_NAMES, COMM, COMPUTE, DMA, HOST, OTHER, STALL, class_lut, classify
from analysis.context.columns import SliceColumns
from analysis.context.coverage import Coverage
from analysis.context.engines import BusySets, Engines
from analysis.context.flows import gating_source
from analysis.context.units import Units
from profiler.hardware import HardwareSpec
from profiler.model import Trace

__all__ = ["CLASS_NAMES", "COMM", "COMPUTE", "DMA", "HOST", "OTHER", "STALL", "AnalysisContext"]


def _via(part: str, name: str) -> property:
    """A read-only attribute that forwards to ``self.<part>.<name>``."""

    def get(self: AnalysisContext) -> Any:
        return getattr(getattr(self, part), name)

    return property(get, doc=f"``{part}.{name}`` (see that part).")


class AnalysisContext:
    """A trace plus the hardware spec to judge it against, with shared decoded columns."""

    def __init__(self, trace: Trace, spec: HardwareSpec | None = None, windows: int = 20,
                 options: dict[str, Any] | None = None) -> None:
        self.trace = trace
        self.spec = spec
        self.windows = windows
        self.options = dict(options or {})
        self.cols = SliceColumns(trace)
        self.engines = Engines(trace, self.cols)

    # ----------------------------------------------------------------- parts
    @cached_property
    def slice_class(self) -> np.ndarray:
        """Class code of every slice (COMPUTE, DMA, COMM, STALL, HOST, OTHER)."""
        c = self.cols
        return classify(self.engines.roles, c.track, c.categories, c.names)

    @cached_property
    def is_stall(self) -> np.ndarray:
        return self.slice_class == STALL

    @cached_property
    def busy_sets(self) -> BusySets:
        return BusySets(self.engines, self.is_stall)

    @cached_property
    def units(self) -> Units:
        return Units(self.cols, self.engines, self.slice_class)

    @cached_property
    def coverage(self) -> Coverage:
        return Coverage(self.cols, self.is_stall)

    @cached_property
    def args(self) -> ArgReader:
        return ArgReader(self.trace.slices["args"], self.cols.has_args)

    @cached_property
    def ceilings(self) -> Ceilings:
        return Ceilings(self.spec, self.cols, self.engines)

    @cached_property
    def gating_source(self) -> np.ndarray:
        """For every slice, the row of the incoming-flow source that ended last (-1 when none)."""
        return gating_source(self.trace, self.cols.end)

    # --------------------------------------------------- derived, small enough here
    @cached_property
    def transfer_rows(self) -> np.ndarray:
        """Rows of top-level memory transfers (DMA-class slices), in row order."""
        return np.flatnonzero((self.slice_class == DMA) & (self.cols.depth == 0))

    def class_mask(self, classes: tuple[int, ...]) -> np.ndarray:
        """Slices of the given classes."""
        return class_lut(classes)[self.slice_class]

    @property
    def work_classes(self) -> tuple[int, ...]:
        """Slice classes that are compute work (host work too on CPU-only traces)."""
        return (COMPUTE, COMM, HOST) if self.engines.host_as_compute else (COMPUTE, COMM)

    @property
    def duration(self) -> int:
        s, e = self.engines.span
        return max(e - s, 0)

    @cached_property
    def window_edges(self) -> np.ndarray:
        s, e = self.engines.span
        return np.linspace(s, max(e, s + 1), self.windows + 1).astype(np.int64)

    # ---------------------------------------------- the names analyzers use
    n = _via("cols", "n")
    track = _via("cols", "track")
    ts = _via("cols", "ts")
    dur = _via("cols", "dur")
    end = _via("cols", "end")
    depth = _via("cols", "depth")
    parent = _via("cols", "parent")
    flops = _via("cols", "flops")
    bytes = _via("cols", "bytes")
    has_args = _via("cols", "has_args")
    names_of = _via("cols", "names_of")

    @property
    def name_code(self) -> np.ndarray:
        return self.cols.names[0]

    @property
    def name_words(self) -> list[str | None]:
        return self.cols.names[1]

    @property
    def dtype_code(self) -> np.ndarray:
        return self.cols.dtypes[0]

    @property
    def dtype_words(self) -> list[str | None]:
        return self.cols.dtypes[1]

    roles = _via("engines", "roles")
    engine = _via("engines", "engine")
    track_names = _via("engines", "track_names")
    track_device = _via("engines", "track_device")
    tracks_with_slices = _via("engines", "tracks_with_slices")
    host_as_compute = _via("engines", "host_as_compute")
    engine_ids = _via("engines", "engine_ids")
    rows_of_engine = _via("engines", "rows_of_engine")
    span = _via("engines", "span")
    busy = _via("busy_sets", "busy")
    stalled = _via("busy_sets", "stalled")
    union_busy = _via("busy_sets", "union_busy")
    slice_device = _via("units", "slice_device")
    devices = _via("units", "devices")
    class_set = _via("units", "class_set")
    counted_flops = _via("coverage", "counted_flops")
    counted_bytes = _via("coverage", "counted_bytes")
    counted = _via("coverage", "counted")
    arg_values = _via("args", "arg_values")
    arg_codes = _via("args", "arg_codes")
    arg_array = _via("args", "arg_array")
    default_dtype = _via("ceilings", "default_dtype")
    peak_for = _via("ceilings", "peak_for")
    dtype_of_codes = _via("ceilings", "dtype_of_codes")
    track_share = _via("ceilings", "track_share")
    peaks_for_rows = _via("ceilings", "peaks_for_rows")
