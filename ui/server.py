"""Start the dashboard: build the registry of openable traces and serve it (never in debug mode)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from profiler.hardware import HardwareSpec
from profiler.model import Trace
from ui.state import Registry


def build_registry(loaded: list[tuple[Trace, Path | None]], spec: HardwareSpec | None, files: list[Path] | None = None,
                   trace_dirs: list[Path] | None = None, max_upload_mb: int = 200) -> Registry:
    """A registry holding ``loaded`` traces (a demo trace when empty) and the allowed files."""
    reg = Registry(spec, files=files, trace_dirs=trace_dirs, max_upload_bytes=max_upload_mb << 20)
    if not loaded:
        from ui.demo import demo_trace

        loaded = [(demo_trace(), None)]
    for trace, path in loaded:
        reg.add(trace, path.name if path else (trace.metadata.source or "demo"), path)
    return reg


def make_server(reg: Registry, host: str = "127.0.0.1", port: int = 0) -> Any:
    """A threaded WSGI server for the app (port 0: a free port; ``server.server_port`` tells which)."""
    from werkzeug.serving import make_server as wz

    from ui.app import create_app

    app = create_app(reg)
    return wz(host, port, app.server, threaded=True)


def serve(reg: Registry, host: str = "127.0.0.1", port: int = 8050, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; ``announce`` gets the page's URL once the socket is bound (with the
    real port when ``port`` is 0)."""
    srv = make_server(reg, host, port)
    if announce is not None:
        announce(f"http://{host}:{srv.server_port}/")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
