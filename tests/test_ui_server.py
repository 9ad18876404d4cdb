"""The dashboard's server side without a browser: CLI, what may be opened, uploads, Perfetto routes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from profiler.builder import TraceBuilder
from profiler.cli import cli
from profiler.errors import ProfilerError
from profiler.model import Trace
from ui.app import create_app, read_upload
from ui.demo import demo_trace
from ui.server import build_registry
from ui.state import LoadedTrace


@pytest.fixture(scope="module")
def small() -> Trace:
    return demo_trace(3_000)


def test_cli_binds_loopback_without_debug_and_opens_named_traces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  small: Trace) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(reg: Any, host: str, port: int, **kw: Any) -> None:
        seen.update(reg=reg, host=host, port=port)

    monkeypatch.setattr("ui.server.serve", fake_serve)
    path = small.save(tmp_path / "run.trace")
    other = tmp_path / "dir"
    other.mkdir()
    (other / "a.pftrace").write_bytes(b"\x0a\x00")
    (other / "notes.txt").write_text("not a trace")
    (other / "sub").mkdir()
    res = CliRunner().invoke(cli, ["ui", str(path), "--trace-dir", str(other), "--hw", "h100-sxm"])
    assert res.exit_code == 0, res.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8050
    reg = seen["reg"]
    assert reg.spec.name == "h100-sxm"
    assert reg.traces[0].trace.slices.num_rows == small.slices.num_rows
    # Only the named trace and trace files directly inside --trace-dir are offered.
    assert [p.name for p in reg.openable()] == ["run.trace", "a.pftrace"]
    app = create_app(reg)
    assert not app.server.debug


def test_cli_without_a_trace_opens_the_bundled_sample_judged_by_its_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from sample_traces import default_sample

    seen: dict[str, Any] = {}
    monkeypatch.setattr("ui.server.serve", lambda reg, host, port, **kw: seen.update(reg=reg, host=host))
    res = CliRunner().invoke(cli, ["ui"])
    assert res.exit_code == 0, res.output
    reg = seen["reg"]
    assert seen["host"] == "127.0.0.1"
    assert len(reg.traces) == 1 and reg.traces[0].source == default_sample()
    assert default_sample().name == "transformer_decode_edge.pftrace"
    assert reg.traces[0].trace.metadata.hardware == "edge-npu"
    assert reg.spec is not None and reg.spec.name == "edge-npu"  # as if --hw edge-npu had been given
    assert "transformer_decode_edge.pftrace on hardware edge-npu" in res.output
    # No file is offered for opening from the page (only uploads), as no TRACE or --trace-dir was named.
    assert reg.openable() == []
    # An explicit --hw wins over the trace's own hardware.
    res = CliRunner().invoke(cli, ["ui", "--hw", "h100-sxm"])
    assert res.exit_code == 0, res.output
    assert seen["reg"].spec.name == "h100-sxm" and seen["reg"].traces[0].source == default_sample()


def test_cli_rejects_a_bad_spec_with_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["ui", "--hw", "no-such-chip"])
    assert res.exit_code == 2
    assert "no-such-chip" in res.output


def _payload(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def test_upload_errors_name_the_file_and_never_leak_the_temp_path() -> None:
    with pytest.raises(ProfilerError, match=r"^junk\.bin: .*unrecognised"):
        read_upload(_payload(b"\x07garbage"), "junk.bin", 1 << 20)
    with pytest.raises(ProfilerError, match="upload limit"):
        read_upload(_payload(b"[" + b"{}," * 1000 + b"{}]"), "big.json", 1000)
    with pytest.raises(ProfilerError, match="malformed"):
        read_upload("no comma here", "x.json", 1000)


def test_upload_of_a_real_chrome_trace_opens_it() -> None:
    events = [{"name": "matmul", "ph": "X", "ts": 10 * i, "dur": 5, "pid": 1, "tid": 1} for i in range(50)]
    trace = read_upload(_payload(json.dumps({"traceEvents": events}).encode()), "run.json", 1 << 20)
    assert trace.slices.num_rows == 50


def test_perfetto_routes_serve_loaded_traces_only(small: Trace) -> None:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PerfettoTrace

    reg = build_registry([(small, None)], None)
    client = create_app(reg).server.test_client()
    r = client.get("/perfetto-trace/0.pftrace")
    assert r.status_code == 200
    pt = PerfettoTrace()
    pt.ParseFromString(r.data)
    names = {p.track_descriptor.name for p in pt.packet if p.HasField("track_descriptor")}
    assert {"mxu", "dma0", "python"} <= names
    assert client.get("/perfetto-trace/7.pftrace").status_code == 404
    from ui.perfetto import web_dist

    if web_dist() is not None:
        assert client.get("/perfetto/index.html").status_code == 200
        assert client.get("/perfetto/../../../../etc/passwd").status_code == 404
        assert client.get("/perfetto/%2e%2e/%2e%2e/app.py").status_code == 404


def test_slice_names_travel_as_json_strings() -> None:
    """The canvas draws names with fillText (never markup): the view carries them verbatim."""
    b = TraceBuilder(source_format="test")
    dev = b.add_track("<b>npu</b>", kind="group")
    eng = b.add_track("mxu", kind="compute", parent=dev)
    b.add_slices(eng, np.array([0, 100]), np.array([90, 90]), ["<script>alert(1)</script>", "ok"], flops=[1e3, 1e3],
                 bytes=[10, 10], dtype="bf16")
    reg = build_registry([(b.build(), None)], None)
    client = create_app(reg).server.test_client()
    rows = client.get("/api/rows/0").get_json()["rows"]
    assert rows[0]["label"] == "▾ <b>npu</b>"
    view = client.get("/api/view/0?t0=0&t1=200&w=400").get_json()
    assert view["names"] == ["<script>alert(1)</script>", "ok"]
    assert client.get("/api/view/0?t0=x").status_code == 400
    assert client.get("/api/view/0?c=1;2").status_code == 400
    assert client.get("/api/view/9").status_code == 404


def test_dashboard_callbacks_answer_over_http(small: Trace) -> None:
    """A view-state from the timeline, through Dash's own endpoint, gives the range statistics."""
    reg = build_registry([(small, None)], None)
    client = create_app(reg).server.test_client()
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert '"view-state"' in layout and "view-info" not in layout
    s, e = reg.traces[0].index.span
    body = {
        "output": "..stats-caption.children...stats-names.data...stats-tracks.data...longest.data..",
        "outputs": [{"id": "stats-caption", "property": "children"}, {"id": "stats-names", "property": "data"},
                    {"id": "stats-tracks", "property": "data"}, {"id": "longest", "property": "data"}],
        "inputs": [{"id": "view-state", "property": "data", "value": {"key": 0, "t0": 0, "t1": e - s}}],
        "changedPropIds": ["view-state.data"],
    }
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.data[:500]
    resp = r.get_json()["response"]
    assert sum(x["count"] for x in resp["stats-names"]["data"]) == small.slices.num_rows
    assert f"{small.slices.num_rows:,} slices" in resp["stats-caption"]["children"]


