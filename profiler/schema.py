"""Arrow schemas of the trace model.

One place defines every column so that importers, exporters, analyzers and the
dashboard agree on names and types.  All times are int64 nanoseconds; names,
categories and dtypes are dictionary-encoded because real traces repeat a few
thousand distinct strings millions of times.
"""

from __future__ import annotations

import pyarrow as pa

DICT_STRING = pa.dictionary(pa.int32(), pa.string())

#: Track kinds.  ``group`` tracks only hold other tracks (a device, a process, a core).
TRACK_KINDS = ("group", "compute", "dma", "host", "memory", "counter", "other")

TRACKS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("parent", pa.int64()),  # null for a root track
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("device", pa.string()),
        pa.field("sort_index", pa.int32(), nullable=False),  # order among siblings
        pa.field("attrs", pa.string()),  # JSON object: engine type, queue index, pid/tid, unit, ...
    ]
)

SLICES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),  # == row index after build()
        pa.field("track", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("dur", pa.int64(), nullable=False),
        pa.field("name", DICT_STRING, nullable=False),
        pa.field("category", DICT_STRING),
        pa.field("depth", pa.int32(), nullable=False),
        pa.field("parent", pa.int64()),  # id of the enclosing slice on the same track; null at depth 0
        pa.field("flops", pa.float64()),
        pa.field("bytes", pa.float64()),
        pa.field("dtype", DICT_STRING),
        pa.field("args", pa.string()),  # JSON object of every other argument
    ]
)

COUNTERS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

INSTANTS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("name", DICT_STRING, nullable=False),
        pa.field("category", DICT_STRING),
        pa.field("args", pa.string()),
    ]
)

FLOWS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("from_slice", pa.int64(), nullable=False),
        pa.field("to_slice", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "tracks": TRACKS_SCHEMA,
    "slices": SLICES_SCHEMA,
    "counters": COUNTERS_SCHEMA,
    "instants": INSTANTS_SCHEMA,
    "flows": FLOWS_SCHEMA,
}
