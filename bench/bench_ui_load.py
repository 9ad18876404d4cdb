"""Dashboard under load: many clients zooming at once against the real server on 127.0.0.1.

Each client plays what the page does for one zoom: the canvas timeline's ``GET /api/view`` for
the zoomed window (nanoseconds from the trace's start) and the rows on screen, then, with Dash's
own request bodies (output ids read from the server's ``/_dash-dependencies``), the view-state
store -> the roofline (``render_roofline``) and the range statistics (``range_stats``).  A
zoom's latency is the whole chain.  An error is
any non-200 answer, a failed connection, or an answer for another window than the one asked for
(cross-talk between clients).

Baseline in the same run: one client alone, for the ratio of latencies under load.
Prints p50 / p95 / max latency, zooms per second and the error count.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench._util import report


@dataclass
class LoadResult:
    """Latencies (seconds) of whole zooms and of each request kind, and the errors seen."""

    zooms: list[float] = field(default_factory=list)
    requests: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _callbacks(conn: http.client.HTTPConnection) -> dict[str, dict[str, Any]]:
    """The zoom chain's callbacks as the page knows them, keyed by their first input."""
    conn.request("GET", "/_dash-dependencies")
    resp = conn.getresponse()
    deps = json.loads(resp.read())
    roof = next(d for d in deps if "roofline.figure" in d["output"])
    stats = next(d for d in deps if "stats-caption.children" in d["output"])
    return {"roofline": roof, "stats": stats}


def _outputs(output: str) -> list[dict[str, str]]:
    parts = output.strip(".").split("...") if output.startswith("..") else [output]
    return [dict(zip(("id", "property"), p.split(".", 1), strict=True)) for p in parts]


def _body(dep: dict[str, Any], inputs: list[Any], state: list[Any]) -> dict[str, Any]:
    """A request body as dash-renderer sends it: values in the order of the callback's inputs/state."""
    ins = [dict(i, value=v) for i, v in zip(dep["inputs"], inputs, strict=True)]
    sts = [dict(s, value=v) for s, v in zip(dep["state"], state, strict=True)]
    first = f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"
    return {"output": dep["output"], "outputs": _outputs(dep["output"]), "inputs": ins, "state": sts,
            "changedPropIds": [first], "parsedChangedPropsIds": [first]}


class ZoomClient:
    """One page's worth of zooming over a keep-alive connection."""

    def __init__(self, base: str, deps: dict[str, dict[str, Any]], span: tuple[int, int], key: int = 0,
                 width: int = 1100, seed: int = 0) -> None:
        u = urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=60)
        self.deps = deps
        self.span = span
        self.key = key
        self.width = width
        self.rng = random.Random(seed)
        self.rendered: dict[str, Any] | None = None

    def post(self, dep: dict[str, Any], inputs: list[Any], state: list[Any]) -> dict[str, Any]:
        data = json.dumps(_body(dep, inputs, state)).encode()
        self.conn.request("POST", "/_dash-update-component", body=data,
                          headers={"Content-Type": "application/json", "Content-Length": str(len(data))})
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status == 204:
            return {}
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {payload[:200]!r}")
        out: dict[str, Any] = json.loads(payload)["response"]
        return out

    def get(self, path: str) -> dict[str, Any]:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {payload[:200]!r}")
        out: dict[str, Any] = json.loads(payload)
        return out

    def zoom(self, res: LoadResult, lock: threading.Lock) -> None:
        s, e = self.span
        frac = 10 ** self.rng.uniform(-4, 0)  # windows from the whole run down to 1/10,000 of it
        a = self.rng.uniform(0, 1 - frac)
        t0, t1 = round(a * (e - s)), round((a + frac) * (e - s))  # nanoseconds from the start, as the page sends
        t1 = max(t1, t0 + 1)
        t = time.perf_counter()
        times = {}
        v = self.get(f"/api/view/{self.key}?t0={t0}&t1={t1}&w={self.width}&r0=0&r1=40")
        times["timeline"] = time.perf_counter() - t
        b = v["bars"]
        outside = sum(1 for x, w in zip(b["x"], b["w"], strict=True) if x >= t1 or x + w <= t0)
        if v["t0"] != t0 or v["t1"] != t1 or outside:
            raise RuntimeError(f"asked for {(t0, t1)}, the timeline answered {v['t0']}..{v['t1']} "
                               f"with {outside} bars outside it")
        state = {"key": self.key, "t0": t0, "t1": t1, "sel": None, "collapsed": [], "range": None}
        t2 = time.perf_counter()
        r = self.post(self.deps["roofline"], [state, {"name": None}], [])
        times["roofline"] = time.perf_counter() - t2
        if "roof-table" not in r:
            raise RuntimeError("roofline answer without its table")
        t3 = time.perf_counter()
        r = self.post(self.deps["stats"], [state], [])
        times["stats"] = time.perf_counter() - t3
        if "stats-names" not in r:
            raise RuntimeError("range statistics answer without its table")
        total = time.perf_counter() - t
        with lock:
            res.zooms.append(total)
            for k, x in times.items():
                res.requests.setdefault(k, []).append(x)


