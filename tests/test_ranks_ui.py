"""``profiler ui r0 r1``: one timeline, a collapsible group per rank (the real server, over HTTP)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data" / "kineto"
RANKS = [DATA / "two_ranks_rank0.json.gz", DATA / "two_ranks_rank1.json.gz"]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_profiler_ui_merges_ranks_into_collapsible_groups():
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "ui", *map(str, RANKS), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.time() + 120
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
        assert url, "the server did not announce its address"
        rows = _get(url + "api/rows/0")
        assert rows["label"].startswith("2 ranks")
        top = [r for r in rows["rows"] if r["level"] == 0]
        assert [r["label"].lstrip("▾▸ ") for r in top] == ["rank 0", "rank 1"]
        assert all(r["kind"] == "group" for r in top)
        n_all = len(rows["rows"])
        folded = _get(url + f"api/rows/0?c={top[0]['track']}")
        # rank 0 folded: its rows are gone, rank 1's stay
        assert len(folded["rows"]) < n_all
        assert any(r["label"].lstrip("▾▸ ") == "rank 1" for r in folded["rows"])
        assert sum(r["level"] == 0 for r in folded["rows"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