def test_compare_shows_the_diff_analyzers_table() -> None:
    from ui.app import compare_table

    base = LoadedTrace(0, "base", demo_trace(3_000, seed=1))
    new = LoadedTrace(1, "new", demo_trace(6_000, seed=2))
    div = compare_table(base, new)
    total, table = div.children
    assert "base → new" in total.children and "+" in total.children  # twice the work takes longer
    names = {r["name"] for r in table.data}
    assert {"matmul_qkv", "dma_load_weights"} <= names
    assert all(r["status"] in ("regressed", "improved", "unchanged", "new", "removed") for r in table.data)
    # Percentages are rounded for reading (one decimal), never raw floats like 63.0768...
    pcts = [v for r in table.data for k, v in r.items() if k.endswith("pct") and isinstance(v, float)]
    assert pcts and all(round(v, 1) == v for v in pcts)


def test_view_state_windows_are_offsets_from_the_trace_start() -> None:
    """The page sends nanoseconds from the start; nanosecond epochs (beyond a double's integers)
    stay exact because the server adds the origin; a selected range wins; junk means the whole run."""
    from ui.app import window_of

    b = TraceBuilder(source_format="test")
    eng = b.add_track("mxu", kind="compute")
    origin = 1_700_000_000_123_456_789  # ns since the epoch: not exact as a double
    b.add_slices(eng, np.array([origin, origin + 5_000_000]), np.array([1_000, 1_000]), "k")
    lt = LoadedTrace(0, "t", b.build())
    s, e = lt.index.span
    assert (s, e) == (origin, origin + 5_001_000)
    assert window_of(lt, {"t0": 1_500, "t1": 2_000_250}) == (origin + 1_500, origin + 2_000_250)
    assert window_of(lt, {"t0": 0, "t1": 9e9, "range": [7, 9]}) == (origin + 7, origin + 9)
    assert window_of(lt, {"t0": -50, "t1": 9e9}) == (s, e)  # clamped to the run
    assert window_of(lt, {"t0": 10, "t1": 10}) == (origin + 10, origin + 11)  # never empty
    for junk in (None, {}, {"auto": True}, {"t0": "nan", "t1": 1}, {"t0": "a", "t1": 2}, {"t0": [], "t1": 1}, [1, 2],
                 {"t0": float("inf"), "t1": 1}):
        assert window_of(lt, junk) == (s, e), junk


