"""The Dash app: the page of :mod:`ui.layout`, the callbacks of :mod:`ui.callbacks`, the timeline's
JSON endpoints (:mod:`ui.api`) and the Perfetto routes.

State that is large (traces, their indexes, analysis reports) stays in :class:`ui.state.Registry`
on the server; the page holds only small hidden stores (trace key, view, navigation requests).
The timeline is a canvas (``assets/timeline.js``) that asks ``/api/view`` for the rows on screen.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash
from dash.exceptions import DependencyException

from ui.api import register_api
from ui.callbacks import compare_table, details, prepare, read_upload, register, window_of
from ui.layout import import_stats_line, layout, report_of, trace_options
from ui.perfetto import register_routes
from ui.state import Registry

ASSETS = Path(__file__).resolve().parent / "assets"

__all__ = ["compare_table", "create_app", "details", "import_stats_line", "prepare", "read_upload", "report_of",
           "trace_options", "window_of"]


def create_app(reg: Registry, initial: int | None = None, lean_plotly: bool = True) -> Dash:
    """The dashboard for the traces in ``reg`` (``initial``: key shown first).

    ``lean_plotly=False`` lets dcc.Graph fetch Dash's full plotly.js bundle instead of the
    cartesian one in assets/vendor (bench_ui compares the two).
    """
    # vendor/ (the plotly.js bundle) is served from the assets folder but loaded by plotly-loader.js
    # asynchronously, not by a blocking script tag.
    app = Dash(__name__, assets_folder=str(ASSETS), assets_path_ignore=["vendor"],
               assets_ignore="" if lean_plotly else r"^plotly-loader\.js$",
               title="accel-profiler", update_title=None,  # type: ignore[arg-type]
               suppress_callback_exceptions=True)
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = int(reg.max_upload_bytes * 1.4) + (1 << 20)
    offline = register_routes(server, reg)
    register_api(server, reg)
    # Dash answers a component-suite path outside its packages (``../../etc/passwd``) by raising;
    # refuse it as "not found" instead of a server error.
    server.register_error_handler(DependencyException, lambda exc: ("not found", 404))
    first = initial if initial is not None else min(reg.traces)
    for lt in reg.traces.values():
        prepare(lt, reg.spec)
    app.layout = lambda: layout(reg, first, offline)
    register(app, reg)
    return app
