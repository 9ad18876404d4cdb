"""SQL over a trace: the five Arrow tables as DuckDB views, names decoded to plain strings.

DuckDB scans the Arrow buffers in place (no copy), so ad-hoc questions on a 10M-slice trace cost
what the query costs.  Views: ``slices``, ``tracks``, ``counters``, ``instants``, ``flows``; plus
``slices_x`` = slices joined with their track's name, kind and device, which most questions need.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from profiler.errors import ProfilerError
from profiler.model import Trace


class QueryError(ProfilerError):
    """The SQL failed (syntax, unknown column, ...): shown as one line, exit status 2."""


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns cast to plain strings: SQL users compare names, not codes."""
    cols = []
    for f in table.schema:
        col = table[f.name]
        cols.append(col.cast(pa.string()) if pa.types.is_dictionary(f.type) else col)
    return pa.table(cols, names=table.column_names)


def connect(trace: Trace) -> Any:
    """A DuckDB connection with the trace's tables registered as views."""
    import duckdb

    con = duckdb.connect()
    for name in Trace.TABLES:
        con.register(name, _decoded(trace.table(name)))
    con.execute(
        "CREATE VIEW slices_x AS SELECT s.*, t.name AS track_name, t.kind AS track_kind, t.device "
        "FROM slices s LEFT JOIN tracks t ON s.track = t.id"
    )
    return con


def query(trace: Trace, sql: str) -> pa.Table:
    """Run ``sql`` and return the result as an Arrow table."""
    import duckdb

    con = connect(trace)
    try:
        rel = con.sql(sql)
        if rel is None:
            return pa.table({})
        return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
    except duckdb.Error as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(f"SQL error: {msg}") from None
    finally:
        con.close()