# ------------------------------------------------------------------ security
OPEN_TRACE = {
    "output": "..trace-key.data...message.children...trace-select.options...trace-select.value..",
    "outputs": [{"id": "trace-key", "property": "data"}, {"id": "message", "property": "children"},
                {"id": "trace-select", "property": "options"}, {"id": "trace-select", "property": "value"}],
}


def _open_trace(client: Any, choice: str | None, contents: str | None = None, filename: str | None = None) -> Any:
    body = dict(OPEN_TRACE, inputs=[{"id": "trace-select", "property": "value", "value": choice},
                                    {"id": "upload", "property": "contents", "value": contents}],
                state=[{"id": "upload", "property": "filename", "value": filename},
                       {"id": "trace-key", "property": "data", "value": 0}],
                changedPropIds=["upload.contents" if contents is not None else "trace-select.value"])
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code in (200, 204), r.data[:300]
    return r.get_json() if r.status_code == 200 else None


def test_callbacks_open_only_files_named_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small: Trace) -> None:
    """The page picks traces by index among those the command line allowed: a path sent by the
    browser, relative or absolute, is never read."""
    allowed_dir = tmp_path / "traces"
    allowed_dir.mkdir()
    small.save(allowed_dir / "run.trace")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"traceEvents": [{"name": "secret", "ph": "X", "ts": 1, "dur": 1, "pid": 1, "tid": 1}]}))
    reg = build_registry([(small, None)], None, trace_dirs=[allowed_dir])
    client = create_app(reg).server.test_client()
    import profiler.formats

    read: list[Path] = []
    real = profiler.formats.read_trace
    monkeypatch.setattr(profiler.formats, "read_trace", lambda p, *a, **k: (read.append(Path(p)), real(p, *a, **k))[1])
    for choice in ("file:../../etc/passwd", "file:/etc/passwd", f"file:{secret}", "/etc/passwd", "../../etc/passwd",
                   f"key:{secret}", "file:-1", "file:7", "key:../../etc/passwd", f"file:0/../../{secret.name}"):
        resp = _open_trace(client, choice)
        if resp is not None:
            assert resp["response"].get("trace-key", {}).get("data") in (None, 0), choice
    assert read == [] and len(reg.traces) == 1
    # An upload named like a path is read from the uploaded bytes only, under its base name.
    resp = _open_trace(client, None, _payload(b"not a trace at all"), "../../etc/passwd")
    assert "passwd" in json.dumps(resp["response"]["message"]) and len(reg.traces) == 1
    assert all(p.name == "passwd" and p.parent != Path("/etc") for p in read)
    # The one file offered (index 0, inside --trace-dir) opens.
    resp = _open_trace(client, "file:0")
    assert resp["response"]["trace-key"]["data"] == 1 and reg.traces[1].source == allowed_dir / "run.trace"


