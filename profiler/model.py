"""The trace model: five Arrow tables and a little metadata.

A :class:`Trace` is immutable in spirit: importers and collectors produce one through
:class:`profiler.builder.TraceBuilder` (which sorts, nests and validates), analyzers read its
tables, exporters write them out.  Every time is an int64 nanosecond count.

Invariants a built trace keeps (and :meth:`Trace.validate` checks):

* ``slices`` are sorted by (track, ts, -dur) and ``slices.id[i] == i``;
* on each track slices nest properly (a stack): a child lies within its parent, and slices of one
  level under one parent (depth-0 slices of a track included) do not overlap;
* ``depth`` is the nesting level and ``parent`` the enclosing slice's id (null exactly at depth 0),
  stored by the builder so no reader recomputes it;
* ``flows`` refer to slice ids; ``counters``/``instants`` refer to track ids;
* every track's ``parent`` is another track's id or null.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from profiler.schema import TABLE_SCHEMAS


@dataclass
class ImportStats:
    """What an importer read, and what it had to drop or repair (by reason)."""

    events_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def events_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def events_repaired(self) -> int:
        return sum(self.repaired.values())

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def repair(self, reason: str, count: int = 1) -> None:
        if count:
            self.repaired[reason] = self.repaired.get(reason, 0) + int(count)

    def merge(self, other: ImportStats) -> None:
        self.events_read += other.events_read
        for k, v in other.dropped.items():
            self.drop(k, v)
        for k, v in other.repaired.items():
            self.repair(k, v)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "events_dropped": self.events_dropped,
            "events_repaired": self.events_repaired,
            "dropped": dict(sorted(self.dropped.items())),
            "repaired": dict(sorted(self.repaired.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImportStats:
        return cls(
            events_read=int(d.get("events_read", 0)),
            dropped={str(k): int(v) for k, v in (d.get("dropped") or {}).items()},
            repaired={str(k): int(v) for k, v in (d.get("repaired") or {}).items()},
        )


@dataclass
class TraceMetadata:
    """Where a trace came from and how it was read."""

    source_format: str = "unknown"
    source: str | None = None  # file name or collector name
    clock: str = "unknown"  # e.g. "boottime", "unix_epoch", "simulated"
    hardware: str | None = None  # HardwareSpec name the trace was produced for
    import_stats: ImportStats = field(default_factory=ImportStats)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["import_stats"] = self.import_stats.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceMetadata:
        return cls(
            source_format=str(d.get("source_format", "unknown")),
            source=d.get("source"),
            clock=str(d.get("clock", "unknown")),
            hardware=d.get("hardware"),
            import_stats=ImportStats.from_dict(d.get("import_stats") or {}),
            extra=dict(d.get("extra") or {}),
        )


def empty_table(name: str) -> pa.Table:
    return TABLE_SCHEMAS[name].empty_table()


@dataclass
class Trace:
    """A trace: tracks, slices, counters, instants, flows (Arrow tables) plus metadata."""

    tracks: pa.Table
    slices: pa.Table
    counters: pa.Table
    instants: pa.Table
    flows: pa.Table
    metadata: TraceMetadata = field(default_factory=TraceMetadata)

    TABLES = ("tracks", "slices", "counters", "instants", "flows")

    # ----------------------------------------------------------------- views
    def table(self, name: str) -> pa.Table:
        if name not in self.TABLES:
            raise KeyError(f"unknown table {name!r}; tables are {', '.join(self.TABLES)}")
        return getattr(self, name)

    def tracks_df(self) -> pd.DataFrame:
        return self.tracks.to_pandas()

    def slices_df(self, with_track_names: bool = True) -> pd.DataFrame:
        """Slices as a DataFrame (names as categoricals), optionally with track name/kind/device."""
        df = self.slices.to_pandas()
        if with_track_names and len(df):
            t = self.tracks.select(["id", "name", "kind", "device"]).to_pandas()
            t = t.rename(columns={"id": "track", "name": "track_name", "kind": "track_kind"})
            df = df.merge(t, on="track", how="left")
        return df

    def counters_df(self) -> pd.DataFrame:
        return self.counters.to_pandas()

    def instants_df(self) -> pd.DataFrame:
        return self.instants.to_pandas()

    def flows_df(self) -> pd.DataFrame:
        return self.flows.to_pandas()

    # ------------------------------------------------------------- summaries
    @property
    def num_events(self) -> int:
        return self.slices.num_rows + self.counters.num_rows + self.instants.num_rows + self.flows.num_rows

    def time_span(self) -> tuple[int, int]:
        """(first ns, last ns) over slices, counters and instants; (0, 0) when empty."""
        lo: list[int] = []
        hi: list[int] = []
        if self.slices.num_rows:
            lo.append(pc.min(self.slices["ts"]).as_py())
            ends = pc.add(self.slices["ts"], self.slices["dur"])
            hi.append(pc.max(ends).as_py())
        for t in (self.counters, self.instants):
            if t.num_rows:
                mm = pc.min_max(t["ts"]).as_py()
                lo.append(mm["min"])
                hi.append(mm["max"])
        if not lo:
            return (0, 0)
        return (min(lo), max(hi))

    def summary(self) -> dict[str, Any]:
        start, end = self.time_span()
        kinds = self.tracks["kind"].value_counts().to_pylist() if self.tracks.num_rows else []
        return {
            "source_format": self.metadata.source_format,
            "source": self.metadata.source,
            "hardware": self.metadata.hardware,
            "tracks": self.tracks.num_rows,
            "track_kinds": {k["values"]: k["counts"] for k in kinds},
            "slices": self.slices.num_rows,
            "counters": self.counters.num_rows,
            "instants": self.instants.num_rows,
            "flows": self.flows.num_rows,
            "start_ns": start,
            "end_ns": end,
            "duration_ns": end - start,
            "import_stats": self.metadata.import_stats.to_dict(),
        }

    def track_path(self, track_id: int) -> list[str]:
        """Names from the root group down to ``track_id`` (for labels like "npu0 / core1 / mxu")."""
        ids = self.tracks["id"].to_numpy()
        parents = self.tracks["parent"].to_pylist()
        names = self.tracks["name"].to_pylist()
        pos = {int(i): k for k, i in enumerate(ids)}
        out: list[str] = []
        cur: int | None = track_id
        seen = set()
        while cur is not None and cur in pos and cur not in seen:
            seen.add(cur)
            k = pos[cur]
            out.append(names[k])
            cur = parents[k]
        return out[::-1]

    def slice_parents(self) -> np.ndarray:
        """Row of each slice's enclosing slice (-1 at depth 0), from the stored ``parent`` column.

        The builder computes parents while nesting, so readers never recompute them.
        """
        col = self.slices["parent"]
        return np.asarray(pc.fill_null(col, -1).to_numpy(), dtype=np.int64) if len(col) else np.zeros(0, np.int64)

    # ------------------------------------------------------------ validation
    def validate(self, source: str | None = None) -> None:
        """Raise :class:`~profiler.errors.TraceInvalidError` if an invariant of the model fails.

        Checks every invariant the module docstring lists, vectorized (no per-slice Python):
        schemas, unique track ids and known parents, ``id == row``, known tracks, non-negative
        durations, the canonical sort order, the stored depth and parent (the parent encloses its
        child one level up on the same track), slices of one level and parent not overlapping
        (so overlapping depth-0 slices fail), and flow/counter/instant references.
        ``source`` (a file name) prefixes the message; by default the trace's recorded source.
        """
        from profiler.errors import TraceInvalidError

        src = source or self.metadata.source or "trace"

        def bad(where: str, what: str) -> TraceInvalidError:
            return TraceInvalidError(src, what, where=where)

        for name in self.TABLES:
            got = self.table(name).schema
            want = TABLE_SCHEMAS[name]
            if not got.equals(want, check_metadata=False):
                differ = [f.name for f in want if f.name not in got.names or not got.field(f.name).equals(f)]
                raise bad(f"{name} table", f"schema differs from the model (columns {', '.join(differ) or 'order'})")
        track_ids = self.tracks["id"].to_numpy()
        if np.unique(track_ids).size != track_ids.size:
            raise bad("tracks", "track ids are not unique")
        known = set(track_ids.tolist())
        parents = [p for p in self.tracks["parent"].to_pylist() if p is not None]
        if any(p not in known for p in parents):
            raise bad("tracks", "a track's parent is not a track")
        n = self.slices.num_rows
        if n:
            _check_slices(self.slices, track_ids, bad)
        for tname in ("counters", "instants"):
            t = self.table(tname)
            if t.num_rows and not np.isin(t["track"].to_numpy(), track_ids).all():
                row = int(np.flatnonzero(~np.isin(t["track"].to_numpy(), track_ids))[0])
                raise bad(f"{tname} row {row}", "refers to an unknown track")
        if self.flows.num_rows:
            for col in ("from_slice", "to_slice"):
                v = self.flows[col].to_numpy()
                out = (v < 0) | (v >= n)
                if out.any():
                    row = int(np.flatnonzero(out)[0])
                    raise bad(f"flows row {row}", f"{col} = {int(v[row])} is not a slice (there are {n})")

    # -------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        from profiler.store import save_trace

        return save_trace(self, path)

    @staticmethod
    def load(path: str | Path) -> Trace:
        from profiler.store import load_trace

        return load_trace(path)

    def with_metadata(self, **changes: Any) -> Trace:
        md = TraceMetadata.from_dict(self.metadata.to_dict())
        for k, v in changes.items():
            setattr(md, k, v)
        return Trace(self.tracks, self.slices, self.counters, self.instants, self.flows, md)


def parents_from_depth(depth: np.ndarray) -> np.ndarray:
    """Parents implied by canonical row order and depth: the last slice one level up before each.

    For trace directories written before the ``parent`` column existed (see :mod:`profiler.store`).
    """
    from profiler.nesting import parents_from_depth as linear  # one sort, not one pass per level

    return linear(depth)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_slices(s: pa.Table, track_ids: np.ndarray, bad: Any) -> None:
    """The slice-table invariants of :meth:`Trace.validate` (``bad(where, what)`` builds the error)."""
    n = s.num_rows
    if not np.array_equal(s["id"].to_numpy(), np.arange(n)):
        raise bad(f"slices row {_first(s['id'].to_numpy() != np.arange(n))}", "slice id differs from its row")
    track = s["track"].to_numpy()
    known = np.isin(track, track_ids)
    if not known.all():
        raise bad(f"slices row {_first(~known)}", f"refers to unknown track {int(track[_first(~known)])}")
    ts = s["ts"].to_numpy()
    dur = s["dur"].to_numpy()
    if (dur < 0).any():
        raise bad(f"slices row {_first(dur < 0)}", "negative duration")
    end = ts + dur
    # Canonical order: (track, ts, -dur) never decreases from one row to the next.
    dt, dts, ddur = np.diff(track), np.diff(ts), np.diff(dur)
    ok = (dt > 0) | ((dt == 0) & ((dts > 0) | ((dts == 0) & (ddur <= 0))))
    if not ok.all():
        raise bad(f"slices row {_first(~ok) + 1}", "not sorted by (track, ts, longest first)")
    depth = s["depth"].to_numpy()
    par = np.asarray(pc.fill_null(s["parent"], -1).to_numpy(), dtype=np.int64)
    top = par < 0
    if ((depth == 0) != top).any():
        raise bad(f"slices row {_first((depth == 0) != top)}", "depth 0 exactly when there is no parent")
    child = np.flatnonzero(~top)
    if child.size:
        p = par[child]
        wrong = (p >= child) | (track[np.minimum(p, n - 1)] != track[child])
        if wrong.any():
            raise bad(f"slices row {int(child[_first(wrong)])}", "parent is not an earlier slice of the same track")
        wrong = (depth[p] != depth[child] - 1) | (ts[p] > ts[child]) | (end[child] > end[p]) | (dur[p] == 0)
        if wrong.any():
            raise bad(f"slices row {int(child[_first(wrong)])}", f"not nested inside its parent (row {int(p[_first(wrong)])})")
    # Siblings (same track, level and parent), in row order, must not overlap: a stack per track.
    by_level = np.argsort(depth, kind="stable")
    a, b = by_level[:-1], by_level[1:]
    same = (track[a] == track[b]) & (depth[a] == depth[b]) & (par[a] == par[b])
    clash = same & (ts[b] < end[a])
    if clash.any():
        k = _first(clash)
        raise bad(f"slices row {int(b[k])}", f"overlaps row {int(a[k])} at depth {int(depth[b[k]])} without nesting")


def args_json(args: dict[str, Any] | None) -> str | None:
    """Serialize a free-form args dict for the ``args`` column (None stays None)."""
    if not args:
        return None
    import orjson

    return orjson.dumps(args, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def parse_args(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        out = json.loads(value)
    except ValueError:
        return {"_raw": value}
    return out if isinstance(out, dict) else {"_value": out}
