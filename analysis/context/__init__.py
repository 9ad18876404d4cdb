"""AnalysisContext: a trace decoded once into numpy columns that every analyzer shares.

Running eight analyzers over ten million slices must not decode the Arrow tables eight times, so
the context converts each column on first use (``cached_property``) and keeps derived facts
(roles, per-slice class, per-engine busy sets) for the next analyzer.  Strings stay dictionary
codes: a name test is a lookup in the (small) dictionary followed by one fancy-index.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis import intervals as iv
from analysis.roles import engine_of, infer_roles, is_dma_slice_name
from profiler.errors import SpecError
from profiler.hardware import HardwareSpec, canonical_dtype
from profiler.model import Trace

#: Per-slice classes (int8 codes in :attr:`AnalysisContext.slice_class`).
COMPUTE, DMA, COMM, STALL, HOST, OTHER = range(6)
CLASS_NAMES = ("compute", "dma", "comm", "stall", "host", "other")

_STALL_CAT = {"stall", "wait", "idle"}
_COMM = re.compile(r"nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast|sendrecv|c10d", re.I)


def _dict_column(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """(codes with -1 for null, dictionary words) of a dictionary-encoded column."""
    arr = col.unify_dictionaries().combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    words = arr.dictionary.to_pylist()
    idx = arr.indices
    codes = (pc.fill_null(idx, -1) if idx.null_count else idx).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return codes, words


def _float_column(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return arr.to_numpy(zero_copy_only=False)  # nulls become NaN


class AnalysisContext:
    """A trace plus the hardware spec to judge it against, with shared decoded columns."""

    def __init__(self, trace: Trace, spec: HardwareSpec | None = None, windows: int = 20,
                 options: dict[str, Any] | None = None) -> None:
        self.trace = trace
        self.spec = spec
        self.windows = windows
        self.options = dict(options or {})

    # ---------------------------------------------------------------- columns
    @cached_property
    def n(self) -> int:
        return int(self.trace.slices.num_rows)

    def _np(self, name: str) -> np.ndarray:
        col = self.trace.slices[name]
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        return arr.to_numpy(zero_copy_only=False)

    @cached_property
    def track(self) -> np.ndarray:
        return self._np("track")

    @cached_property
    def ts(self) -> np.ndarray:
        return self._np("ts")

    @cached_property
    def dur(self) -> np.ndarray:
        return self._np("dur")

    @cached_property
    def end(self) -> np.ndarray:
        return self.ts + self.dur

    @cached_property
    def depth(self) -> np.ndarray:
        return self._np("depth")

    @cached_property
    def flops(self) -> np.ndarray:
        return _float_column(self.trace.slices["flops"])

    @cached_property
    def bytes(self) -> np.ndarray:
        return _float_column(self.trace.slices["bytes"])

    @cached_property
    def _names(self) -> tuple[np.ndarray, list[str | None]]:
        return _dict_column(self.trace.slices["name"])

    @property
    def name_code(self) -> np.ndarray:
        return self._names[0]

    @property
    def name_words(self) -> list[str | None]:
        return self._names[1]

    @cached_property
    def _categories(self) -> tuple[np.ndarray, list[str | None]]:
        return _dict_column(self.trace.slices["category"])

    @cached_property
    def _dtypes(self) -> tuple[np.ndarray, list[str | None]]:
        return _dict_column(self.trace.slices["dtype"])

    @property
    def dtype_code(self) -> np.ndarray:
        return self._dtypes[0]

    @property
    def dtype_words(self) -> list[str | None]:
        return self._dtypes[1]

    def names_of(self, codes: np.ndarray) -> np.ndarray:
        words = np.array([w if w is not None else "" for w in self.name_words] + [""], dtype=object)
        return words[np.asarray(codes)]

    # ----------------------------------------------------------------- tracks
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
        out: dict[int, str] = {}
        ids = self.trace.tracks["id"].to_pylist()
        for tid in ids:
            out[int(tid)] = " / ".join(self.trace.track_path(int(tid)))
        return out

    @cached_property
    def track_device(self) -> dict[int, str | None]:
        return dict(zip(self.trace.tracks["id"].to_pylist(), self.trace.tracks["device"].to_pylist(), strict=True))

    @cached_property
    def slice_class(self) -> np.ndarray:
        """Class of every slice (COMPUTE, DMA, COMM, STALL, HOST, OTHER), from its track's role,
        its category and its name."""
        if self.n == 0:
            return np.zeros(0, dtype=np.int8)
        role_code = {"compute": COMPUTE, "dma": DMA, "host": HOST}
        track_cls = np.array([role_code.get(r, OTHER) for r in self.roles], dtype=np.int8)
        cls = track_cls[self.track]
        cat_codes, cat_words = self._categories
        stall_cat = np.array([(w or "").lower() in _STALL_CAT for w in cat_words] + [False], dtype=bool)
        dma_cat = np.append(is_dma_slice_name(cat_words), False)
        name_codes, name_words = self._names
        dma_name = np.append(is_dma_slice_name(name_words), False)
        comm_name = np.array([bool(w and _COMM.search(w)) for w in name_words] + [False], dtype=bool)
        stall_name = np.array([(w or "").lower() in ("stall", "wait") for w in name_words] + [False], dtype=bool)
        on_engine = (cls == COMPUTE) | (cls == DMA)
        is_dma = on_engine & (dma_cat[cat_codes] | dma_name[name_codes])
        cls = np.where(is_dma, DMA, cls).astype(np.int8)
        comm = (cls == COMPUTE) & comm_name[name_codes]
        cls[comm] = COMM
        stall = stall_cat[cat_codes] | stall_name[name_codes]
        cls[stall] = STALL
        return cls

    @cached_property
    def is_stall(self) -> np.ndarray:
        return self.slice_class == STALL

    @cached_property
    def host_as_compute(self) -> bool:
        """True when no compute engine holds slices: a CPU-only trace, whose host threads do the work."""
        if self.n == 0:
            return False
        roles = self.roles[self.engine[self.tracks_with_slices]]
        return not bool((roles == "compute").any())

    @cached_property
    def engine_ids(self) -> dict[str, list[int]]:
        """Engines holding slices, by role: {"compute": [...], "dma": [...], "host": [...]}."""
        if self.n == 0:
            return {"compute": [], "dma": [], "host": []}
        used = np.unique(self.engine[self.tracks_with_slices])
        out: dict[str, list[int]] = {"compute": [], "dma": [], "host": []}
        for e in used.tolist():
            r = self.roles[e]
            if r == "host" and self.host_as_compute:
                out["compute"].append(e)
            elif r in out:
                out[r].append(e)
        return out

    # -------------------------------------------------------------- intervals
    @cached_property
    def transfer_rows(self) -> np.ndarray:
        """Rows of top-level memory transfers (DMA-class slices), in row order."""
        return np.flatnonzero((self.slice_class == DMA) & (self.depth == 0))

    @cached_property
    def tracks_with_slices(self) -> np.ndarray:
        """Track ids holding at least one slice."""
        return np.flatnonzero(np.diff(self._track_bounds) > 0)

    def class_mask(self, classes: tuple[int, ...]) -> np.ndarray:
        """Slices of the given classes (a lookup table, much cheaper than np.isin on millions)."""
        lut = np.zeros(len(CLASS_NAMES), dtype=bool)
        lut[list(classes)] = True
        return lut[self.slice_class]

    @cached_property
    def _track_bounds(self) -> np.ndarray:
        """Slices are sorted by track: bounds[t]..bounds[t+1] are track t's rows."""
        size = len(self.roles)
        return np.searchsorted(self.track, np.arange(size + 1))

    def rows_of_engine(self, engine: int) -> np.ndarray:
        """Row indices of every slice on an engine (its track and its lanes)."""
        tracks = np.flatnonzero(self.engine == engine)
        b = self._track_bounds
        parts = [np.arange(b[t], b[t + 1]) for t in tracks if b[t + 1] > b[t]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _engine_slices(self, engine: int) -> slice | np.ndarray:
        tracks = np.flatnonzero(self.engine == engine)
        b = self._track_bounds
        if tracks.size == 1:
            t = int(tracks[0])
            return slice(int(b[t]), int(b[t + 1]))
        return self.rows_of_engine(engine)

    @cached_property
    def _busy_cache(self) -> dict[int, iv.Intervals]:
        return {}

    def busy(self, engine: int) -> iv.Intervals:
        """Busy set of an engine: union of its top-level slices, stall slices excluded."""
        cache = self._busy_cache
        if engine not in cache:
            rows = self._engine_slices(engine)
            d = self.depth[rows]
            st = self.is_stall[rows]
            m = (d == 0) & ~st
            s = self.ts[rows][m]
            e = self.end[rows][m]
            if isinstance(rows, slice):
                cache[engine] = (s, e)  # one track: depth-0 slices are already sorted and disjoint
            else:
                cache[engine] = iv.merge(s, e)
        return cache[engine]

    def stalled(self, engine: int) -> iv.Intervals:
        """Explicit stall slices of an engine, as a disjoint set."""
        rows = self._engine_slices(engine)
        m = self.is_stall[rows]
        return iv.merge(self.ts[rows][m], self.end[rows][m])

    def union_busy(self, engines: list[int]) -> iv.Intervals:
        if not engines:
            return iv.merge(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(engines) == 1:
            return self.busy(engines[0])
        sets = [self.busy(e) for e in engines]
        return iv.merge(np.concatenate([s[0] for s in sets]), np.concatenate([s[1] for s in sets]))

    @cached_property
    def span(self) -> tuple[int, int]:
        """(start, end) of the run: the extent of the engines' slices.

        Host activity before the first kernel (profiler warm-up, data loading) is not device
        time, so it does not dilute utilization; traces without engines use all slices.
        """
        if self.n == 0:
            return self.trace.time_span()
        eng = self.engine_ids["compute"] + self.engine_ids["dma"]
        if eng:
            b = self._track_bounds
            parts = [(int(b[t]), int(b[t + 1])) for t in np.flatnonzero(np.isin(self.engine, eng)) if b[t + 1] > b[t]]
            if parts:
                lo = min(int(self.ts[i:j].min()) for i, j in parts)
                hi = max(int(self.end[i:j].max()) for i, j in parts)
                return lo, hi
        return int(self.ts.min()), int(self.end.max())

    @property
    def duration(self) -> int:
        s, e = self.span
        return max(e - s, 0)

    @cached_property
    def window_edges(self) -> np.ndarray:
        s, e = self.span
        return np.linspace(s, max(e, s + 1), self.windows + 1).astype(np.int64)

    # ---------------------------------------------------------------- flops
    @cached_property
    def parent(self) -> np.ndarray:
        """Row of each slice's enclosing slice (-1 at depth 0).

        Rows are in canonical order (track, ts, longest first), so a slice's parent is the last
        slice one level up before it; one vectorized pass per nesting level.
        """
        n = self.n
        par = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return par
        idx = np.arange(n, dtype=np.int64)
        for d in range(1, int(self.depth.max()) + 1):
            at = self.depth == d
            if not at.any():
                continue
            last = np.maximum.accumulate(np.where(self.depth == d - 1, idx, -1))
            par[at] = last[at]
        return par

    def _covered(self, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(some ancestor has it, some descendant has it) for a per-slice flag."""
        anc = np.zeros(self.n, dtype=bool)
        desc = np.zeros(self.n, dtype=bool)
        if self.n == 0 or int(self.depth.max()) == 0:
            return anc, desc
        par = self.parent
        maxd = int(self.depth.max())
        for d in range(1, maxd + 1):
            at = np.flatnonzero(self.depth == d)
            p = par[at]
            anc[at] = anc[p] | has[p]
        for d in range(maxd, 0, -1):
            at = np.flatnonzero(self.depth == d)
            flag = has[at] | desc[at]
            desc[par[at[flag]]] = True
        return anc, desc

    @cached_property
    def _flop_cover(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        has = ~np.isnan(self.flops) & ~self.is_stall
        anc, desc = self._covered(has)
        return has, anc, desc

    @cached_property
    def counted_flops(self) -> np.ndarray:
        """Slices whose flops count toward totals: no enclosing slice already carries flops, so a
        framework op and the kernel inside it are never counted twice."""
        has, anc, _ = self._flop_cover
        return has & ~anc

    @cached_property
    def counted_bytes(self) -> np.ndarray:
        """Slices whose bytes count toward totals (outermost slices carrying bytes)."""
        has = ~np.isnan(self.bytes) & ~self.is_stall
        anc, _ = self._covered(has)
        return has & ~anc

    @cached_property
    def counted(self) -> np.ndarray:
        """Roofline points: outermost slices with flops, plus slices with bytes but no flops
        anywhere above or below them (pure data movement ops)."""
        has_f, anc_f, desc_f = self._flop_cover
        has_b = ~np.isnan(self.bytes) & ~self.is_stall
        return (has_f & ~anc_f) | (has_b & ~has_f & ~anc_f & ~desc_f & self.counted_bytes)

    def dtype_of_codes(self) -> list[str]:
        """Canonical dtype per dtype dictionary code, defaulted when the slice says none."""
        return [canonical_dtype(w) if w else self.default_dtype for w in self.dtype_words]

    @cached_property
    def default_dtype(self) -> str:
        """The dtype assumed for slices that do not say (bf16 when the spec has it, else its fastest)."""
        if self.spec is None:
            return "bf16"
        if self.spec.supports("bf16"):
            return "bf16"
        return max(self.spec.peak_flops, key=lambda d: self.spec.peak_flops[d])  # type: ignore[union-attr]

    def peak_for(self, dtype: str) -> float | None:
        """Peak FLOP/s for a dtype, falling back to the default dtype's peak when unsupported."""
        if self.spec is None:
            return None
        try:
            return self.spec.peak(dtype)
        except SpecError:
            return self.spec.peak(self.default_dtype)

    # ------------------------------------------------------------------ args
    @cached_property
    def has_args(self) -> np.ndarray:
        """Which slices have an args object (most slices of big traces have none)."""
        col = self.trace.slices["args"]
        if col.null_count == 0:
            return np.ones(self.n, dtype=bool)
        return pc.is_valid(col).to_numpy(zero_copy_only=False)

    def _arg_array(self, rows: np.ndarray, key: str) -> pa.Array:
        has = self.has_args[rows]
        if not has.all():
            # Regex only where there is text; the other rows are "" without touching strings.
            sub = rows[has]
            if sub.size == 0:
                return pc.fill_null(pa.nulls(rows.size, pa.string()), "")
            pos = np.full(rows.size, -1, dtype=np.int64)
            pos[has] = np.arange(sub.size)
            return pc.fill_null(self._arg_array(sub, key).take(pa.array(pos, mask=pos < 0)), "")
        col = self.trace.slices["args"].take(pa.array(rows))
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        pat = rf'"{re.escape(key)}"\s*:\s*(?:"(?P<s>(?:[^"\\]|\\.)*)"|(?P<n>[-0-9.eE+]+|true|false|\[[^\]]*\]))'
        ex = pc.extract_regex(col, pat)
        s = pc.struct_field(ex, "s")
        nn = pc.struct_field(ex, "n")
        return pc.fill_null(pc.if_else(pc.greater(pc.utf8_length(pc.fill_null(s, "")), 0), s, nn), "")

    def arg_values(self, rows: np.ndarray, key: str) -> np.ndarray:
        """Value of ``key`` in the JSON args of the given rows (strings; "" when absent).

        A regex over the raw JSON text, vectorized in Arrow: parsing every args object in Python
        would dominate the run time on big traces.
        """
        if rows.size == 0:
            return np.zeros(0, dtype=object)
        return np.asarray(self._arg_array(rows, key).to_pylist(), dtype=object)

    def arg_codes(self, rows: np.ndarray, key: str) -> tuple[np.ndarray, list[str]]:
        """Like :meth:`arg_values` but dictionary-encoded: (codes, words), "" for absent."""
        if rows.size == 0:
            return np.zeros(0, dtype=np.int32), []
        enc = self._arg_array(rows, key).dictionary_encode()
        return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), enc.dictionary.to_pylist()

    # ----------------------------------------------------------------- flows
    @cached_property
    def gating_source(self) -> np.ndarray:
        """For every slice, the row of the incoming-flow source that ended last (-1 when none).

        The latest-finishing dependency is the one that decided when the slice could start, so it
        is what a wait before the slice is attributed to.
        """
        out = np.full(self.n, -1, dtype=np.int64)
        f = self.trace.flows
        if f.num_rows == 0 or self.n == 0:
            return out
        fr = f["from_slice"].to_numpy()
        to = f["to_slice"].to_numpy()
        order = np.lexsort((self.end[fr], to))
        fr, to = fr[order], to[order]
        last = np.append(to[1:] != to[:-1], True)
        out[to[last]] = fr[last]
        return out

    # ---------------------------------------------------------- class unions
    @cached_property
    def _units(self) -> tuple[np.ndarray, list[str]]:
        """Unit of every track: the group that holds it (a core, a GPU, a process).

        Compute and DMA engines of one unit feed each other, so overlap and bubbles are measured
        per unit: the engine track's parent, or the track itself at the root.
        """
        size = len(self.roles)
        ids = self.trace.tracks["id"].to_pylist()
        parents = self.trace.tracks["parent"].to_pylist()
        unit_track = np.arange(size, dtype=np.int64)
        for tid, p in zip(ids, parents, strict=True):
            if p is not None and 0 <= tid < size:
                unit_track[tid] = p
        unit_track = unit_track[self.engine] if self.engine.size == size else unit_track
        uniq, code = np.unique(unit_track, return_inverse=True)
        names = [self.track_names.get(int(u), str(u)) for u in uniq]
        return code.astype(np.int32), names

    @cached_property
    def slice_device(self) -> np.ndarray:
        """Unit code of every slice (index into :attr:`devices`)."""
        code, _ = self._units
        return code[self.track] if self.n else np.zeros(0, dtype=np.int32)

    @cached_property
    def devices(self) -> list[str]:
        """Unit names (track paths of the groups that hold engines), by unit code."""
        return self._units[1] or [""]

    @cached_property
    def _class_cache(self) -> dict[tuple[tuple[int, ...], int], iv.Intervals]:
        return {}

    def class_set(self, classes: tuple[int, ...], device: int | None = None) -> iv.Intervals:
        """Union of top-level slices of the given classes (on one device, or all)."""
        key = (classes, -1 if device is None else device)
        if key not in self._class_cache:
            lut = np.zeros(len(CLASS_NAMES), dtype=bool)
            lut[list(classes)] = True
            if device is None or len(self.devices) == 1:
                tracks = np.arange(len(self.roles))
            else:
                tracks = np.flatnonzero(self._units[0] == device)
            b = self._track_bounds
            ss: list[np.ndarray] = []
            ee: list[np.ndarray] = []
            for t in tracks:  # per track: slices of a track are contiguous rows
                i, j = int(b[t]), int(b[t + 1])
                if j > i:
                    m = lut[self.slice_class[i:j]] & (self.depth[i:j] == 0)
                    ss.append(self.ts[i:j][m])
                    ee.append(self.end[i:j][m])
            z = np.zeros(0, dtype=np.int64)
            self._class_cache[key] = iv.merge(np.concatenate(ss) if ss else z, np.concatenate(ee) if ee else z)
        return self._class_cache[key]

    @property
    def work_classes(self) -> tuple[int, ...]:
        """Slice classes that are compute work (host work too on CPU-only traces)."""
        return (COMPUTE, COMM, HOST) if self.host_as_compute else (COMPUTE, COMM)

    # ------------------------------------------------------------- ceilings
    @cached_property
    def track_share(self) -> tuple[np.ndarray, np.ndarray]:
        """(share of the device's peak, is-vector-engine) per track id.

        A spec's peaks are for the whole device.  When the trace shows the device as several
        identical engines side by side (core0/matrix, core1/matrix), each runs at its share of
        the peak, so a per-op rate is judged against ``peak / count``.  A vector engine (attrs
        ``engine = "vector"``) is judged against the spec's ``vector_flops``.
        """
        size = len(self.roles)
        share = np.ones(size)
        vec = np.zeros(size, dtype=bool)
        names = self.trace.tracks["name"].to_pylist()
        ids = self.trace.tracks["id"].to_pylist()
        attrs = self.trace.tracks["attrs"].to_pylist()
        engines = set(self.engine_ids["compute"])
        counts: dict[str, int] = {}
        for tid, nm in zip(ids, names, strict=True):
            if tid in engines:
                counts[nm] = counts.get(nm, 0) + 1
        for tid, nm, at in zip(ids, names, attrs, strict=True):
            if tid in engines and counts.get(nm, 1) > 1:
                share[tid] = 1.0 / counts[nm]
            if at and '"vector"' in at and '"engine"' in at:
                vec[tid] = True
        share = share[self.engine]
        vec = vec[self.engine]
        return share, vec

    def peaks_for_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(peak FLOP/s, memory-roof scale) for each row: the engine's share of the device."""
        share, vec = self.track_share
        tr = self.track[rows]
        words = [*self.dtype_of_codes(), self.default_dtype]
        per_code = np.array([self.peak_for(w) or np.nan for w in words], dtype=float)
        codes = self.dtype_code[rows]
        peak = per_code[np.where(codes < 0, len(words) - 1, codes)]
        if self.spec is not None and self.spec.vector_flops > 0:
            peak = np.where(vec[tr], self.spec.vector_flops, peak)
        return peak * share[tr], share[tr]
