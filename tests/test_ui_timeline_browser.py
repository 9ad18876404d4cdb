"""The canvas timeline in headless Chromium at real core counts: a 25-core dojo-tile decode run and
a 132-core h100-sxm run from the simulator (small workloads: all the cores' tracks, few slices),
and the demo trace; search, keys, the URL, collapsing, counters, axis units, range statistics.

Ground truth is computed here from the trace's own columns (brute force), never from the payloads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
from test_dashboard_browser import (
    canvas_click,
    canvas_hover,
    canvas_point,
    chrome,
    load,
    mouse,
    settled,
    shown_slice_view,
    tl_info,
    wait_for,
    zoom,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    from collectors.simulator.api import simulate
    from collectors.simulator.workloads import Gemm, LlmDecodeStep, ModelConfig
    from profiler.hardware import load_spec
    from ui.demo import demo_trace
    from ui.server import build_registry, make_server

    dojo = simulate(LlmDecodeStep(ModelConfig(layers=2, hidden=1024, heads=16, ffn=4096, seq_len=512)),
                    load_spec("dojo-tile")).trace
    h100 = simulate(Gemm(M=2048, N=8192, K=128), load_spec("h100-sxm")).trace
    from test_ui_roofline import roof_trace

    reg = build_registry([(dojo, None), (h100, None), (demo_trace(30_000), None), (roof_trace(), None)], None)
    srv = make_server(reg, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", reg
    srv.shutdown()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = chrome()
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def open_trace(d: Any, url: str, key: int, extra: str = "") -> dict[str, Any]:
    info = load(d, f"{url}/?k={key}&n={time.monotonic_ns()}#trace={key}{extra}")  # a new query: a real reload
    return wait_for(lambda: (i := settled(d)) and i["key"] == key and i) or info  # type: ignore[no-any-return]


def test_dojo_tile_draws_only_the_rows_on_screen(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[0]
    info = open_trace(driver, url, 0)
    nrows = len(lt.tree.rows(set(), lt.max_depth))
    cores = [t for t in lt.tree.groups() if lt.tree.names[t].startswith("core")]
    assert len(cores) == 25 and info["rows"] == nrows >= 200
    a, b = info["fetchedRows"]
    assert b - a < nrows / 2  # a view is asked for the rows on screen (and a margin), not all
    # The wheel scrolls the rows (the window stays); at the bottom the last rows are fetched and
    # drawn, the axis stays on top.
    vx, vy = canvas_point(driver, 400, 300)
    total = driver.execute_script("return document.getElementById('tl-scroll').scrollHeight")
    for _ in range(total // 2000 + 2):
        mouse(driver, "mouseWheel", vx, vy, deltaX=0, deltaY=2000)
    info = wait_for(lambda: (i := settled(driver)) and i["fetchedRows"][1] == nrows and i)
    assert (info["t0"], info["t1"]) == (0, lt.index.span[1] - lt.index.span[0])
    assert info["shownRows"][1] == nrows and info["ticks"]
    assert driver.execute_script("return document.getElementById('tl-canvas').getBoundingClientRect().height") == 560


def test_h100_132_cores_collapse_all_and_expand_to_one_core(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[1]
    info = open_trace(driver, url, 1)
    cores = [t for t in lt.tree.groups() if lt.tree.names[t].startswith("core")]
    assert len(cores) == 132 and info["rows"] == len(lt.tree.rows(set(), lt.max_depth)) > 1000
    driver.find_element("id", "tl-collapse-all").click()
    folded = len(lt.tree.rows(set(lt.tree.groups()), lt.max_depth))
    info = wait_for(lambda: (i := settled(driver)) and i["rows"] == folded and i)
    assert folded <= 3 and len(info["collapsed"]) == len(lt.tree.groups())  # the device folded into one row
    # Expand to core 7: the device and core7 open, every other core folded.
    from selenium.webdriver.support.ui import Select

    core7 = next(t for t in cores if lt.tree.names[t] == "core7")
    Select(driver.find_element("id", "tl-expand-to")).select_by_value(str(core7))
    want = lt.tree.rows(set(lt.tree.groups()) - {core7, *(p for p in lt.tree.groups() if core7 in lt.tree.descendants(p))},
                        lt.max_depth)
    info = wait_for(lambda: (i := settled(driver)) and i["rows"] == len(want) and i)
    assert core7 not in info["collapsed"]
    labels = driver.execute_script("return window.accelTimeline.state.meta.rows.map(r => [r.label, r.track])")
    inside = {t for t in lt.tree.descendants(core7)}
    assert {t for _, t in labels} >= inside
    assert sum(1 for lab, _ in labels if lab.startswith("▸ core")) == 131
    driver.find_element("id", "tl-expand-all").click()
    wait_for(lambda: (i := settled(driver)) and i["collapsed"] == [] and i["rows"] == len(lt.tree.rows(set(), lt.max_depth)))


def test_zoomed_out_overview_shows_stalled_time_apart_from_work(server: tuple[str, Any], driver: Any) -> None:
    """dojo-tile decode: matrix engines mostly wait.  What is drawn on a matrix row (stall bars +
    stalled share of bins) adds up to the row's stall time counted from the slices."""
    url, reg = server
    lt = reg.traces[0]
    ix = lt.index
    open_trace(driver, url, 0)
    drawn = driver.execute_script("""
        const st = window.accelTimeline.state, d = st.data, out = {};
        const bw = (d.t1 - d.t0) / d.nbins;
        for (const b of d.binsDecoded) {
            let s = 0, w = 0;
            for (let k = 0; k < b.stall.length; k++) { s += b.stall[k] / 255 * bw; w += b.busy[k] / 255 * bw; }
            out[st.meta.rows[b.r].track] = [s, w];
        }
        for (let k = 0; k < d.bars.id.length; k++) {
            if (d.bars.d[k] !== 0) { continue; }
            const t = st.meta.rows[d.bars.r[k]].track;
            out[t] = out[t] || [0, 0];
            const len = Math.min(d.bars.x[k] + d.bars.w[k], d.t1) - Math.max(d.bars.x[k], d.t0);
            if (d.bars.s[k]) { out[t][0] += len; } else { out[t][1] += len; }
        }
        return out;""")
    cats = lt.columns["cats"]
    on_screen = driver.execute_script("const st = window.accelTimeline.state;"
                                      " return st.meta.rows.slice(st.data.r0, st.data.r1).map(r => r.track)")
    matrix = [t for t in on_screen if lt.tree.names[t] == "matrix"][:5]
    assert matrix
    span = ix.span[1] - ix.span[0]
    for t in matrix:
        a, b = ix.ranges[t]
        top = [k for k in range(a, b) if ix.depth[k] == 0]
        stall = sum(int(ix.dur[k]) for k in top if cats[lt.columns["cat"][k]] == "stall")
        work = sum(int(ix.dur[k]) for k in top if cats[lt.columns["cat"][k]] != "stall")
        s, w = drawn[str(t)]
        assert stall > work  # the decode run waits on DMA
        assert s == pytest.approx(stall, abs=span * 0.004) and w == pytest.approx(work, abs=span * 0.004)


