"""Several traces as one: a root group per part (a rank of a job), clocks shifted onto one.

The merged trace keeps every invariant of the model without re-sorting or re-nesting: each part's
track ids, slice ids and flow ids move past the previous part's, so the parts' sorted, nested
slice tables concatenate into a sorted, nested table.  A part's tracks hang under a new root group
(``rank 3``) and their ``device`` is prefixed with the part's label, so two ranks' "GPU 0" stay two
devices for the analyzers.  ``offsets_ns[k]`` is subtracted from every time of part ``k`` (what
:func:`analysis.ranks.align` estimates to put ranks on one clock).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from profiler.model import Trace, TraceMetadata, empty_table
from profiler.schema import TABLE_SCHEMAS


def _shift(col: pa.ChunkedArray | pa.Array, by: int) -> pa.Array:
    return pc.add(col, pa.scalar(by, pa.int64())) if by else col


def _with(table: pa.Table, name: str, col: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``table`` with column ``name`` replaced, keeping the model's field (type and nullability)."""
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), col)


def _concat(name: str, tables: list[pa.Table]) -> pa.Table:
    schema = TABLE_SCHEMAS[name]
    tables = [t.cast(schema) for t in tables if t.num_rows]
    if not tables:
        return empty_table(name)
    return pa.concat_tables(tables).unify_dictionaries().combine_chunks()


def shifted(trace: Trace, delta_ns: int) -> Trace:
    """The same trace with every time moved by ``delta_ns`` (e.g. onto another rank's clock)."""
    s = _with(trace.slices, "ts", _shift(trace.slices["ts"], delta_ns))
    c = _with(trace.counters, "ts", _shift(trace.counters["ts"], delta_ns))
    i = _with(trace.instants, "ts", _shift(trace.instants["ts"], delta_ns))
    return Trace(trace.tracks, s, c, i, trace.flows, TraceMetadata.from_dict(trace.metadata.to_dict()))


def merge(parts: Sequence[Trace], labels: Sequence[str], offsets_ns: Sequence[int] | None = None) -> Trace:
    """One trace holding ``parts`` under root groups named ``labels`` (see the module docstring)."""
    if len(parts) != len(labels):
        raise ValueError("one label per part")
    offsets = list(offsets_ns) if offsets_ns is not None else [0] * len(parts)
    n_roots = len(parts)
    roots = pa.table({
        "id": pa.array(np.arange(n_roots), pa.int64()), "parent": pa.nulls(n_roots, pa.int64()),
        "name": pa.array(list(labels), pa.string()), "kind": pa.array(["group"] * n_roots, pa.string()),
        "device": pa.nulls(n_roots, pa.string()), "sort_index": pa.array(np.arange(n_roots), pa.int32()),
        "attrs": pa.array([json.dumps({"part": k}) for k in range(n_roots)], pa.string()),
    })
    tracks: list[pa.Table] = [roots]
    slices: list[pa.Table] = []
    counters: list[pa.Table] = []
    instants: list[pa.Table] = []
    flows: list[pa.Table] = []
    t_off, s_off, f_off = n_roots, 0, 0
    extra_parts = []
    for k, (t, label) in enumerate(zip(parts, labels, strict=True)):
        delta = -int(offsets[k])
        tr = t.tracks
        parent = tr["parent"].to_numpy(zero_copy_only=False)
        parent = np.where(np.isnan(parent.astype(float)), k, parent.astype(float) + t_off).astype(np.int64) \
            if tr.num_rows else np.zeros(0, np.int64)
        dev = [f"{label} / {d}" if d else None for d in tr["device"].to_pylist()]
        tracks.append(pa.table({
            "id": _shift(tr["id"], t_off), "parent": pa.array(parent, pa.int64()), "name": tr["name"],
            "kind": tr["kind"], "device": pa.array(dev, pa.string()), "sort_index": tr["sort_index"],
            "attrs": tr["attrs"],
        }))
        sl = t.slices
        sl = _with(sl, "id", _shift(sl["id"], s_off))
        sl = _with(sl, "track", _shift(sl["track"], t_off))
        sl = _with(sl, "ts", _shift(sl["ts"], delta))
        sl = _with(sl, "parent", _shift(sl["parent"], s_off))
        slices.append(sl)
        for name, out in (("counters", counters), ("instants", instants)):
            tb = t.table(name)
            tb = _with(tb, "track", _shift(tb["track"], t_off))
            out.append(_with(tb, "ts", _shift(tb["ts"], delta)))
        fl = t.flows
        fl = _with(fl, "id", _shift(fl["id"], f_off))
        fl = _with(fl, "from_slice", _shift(fl["from_slice"], s_off))
        flows.append(_with(fl, "to_slice", _shift(fl["to_slice"], s_off)))
        md = t.metadata
        extra_parts.append({"label": label, "source": md.source, "source_format": md.source_format,
                            "hardware": md.hardware, "offset_ns": int(offsets[k]), "track_offset": t_off,
                            "slice_offset": s_off, "extra": md.extra})
        t_off += tr.num_rows
        s_off += sl.num_rows
        f_off += int(pc.max(t.flows["id"]).as_py()) + 1 if t.flows.num_rows else 0
    stats = TraceMetadata().import_stats
    for t in parts:
        stats.merge(t.metadata.import_stats)
    hw = {t.metadata.hardware for t in parts}
    md = TraceMetadata(source_format="merged", source=", ".join(str(t.metadata.source) for t in parts),
                       clock=parts[0].metadata.clock if parts else "unknown",
                       hardware=hw.pop() if len(hw) == 1 else None, import_stats=stats,
                       extra={"parts": extra_parts})
    return Trace(_concat("tracks", tracks), _concat("slices", slices), _concat("counters", counters),
                 _concat("instants", instants), _concat("flows", flows), md)
