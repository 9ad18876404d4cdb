"""TraceBuilder: the one way traces get made.

Importers, collectors and the simulator add tracks and events, one at a time (convenient) or as
whole columns (fast: numpy arrays or Arrow arrays, no per-event Python objects), then call
:meth:`TraceBuilder.build`, which

* drops events with impossible values (negative or NaN durations, unknown tracks) and counts
  them by reason in the import statistics,
* sorts slices canonically and computes nesting depth (vectorized, :mod:`profiler.nesting`),
* clamps children that overhang their parent by at most ``clamp_tolerance_ns`` (rounding in
  exported timestamps) and moves slices that truly overlap without nesting to a sibling "lane"
  track, so every track is a stack as Perfetto and chrome://tracing require,
* remaps flow endpoints from builder ids to final slice ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from profiler.model import ImportStats, Trace, TraceMetadata, args_json
from profiler.nesting import nest
from profiler.schema import DICT_STRING, TABLE_SCHEMAS, TRACK_KINDS

ColumnLike: TypeAlias = Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray

#: Children ending this little after their parent are clamped rather than moved to a lane.
DEFAULT_CLAMP_TOLERANCE_NS = 1_000


def _as_dict_array(values: ColumnLike, n: int) -> pa.Array:
    """Turn names/categories/dtypes into a dictionary array (None -> null)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values
    elif isinstance(values, str) or values is None:
        arr = pa.array([values] * n, type=pa.string()) if n else pa.array([], type=pa.string())
    else:
        arr = pa.array(values, type=pa.string()) if not isinstance(values, np.ndarray) or values.dtype == object else pa.array(values.astype(str))
    if pa.types.is_dictionary(arr.type):
        if arr.type != DICT_STRING:
            arr = arr.cast(DICT_STRING)
        if len(pc.unique(arr.dictionary)) != len(arr.dictionary):
            # Duplicate dictionary entries break pandas (categories must be unique): re-encode.
            arr = arr.cast(pa.string()).dictionary_encode().cast(DICT_STRING)
        return arr
    return arr.cast(pa.string()).dictionary_encode().cast(DICT_STRING)


def _as_string_array(values: ColumnLike | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, type=pa.string())
    if isinstance(values, str):
        return pa.array([values] * n, type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.string())
    return pa.array(values, type=pa.string())


def _as_float_array(values: ColumnLike | None, n: int) -> pa.Array:
    """Floats with NaN meaning unknown -> nulls."""
    if values is None:
        return pa.nulls(n, type=pa.float64())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.float64())
    arr = np.asarray(values, dtype=np.float64)
    return pa.array(arr, mask=np.isnan(arr))


def _durations(values: list[Any]) -> np.ndarray:
    """Row-wise durations as int64, or float64 when some are NaN/inf (build() drops and counts those)."""
    try:
        return np.asarray(values, dtype=np.int64)
    except (ValueError, OverflowError):
        return np.asarray(values, dtype=np.float64)


