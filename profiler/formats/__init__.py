"""Trace file formats: detection by content, and one reader/writer per format.

Formats register in :data:`FORMATS`; each reader lives in its own module and is imported only when
used, so ``profiler info`` on a Perfetto file never imports the JSON machinery and vice versa.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.errors import TraceFormatError, UnknownFormatError
from profiler.formats.source import read_head
from profiler.model import Trace


@dataclass(frozen=True)
class Format:
    """A trace format: how to recognise it and where its reader and writer live."""

    name: str
    description: str
    extensions: tuple[str, ...]
    reader: str | None  # "module:function" taking (path) -> Trace
    writer: str | None  # "module:function" taking (trace, path) -> None

    def load(self, which: str) -> Callable[..., Any]:
        target = self.reader if which == "reader" else self.writer
        if target is None:
            raise UnknownFormatError("-", f"format {self.name} cannot be {'read' if which == 'reader' else 'written'}")
        mod, func = target.split(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(mod), func)
        return fn


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("trace", "native trace directory (Parquet tables)", (".trace",), "profiler.store:load_trace", "profiler.store:save_trace"),
        Format("perfetto", "Perfetto protobuf trace (TrackEvent)", (".pftrace", ".perfetto-trace", ".pb"),
               "profiler.formats.perfetto_reader:read_perfetto", "profiler.formats.perfetto_writer:write_perfetto"),
        Format("kineto", "PyTorch profiler / Kineto JSON", (".pt.trace.json",),
               "profiler.formats.kineto:read_kineto", "profiler.formats.chrome_json_writer:write_chrome_json"),
        Format("chrome_json", "Chrome trace-event JSON", (".json",),
               "profiler.formats.chrome_json:read_chrome_json", "profiler.formats.chrome_json_writer:write_chrome_json"),
    )
}

#: Only PyTorch's profiler writes these: its header keys, and category names no other tool uses.
#: (A plain "kernel" category is not enough: generic Chrome JSON uses it too.)
_KINETO_MARKERS = (b'"schemaVersion"', b'"deviceProperties"', b'"distributedInfo"', b'"cpu_op"', b'"cuda_runtime"',
                   b'"cuda_driver"', b'"gpu_memcpy"', b'"gpu_memset"', b'"ac2g"', b'"python_function"',
                   b'"gpu_user_annotation"')


def detect_format(path: str | Path) -> str:
    """Name of the format of ``path`` judged by its content (gzip is looked through)."""
    p = Path(path)
    if p.is_dir():
        from profiler.store import is_trace_dir

        if is_trace_dir(p):
            return "trace"
        raise UnknownFormatError(str(p), "a directory that is not a trace directory (no trace.json)")
    head = read_head(p, 1 << 16)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise UnknownFormatError(str(p), "empty file (or an unreadable gzip stream)")
    if stripped[:1] in (b"{", b"["):
        if any(m in head for m in _KINETO_MARKERS):
            return "kineto"
        return "chrome_json"
    # A Perfetto trace is a sequence of `Trace.packet` fields: tag 0x0a (field 1, length-delimited).
    if head[:1] == b"\x0a":
        return "perfetto"
    if head[:4] == b"PAR1":
        raise UnknownFormatError(str(p), "a bare Parquet file; open the trace directory that holds it")
    raise UnknownFormatError(str(p), "unrecognised trace format", "expected Chrome/Kineto JSON, Perfetto protobuf or a trace directory")


def format_for_output(path: str | Path, explicit: str | None = None) -> str:
    """Pick the output format from ``explicit`` or the output file's extension."""
    if explicit:
        if explicit not in FORMATS:
            raise UnknownFormatError(str(path), f"unknown format {explicit!r}", f"choose from {', '.join(FORMATS)}")
        return explicit
    name = str(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for fmt in ("trace", "perfetto"):
        if any(name.endswith(e) for e in FORMATS[fmt].extensions):
            return fmt
    if name.endswith(".json"):
        return "chrome_json"
    if name.endswith("/") or Path(path).is_dir():
        return "trace"
    raise UnknownFormatError(
        str(path), "cannot tell the output format from the file name",
        "use .pftrace (Perfetto), .json (Chrome JSON) or .trace (trace directory), or pass --format",
    )


def read_trace(path: str | Path, fmt: str | None = None, *, stream: bool | None = None) -> Trace:
    """Read any supported trace file; the format is detected from content unless given.

    JSON files larger than :func:`profiler.formats.json_stream.stream_threshold` (uncompressed)
    are read piece by piece with bounded memory; ``stream`` forces either way.  A gzip file whose
    trailer understates its size switches to the streaming reader once the content passes the
    threshold.  No reader takes more than :func:`profiler.formats.source.content_limit` bytes
    of content (``ACCEL_PROFILER_MAX_BYTES``).
    """
    name = fmt or detect_format(path)
    if name not in FORMATS:
        raise UnknownFormatError(str(path), f"unknown format {name!r}")
    reader = FORMATS[name].load("reader")
    if name in ("kineto", "chrome_json") and stream is not False:
        from profiler.formats import json_stream
        from profiler.formats.source import StreamInstead, stream_past

        limit = json_stream.stream_threshold()
        if stream or json_stream.uncompressed_size(path) > limit:
            return json_stream.read_json_streaming(path, name)
        try:  # gzip gives its size only modulo 2**32: switch once the content proves larger
            with stream_past(limit):
                out: Trace = reader(path)
            return out
        except StreamInstead:
            return json_stream.read_json_streaming(path, name)
    trace: Trace = reader(path)
    return trace


def write_trace(trace: Trace, path: str | Path, fmt: str | None = None) -> str:
    """Write ``trace`` to ``path`` in ``fmt`` (or the format its extension names); returns the format.

    All or nothing: the file is written to a temporary sibling and renamed over ``path``
    (:mod:`profiler.atomic`), so an interrupted or failed write leaves the old file as it was.
    """
    name = format_for_output(path, fmt)
    writer = FORMATS[name].load("writer")
    try:
        _write(trace, path, name, writer)
    except OSError as exc:  # a missing folder, no permission, a full disk: named by the output path,
        # not by the temporary sibling (still an OSError of the same kind for callers that handle one)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    return name


def _write(trace: Trace, path: str | Path, name: str, writer: Callable[..., Any]) -> str:
    from profiler.atomic import atomic_path

    if name == "trace":
        writer(trace, path)  # save_trace replaces the directory as a whole itself
        return name
    if Path(path).is_dir():
        raise TraceFormatError(str(path), "is a directory", f"a {name} output is a file")
    gz = str(path).lower().endswith(".gz")
    with atomic_path(path) as out:
        if gz:
            import gzip
            import tempfile

            with tempfile.NamedTemporaryFile(suffix=Path(str(path)[:-3]).suffix, delete=False) as tmp:
                plain = Path(tmp.name)
            try:
                writer(trace, plain)
                with open(plain, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            finally:
                plain.unlink(missing_ok=True)
        else:
            writer(trace, out)
    return name


__all__ = ["FORMATS", "Format", "TraceFormatError", "detect_format", "format_for_output", "read_trace", "write_trace"]