def test_routes_refuse_path_traversal(small: Trace) -> None:
    client = create_app(build_registry([(small, None)], None)).server.test_client()
    passwd = Path("/etc/passwd").read_bytes()[:20] if Path("/etc/passwd").exists() else b"root:"
    for url in ("/assets/../app.py", "/assets/%2e%2e/app.py", "/assets/..%2fstate.py", "/assets/%2fetc%2fpasswd",
                "/_dash-component-suites/dash/../../../etc/passwd", "/_dash-component-suites/plotly/..%2f..%2fetc%2fpasswd",
                "/perfetto-trace/..%2f..%2fetc%2fpasswd.pftrace", "/perfetto-trace/-1.pftrace", "/perfetto/..%2f..%2fapp.py",
                "/perfetto/%2fetc%2fpasswd", "/..%2f..%2fetc%2fpasswd", "//etc/passwd"):
        r = client.get(url)
        # Refused, or (Dash routes every other path to its page) the page itself: never a file's bytes.
        assert r.status_code in (400, 404) or b"_dash-config" in r.data, (url, r.status_code)
        assert passwd not in r.data and b"def create_app" not in r.data and b"class Registry" not in r.data, url


def test_requests_over_the_upload_cap_are_refused(small: Trace) -> None:
    reg = build_registry([(small, None)], None, max_upload_mb=1)
    client = create_app(reg).server.test_client()
    big = _payload(b"\0" * (3 << 20))
    r = client.post("/_dash-update-component", json=dict(
        OPEN_TRACE, inputs=[{"id": "trace-select", "property": "value", "value": "key:0"},
                            {"id": "upload", "property": "contents", "value": big}],
        state=[{"id": "upload", "property": "filename", "value": "big.json"},
               {"id": "trace-key", "property": "data", "value": 0}], changedPropIds=["upload.contents"]))
    assert r.status_code == 413 and len(reg.traces) == 1
    # Under the request limit but over the trace limit: a message, and the trace kept.
    resp = _open_trace(client, None, _payload(b"[" + b"{}," * 400_000 + b"{}]"), "big.json")
    assert "upload limit" in json.dumps(resp["response"]["message"]) and len(reg.traces) == 1


def test_dashboard_code_never_unpickles_or_evaluates() -> None:
    """Trace contents are data: no pickle/marshal/shelve, no eval/exec/compile in the dashboard."""
    import ast

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "ui").glob("*.py")) + [root / "profiler" / "cli" / "ui.py", root / "profiler" / "model.py"]
    banned_mods = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
    for f in files:
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned_mods, f
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in banned_mods, f
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile", "__import__"), (f, node.lineno)
    for js in (root / "ui" / "assets").glob("*.js"):
        text = js.read_text()
        assert "eval(" not in text and "new Function" not in text and "innerHTML" not in text, js
    # Slice args are parsed as JSON.
    from profiler.model import parse_args

    assert parse_args(json.dumps({"a": "__import__('os')"})) == {"a": "__import__('os')"}


# ------------------------------------------------------------- import losses
def damaged_chrome_json() -> bytes:
    """A Chrome JSON trace cut in the middle of its last event, with one negative-duration slice
    and one slice whose name is a number: one event dropped at the cut, one dropped, one repaired."""
    events: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "npu"}}]
    events += [{"ph": "X", "name": f"op{i}", "cat": "kernel", "pid": 1, "tid": 1, "ts": 10 * i, "dur": 8}
               for i in range(20)]
    events.append({"ph": "X", "name": "negative", "cat": "kernel", "pid": 1, "tid": 1, "ts": 300, "dur": -5})
    events.append({"ph": "X", "name": 42, "cat": "kernel", "pid": 1, "tid": 1, "ts": 350, "dur": 5})
    events.append({"ph": "X", "name": "tail", "cat": "kernel", "pid": 1, "tid": 1, "ts": 400, "dur": 5})
    text = json.dumps({"traceEvents": events})
    return text[: text.rindex('"name": "tail"') + 10].encode()


ON_TRACE_OUTPUTS = [("summary", "children"), ("findings", "children"), ("compare-select", "options"),
                    ("highlight", "data"), ("details", "children")]


