"""The slice table decoded into numpy columns, each on first use.

Strings stay dictionary codes: a name test is a lookup in the (small) dictionary followed by one
fancy-index, never a pass over millions of Python strings.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from profiler.columns import dict_codes, numpy_column
from profiler.model import Trace


class SliceColumns:
    """Numpy views of ``trace.slices`` (row order = the model's canonical order)."""

    def __init__(self, trace: Trace) -> None:
        self.table: pa.Table = trace.slices
        self._trace = trace

    @cached_property
    def n(self) -> int:
        return int(self.table.num_rows)

    @cached_property
    def track(self) -> np.ndarray:
        return numpy_column(self.table["track"])

    @cached_property
    def ts(self) -> np.ndarray:
        return numpy_column(self.table["ts"])

    @cached_property
    def dur(self) -> np.ndarray:
        return numpy_column(self.table["dur"])

    @cached_property
    def end(self) -> np.ndarray:
        return self.ts + self.dur

    @cached_property
    def depth(self) -> np.ndarray:
        return numpy_column(self.table["depth"])

    @cached_property
    def parent(self) -> np.ndarray:
        """Row of each slice's enclosing slice (-1 at depth 0), as the trace model stores it."""
        return self._trace.slice_parents()

    @cached_property
    def flops(self) -> np.ndarray:
        return numpy_column(self.table["flops"])

    @cached_property
    def bytes(self) -> np.ndarray:
        return numpy_column(self.table["bytes"])

    @cached_property
    def names(self) -> tuple[np.ndarray, list[str | None]]:
        return dict_codes(self.table["name"])

    @cached_property
    def categories(self) -> tuple[np.ndarray, list[str | None]]:
        return dict_codes(self.table["category"])

    @cached_property
    def dtypes(self) -> tuple[np.ndarray, list[str | None]]:
        return dict_codes(self.table["dtype"])

    def names_of(self, codes: np.ndarray) -> np.ndarray:
        """Names for name codes (code -1, a null name, gives "")."""
        words = np.array([w if w is not None else "" for w in self.names[1]] + [""], dtype=object)
        return words[np.asarray(codes)]

    @cached_property
    def has_args(self) -> np.ndarray:
        """Which slices have an args object (most slices of big traces have none)."""
        col = self.table["args"]
        if col.null_count == 0:
            return np.ones(self.n, dtype=bool)
        return pc.is_valid(col).to_numpy(zero_copy_only=False)
