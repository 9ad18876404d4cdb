"""Start the dashboard: build the registry of openable traces and serve it (never in debug mode).

Every request passes :class:`ui.security.RequestGuard` first (Host names and cross-origin writes),
uploads live within :class:`ui.uploads.BudgetRegistry`'s memory budget, and a server bound beyond
loopback says so on stderr each time it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from profiler.hardware import HardwareSpec
from profiler.model import Trace
from ui.security import RequestGuard, allowed_hosts, warn_if_exposed
from ui.state import Registry
from ui.uploads import BudgetRegistry


def build_registry(loaded: list[tuple[Trace, Path | None]], spec: HardwareSpec | None, files: list[Path] | None = None,
                   trace_dirs: list[Path] | None = None, max_upload_mb: int = 200) -> Registry:
    """A registry holding ``loaded`` traces (a demo trace when empty) and the allowed files."""
    reg = BudgetRegistry(spec, files=files, trace_dirs=trace_dirs, max_upload_bytes=max_upload_mb << 20)
    if not loaded:
        from ui.demo import demo_trace

        loaded = [(demo_trace(), None)]
    for trace, path in loaded:
        reg.add(trace, path.name if path else (trace.metadata.source or "demo"), path)
    return reg


def make_server(reg: Registry, host: str = "127.0.0.1", port: int = 0, allow_hosts: Iterable[str] = (),
                sweeps: Iterable[dict[str, Any]] = (), replays: Iterable[dict[str, Any]] = ()) -> Any:
    """A threaded WSGI server for the app (port 0: a free port; ``server.server_port`` tells which).

    Requests naming a Host other than loopback, ``host`` itself or ``allow_hosts`` are refused,
    and so are writes from another origin (:mod:`ui.security`).
    """
    from werkzeug.serving import make_server as wz

    from ui.app import create_app

    app = create_app(reg)
    from ui.replay_view import register_replays
    from ui.sweep_view import register_sweeps

    register_sweeps(app.server, list(sweeps))  # /sweep/<i>: what-if results beside the traces
    register_replays(app.server, list(replays))  # /replay/<i>: measured vs simulated per op
    guard = RequestGuard(app.server.wsgi_app, allowed_hosts(host, allow_hosts))
    app.server.wsgi_app = guard
    return wz(host, port, app.server, threaded=True)


def serve(reg: Registry, host: str = "127.0.0.1", port: int = 8050, announce: Callable[[str], None] | None = None,
          allow_hosts: Iterable[str] = (), sweeps: Iterable[dict[str, Any]] = (),
          replays: Iterable[dict[str, Any]] = ()) -> None:
    """Serve until interrupted; ``announce`` gets the page's URL once the socket is bound (with the
    real port when ``port`` is 0).  A ``host`` beyond loopback is warned about on stderr."""
    warn_if_exposed(host)
    srv = make_server(reg, host, port, allow_hosts, sweeps, replays)
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        announce(f"http://{shown}:{srv.server_port}/")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