def _texts(node: Any) -> list[str]:
    """Every string child in a serialized Dash component tree, in page order."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [t for n in node for t in _texts(n)]
    if isinstance(node, dict):
        return _texts(node.get("props", {}).get("children"))
    return []


def _find_id(node: Any, wanted: str) -> dict[str, Any] | None:
    if isinstance(node, list):
        return next((h for n in node if (h := _find_id(n, wanted)) is not None), None)
    if isinstance(node, dict):
        props = node.get("props", {})
        return node if props.get("id") == wanted else _find_id(props.get("children"), wanted)
    return None


def test_summary_shows_what_the_import_dropped_and_repaired_by_reason(small: Trace) -> None:
    reg = build_registry([(small, None)], None)
    client = create_app(reg).server.test_client()
    # The demo trace was built in memory: no import line.
    assert _find_id(client.get("/_dash-layout").get_json(), "import-stats") is None
    resp = _open_trace(client, None, _payload(damaged_chrome_json()), "cut.json")
    assert resp["response"]["trace-key"]["data"] == 1
    st = reg.traces[1].trace.metadata.import_stats
    assert st.dropped == {"event_after_damage": 1, "slice_negative_duration": 1}
    assert st.repaired == {"name_not_a_string": 1}
    body = {
        "output": "".join(f"..{i}.{p}.." for i, p in ON_TRACE_OUTPUTS).replace("....", "..."),
        "outputs": [{"id": i, "property": p} for i, p in ON_TRACE_OUTPUTS],
        "inputs": [{"id": "trace-key", "property": "data", "value": 1}],
        "changedPropIds": ["trace-key.data"],
    }
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.data[:500]
    line = _find_id(r.get_json()["response"]["summary"]["children"], "import-stats")
    assert line is not None and "import-warn" in line["props"]["className"]
    texts = _texts(line)
    assert f"import: {st.events_read:,} events read, 2 dropped, 1 repaired" in texts[0]
    assert texts[1:] == ["dropped 1: event_after_damage", "dropped 1: slice_negative_duration",
                         "repaired 1: name_not_a_string"]
    assert "slice_negative_duration" in line["props"]["title"]


def test_import_reasons_are_text_and_a_clean_import_is_no_warning() -> None:
    from ui.app import import_stats_line

    t = demo_trace(500)
    t.metadata.import_stats.events_read = 10
    clean = import_stats_line(t)
    assert "import-warn" not in clean.className and clean.children == "import: 10 events read, 0 dropped, 0 repaired"
    evil = "<img src=x onerror=alert(1)>"
    t.metadata.import_stats.drop(evil, 3)
    line = import_stats_line(t)
    assert "import-warn" in line.className
    # The reason is a plain string child (React renders it as text), never parsed markup.
    items = line.children[1].children
    assert [li.children for li in items] == [f"dropped 3: {evil}"]
    assert evil in line.title


def _minor_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (/proc/PID/stat, field 10)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads page faults from /proc (Linux)")
def test_profiler_ui_answers_wide_views_from_warm_memory(tmp_path: Path) -> None:
    """A view of the whole of a 400k-slice run looks at every slice, on a fresh request thread.  Done
    in one piece, its numpy temporaries outgrew a thread arena's 64 MB heap, which glibc hands back
    to the kernel once empty: each request faulted in thousands of fresh pages (~10,000 at a
    million slices: most of a 250 ms zoom).  Taken in chunks (ui.lod.CHUNK), a view's temporaries
    are a few MB that malloc keeps: once each arena is warm, views fault in next to nothing."""
    import subprocess
    import sys
    import urllib.request

    path = demo_trace(400_000).save(tmp_path / "big.trace")
    # glibc's defaults, as a user's shell has them (MALLOC_TRIM_THRESHOLD_, which dask sets for its
    # workers, would make glibc hand freed memory back at once and every view fault again)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "ui", str(path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if "http://" in line:
                url = line.split()[2]
                break
        assert url.startswith("http://127.0.0.1:"), url
        rows = json.loads(urllib.request.urlopen(f"{url}api/rows/0", timeout=120).read())
        view = f"{url}api/view/0?t0=0&t1={rows['span']}&w=1400&r0=0&r1={len(rows['rows'])}"
        faults = []
        for _ in range(12):
            before = _minor_faults(proc.pid)
            body = json.loads(urllib.request.urlopen(view, timeout=120).read())
            faults.append(_minor_faults(proc.pid) - before)
        assert body["visible"] > 300_000  # the view did look at (nearly) every slice
        # The first request on each malloc arena the request threads land on warms it; the rest of
        # the views fault in next to nothing (in one piece, every view faulted 7,000-12,000 pages).
        assert sorted(faults)[len(faults) // 2] < 500 and sum(f < 500 for f in faults) >= 8, faults
    finally:
        proc.terminate()
        proc.wait(timeout=30)
