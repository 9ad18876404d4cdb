"""Units (a core, a GPU, a process): the groups whose engines feed each other.

Compute and DMA engines of one unit overlap or wait on each other, so overlap and bubbles are
measured per unit: the engine track's parent group, or the track itself at the root.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from analysis import intervals as iv
from analysis.context.classes import class_lut
from analysis.context.columns import SliceColumns
from analysis.context.engines import Engines


class Units:
    """Unit of every track and slice, and per-unit unions of slice classes."""

    def __init__(self, cols: SliceColumns, engines: Engines, slice_class: np.ndarray) -> None:
        self.cols = cols
        self.engines = engines
        self.slice_class = slice_class
        self._class_sets: dict[tuple[tuple[int, ...], int], iv.Intervals] = {}

    @cached_property
    def track_unit(self) -> tuple[np.ndarray, list[str]]:
        """(unit code per track id, unit names by code)."""
        eng = self.engines
        size = len(eng.roles)
        tracks = eng.trace.tracks
        unit_track = np.arange(size, dtype=np.int64)
        for tid, p in zip(tracks["id"].to_pylist(), tracks["parent"].to_pylist(), strict=True):
            if p is not None and 0 <= tid < size:
                unit_track[tid] = p
        unit_track = unit_track[eng.engine] if eng.engine.size == size else unit_track
        uniq, code = np.unique(unit_track, return_inverse=True)
        names = [eng.track_names.get(int(u), str(u)) for u in uniq]
        return code.astype(np.int32), names

    @cached_property
    def slice_device(self) -> np.ndarray:
        """Unit code of every slice (index into :attr:`devices`)."""
        code, _ = self.track_unit
        return code[self.cols.track] if self.cols.n else np.zeros(0, dtype=np.int32)

    @cached_property
    def devices(self) -> list[str]:
        """Unit names (track paths of the groups that hold engines), by unit code."""
        return self.track_unit[1] or [""]

    def class_set(self, classes: tuple[int, ...], device: int | None = None) -> iv.Intervals:
        """Union of top-level slices of the given classes (on one unit, or all)."""
        key = (classes, -1 if device is None else device)
        if key not in self._class_sets:
            lut = class_lut(classes)
            c = self.cols
            if device is None or len(self.devices) == 1:
                tracks = np.arange(len(self.engines.roles))
            else:
                tracks = np.flatnonzero(self.track_unit[0] == device)
            b = self.engines.track_bounds
            ss: list[np.ndarray] = []
            ee: list[np.ndarray] = []
            for t in tracks:  # per track: slices of a track are contiguous rows
                i, j = int(b[t]), int(b[t + 1])
                if j > i:
                    m = lut[self.slice_class[i:j]] & (c.depth[i:j] == 0)
                    ss.append(c.ts[i:j][m])
                    ee.append(c.end[i:j][m])
            z = np.zeros(0, dtype=np.int64)
            self._class_sets[key] = iv.merge(np.concatenate(ss) if ss else z, np.concatenate(ee) if ee else z)
        return self._class_sets[key]
