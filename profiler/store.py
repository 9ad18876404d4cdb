"""Native storage: a trace directory of Parquet files.

Layout of ``run.trace/`` (any directory name works; ``.trace`` is the convention the CLI uses to
pick this format from an output path)::

    run.trace/
      trace.json        {"format": "accel-profiler-trace", "version": 1, "metadata": {...}}
      tracks.parquet  slices.parquet  counters.parquet  instants.parquet  flows.parquet

A directory rather than one file because each table has its own schema and Parquet holds one
table per file; DuckDB and pandas read the files directly (``SELECT * FROM 'run.trace/slices.parquet'``).
Slices are zstd-compressed with dictionary-encoded names, so a 1M-slice trace is a few MB.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from profiler.atomic import atomic_dir
from profiler.errors import TraceFormatError
from profiler.model import Trace, TraceMetadata, parents_from_depth
from profiler.schema import TABLE_SCHEMAS

FORMAT_TAG = "accel-profiler-trace"
FORMAT_VERSION = 1
MANIFEST = "trace.json"


def is_trace_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` to the directory ``path``, all or nothing.

    The tables go to a new sibling directory that then takes the place of ``path``
    (:func:`profiler.atomic.atomic_dir`): an interrupted write leaves the old trace whole, never
    half old and half new.  An existing ``path`` is replaced only when it is empty or a trace
    directory this tool wrote; anything else (a folder of the user's, which may hold a
    ``trace.json`` of their own) is refused with a TraceFormatError.
    """
    out = Path(path)
    _check_replaceable(out)
    with atomic_dir(out) as tmp:
        for name in Trace.TABLES:
            pq.write_table(trace.table(name), tmp / f"{name}.parquet", compression="zstd")
        manifest = {"format": FORMAT_TAG, "version": FORMAT_VERSION, "metadata": trace.metadata.to_dict()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise TraceFormatError(str(out), "exists and is not a directory", "choose another output path")
    if not any(out.iterdir()):
        return
    try:
        ours = json.loads((out / MANIFEST).read_text()).get("format") == FORMAT_TAG
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise TraceFormatError(str(out), "exists and is not a trace directory written by this tool",
                               "refusing to replace it; choose another output path or remove it first")


def read_metadata(path: str | Path) -> TraceMetadata:
    """The metadata of a trace directory from its manifest alone (no table is read)."""
    src = Path(path)
    manifest_path = src / MANIFEST
    if not manifest_path.is_file():
        raise TraceFormatError(str(src), "not a trace directory", f"missing {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise TraceFormatError(str(manifest_path), "invalid JSON", str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_TAG:
        raise TraceFormatError(str(manifest_path), "not an accel-profiler trace manifest")
    version = manifest.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise TraceFormatError(str(manifest_path), f"trace format version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise TraceFormatError(str(manifest_path), f"trace format version {manifest.get('version')} is newer than this tool")
    try:
        return TraceMetadata.from_dict(manifest.get("metadata") or {})
    except (TypeError, ValueError, AttributeError) as exc:
        raise TraceFormatError(str(manifest_path), "invalid metadata", str(exc)) from None


def load_trace(path: str | Path) -> Trace:
    """Read a trace directory written by :func:`save_trace`."""
    src = Path(path)
    md = read_metadata(src)
    tables: dict[str, pa.Table] = {}
    for name, schema in TABLE_SCHEMAS.items():
        f = src / f"{name}.parquet"
        if not f.is_file():
            tables[name] = schema.empty_table()
            continue
        try:
            t = pq.read_table(f)
            if name == "slices" and "parent" not in t.column_names and "depth" in t.column_names:
                # Written before slices stored their parent: derive it once, here.
                par = parents_from_depth(t["depth"].to_numpy())
                t = t.add_column(t.schema.get_field_index("depth") + 1, "parent", pa.array(par, mask=par < 0))
            tables[name] = t.cast(schema) if not t.schema.equals(schema, check_metadata=False) else t.replace_schema_metadata(None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError, KeyError) as exc:  # cast: ValueError
            raise TraceFormatError(str(f), "unreadable Parquet table", (str(exc).splitlines() or [""])[0][:200]) from None
    trace = Trace(metadata=md, **tables)
    trace.validate(source=str(src))
    return trace
