"""Engines (a track with its overlap lanes) and the time each one is busy or stalled.

Slices are sorted by track, so an engine's slices are a few contiguous row ranges; busy sets are
unions of top-level slices, cached per engine because several analyzers ask for the same ones.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from analysis import intervals as iv
from analysis.context.columns import SliceColumns
from analysis.roles import engine_of, infer_roles
from profiler.model import Trace


class Engines:
    """Track roles, engine ids and the rows of each engine."""

    def __init__(self, trace: Trace, cols: SliceColumns) -> None:
        self.trace = trace
        self.cols = cols

    # ---------------------------------------------------------------- tracks
    @cached_property
    def roles(self) -> np.ndarray:
        """Role per track id (object array of strings)."""
        return infer_roles(self.trace)

    @cached_property
    def engine(self) -> np.ndarray:
        """Track id -> engine id (lanes folded into their origin track)."""
        return engine_of(self.trace)

    @cached_property
    def track_names(self) -> dict[int, str]:
        """Track id -> "group / sub / track" path label."""
        return {int(t): " / ".join(self.trace.track_path(int(t))) for t in self.trace.tracks["id"].to_pylist()}

    @cached_property
    def track_device(self) -> dict[int, str | None]:
        return dict(zip(self.trace.tracks["id"].to_pylist(), self.trace.tracks["device"].to_pylist(), strict=True))

    @cached_property
    def track_bounds(self) -> np.ndarray:
        """Slices are sorted by track: bounds[t]..bounds[t+1] are track t's rows."""
        return np.searchsorted(self.cols.track, np.arange(len(self.roles) + 1))

    @cached_property
    def tracks_with_slices(self) -> np.ndarray:
        """Track ids holding at least one slice."""
        return np.flatnonzero(np.diff(self.track_bounds) > 0)

    @cached_property
    def host_as_compute(self) -> bool:
        """True when no compute engine holds slices: a CPU-only trace, whose host threads do the work."""
        if self.cols.n == 0:
            return False
        roles = self.roles[self.engine[self.tracks_with_slices]]
        return not bool((roles == "compute").any())

    @cached_property
    def engine_ids(self) -> dict[str, list[int]]:
        """Engines holding slices, by role: {"compute": [...], "dma": [...], "host": [...]}."""
        out: dict[str, list[int]] = {"compute": [], "dma": [], "host": []}
        if self.cols.n == 0:
            return out
        for e in np.unique(self.engine[self.tracks_with_slices]).tolist():
            r = self.roles[e]
            if r == "host" and self.host_as_compute:
                out["compute"].append(e)
            elif r in out:
                out[r].append(e)
        return out

    # ------------------------------------------------------------------ rows
    def rows_of_engine(self, engine: int) -> np.ndarray:
        """Row indices of every slice on an engine (its track and its lanes)."""
        b = self.track_bounds
        parts = [np.arange(b[t], b[t + 1]) for t in np.flatnonzero(self.engine == engine) if b[t + 1] > b[t]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def engine_rows(self, engine: int) -> slice | np.ndarray:
        """A row slice when the engine is one track (no copy), else the row indices."""
        tracks = np.flatnonzero(self.engine == engine)
        if tracks.size == 1:
            t = int(tracks[0])
            return slice(int(self.track_bounds[t]), int(self.track_bounds[t + 1]))
        return self.rows_of_engine(engine)

    @cached_property
    def span(self) -> tuple[int, int]:
        """(start, end) of the run: the extent of the engines' slices.

        Host activity before the first kernel (profiler warm-up, data loading) is not device
        time, so it does not dilute utilization; traces without engines use all slices.
        """
        c = self.cols
        if c.n == 0:
            return self.trace.time_span()
        eng = self.engine_ids["compute"] + self.engine_ids["dma"]
        if eng:
            b = self.track_bounds
            parts = [(int(b[t]), int(b[t + 1])) for t in np.flatnonzero(np.isin(self.engine, eng)) if b[t + 1] > b[t]]
            if parts:
                return (min(int(c.ts[i:j].min()) for i, j in parts), max(int(c.end[i:j].max()) for i, j in parts))
        return int(c.ts.min()), int(c.end.max())


class BusySets:
    """Per-engine busy and stall interval sets (stall slices are never busy time)."""

    def __init__(self, engines: Engines, is_stall: np.ndarray) -> None:
        self.engines = engines
        self.cols = engines.cols
        self.is_stall = is_stall
        self._busy: dict[int, iv.Intervals] = {}

    def busy(self, engine: int) -> iv.Intervals:
        """Busy set of an engine: union of its top-level slices, stall slices excluded."""
        if engine not in self._busy:
            c = self.cols
            rows = self.engines.engine_rows(engine)
            m = (c.depth[rows] == 0) & ~self.is_stall[rows]
            s, e = c.ts[rows][m], c.end[rows][m]
            # One track: depth-0 slices are already sorted and disjoint (a model invariant).
            self._busy[engine] = (s, e) if isinstance(rows, slice) else iv.merge(s, e)
        return self._busy[engine]

    def stalled(self, engine: int) -> iv.Intervals:
        """Explicit stall slices of an engine, as a disjoint set."""
        rows = self.engines.engine_rows(engine)
        m = self.is_stall[rows]
        return iv.merge(self.cols.ts[rows][m], self.cols.end[rows][m])

    def union_busy(self, engines: list[int]) -> iv.Intervals:
        """Time at least one of ``engines`` is busy."""
        if not engines:
            return iv.merge(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(engines) == 1:
            return self.busy(engines[0])
        sets = [self.busy(e) for e in engines]
        return iv.merge(np.concatenate([s[0] for s in sets]), np.concatenate([s[1] for s in sets]))
