"""The dashboard server against the attack run: Host names, cross-origin writes, exposure warning,
upload memory, odd upload fields, hover escaping and the ``--trace-dir`` listing.

Requests go over real HTTP to a server made by :func:`ui.server.make_server` (port 0, a thread),
so what is tested is the wiring that ``profiler ui`` uses.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profiler.builder import TraceBuilder
from profiler.model import Trace
from ui.demo import demo_trace
from ui.server import build_registry, make_server
from ui.uploads import BudgetRegistry, trace_bytes, upload_name

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small() -> Trace:
    return demo_trace(2_000)


@pytest.fixture()
def server(small: Trace) -> Iterator[tuple[Any, BudgetRegistry]]:
    reg = build_registry([(small, None)], None)
    srv = make_server(reg, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, reg  # type: ignore[misc]
    srv.shutdown()
    srv.server_close()


def _request(srv: Any, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=60)
    h = {"Host": f"127.0.0.1:{srv.server_port}", **(headers or {})}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


OPEN_TRACE = {
    "output": "..trace-key.data...message.children...trace-select.options...trace-select.value..",
    "outputs": [{"id": "trace-key", "property": "data"}, {"id": "message", "property": "children"},
                {"id": "trace-select", "property": "options"}, {"id": "trace-select", "property": "value"}],
}


def _upload_body(contents: Any, filename: Any) -> bytes:
    return json.dumps(dict(OPEN_TRACE, inputs=[{"id": "trace-select", "property": "value", "value": None},
                                               {"id": "upload", "property": "contents", "value": contents}],
                           state=[{"id": "upload", "property": "filename", "value": filename},
                                  {"id": "trace-key", "property": "data", "value": 0}],
                           changedPropIds=["upload.contents"])).encode()


def _payload(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def _chrome(n: int = 50, name: str = "k") -> bytes:
    return json.dumps({"traceEvents": [{"ph": "X", "name": name, "pid": 1, "tid": 1, "ts": i * 10, "dur": 5}
                                       for i in range(n)]}).encode()


# ------------------------------------------------------------------ Host / origin
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "attacker.test.", "127.0.0.1.nip.io"])
def test_foreign_host_names_are_refused(server: Any, host: str) -> None:
    """DNS rebinding: a page whose own name now points at 127.0.0.1 cannot read the dashboard."""
    srv, _ = server
    for path in ("/", "/perfetto-trace/0.pftrace", "/api/rows/0"):
        status, body = _request(srv, "GET", path, {"Host": host})
        assert status == 403, (host, path, status)
        assert b"--allow-host" in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "127.0.0.2"])
def test_loopback_host_names_are_answered(server: Any, host: str) -> None:
    srv, _ = server
    status, body = _request(srv, "GET", "/perfetto-trace/0.pftrace", {"Host": host.format(port=srv.server_port)})
    assert status == 200 and body[:1] == b"\x0a"


def test_configured_host_names_are_answered(small: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL_PROFILER_ALLOWED_HOSTS", "box.lan")
    reg = build_registry([(small, None)], None)
    srv = make_server(reg, "127.0.0.1", 0, allow_hosts=["profiler.internal"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for host in ("profiler.internal:8050", "box.lan"):
            assert _request(srv, "GET", "/perfetto-trace/0.pftrace", {"Host": host})[0] == 200
        assert _request(srv, "GET", "/", {"Host": "other.lan"})[0] == 403
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"}])
def test_cross_origin_writes_are_refused(server: Any, headers: dict[str, str]) -> None:
    srv, reg = server
    body = _upload_body(_payload(_chrome()), "run.json")
    status, _ = _request(srv, "POST", "/_dash-update-component", {"Content-Type": "application/json", **headers}, body)
    assert status == 403
    assert len(reg.traces) == 1


def test_same_origin_writes_are_accepted(server: Any) -> None:
    srv, reg = server
    origin = f"http://127.0.0.1:{srv.server_port}"
    status, data = _request(srv, "POST", "/_dash-update-component",
                            {"Content-Type": "application/json", "Origin": origin, "Sec-Fetch-Site": "same-origin"},
                            _upload_body(_payload(_chrome()), "run.json"))
    assert status == 200, data[:300]
    assert json.loads(data)["response"]["trace-key"]["data"] == 1 and len(reg.traces) == 2


def test_binding_beyond_loopback_warns_at_run_time() -> None:
    """``profiler ui --host 0.0.0.0`` says so on stderr when it starts (not only in --help)."""
    p = subprocess.Popen([sys.executable, "-m", "profiler", "ui", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        err = ""
        deadline = time.monotonic() + 120
        assert p.stderr is not None
        while time.monotonic() < deadline and "WARNING" not in err:
            line = p.stderr.readline()
            if not line:
                break
            err += line
        assert "WARNING" in err and "0.0.0.0" in err and "--allow-host" in err, err
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_loopback_binding_does_not_warn() -> None:
    from ui.security import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    assert exposure_warning("0.0.0.0") and exposure_warning("192.168.1.5") and exposure_warning("::")


# ------------------------------------------------------------------ uploads
@pytest.mark.parametrize("filename", ["a\x00b.json", "..", ".", "x" * 300 + ".json", "é" * 130 + ".json", 5,
                                      ["a.json"], {"name": "a.json"}])
def test_bad_upload_file_names_get_a_message_not_a_server_error(server: Any, filename: Any) -> None:
    srv, reg = server
    status, data = _request(srv, "POST", "/_dash-update-component", {"Content-Type": "application/json"},
                            _upload_body(_payload(_chrome()), filename))
    assert status == 200, (filename, status, data[:300])
    msg = json.dumps(json.loads(data)["response"]["message"])
    assert "Could not open" in msg
    assert len(reg.traces) == 1


@pytest.mark.parametrize("contents", [5, ["data:,x"], {"a": 1}])
def test_bad_upload_contents_get_a_message_not_a_server_error(server: Any, contents: Any) -> None:
    srv, _ = server
    status, data = _request(srv, "POST", "/_dash-update-component", {"Content-Type": "application/json"},
                            _upload_body(contents, "a.json"))
    assert status == 200, data[:300]
    assert "Could not open" in json.dumps(json.loads(data)["response"]["message"])


def test_upload_names_are_base_names() -> None:
    assert upload_name("C:\\Users\\me\\run.json") == "run.json" and upload_name("../../x/run.json") == "run.json"
    assert upload_name(None) == "upload"


def test_uploads_are_evicted_least_recently_used_beyond_the_budget(small: Trace) -> None:
    one = trace_bytes(_trace_of(_chrome(400)))
    reg = BudgetRegistry(None, budget=int(one * 3.5))
    reg.add(small, "named on the command line")
    keys = [reg.add_upload(_trace_of(_chrome(400, f"u{i}")), f"u{i}.json").key for i in range(3)]
    assert reg.get(keys[0]) is not None  # used: now the most recent
    later = [reg.add_upload(_trace_of(_chrome(400, f"v{i}")), f"v{i}.json").key for i in range(2)]
    kept = set(reg.traces)
    assert 0 in kept  # never evicted
    assert keys[0] in kept and keys[1] not in kept and keys[2] not in kept and set(later) <= kept
    assert reg.uploads_bytes() <= reg.budget and reg.evicted == 2


def test_fifty_uploads_stay_within_the_budget(server: Any) -> None:
    srv, reg = server
    reg.budget = trace_bytes(_trace_of(_chrome(2000))) * 5
    for i in range(50):
        status, data = _request(srv, "POST", "/_dash-update-component", {"Content-Type": "application/json"},
                                _upload_body(_payload(_chrome(2000, f"n{i}")), f"run{i}.json"))
        assert status == 200, data[:200]
    assert len(reg.traces) <= 6 and reg.uploads_bytes() <= reg.budget
    assert reg.traces[max(reg.traces)].label == "run49.json"


def test_an_upload_that_decompresses_past_the_budget_is_refused(server: Any, tmp_path: Path) -> None:
    from bench.fuzz import gzip_bomb

    srv, reg = server
    reg.budget = 64 << 20
    bomb = gzip_bomb(tmp_path / "b.json.gz", 512 << 20).read_bytes()
    status, data = _request(srv, "POST", "/_dash-update-component", {"Content-Type": "application/json"},
                            _upload_body(_payload(bomb), "b.json.gz"))
    assert status == 200
    msg = json.dumps(json.loads(data)["response"]["message"])
    assert "limit" in msg and "b.json.gz" in msg and len(reg.traces) == 1


def _trace_of(data: bytes) -> Trace:
    import tempfile

    from profiler.formats import read_trace

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.json"
        p.write_bytes(data)
        return read_trace(p)


# ------------------------------------------------------------------ hover text
def test_every_trace_supplied_hover_field_is_escaped() -> None:
    """A dtype holding markup showed as a live link in the roofline hover; names were escaped, dtype was not."""
    from profiler.hardware import load_spec
    from ui import roofline as rl
    from ui.state import LoadedTrace

    b = TraceBuilder()
    t = b.add_track("core", kind="compute")
    b.add_slice(t, 0, 1000, "<b>mm</b>", flops=1e9, bytes=1e6, dtype='<a href="https://evil.example">bf16</a>')
    lt = LoadedTrace(0, "x", b.build())
    spec = load_spec("a100-sxm")
    fig = rl.figure(rl.table(lt, spec), spec)
    dots = [d for d in fig["data"] if d.get("customdata")]
    assert dots
    for d in dots:
        for row in d["customdata"]:
            assert "<a" not in str(row[1]) and "&lt;a href" in str(row[1])
            assert "<b>" not in str(row[0])


# ------------------------------------------------------------------ --trace-dir
def test_trace_dir_listing_is_fixed_at_start_and_symlinks_resolved(tmp_path: Path, small: Trace) -> None:
    d = tmp_path / "traces"
    d.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(_chrome(3, "secret"))
    (d / "a.json").write_bytes(_chrome(3))
    (d / "b.json").write_bytes(_chrome(3))
    (d / "link_out.json").symlink_to(outside / "secret.json")  # present at start, points outside
    (d / "link_in.json").symlink_to(d / "a.json")  # present at start, stays inside
    reg = build_registry([(small, None)], None, trace_dirs=[d])
    assert sorted(p.name for p in reg.openable()) == ["a.json", "a.json", "b.json"]
    (d / "new.json").symlink_to(outside / "secret.json")  # added after start
    (d / "b.json").unlink()
    (d / "b.json").symlink_to(outside / "secret.json")  # a listed file swapped for a link out
    offered = reg.openable()
    assert sorted(p.name for p in offered) == ["a.json", "a.json"]
    assert all(os.path.realpath(p).startswith(str(d.resolve())) for p in offered)
