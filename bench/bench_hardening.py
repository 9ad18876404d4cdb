"""Hardening benchmarks: nesting depth and upload memory against same-run baselines; a gzip bomb's peak memory.

1. **Deep nesting.**  ``n`` fully nested slices (each inside the previous one: depth ``n - 1``).
   Parents by :func:`profiler.nesting.parents_from_depth` (one sort) against the per-level walk
   it replaced (one pass over all slices per level, kept here as the baseline), both on the same
   input in the same run; then the whole :func:`profiler.nesting.nest` and a builder ``build``.
2. **Uploads.**  A dashboard server made as ``profiler ui`` makes it takes ``n`` uploads of a real
   Kineto trace over HTTP; peak RSS with the default upload budget against no budget (every upload
   kept, what the server did before), each in a fresh process.
3. **Gzip bomb.**  :func:`bench.fuzz.gzip_bomb` (whitespace, the trailer's size modulo 2**32),
   read by ``read_trace`` in a fresh process with the default content limit: the normal reader
   switches to streaming once the content passes the stream threshold, and streaming drops the
   whitespace between events.  Before these changes the full-size file (4 GiB + 64 MiB) took the
   normal reader to 8.7 GB and the streaming one to 13.5 GB (measured on this machine).

``python -m bench hardening`` (``--quick``: 20k slices, 10 uploads, a 600 MB bomb).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench._util import median_time, peak_memory, report


def level_walk_parents(depth: np.ndarray) -> np.ndarray:
    """The baseline: parents by one pass over all slices per depth level (O(n x depth))."""
    n = depth.size
    parent = np.full(n, -1, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    for d in range(1, int(depth.max()) + 1 if n else 1):
        at = depth == d
        if at.any():
            last = np.maximum.accumulate(np.where(depth == d - 1, idx, -1))
            parent[at] = last[at]
    return parent


def _read(path: str, stream: bool | None) -> None:
    """Read in the child; refusal at the content limit is an outcome too (the limit follows the
    memory available at the time), so it is printed, not raised."""
    from profiler.formats import read_trace
    from profiler.formats.source import ContentLimitError

    try:
        t = read_trace(path, stream=stream)
        print(f"  read {t.slices.num_rows} slices", flush=True)
    except ContentLimitError as exc:
        print(f"  refused: {exc}", flush=True)


def nesting_rows(n: int, baseline_n: int) -> list[dict[str, object]]:
    from profiler.builder import TraceBuilder
    from profiler.nesting import nest, parents_from_depth

    rows: list[dict[str, object]] = []
    for size in sorted({baseline_n, n}):
        ts = np.arange(size, dtype=np.int64)
        dur = 2 * (size - ts)
        depth = np.arange(size, dtype=np.int64)
        lin, _ = median_time(lambda d=depth: parents_from_depth(d), repeat=3)
        row: dict[str, object] = {"slices": size, "depth": size - 1, "parents_s": round(lin, 4)}
        if size <= baseline_n:
            base, _ = median_time(lambda d=depth: level_walk_parents(d), repeat=1, warmup=0)
            assert (level_walk_parents(depth[:1000]) == parents_from_depth(depth[:1000])).all()
            row["baseline_level_walk_s"] = round(base, 3)
        row["nest_s"] = round(median_time(lambda t=ts, u=dur: nest(np.zeros(t.size, dtype=np.int64), t, u),
                                          repeat=3)[0], 4)

        def build(t: np.ndarray = ts, u: np.ndarray = dur) -> None:
            b = TraceBuilder(source_format="bench")
            tr = b.add_track("t", "other", None)
            b.add_slices(np.full(t.size, tr), t, u, ["a"] * t.size)
            b.build()

        row["build_s"] = round(median_time(build, repeat=3)[0], 4)
        rows.append(row)
    return rows


def bomb_rows(content: int) -> list[dict[str, object]]:
    from bench.fuzz import gzip_bomb
    from profiler.formats.source import content_limit

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as d:
        p = gzip_bomb(Path(d) / "bomb.json.gz", content)
        for how, stream in (("auto (switches to streaming)", None), ("streaming", True)):
            m = peak_memory(_read, str(p), stream)
            rows.append({"reader": how, "content_mb": content >> 20, "limit_mb": content_limit() >> 20, "gzip_mb": round(p.stat().st_size / 2**20, 1),
                         "peak_rss_mb": round(m["peak_rss_mb"]), "baseline_rss_mb": round(m["baseline_rss_mb"]),
                         "seconds": round(m["seconds"], 1)})
    return rows


def _serve_uploads(path: str, n: int, budget: str) -> None:
    """In the child: a dashboard server (as ``profiler ui`` makes it), ``n`` uploads of ``path`` over HTTP."""
    import base64
    import http.client
    import json
    import os
    import threading

    if budget:
        os.environ["ACCEL_PROFILER_UPLOAD_BUDGET"] = budget
    from ui.server import build_registry, make_server

    reg = build_registry([], None)
    srv = make_server(reg, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    payload = "data:application/octet-stream;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    outputs = [{"id": "trace-key", "property": "data"}, {"id": "message", "property": "children"},
               {"id": "trace-select", "property": "options"}, {"id": "trace-select", "property": "value"}]
    for i in range(n):
        body = json.dumps({"output": "..trace-key.data...message.children...trace-select.options...trace-select.value..",
                           "outputs": outputs,
                           "inputs": [{"id": "trace-select", "property": "value", "value": None},
                                      {"id": "upload", "property": "contents", "value": payload}],
                           "state": [{"id": "upload", "property": "filename", "value": f"u{i}.json.gz"},
                                     {"id": "trace-key", "property": "data", "value": 0}],
                           "changedPropIds": ["upload.contents"]}).encode()
        c = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=300)
        c.request("POST", "/_dash-update-component", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
    print(f"  {len(reg.traces)} traces kept", flush=True)
    srv.shutdown()


def upload_rows(n: int) -> list[dict[str, object]]:
    """Server RSS after ``n`` uploads of a real Kineto trace: no budget (the baseline: every upload
    kept, as before) against the default budget, each in a fresh process."""
    # a real multi-GPU Kineto trace kept in the repository (1.7 MB gzip)
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "kineto" / "a100_rank3_of8.json.gz"
    rows: list[dict[str, object]] = []
    for label, budget in (("baseline: no budget", "1T"), ("default budget", "")):
        m = peak_memory(_serve_uploads, str(path), n, budget)
        rows.append({"uploads": n, "of": path.name, "server": label, "start_rss_mb": round(m["baseline_rss_mb"]),
                     "peak_rss_mb": round(m["peak_rss_mb"]), "seconds": round(m["seconds"], 1)})
    return rows


def main(quick: bool = False) -> None:
    report("hardening_nesting", nesting_rows(20_000 if quick else 100_000, 5_000 if quick else 20_000))
    report("hardening_uploads", upload_rows(10 if quick else 50))
    report("hardening_bomb", bomb_rows((600 << 20) if quick else (1 << 32) + (64 << 20)))


if __name__ == "__main__":
    main()
