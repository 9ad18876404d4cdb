"""SQL over a trace: the five Arrow tables as DuckDB views, names decoded to plain strings.

DuckDB scans the Arrow buffers in place (no copy), so ad-hoc questions on a 10M-slice trace cost
what the query costs.  Views: ``slices``, ``tracks``, ``counters``, ``instants``, ``flows``; plus
``slices_x`` = slices joined with their track's name, kind and device, which most questions need.

Over many traces (:func:`query_dirs`), the same views span every trace's Parquet directory, read
in place by DuckDB, with three more leading columns: ``trace`` (the path given), ``run`` and
``rank``; ids are per trace, so joins go on (trace, id).  A ``traces`` view lists them.
"""

from __future__ import annotations

from pathlib import Path
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


def connect_dirs(entries: list[dict[str, Any]]) -> Any:
    """A DuckDB connection whose views span many trace directories.

    ``entries``: one dict per trace with ``trace`` (label), ``dir`` (its Parquet trace directory),
    ``run`` and ``rank``.
    """
    import duckdb

    from profiler.schema import TABLE_SCHEMAS

    con = duckdb.connect()
    idx = pa.table({"trace": [e["trace"] for e in entries], "run": [e.get("run") for e in entries],
                    "rank": pa.array([e.get("rank") for e in entries], pa.int64()),
                    "dir": [str(Path(e["dir"]).resolve()) for e in entries]})
    con.register("traces_idx", idx)
    con.execute("CREATE VIEW traces AS SELECT trace, run, rank, dir FROM traces_idx")
    for name in Trace.TABLES:
        files = [f"{d}/{name}.parquet" for d in idx["dir"].to_pylist() if Path(d, f"{name}.parquet").is_file()]
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(
                f"CREATE VIEW {name} AS SELECT t.trace, t.run, t.rank, x.* EXCLUDE (filename) "
                f"FROM read_parquet([{listing}], filename = true, union_by_name = true) x "
                f"JOIN traces_idx t ON x.filename = t.dir || '/{name}.parquet'")
        else:
            con.register(f"{name}_empty", _decoded(TABLE_SCHEMAS[name].empty_table()))
            con.execute(f"CREATE VIEW {name} AS SELECT NULL::VARCHAR AS trace, NULL::VARCHAR AS run, "
                        f"NULL::BIGINT AS rank, * FROM {name}_empty WHERE false")
    con.execute(
        "CREATE VIEW slices_x AS SELECT s.*, t.name AS track_name, t.kind AS track_kind, t.device "
        "FROM slices s LEFT JOIN tracks t ON s.trace = t.trace AND s.track = t.id"
    )
    return con


def query_dirs(entries: list[dict[str, Any]], sql: str) -> pa.Table:
    """Run ``sql`` over many trace directories (see :func:`connect_dirs`)."""
    return _run(connect_dirs(entries), sql)


def query(trace: Trace, sql: str) -> pa.Table:
    """Run ``sql`` and return the result as an Arrow table."""
    return _run(connect(trace), sql)


def _run(con: Any, sql: str) -> pa.Table:
    import duckdb

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