def test_search_highlights_and_steps_through_matches(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[2]
    open_trace(driver, url, 2)
    names, code = lt.columns["names"], lt.columns["name"]
    hits = np.flatnonzero(code == names.index("matmul_qkv"))
    hits = hits[np.argsort(lt.index.ts[hits], kind="stable")]
    box = driver.find_element("id", "tl-search")
    box.send_keys("matmul_qkv")
    info = wait_for(lambda: (i := settled(driver)) and i["q"] == "matmul_qkv" and i["marks"] > 0 and i)
    assert info["marks"] > 0  # every match is drawn, however narrow
    from selenium.webdriver.common.keys import Keys

    box.send_keys(Keys.ENTER)
    wait_for(lambda: driver.find_element("id", "tl-count").text == f"1 of {hits.size}")
    assert wait_for(lambda: settled(driver)["sel"] == int(hits[0]))
    driver.find_element("id", "tl-next").click()
    wait_for(lambda: driver.find_element("id", "tl-count").text == f"2 of {hits.size}")
    assert wait_for(lambda: settled(driver)["sel"] == int(hits[1]))
    driver.find_element("id", "tl-prev").click()
    driver.find_element("id", "tl-prev").click()
    wait_for(lambda: driver.find_element("id", "tl-count").text == f"{hits.size} of {hits.size}")  # wraps around
    assert wait_for(lambda: settled(driver)["sel"] == int(hits[-1]))
    # A regular expression matching both DMA names.
    box.clear()
    box.send_keys("^dma_load_(weights|activations)$")
    driver.find_element("id", "tl-regex").click()
    driver.find_element("id", "tl-next").click()
    n = int(np.isin(code, [names.index("dma_load_weights"), names.index("dma_load_activations")]).sum())
    wait_for(lambda: driver.find_element("id", "tl-count").text.endswith(f"of {n}"))
    box.clear()
    box.send_keys("(")
    wait_for(lambda: "bad regular expression" in driver.find_element("id", "tl-count").text)
    assert wait_for(lambda: settled(driver))  # the view is still drawn, without highlights


def test_keys_and_wheel_zoom_and_pan_like_perfetto(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    info = open_trace(driver, url, 2)
    from selenium.webdriver.common.action_chains import ActionChains

    span = info["t1"] - info["t0"]
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    mid = (info["t0"] + info["t1"]) / 2
    driver.execute_script("window.accelTimeline.state.mouseX = undefined")
    ActionChains(driver).send_keys("w").perform()
    w = wait_for(lambda: (i := settled(driver)) and i["t1"] - i["t0"] < span * 0.9 and i)
    assert w["t1"] - w["t0"] == pytest.approx(span * 0.8, rel=1e-6)
    assert (w["t0"] + w["t1"]) / 2 == pytest.approx(mid, rel=1e-6)
    ActionChains(driver).send_keys("d").perform()
    d = wait_for(lambda: (i := settled(driver)) and i["t0"] > w["t0"] and i)
    assert d["t0"] - w["t0"] == pytest.approx(0.1 * (w["t1"] - w["t0"]), rel=1e-6)
    ActionChains(driver).send_keys("a").perform()
    a = wait_for(lambda: (i := settled(driver)) and i["t0"] < d["t0"] and i)
    assert a["t0"] == pytest.approx(w["t0"], abs=2)
    ActionChains(driver).send_keys("s").perform()
    s = wait_for(lambda: (i := settled(driver)) and i["t1"] - i["t0"] > (a["t1"] - a["t0"]) * 1.1 and i)
    assert s["t1"] - s["t0"] == pytest.approx((a["t1"] - a["t0"]) * 1.25, rel=1e-6)
    # Ctrl+wheel zooms at the pointer (the time under it stays put); a plain wheel scrolls rows.
    x, y = 190 + 300, 100
    t_at = s["t0"] + 300 / (driver.execute_script("return window.accelTimeline.state.w") - 200) * (s["t1"] - s["t0"])
    vx, vy = canvas_point(driver, x, y)
    mouse(driver, "mouseWheel", vx, vy, modifiers=2, deltaX=0, deltaY=-300)
    z = wait_for(lambda: (i := settled(driver)) and i["t1"] - i["t0"] < (s["t1"] - s["t0"]) * 0.5 and i)
    assert z["t1"] - z["t0"] == pytest.approx((s["t1"] - s["t0"]) * np.exp(-1), rel=1e-6)
    t_after = z["t0"] + 300 / (driver.execute_script("return window.accelTimeline.state.w") - 200) * (z["t1"] - z["t0"])
    assert t_after == pytest.approx(t_at, rel=1e-6)
    # A drag pans by the time under the pixels dragged.
    plot_w = driver.execute_script("return window.accelTimeline.state.w") - 200
    mouse(driver, "mousePressed", vx, vy, button="left", clickCount=1)
    for dx in (-20, -60, -100):
        mouse(driver, "mouseMoved", vx + dx, vy, button="left")
    mouse(driver, "mouseReleased", vx - 100, vy, button="left", clickCount=1)
    p = wait_for(lambda: (i := settled(driver)) and i["t0"] > z["t0"] and i)
    assert p["t0"] - z["t0"] == pytest.approx(100 / plot_w * (z["t1"] - z["t0"]), rel=1e-3)
    assert p["t1"] - p["t0"] == pytest.approx(z["t1"] - z["t0"], rel=1e-9)


def test_the_url_reproduces_the_view(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[2]
    open_trace(driver, url, 2)
    core1 = next(t for t in lt.tree.groups() if lt.tree.names[t] == "core1")
    # Clicking a group's label folds it.
    i = driver.execute_script("return window.accelTimeline.state.meta.rows.findIndex(r => r.track === arguments[0])", core1)
    top = driver.execute_script("return window.accelTimeline.state.rowTop[arguments[0]]", i)
    canvas_click(driver, 30, 26 + top + 8)
    wait_for(lambda: (i := settled(driver)) and i["collapsed"] == [core1])
    driver.find_element("id", "tl-search").send_keys("softmax")
    sid = int(np.flatnonzero(lt.columns["name"] == lt.columns["names"].index("softmax"))[3])
    shown_slice_view(driver, lt, sid, pad=3_000)
    from test_dashboard_browser import click_slice

    click_slice(driver, sid)
    before = wait_for(lambda: (i := settled(driver)) and i["sel"] == sid and i)
    link = wait_for(lambda: (h := driver.current_url) and f"sel={sid}" in h and h)
    assert "trace=2" in link and "q=softmax" in link
    driver.get("about:blank")
    after = open_trace(driver, url, 2, "&" + link.split("#", 1)[1])
    assert (after["t0"], after["t1"], after["sel"], after["q"]) == (before["t0"], before["t1"], sid, "softmax")
    assert after["collapsed"] == [core1]
    wait_for(lambda: lt.columns["names"][lt.columns["name"][sid]] in driver.find_element("id", "details").text)
    # A link to another trace than the page's first one opens that trace.
    driver.get(url + "/?other#trace=1&t0=1000&t1=5000")
    info = wait_for(lambda: (i := settled(driver)) and i["key"] == 1 and i)
    assert (info["t0"], info["t1"]) == (1000, 5000)
    assert "h100" in unquote(driver.find_element("id", "trace-select").text) or info["rows"] > 700


def test_counters_have_a_scale_units_and_hover_values(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[0]
    open_trace(driver, url, 0)
    meta = driver.execute_script("return window.accelTimeline.state.meta.rows")
    sram = [m for m in meta if m["label"] == "SRAM"]
    assert len(sram) == 25 and all(m["kind"] == "counter" and m["unit"] == "bytes" for m in sram)
    ts_all, v_all = lt.index.counters[sram[0]["track"]]
    assert sram[0]["max"] == pytest.approx(float(v_all.max()))
    # Hover the first SRAM row half-way through the run: the value is the last sample before it.
    i = next(k for k, m in enumerate(meta) if m["label"] == "SRAM")
    top = driver.execute_script("return window.accelTimeline.state.rowTop[arguments[0]]", i)
    x = 190 + (driver.execute_script("return window.accelTimeline.state.w") - 200) * 0.5
    canvas_hover(driver, x, 26 + top + 18)
    tip = wait_for(lambda: (t := driver.find_element("id", "tl-tip").text) and "SRAM" in t and t)
    t_ns = driver.execute_script("const s = window.accelTimeline.state; return s.t0 + (arguments[0] - 190) /"
                                 " (s.w - 200) * (s.t1 - s.t0)", x)
    k = int(np.searchsorted(ts_all - lt.origin, t_ns, "right")) - 1
    want = float(v_all[max(k, 0)])
    shown = driver.execute_script("return window.accelTimeline.fmtSI(arguments[0], 'bytes')", want)
    assert shown in tip


def test_axis_uses_auto_units_from_the_trace_start(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    info = open_trace(driver, url, 2)  # 33 ms
    assert info["ticks"][0] == "0 ms" and all(t.endswith(" ms") for t in info["ticks"])
    z = zoom(driver, 0, 500)
    assert z["ticks"][:2] == ["0 ns", "100 ns"]
    z = zoom(driver, 1_000_000, 1_000_500)  # the unit follows the time shown, with the decimals the step needs
    assert z["ticks"][:2] == ["1.0000 ms", "1.0001 ms"]
    z = zoom(driver, 20_000, 230_000)
    assert z["ticks"][:2] == ["50 µs", "100 µs"]
    info = open_trace(driver, url, 0)  # dojo decode: tens of microseconds
    assert all(t.endswith(" µs") for t in info["ticks"])
    page = driver.find_element("tag name", "body").text
    import re

    assert not re.search(r"\d us\b", page)  # one spelling: µs


def test_shift_drag_selects_a_range_and_statistics_cover_every_track(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[0]
    ix = lt.index
    info = open_trace(driver, url, 0)
    w = driver.execute_script("return window.accelTimeline.state.w") - 200
    x0, x1 = 190 + w * 0.25, 190 + w * 0.5
    vx0, vy = canvas_point(driver, x0, 200)
    vx1 = vx0 + (x1 - x0)
    mouse(driver, "mouseMoved", vx0, vy, modifiers=8)
    mouse(driver, "mousePressed", vx0, vy, modifiers=8, button="left", clickCount=1)
    for f in (0.3, 0.6, 1.0):
        mouse(driver, "mouseMoved", vx0 + (vx1 - vx0) * f, vy, modifiers=8, button="left")
    mouse(driver, "mouseReleased", vx1, vy, modifiers=8, button="left", clickCount=1)
    rng = wait_for(lambda: tl_info(driver)["range"])
    t0, t1 = lt.origin + int(np.floor(rng[0])), lt.origin + int(np.ceil(rng[1]))
    assert info["t0"] < rng[0] < rng[1] < info["t1"]
    want = int(((ix.ts < t1) & (ix.end > t0)).sum())
    cap = wait_for(lambda: (c := driver.find_element("id", "stats-caption").text) and "selected range" in c and c)
    assert f"{want:,} slices" in cap
    # Per-track busy/stall shares of the first matrix engine, by hand.
    matrix = next(t for t in ix.ranges if lt.tree.names[t] == "matrix")
    path = " / ".join(lt.trace.track_path(matrix))
    a, b = ix.ranges[matrix]
    cats = lt.columns["cats"]
    busy = stall = 0
    for k in range(a, b):
        if ix.depth[k] != 0:
            continue
        inside = max(0, min(int(ix.end[k]), t1) - max(int(ix.ts[k]), t0))
        if cats[lt.columns["cat"][k]] == "stall":
            stall += inside
        else:
            busy += inside
    rows = wait_for(lambda: [r.text for r in driver.find_elements("css selector", "#stats-tracks tr")
                             if r.text.startswith(path + "\n") or r.text.startswith(path + " ")])
    cells = driver.execute_script("""
        const out = [];
        for (const tr of document.querySelectorAll('#stats-tracks tr')) {
            const c = [...tr.querySelectorAll('td')].map(td => td.innerText);
            if (c[0] === arguments[0]) { out.push(c); }
        }
        return out;""", path)
    assert rows and cells
    assert float(cells[0][2]) == pytest.approx(round(100 * busy / (t1 - t0), 1), abs=0.11)
    assert float(cells[0][3]) == pytest.approx(round(100 * stall / (t1 - t0), 1), abs=0.11)
    # A zoom clears the range: the statistics follow the new window.
    zoom(driver, info["t0"], (info["t0"] + info["t1"]) / 2)
    wait_for(lambda: "window " in driver.find_element("id", "stats-caption").text)


def test_longest_slices_need_no_flops_and_a_row_shows_its_slice(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[1]
    open_trace(driver, url, 1)
    ix = lt.index
    top = int(ix.dur.max())
    names = {lt.columns["names"][lt.columns["name"][k]] for k in np.flatnonzero(ix.dur == top)}
    first = wait_for(lambda: (c := driver.find_elements("css selector", "#longest td[data-dash-column='name']"))
                     and c[0].text in names and c)  # the table follows the trace just opened
    first[0].click()
    info = wait_for(lambda: (i := settled(driver)) and i["sel"] is not None and i)
    assert ix.dur[info["sel"]] == top


def test_slice_names_are_drawn_when_they_fit(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    lt = reg.traces[2]
    open_trace(driver, url, 2)
    sid = int(np.flatnonzero(lt.columns["name"] == lt.columns["names"].index("matmul_ffn_up"))[5])
    shown_slice_view(driver, lt, sid, pad=int(lt.index.dur[sid]))
    info = wait_for(lambda: (i := settled(driver)) and "matmul_ffn_up" in i["labels"] and i)
    assert "matmul_ffn_up" in info["labels"]
    # Zoomed out to the whole run, bars are narrow: no name is squeezed into them.
    info = zoom(driver, 0, lt.index.span[1] - lt.index.span[0])
    rects = driver.execute_script("""const st = window.accelTimeline.state, d = st.data, out = [];
        for (let k = 0; k < d.bars.id.length; k++) { out.push(window.accelTimeline.barRect(d.bars.id[k])[2]); }
        return out;""")
    if not any(w > 40 for w in rects):
        assert info["labels"] == []


def test_roofline_ridge_labels_do_not_overlap(server: tuple[str, Any], driver: Any) -> None:
    url, reg = server
    open_trace(driver, url, 1)
    wait_for(lambda: driver.find_elements("css selector", "#roofline .annotation-text"))
    boxes = driver.execute_script("""return [...document.querySelectorAll('#roofline .annotation-text')].map(e => {
        const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, e.textContent]; });""")
    assert any("ridge" in b[4] for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # The legend sits below the x axis title, not over it.
    title, legend = driver.execute_script("""const r = e => { const b = e.getBoundingClientRect();
            return [b.left, b.top, b.right, b.bottom]; };
        return [r(document.querySelector('#roofline .g-xtitle')), r(document.querySelector('#roofline .legend'))];""")
    assert legend[1] >= title[3] - 1, (title, legend)


def test_points_above_the_roof_are_marked_named_and_hovered(server: tuple[str, Any], driver: Any) -> None:
    """The hand-made edge-npu trace of test_ui_roofline: fast_gemm runs 1.4x and hot_copy 2x above
    their roofs (worked out there by hand); honest runs under its roof."""
    url, reg = server
    open_trace(driver, url, 3)
    note = wait_for(lambda: (t := driver.find_element("id", "roofline-note").text) and t)
    assert "2 of 3 ops ran above their roof" in note and "hot_copy ×2, fast_gemm ×1.4" in note
    assert driver.find_element("id", "roofline-note").is_displayed()
    # the legend's texts read in the page in one go (the chart may redraw between a lookup and a read)
    assert wait_for(lambda: "above the roof: spec below measured" in driver.execute_script(
        "return [...document.querySelectorAll('#roofline .legendtext')].map(e => e.textContent)"))
    # The two points above are red triangles (plotly draws a circle with arcs, a triangle without).
    pts = driver.execute_script("""const gd = document.querySelector('#roofline .js-plotly-plot');
        const k = gd.data.findIndex(t => t.name === 'above the roof: spec below measured');
        const tr = document.querySelectorAll('#roofline .scatterlayer .trace')[k];
        return [...tr.querySelectorAll('.point')].map(p => { const r = p.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, p.getAttribute('d'), p.style.fill]; });""")
    assert len(pts) == 2
    assert all("A" not in d and fill.replace(" ", "") == "rgb(214,39,40)" for _, _, d, fill in pts)
    honest = driver.execute_script("""const gd = document.querySelector('#roofline .js-plotly-plot');
        const k = gd.data.findIndex(t => t.name.endsWith('-bound ops'));
        return [...document.querySelectorAll('#roofline .scatterlayer .trace')[k].querySelectorAll('.point')]
            .map(p => p.getAttribute('d'));""")
    assert len(honest) == 1 and "A" in honest[0]
    # Hovering a triangle with the pointer says how far above which roof.
    texts = []
    for x, y, _, _ in pts:
        mouse(driver, "mouseMoved", x + 1, y + 1)
        texts.append(wait_for(lambda: (t := " ".join(e.text for e in driver.find_elements(
            "css selector", "#roofline .hoverlayer .hovertext"))) and "above" in t and t))
        mouse(driver, "mouseMoved", 5, 5)
    joined = " ".join(texts)
    assert "×1.4 above its compute roof" in joined and "×2 above its memory roof" in joined


def test_slice_hover_shows_flops_bytes_and_intensity_or_a_dash(server: tuple[str, Any], driver: Any) -> None:
    """fast_gemm: 25.76 MFLOP over 25.76 kB, AI 1000 FLOP/B; the DMA load: 500 kB and no flops;
    the stall: neither.  What is missing reads "–", never "0.00"."""
    url, reg = server
    lt = reg.traces[3]
    open_trace(driver, url, 3)
    names = lt.columns["names"]

    def hover(name: str) -> str:
        sid = int(np.flatnonzero(lt.columns["name"] == names.index(name))[0])
        shown_slice_view(driver, lt, sid, pad=500)
        rect = driver.execute_script("return window.accelTimeline.barRect(arguments[0])", sid)
        canvas_hover(driver, rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
        tip = wait_for(lambda: (t := driver.find_element("id", "tl-tip").text) and t.startswith(name)
                       and "flops" in t and t)
        canvas_hover(driver, 2, 2)
        return tip  # type: ignore[no-any-return]

    gemm = hover("fast_gemm").splitlines()
    assert "flops 25.8 MFLOP" in gemm and "bytes 25.8 kB" in gemm and "AI 1000 FLOP/B" in gemm
    load_ = hover("load").splitlines()
    assert "flops –" in load_ and "bytes 500 kB" in load_ and "AI –" in load_
    stall = hover("wait_dma")
    assert "flops –" in stall.splitlines() and "bytes –" in stall.splitlines() and "AI –" in stall.splitlines()
    assert "0.00" not in stall + "".join(load_)


def test_readme_screenshots_of_the_new_views(server: tuple[str, Any], driver: Any) -> None:
    """The README's pictures: the 132-core h100-sxm run folded to one core, and a dojo-tile decode
    with a search and a selected range (written to docs/ with ACCEL_PROFILER_UPDATE_DOCS=1)."""
    import os
    import shutil

    from test_dashboard_browser import ARTIFACTS, DOCS, png_size

    url, reg = server
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    try:
        lt = reg.traces[1]
        core7 = next(t for t in lt.tree.groups() if lt.tree.names[t] == "core7")
        others = sorted(g for g in lt.tree.groups() if g != core7 and core7 not in lt.tree.descendants(g))
        open_trace(driver, url, 1, "&c=" + ",".join(map(str, others)))
        info = wait_for(lambda: (i := settled(driver)) and i["collapsed"] == others and i)
        assert info["rows"] < 200
        driver.execute_script("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        shots = {"timeline-h100.png": ARTIFACTS / "timeline-h100.png", "timeline-dojo.png": ARTIFACTS / "timeline-dojo.png"}
        driver.save_screenshot(str(shots["timeline-h100.png"]))
        open_trace(driver, url, 0, "&q=load")
        w = driver.execute_script("return window.accelTimeline.state.w") - 200
        driver.execute_script("const s = window.accelTimeline.state;"
                              " window.accelTimeline.selectRange(s.t0 + (s.t1 - s.t0) * 0.3, s.t0 + (s.t1 - s.t0) * 0.6)")
        wait_for(lambda: "selected range" in driver.find_element("id", "stats-caption").text)
        assert w > 0 and settled(driver)["marks"] + settled(driver)["bars"] > 0
        time.sleep(0.5)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(shots["timeline-dojo.png"]))
        for name, shot in shots.items():
            assert png_size(shot) == (1600, 1000)
            if os.environ.get("ACCEL_PROFILER_UPDATE_DOCS"):  # refresh the README's pictures on request only
                shutil.copyfile(shot, DOCS / name)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
