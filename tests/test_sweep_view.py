"""The dashboard's sweep view in real headless Chromium against the real server (``profiler ui --sweep``)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_dashboard_browser import CHROMEDRIVER, CHROMIUM, chrome, wait_for

pytestmark = pytest.mark.browser

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


def _sweep_file(tmp_path: Path) -> Path:
    out = tmp_path / "sweep.json"
    r = subprocess.run([sys.executable, "-m", "profiler", "sweep", "llm-decode", "--hw", "edge-npu", "--set", "layers=1",
                        "--vary", "dram_bandwidth=34e9,68e9,136e9", "--dtype", "fp16,int8", "--format", "json",
                        "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


@contextlib.contextmanager
def _served(args: list[str], announce: str):
    """``profiler ui ARGS --port 0`` running; yields the URL its line matching ``announce`` names."""
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "ui", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.time() + 120
        while url is None and time.time() < deadline:
            m = re.search(announce, proc.stdout.readline())
            url = m.group(1) if m else None
        assert url, "the server did not announce the page"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def _browser():
    d = chrome()
    try:
        yield d
    finally:
        d.quit()


def test_sweep_view_shows_the_points_and_the_pareto_front(tmp_path):
    sweep = _sweep_file(tmp_path)
    doc = json.loads(sweep.read_text())
    # a hostile string in the file must show as text, not markup
    doc["points"][0]["error"] = "<img src=x onerror=alert(1)>"
    doc["points"][0]["latency_ns"] = None
    sweep.write_text(json.dumps(doc))
    with _served(["--sweep", str(sweep)], r"sweep sweep\.json: (http://127\.0\.0\.1:\d+/sweep/0)") as url, \
            _browser() as d:
        d.get(url)
        rows = wait_for(lambda: d.find_elements("css selector", "#points tbody tr"))
        assert len(rows) == 6
        # by hand from the file: the front holds the cheapest fastest points, int8 at every bandwidth
        front = [r.text for r in d.find_elements("css selector", "#points tbody tr.front")]
        assert len(front) == 3 and all("int8" in t for t in front)
        assert "<img" in rows[0].text and not d.find_elements("css selector", "#points img")
        n_traces = wait_for(lambda: d.execute_script(
            "var g=document.getElementById('chart'); return g && g.data ? g.data.length : 0"))
        assert n_traces == 3  # fp16, int8, the front line
        names = d.execute_script("return document.getElementById('chart').data.map(t => t.name)")
        assert names == ["fp16", "int8", "Pareto front"]
        d.get(url + "?cost=sram_bytes")
        xt = wait_for(lambda: d.execute_script(
            "var g=document.getElementById('chart'); return g && g.layout ? g.layout.xaxis.title.text : ''"))
        assert "SRAM" in xt


def test_replay_view_shows_measured_against_simulated(tmp_path):
    kineto = Path(__file__).parent / "data" / "kineto" / "a100_rank3_of8.json.gz"
    out = tmp_path / "replay.json"
    r = subprocess.run([sys.executable, "-m", "profiler", "replay", str(kineto), "--limit", "4", "--format", "json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out.write_text(r.stdout)
    with _served(["--replay", str(out)], r"replay replay\.json: (http://127\.0\.0\.1:\d+/replay/0)") as url, \
            _browser() as d:
        d.get(url)
        assert len(wait_for(lambda: d.find_elements("css selector", "#rows tbody tr"))) == 4
        pts = wait_for(lambda: d.execute_script(
            "var g=document.getElementById('scatter'); return g && g.data ? g.data[0].x.length : 0"))
        assert pts == 4
        assert "median |error|" in d.find_element("id", "summary").text
