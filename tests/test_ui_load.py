"""20 clients zooming at once against the real dashboard server on 127.0.0.1: no errors.

Latency under load is measured by ``python -m bench.bench_ui_load``; this only checks that every
request of every client is answered, for the window that client asked for.
"""

from __future__ import annotations

import threading
from typing import Any

from bench.bench_ui_load import ZoomClient, _callbacks, run_load
from ui.demo import demo_trace
from ui.server import build_registry, make_server


def test_twenty_clients_zooming_for_three_seconds_get_no_errors() -> None:
    reg = build_registry([(demo_trace(20_000), None)], None)
    srv = make_server(reg, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_port}"
        res = run_load(base, reg.traces[0].index.span, clients=20, seconds=3.0)
    finally:
        srv.shutdown()
    assert res.errors == []
    assert len(res.zooms) >= 20  # every client got through at least about one zoom
    assert set(res.requests) == {"timeline", "roofline", "stats"}


def test_the_load_client_reports_a_wrong_answer_as_an_error() -> None:
    """A server answering another window than asked is caught (the check above can fail)."""
    reg = build_registry([(demo_trace(2_000), None)], None)
    srv = make_server(reg, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        import http.client

        base = f"http://127.0.0.1:{srv.server_port}"
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_port)
        deps = _callbacks(conn)
        conn.close()
        s, e = reg.traces[0].index.span
        client = ZoomClient(base, deps, (s, e))
        real_get = client.get

        def shifted(path: str) -> dict[str, Any]:  # a server answering the window next to the one asked
            v = real_get(path)
            v["bars"]["x"] = [x + 10 * (e - s) for x in v["bars"]["x"]]
            return v

        client.get = shifted  # type: ignore[method-assign]
        from bench.bench_ui_load import LoadResult

        res = LoadResult()
        try:
            client.zoom(res, threading.Lock())
        except RuntimeError as exc:
            assert "asked for" in str(exc)
        else:
            raise AssertionError("a view for another window went unnoticed")
    finally:
        srv.shutdown()