def run_load(base: str, span: tuple[int, int], clients: int = 20, seconds: float = 15.0, key: int = 0) -> LoadResult:
    """``clients`` threads zooming for ``seconds`` against the dashboard at ``base``."""
    u = urlsplit(base)
    probe = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=60)
    deps = _callbacks(probe)
    probe.close()
    res = LoadResult()
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    start = threading.Barrier(clients)

    def run(i: int) -> None:
        c = ZoomClient(base, deps, span, key=key, seed=i)
        start.wait()
        while time.monotonic() < stop:
            try:
                c.zoom(res, lock)
            except Exception as exc:  # every failure counts, whatever it is
                with lock:
                    res.errors.append(f"client {i}: {type(exc).__name__}: {exc}")
                c.conn.close()
        c.conn.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 120)
    res.seconds = time.perf_counter() - t
    return res


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _row(what: str, xs: list[float], res: LoadResult, **extra: Any) -> dict[str, Any]:
    return {"what": what, "n": len(xs), "p50_ms": _pct(xs, 0.5) * 1e3, "p95_ms": _pct(xs, 0.95) * 1e3,
            "max_ms": max(xs, default=float("nan")) * 1e3, **extra}


def main(quick: bool = False) -> None:
    import logging

    from ui.demo import demo_trace
    from ui.server import build_registry, make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    n = 100_000 if quick else 1_000_000
    seconds = 3.0 if quick else 15.0
    reg = build_registry([(demo_trace(n), None)], None)
    srv = make_server(reg, "127.0.0.1", 0)  # prepares the trace before serving
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    span = reg.traces[0].index.span
    rows: list[dict[str, Any]] = []
    try:
        alone = run_load(base, span, clients=1, seconds=seconds / 3)
        loaded = run_load(base, span, clients=20, seconds=seconds)
    finally:
        srv.shutdown()
    rows.append(_row(f"baseline: 1 client, zoom (2 requests), {n:,} slices", alone.zooms, alone,
                     errors=len(alone.errors), zooms_per_s=len(alone.zooms) / alone.seconds))
    rows.append(_row(f"20 clients for {seconds:.0f} s, zoom (2 requests)", loaded.zooms, loaded,
                     errors=len(loaded.errors), zooms_per_s=len(loaded.zooms) / loaded.seconds,
                     p95_ratio_vs_1_client=_pct(loaded.zooms, 0.95) / _pct(alone.zooms, 0.95)))
    for k in ("timeline", "roofline", "stats"):
        rows.append(_row(f"20 clients: {k} request", loaded.requests.get(k, []), loaded))
    report("ui_load", rows)
    for e in loaded.errors[:10]:
        print("error:", e)
    print(f"errors: {len(loaded.errors)}  p50 {rows[1]['p50_ms']:.1f} ms  p95 {rows[1]['p95_ms']:.1f} ms  "
          f"max {rows[1]['max_ms']:.1f} ms  median 1 client {statistics.median(alone.zooms) * 1e3:.1f} ms")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
