"""The peak each slice is judged against: the spec's peak for its dtype, shared among engines.

A spec's peaks are for the whole device.  When the trace shows the device as several identical
engines side by side (core0/matrix, core1/matrix), each runs at its share of the peak, so a per-op
rate is judged against ``peak / count``.  A vector engine (attrs ``engine = "vector"``) is judged
against the spec's ``vector_flops``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from analysis.context.columns import SliceColumns
from analysis.context.engines import Engines
from profiler.errors import SpecError
from profiler.hardware import HardwareSpec, canonical_dtype


class Ceilings:
    """Peak FLOP/s per dtype and per row for one spec (None: no peaks known)."""

    def __init__(self, spec: HardwareSpec | None, cols: SliceColumns, engines: Engines) -> None:
        self.spec = spec
        self.cols = cols
        self.engines = engines

    @cached_property
    def default_dtype(self) -> str:
        """The dtype assumed for slices that do not say (bf16 when the spec has it, else its fastest)."""
        spec = self.spec
        if spec is None or spec.supports("bf16"):
            return "bf16"
        return max(spec.peak_flops, key=lambda d: spec.peak_flops[d])

    def peak_for(self, dtype: str) -> float | None:
        """Peak FLOP/s for a dtype, falling back to the default dtype's peak when unsupported."""
        if self.spec is None:
            return None
        try:
            return self.spec.peak(dtype)
        except SpecError:
            return self.spec.peak(self.default_dtype)

    def dtype_of_codes(self) -> list[str]:
        """Canonical dtype per dtype dictionary code, defaulted when the slice says none."""
        return [canonical_dtype(w) if w else self.default_dtype for w in self.cols.dtypes[1]]

    @cached_property
    def track_share(self) -> tuple[np.ndarray, np.ndarray]:
        """(share of the device's peak, is-vector-engine) per track id."""
        eng = self.engines
        size = len(eng.roles)
        share = np.ones(size)
        vec = np.zeros(size, dtype=bool)
        tracks = eng.trace.tracks
        names = tracks["name"].to_pylist()
        ids = tracks["id"].to_pylist()
        attrs = tracks["attrs"].to_pylist()
        compute = set(eng.engine_ids["compute"])
        counts: dict[str, int] = {}
        for tid, nm in zip(ids, names, strict=True):
            if tid in compute:
                counts[nm] = counts.get(nm, 0) + 1
        for tid, nm, at in zip(ids, names, attrs, strict=True):
            if tid in compute and counts.get(nm, 1) > 1:
                share[tid] = 1.0 / counts[nm]
            if at and '"vector"' in at and '"engine"' in at:
                vec[tid] = True
        return share[eng.engine], vec[eng.engine]

    def peaks_for_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(peak FLOP/s, memory-roof scale) for each row: the engine's share of the device."""
        share, vec = self.track_share
        tr = self.cols.track[rows]
        words = [*self.dtype_of_codes(), self.default_dtype]
        per_code = np.array([self.peak_for(w) or np.nan for w in words], dtype=float)
        codes = self.cols.dtypes[0][rows]
        peak = per_code[np.where(codes < 0, len(words) - 1, codes)]
        if self.spec is not None and self.spec.vector_flops > 0:
            peak = np.where(vec[tr], self.spec.vector_flops, peak)
        return peak * share[tr], share[tr]
