"""The trace model: five Arrow tables and a little metadata.

A :class:`Trace` is immutable in spirit: importers and collectors produce one through
:class:`profiler.builder.TraceBuilder` (which sorts, nests and validates), analyzers read its
tables, exporters write them out.  Every time is an int64 nanosecond count.

Invariants a built trace keeps (and :meth:`Trace.validate` checks):

* ``slices`` are sorted by (track, ts, -dur) and ``slices.id[i] == i``;
* on each track slices nest properly (a stack); ``depth`` is the nesting level;
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
        """Row of each slice's enclosing slice (-1 at depth 0).

        Rows are in canonical order (track, ts, longest first), so a slice's parent is the last
        slice one level up before it; one vectorized pass per nesting level.
        """
        depth = self.slices["depth"].to_numpy()
        n = depth.size
        par = np.full(n, -1, dtype=np.int64)
        idx = np.arange(n, dtype=np.int64)
        for d in range(1, int(depth.max()) + 1 if n else 1):
            at = depth == d
            if at.any():
                last = np.maximum.accumulate(np.where(depth == d - 1, idx, -1))
                par[at] = last[at]
        return par

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` if an invariant of the model does not hold."""
        for name in self.TABLES:
            got = self.table(name).schema
            want = TABLE_SCHEMAS[name]
            if not got.equals(want, check_metadata=False):
                raise ValueError(f"{name} table schema differs from the model:\n{got}\nexpected:\n{want}")
        track_ids = self.tracks["id"].to_numpy()
        if np.unique(track_ids).size != track_ids.size:
            raise ValueError("track ids are not unique")
        known = set(track_ids.tolist())
        parents = [p for p in self.tracks["parent"].to_pylist() if p is not None]
        if any(p not in known for p in parents):
            raise ValueError("a track's parent is not a track")
        n = self.slices.num_rows
        if n:
            ids = self.slices["id"].to_numpy()
            if not np.array_equal(ids, np.arange(n)):
                raise ValueError("slice ids must equal row positions")
            if not np.isin(self.slices["track"].to_numpy(), track_ids).all():
                raise ValueError("a slice refers to an unknown track")
            if (self.slices["dur"].to_numpy() < 0).any():
                raise ValueError("negative slice duration")
        for t in (self.counters, self.instants):
            if t.num_rows and not np.isin(t["track"].to_numpy(), track_ids).all():
                raise ValueError("a counter or instant refers to an unknown track")
        if self.flows.num_rows:
            for col in ("from_slice", "to_slice"):
                v = self.flows[col].to_numpy()
                if (v < 0).any() or (v >= n).any():
                    raise ValueError(f"flow {col} out of range")

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