class TraceBuilder:
    """Accumulates tracks and events; :meth:`build` returns a validated :class:`Trace`."""

    def __init__(
        self,
        source_format: str = "unknown",
        source: str | None = None,
        clock: str = "unknown",
        hardware: str | None = None,
        stats: ImportStats | None = None,
        clamp_tolerance_ns: int = DEFAULT_CLAMP_TOLERANCE_NS,
    ) -> None:
        self.metadata = TraceMetadata(
            source_format=source_format, source=source, clock=clock, hardware=hardware,
            import_stats=stats or ImportStats(),
        )
        self.clamp_tolerance_ns = clamp_tolerance_ns
        self._tracks: list[dict[str, Any]] = []
        self._child_count: dict[int | None, int] = {}
        # Row-wise slices are buffered in lists and turned into one chunk when needed.
        self._rows: dict[str, list[Any]] = {k: [] for k in ("track", "ts", "dur", "name", "category", "flops", "bytes", "dtype", "args")}
        self._slice_chunks: list[dict[str, Any]] = []
        self._n_slices = 0
        self._counter_chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._counter_rows: tuple[list[int], list[int], list[float]] = ([], [], [])
        self._instant_rows: dict[str, list[Any]] = {k: [] for k in ("track", "ts", "name", "category", "args")}
        self._flow_rows: tuple[list[int], list[int], list[int], list[str | None]] = ([], [], [], [])
        self._flow_chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array | None]] = []

    @property
    def stats(self) -> ImportStats:
        return self.metadata.import_stats

    # ---------------------------------------------------------------- tracks
    def add_track(
        self,
        name: str,
        kind: str = "other",
        parent: int | None = None,
        device: str | None = None,
        attrs: dict[str, Any] | None = None,
        sort_index: int | None = None,
    ) -> int:
        """Add a track and return its id.  Siblings keep insertion order unless sort_index says otherwise."""
        if kind not in TRACK_KINDS:
            raise ValueError(f"track kind {kind!r} is not one of {', '.join(TRACK_KINDS)}")
        if parent is not None and not (0 <= parent < len(self._tracks)):
            raise ValueError(f"parent track {parent} does not exist")
        tid = len(self._tracks)
        k = self._child_count.get(parent, 0)
        self._child_count[parent] = k + 1
        if device is None and parent is not None:
            device = self._tracks[parent]["device"]
        self._tracks.append(
            {
                "id": tid,
                "parent": parent,
                "name": str(name),
                "kind": kind,
                "device": device,
                "sort_index": k if sort_index is None else int(sort_index),
                "attrs": json.dumps(attrs, sort_keys=True, default=str) if attrs else None,
            }
        )
        return tid

    def track_rows(self) -> list[dict[str, Any]]:
        """A copy of the tracks added so far, for :meth:`start_tracks` of another builder."""
        return [dict(t) for t in self._tracks]

    def start_tracks(self, rows: list[dict[str, Any]]) -> None:
        """Begin an empty builder with another builder's :meth:`track_rows` (same ids).

        A producer that emits the same track tree for every trace (the simulator's device
        layout on one machine) builds it once instead of re-adding a thousand tracks each time.
        """
        if self._tracks:
            raise ValueError("start_tracks needs a builder with no tracks yet")
        self._tracks = [dict(t) for t in rows]
        counts: dict[int | None, int] = {}
        for t in self._tracks:
            counts[t["parent"]] = counts.get(t["parent"], 0) + 1
        self._child_count = counts

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    def track_info(self, track_id: int) -> dict[str, Any]:
        return dict(self._tracks[track_id])

    # ---------------------------------------------------------------- slices
    def add_slice(
        self,
        track: int,
        ts: int,
        dur: int,
        name: str,
        category: str | None = None,
        flops: float | None = None,
        bytes: float | None = None,  # noqa: A002 - the column's name
        dtype: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> int:
        """Add one slice; returns a builder id usable in :meth:`add_flow`."""
        r = self._rows
        r["track"].append(track)
        r["ts"].append(ts)
        r["dur"].append(dur)
        r["name"].append(name)
        r["category"].append(category)
        r["flops"].append(np.nan if flops is None else flops)
        r["bytes"].append(np.nan if bytes is None else bytes)
        r["dtype"].append(dtype)
        r["args"].append(args_json(args) if isinstance(args, dict) else args)
        sid = self._n_slices
        self._n_slices += 1
        return sid

    def _flush_rows(self) -> None:
        r = self._rows
        if not r["ts"]:
            return
        self._slice_chunks.append(
            {
                "track": np.asarray(r["track"], dtype=np.int64),
                "ts": np.asarray(r["ts"], dtype=np.int64),
                "dur": _durations(r["dur"]),
                "name": r["name"],
                "category": r["category"],
                "flops": np.asarray(r["flops"], dtype=np.float64),
                "bytes": np.asarray(r["bytes"], dtype=np.float64),
                "dtype": r["dtype"],
                "args": r["args"],
            }
        )
        self._rows = {k: [] for k in r}

    def add_slices(
        self,
        track: ColumnLike | int,
        ts: ColumnLike,
        dur: ColumnLike,
        name: ColumnLike | str,
        category: ColumnLike | str | None = None,
        flops: ColumnLike | None = None,
        bytes: ColumnLike | None = None,  # noqa: A002
        dtype: ColumnLike | str | None = None,
        args: ColumnLike | None = None,
    ) -> np.ndarray:
        """Add many slices as columns; returns their builder ids (int64 array)."""
        self._flush_rows()
        ts_a = np.asarray(ts, dtype=np.int64)
        n = ts_a.size
        track_a = np.full(n, track, dtype=np.int64) if np.isscalar(track) else np.asarray(track, dtype=np.int64)
        self._slice_chunks.append(
            {
                "track": track_a,
                "ts": ts_a,
                "dur": np.asarray(dur, dtype=np.int64) if not isinstance(dur, np.ndarray) or dur.dtype.kind != "f" else dur,
                "name": name,
                "category": category,
                "flops": flops,
                "bytes": bytes,
                "dtype": dtype,
                "args": args,
            }
        )
        ids = np.arange(self._n_slices, self._n_slices + n, dtype=np.int64)
        self._n_slices += n
        return ids

    # -------------------------------------------------------------- counters
    def add_counter(self, track: int, ts: int, value: float) -> None:
        self._counter_rows[0].append(track)
        self._counter_rows[1].append(ts)
        self._counter_rows[2].append(value)

    def add_counters(self, track: ColumnLike | int, ts: ColumnLike, value: ColumnLike) -> None:
        ts_a = np.asarray(ts, dtype=np.int64)
        tr = np.full(ts_a.size, track, dtype=np.int64) if np.isscalar(track) else np.asarray(track, dtype=np.int64)
        self._counter_chunks.append((tr, ts_a, np.asarray(value, dtype=np.float64)))

    # -------------------------------------------------------------- instants
    def add_instant(
        self, track: int, ts: int, name: str, category: str | None = None, args: dict[str, Any] | None = None
    ) -> None:
        r = self._instant_rows
        r["track"].append(track)
        r["ts"].append(ts)
        r["name"].append(name)
        r["category"].append(category)
        r["args"].append(args_json(args) if isinstance(args, dict) else args)

    # ----------------------------------------------------------------- flows
    def add_flow(self, from_slice: int, to_slice: int, name: str | None = None, flow_id: int | None = None) -> None:
        """Link two slices by their builder ids (what add_slice/add_slices returned)."""
        fid = flow_id if flow_id is not None else len(self._flow_rows[0]) + sum(len(c[0]) for c in self._flow_chunks)
        self._flow_rows[0].append(fid)
        self._flow_rows[1].append(from_slice)
        self._flow_rows[2].append(to_slice)
        self._flow_rows[3].append(name)

    def add_flows(self, from_slice: ColumnLike, to_slice: ColumnLike, name: ColumnLike | None = None,
                  flow_id: ColumnLike | None = None) -> None:
        fr = np.asarray(from_slice, dtype=np.int64)
        to = np.asarray(to_slice, dtype=np.int64)
        if flow_id is None:
            base = len(self._flow_rows[0]) + sum(len(c[0]) for c in self._flow_chunks)
            fid = np.arange(base, base + fr.size, dtype=np.int64)
        else:
            fid = np.asarray(flow_id, dtype=np.int64)
        names = None if name is None else _as_string_array(name, fr.size)
        self._flow_chunks.append((fid, fr, to, names))

    # ----------------------------------------------------------------- build
    def _tracks_table(self) -> pa.Table:
        cols = {k: [t[k] for t in self._tracks] for k in TABLE_SCHEMAS["tracks"].names}
        return pa.table(cols, schema=TABLE_SCHEMAS["tracks"])

    def _slices_columns(self) -> dict[str, Any]:
        self._flush_rows()
        chunks = self._slice_chunks
        if not chunks:
            return {}
        out: dict[str, Any] = {}
        for col in ("track", "ts", "dur"):
            out[col] = np.concatenate([np.asarray(c[col]) for c in chunks]) if len(chunks) > 1 else np.asarray(chunks[0][col])
        for col in ("name", "category", "dtype"):
            arrs = [_as_dict_array(c[col], len(c["ts"])) for c in chunks]
            out[col] = pa.chunked_array(arrs, type=DICT_STRING).unify_dictionaries().combine_chunks() if len(arrs) > 1 else arrs[0]
        for col in ("flops", "bytes"):
            arrs = [_as_float_array(c[col], len(c["ts"])) for c in chunks]
            out[col] = pa.concat_arrays(arrs) if len(arrs) > 1 else arrs[0]
        arrs = [_as_string_array(c["args"], len(c["ts"])) for c in chunks]
        out["args"] = pa.concat_arrays(arrs) if len(arrs) > 1 else arrs[0]
        return out

    def build(self, validate: bool = True) -> Trace:
        stats = self.stats
        cols = self._slices_columns()
        n_tracks = len(self._tracks)
        new_ids = np.zeros(0, dtype=np.int64)
        if cols:
            track = cols["track"]
            ts = cols["ts"]
            dur = cols["dur"]
            n_in = ts.size
            if dur.dtype.kind == "f":
                bad_nan = ~np.isfinite(dur)
                stats.drop("slice_duration_not_a_number", int(bad_nan.sum()))
                dur = np.where(bad_nan, -1, dur).astype(np.int64)
            else:
                bad_nan = np.zeros(n_in, dtype=bool)
            keep = ~bad_nan
            neg = (dur < 0) & keep
            stats.drop("slice_negative_duration", int(neg.sum()))
            keep &= ~neg
            # ts + dur must fit int64 (every consumer computes the end); the test itself cannot overflow.
            past_end = keep & (ts > 0) & (dur > np.iinfo(np.int64).max - np.maximum(ts, 0))
            stats.drop("slice_end_out_of_range", int(past_end.sum()))
            keep &= ~past_end
            unknown = (track < 0) | (track >= n_tracks)
            stats.drop("slice_unknown_track", int((unknown & keep).sum()))
            keep &= ~unknown
            kept_idx = np.flatnonzero(keep) if not keep.all() else None
            if kept_idx is not None:
                track, ts, dur = track[kept_idx], ts[kept_idx], dur[kept_idx]
            order_in, depth, parent, track, dur = self._nest_with_lanes(track, ts, dur)
            # builder id -> final row
            src = order_in if kept_idx is None else kept_idx[order_in]
            new_ids = np.full(n_in, -1, dtype=np.int64)
            new_ids[src] = np.arange(src.size, dtype=np.int64)
            # Input already in canonical order (importers that sort first): no copy of the columns.
            same = kept_idx is None and bool((order_in == np.arange(n_in)).all())
            take = None if same else pa.array(src)

            def reorder(col: pa.Array) -> pa.Array:
                return col if take is None else col.take(take)

            dur_final = dur[order_in]
            slices = pa.table(
                {
                    "id": pa.array(np.arange(src.size, dtype=np.int64)),
                    "track": pa.array(track[order_in]),
                    "ts": pa.array(ts[order_in]),
                    "dur": pa.array(dur_final),
                    "name": reorder(cols["name"]),
                    "category": reorder(cols["category"]),
                    "depth": pa.array(depth),
                    "parent": pa.array(parent, mask=parent < 0),
                    "flops": reorder(cols["flops"]),
                    "bytes": reorder(cols["bytes"]),
                    "dtype": reorder(cols["dtype"]),
                    "args": reorder(cols["args"]),
                },
                schema=TABLE_SCHEMAS["slices"],
            )
        else:
            slices = TABLE_SCHEMAS["slices"].empty_table()

        counters = self._counters_table(len(self._tracks))
        instants = self._instants_table(len(self._tracks))
        flows = self._flows_table(new_ids)
        trace = Trace(self._tracks_table(), slices, counters, instants, flows, self.metadata)
        if validate:
            trace.validate()
        return trace

    def _nest_with_lanes(
        self, track: np.ndarray, ts: np.ndarray, dur: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nest; clamp tiny overhangs; move true overlaps to lane tracks until every track is a stack.

        Returns (order, depth, parent, track, dur) where ``track`` and ``dur`` are indexed like the
        input (lanes and clamps applied) and ``order``/``depth``/``parent`` are canonical (a
        parent is a canonical row, which is the final slice id).
        """
        track = track.copy()
        dur_copy = dur.copy()
        lanes: dict[int, int] = {}  # lane track -> the track it relieves
        for round_ in range(128):
            nst = nest(track, ts, dur_copy)
            over = nst.overhang
            if not over.any():
                return nst.order, nst.depth, nst.parent, track, dur_copy
            # Clamp only a child that still starts inside its parent: when the nesting itself is
            # broken (the inferred parent ends before the child starts) the child needs a lane.
            # A clamp settles one level per round, so a long staircase of small overhangs would
            # need as many rounds as it has steps: after 32 rounds overhangs go to lanes only.
            dur_sorted = dur_copy[nst.order]
            fits = dur_sorted - over > 0
            small = (over > 0) & (over <= self.clamp_tolerance_ns) & fits & (round_ < 32)
            if small.any():
                rows = nst.order[small]
                dur_copy[rows] -= over[small]
                self.stats.repair("slice_end_clamped_to_parent", int(small.sum()))
            big = (over > 0) & ~small
            if big.any():
                moved = self._move_to_lanes(nst.order[big], track, ts, dur_copy, lanes)
                self.stats.repair("slice_moved_to_overlap_lane", moved)
        raise ValueError("could not untangle overlapping slices into nested tracks")

    def _move_to_lanes(self, rows: np.ndarray, track: np.ndarray, ts: np.ndarray, dur: np.ndarray,
                       lanes: dict[int, int]) -> int:
        """Move the slices ``rows`` (input positions) off their tracks onto sibling lane tracks.

        Greedy interval partitioning per track: each lane holds slices that do not overlap at
        all, so one pass untangles any pile-up (a loop over the offending slices only).
        """
        import heapq

        moved = 0
        n_lanes: dict[int, int] = {}  # track -> lanes beside it so far (a count, not a scan of all lanes)
        for v in lanes.values():
            n_lanes[v] = n_lanes.get(v, 0) + 1
        order = rows[np.lexsort((-dur[rows], ts[rows], track[rows]))]
        by_track: dict[int, list[int]] = {}
        for r in order.tolist():
            by_track.setdefault(int(track[r]), []).append(r)
        for t, rs in by_track.items():
            base = t
            while base in lanes:  # a lane's overflow goes beside the original track
                base = lanes[base]
            info = self._tracks[base]
            base_attrs = json.loads(info["attrs"]) if info["attrs"] else {}
            free: list[tuple[int, int]] = []  # (end, lane id) of this round's lanes
            for r in rs:
                start, end = int(ts[r]), int(ts[r] + dur[r])
                if free and free[0][0] <= start:
                    _, lane = heapq.heappop(free)
                else:
                    attrs = {**base_attrs, "lane_of": base}
                    n_lanes[base] = n_lanes.get(base, 0) + 1
                    n = n_lanes[base] + 1
                    lane = self.add_track(f"{info['name']} (overlap {n})", info["kind"], info["parent"],
                                          info["device"], attrs, sort_index=info["sort_index"])
                    lanes[lane] = base
                track[r] = lane
                heapq.heappush(free, (end, lane))
                moved += 1
        return moved

    def _counters_table(self, n_tracks: int) -> pa.Table:
        chunks = list(self._counter_chunks)
        if self._counter_rows[0]:
            chunks.append(tuple(np.asarray(x, dtype=dt) for x, dt in zip(self._counter_rows, (np.int64, np.int64, np.float64), strict=True)))  # type: ignore[arg-type]
        if not chunks:
            return TABLE_SCHEMAS["counters"].empty_table()
        tr = np.concatenate([c[0] for c in chunks])
        ts = np.concatenate([c[1] for c in chunks])
        val = np.concatenate([c[2] for c in chunks])
        keep = (tr >= 0) & (tr < n_tracks)
        self.stats.drop("counter_unknown_track", int((~keep).sum()))
        nan = ~np.isfinite(val)
        self.stats.drop("counter_value_not_finite", int((nan & keep).sum()))
        keep &= ~nan
        tr, ts, val = tr[keep], ts[keep], val[keep]
        order = np.lexsort((ts, tr))
        return pa.table({"track": tr[order], "ts": ts[order], "value": val[order]}, schema=TABLE_SCHEMAS["counters"])

    def _instants_table(self, n_tracks: int) -> pa.Table:
        r = self._instant_rows
        if not r["ts"]:
            return TABLE_SCHEMAS["instants"].empty_table()
        tr = np.asarray(r["track"], dtype=np.int64)
        ts = np.asarray(r["ts"], dtype=np.int64)
        keep = (tr >= 0) & (tr < n_tracks)
        self.stats.drop("instant_unknown_track", int((~keep).sum()))
        idx = np.flatnonzero(keep)
        idx = idx[np.lexsort((ts[idx], tr[idx]))]
        take = pa.array(idx)
        return pa.table(
            {
                "track": tr[idx],
                "ts": ts[idx],
                "name": _as_dict_array(r["name"], len(tr)).take(take),
                "category": _as_dict_array(r["category"], len(tr)).take(take),
                "args": pa.array(r["args"], type=pa.string()).take(take),
            },
            schema=TABLE_SCHEMAS["instants"],
        )

    def _flows_table(self, new_ids: np.ndarray) -> pa.Table:
        chunks = list(self._flow_chunks)
        fr_rows = self._flow_rows
        if fr_rows[0]:
            chunks.append(
                (
                    np.asarray(fr_rows[0], dtype=np.int64),
                    np.asarray(fr_rows[1], dtype=np.int64),
                    np.asarray(fr_rows[2], dtype=np.int64),
                    pa.array(fr_rows[3], type=pa.string()),
                )
            )
        if not chunks:
            return TABLE_SCHEMAS["flows"].empty_table()
        fid = np.concatenate([c[0] for c in chunks])
        fr = np.concatenate([c[1] for c in chunks])
        to = np.concatenate([c[2] for c in chunks])
        names = pa.concat_arrays([c[3] if c[3] is not None else pa.nulls(len(c[0]), pa.string()) for c in chunks])
        n = new_ids.size
        ok = (fr >= 0) & (fr < n) & (to >= 0) & (to < n)
        fr_new = np.where(ok, new_ids[np.clip(fr, 0, max(n - 1, 0))] if n else -1, -1)
        to_new = np.where(ok, new_ids[np.clip(to, 0, max(n - 1, 0))] if n else -1, -1)
        keep = (fr_new >= 0) & (to_new >= 0)
        self.stats.drop("flow_endpoint_missing", int((~keep).sum()))
        idx = np.flatnonzero(keep)
        return pa.table(
            {"id": fid[idx], "from_slice": fr_new[idx], "to_slice": to_new[idx], "name": names.take(pa.array(idx))},
            schema=TABLE_SCHEMAS["flows"],
        )
