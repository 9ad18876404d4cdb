"""Readers against the attack run's inputs: bounded memory, repairs that are counted, own errors only.

Every case here once crashed a reader, wrapped a value silently, lost events or took minutes
(inputs: :mod:`bench.fuzz`'s attack cases, which the fuzz targets also mutate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.fuzz import attack_json_cases, attack_perfetto_cases, gzip_bomb
from profiler.errors import TraceFormatError
from profiler.formats import read_trace
from profiler.formats.json_stream import read_json_streaming
from profiler.formats.source import ContentLimitError, content_limit, limited_content, parse_size

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def _both(p: Path) -> list[object]:
    """The normal and the streaming reader's traces of ``p``."""
    return [read_trace(p, stream=False), read_json_streaming(p)]


# ------------------------------------------------------------------ bombs
_CHILD = """
import json, resource, sys
how, path = sys.argv[1], sys.argv[2]
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression fails, it does not take the machine
from profiler.formats import read_trace
out = {}
try:
    t = read_trace(path, "perfetto" if how == "perfetto" else None, stream=True if how == "stream" else None)
    out["slices"] = t.slices.num_rows
except Exception as exc:
    out["error"] = type(exc).__name__
    out["message"] = str(exc)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
out["peak_rss"] = int(hwm) * 1024
print(json.dumps(out))
"""


def _child(how: str, path: Path, **env: str) -> dict[str, object]:
    e = {**os.environ, "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1", "ARROW_DEFAULT_MEMORY_POOL": "system", **env}
    r = subprocess.run([sys.executable, "-c", _CHILD, how, str(path)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, env=e)
    assert r.returncode == 0, r.stderr[-2000:]
    out: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 GiB + 64 MiB of whitespace in ~4 MB of gzip; the trailer says 64 MiB (size modulo 2**32)."""
    p = gzip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.json.gz", (1 << 32) + (64 << 20))
    assert p.stat().st_size < 8 << 20
    assert int.from_bytes(p.read_bytes()[-4:], "little") == 64 << 20
    return p


@pytest.mark.parametrize("how", ["auto", "stream", "perfetto"])
def test_gzip_bomb_is_refused_at_the_limit_with_bounded_memory(bomb: Path, how: str) -> None:
    """Each reader stops once the content passes ACCEL_PROFILER_MAX_BYTES; the peak stays near the limit.

    Before the limit the normal reader reached 8.7 GB and the streaming one 13.5 GB on this file.
    """
    out = _child(how, bomb, ACCEL_PROFILER_MAX_BYTES="256M")
    assert out.get("error") == "ContentLimitError", out
    assert str(bomb) in str(out["message"]) and "ACCEL_PROFILER_MAX_BYTES" in str(out["message"])
    assert int(out["peak_rss"]) < 900 << 20, int(out["peak_rss"]) >> 20  # type: ignore[call-overload]


def test_whitespace_between_events_streams_in_bounded_memory(tmp_path: Path) -> None:
    """A gzip whose trailer understates its size switches to the streaming reader, which drops the
    whitespace between events as it goes: 600 MB of it read at a peak far below its size."""
    p = gzip_bomb(tmp_path / "ws.json.gz", 600 << 20)
    out = _child("auto", p, ACCEL_PROFILER_STREAM_BYTES=str(64 << 20), ACCEL_PROFILER_MAX_BYTES="2G")
    assert out.get("slices") == 2, out
    assert int(out["peak_rss"]) < 450 << 20, int(out["peak_rss"]) >> 20  # type: ignore[call-overload]


@pytest.mark.parametrize("layout", ["between", "inside", "after"])
def test_every_bomb_layout_reads_the_same_on_both_readers(tmp_path: Path, layout: str) -> None:
    p = gzip_bomb(tmp_path / "b.json.gz", 40 << 20, layout)
    normal, streamed = _both(p)
    assert normal.slices["name"].to_pylist() == streamed.slices["name"].to_pylist()  # type: ignore[attr-defined]
    assert normal.slices.num_rows == (1 if layout == "after" else 2)  # type: ignore[attr-defined]


def test_content_limit_applies_to_plain_files_and_can_be_narrowed(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.json", json.dumps({"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 1}]}).encode())
    with limited_content(10):
        for read in (lambda: read_trace(p, stream=False), lambda: read_json_streaming(p)):
            with pytest.raises(ContentLimitError, match="t.json"):
                read()
    assert read_trace(p).slices.num_rows == 1


def test_content_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("512M") == 512 << 20 and parse_size("2GiB") == 2 << 30 and parse_size("1000") == 1000
    monkeypatch.setenv("ACCEL_PROFILER_MAX_BYTES", "3G")
    assert content_limit() == 3 << 30
    monkeypatch.delenv("ACCEL_PROFILER_MAX_BYTES")
    avail = int(next(line for line in open("/proc/meminfo") if line.startswith("MemAvailable:")).split()[1]) * 1024
    assert abs(content_limit() - max(256 << 20, avail // 4)) < 256 << 20  # a quarter of what is available


# ------------------------------------------------------------- JSON repairs
def test_lone_surrogate_is_replaced_and_counted_without_losing_later_events(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.json", attack_json_cases()["lone_surrogate_name"])
    for t in _both(p):
        assert t.slices["name"].to_pylist() == ["a", "b\ufffd", "a"]  # type: ignore[attr-defined]
        assert t.metadata.import_stats.repaired == {"lone_surrogate_replaced": 1}  # type: ignore[attr-defined]
    a = read_trace(_write(tmp_path, "a.json", attack_json_cases()["lone_surrogate_args"]))
    assert json.loads(a.slices["args"][0].as_py()) == {"x": "\ufffd"}


def test_surrogate_pairs_and_escaped_backslashes_are_kept(tmp_path: Path) -> None:
    text = (b'{"traceEvents":[{"ph":"X","name":"\\ud83d\\ude00","pid":1,"tid":1,"ts":1,"dur":1},'
            b'{"ph":"X","name":"\\\\udc80","pid":1,"tid":1,"ts":3,"dur":1},'
            b'{"ph":"X","name":"\\udc80","pid":1,"tid":1,"ts":5,"dur":1}]}')
    t = read_trace(_write(tmp_path, "p.json", text))
    assert t.slices["name"].to_pylist() == ["\U0001f600", "\\udc80", "\ufffd"]
    assert t.metadata.import_stats.repaired == {"lone_surrogate_replaced": 1}


@pytest.mark.parametrize("case", ["ts_past_int64_ns", "ts_past_int64_ns_int"])
def test_timestamps_past_int64_nanoseconds_are_dropped_and_counted(tmp_path: Path, case: str) -> None:
    """9.3e15 us is 9.3e18 ns > 2**63 - 1: it used to wrap to -9.1e18 ns with nothing dropped."""
    p = _write(tmp_path, "t.json", attack_json_cases()[case])
    for t in _both(p):
        assert t.slices["ts"].to_pylist() == [5000]  # type: ignore[attr-defined]
        assert t.metadata.import_stats.dropped == {"ts_out_of_range": 1}  # type: ignore[attr-defined]


def test_exact_epoch_timestamps_past_int64_are_dropped(tmp_path: Path) -> None:
    """The exact (decimal) path for 19-digit epoch values checks the range too."""
    evs = [{"ph": "X", "name": "ok", "pid": 1, "tid": 1, "ts": 1712195495519689.047, "dur": 1},
           {"ph": "X", "name": "big", "pid": 1, "tid": 1, "ts": 99999999999999999.5, "dur": 1}]
    text = json.dumps({"traceEvents": evs}).replace("1712195495519689.047", "1712195495519689.047").encode()
    t = read_trace(_write(tmp_path, "e.json", text))
    assert t.slices["name"].to_pylist() == ["ok"]
    assert t.metadata.import_stats.dropped == {"ts_out_of_range": 1}


def test_ts_plus_dur_overflow_is_dropped_and_counted(tmp_path: Path) -> None:
    p = _write(tmp_path, "d.json", attack_json_cases()["ts_plus_dur_overflow"])
    for t in _both(p):
        assert t.slices["ts"].to_pylist() == [5000]  # type: ignore[attr-defined]
        assert t.metadata.import_stats.dropped == {"slice_end_out_of_range": 1}  # type: ignore[attr-defined]


def test_flow_on_a_thread_without_slices_is_counted_not_a_crash(tmp_path: Path) -> None:
    p = _write(tmp_path, "f.json", attack_json_cases()["flow_on_thread_without_slices"])
    for t in _both(p):
        assert t.flows.num_rows == 0  # type: ignore[attr-defined]
        assert t.metadata.import_stats.dropped == {"flow_endpoint_not_on_a_slice": 1}  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["args_nested_1000"])
def test_args_nested_1000_deep_is_a_format_error(tmp_path: Path, case: str) -> None:
    p = _write(tmp_path, "n.json", attack_json_cases()[case])
    for read in (lambda: read_trace(p), lambda: read_json_streaming(p)):
        with pytest.raises(TraceFormatError, match="nested too deeply"):
            read()


# --------------------------------------------------------------- Perfetto
def _meta_cases() -> list[str]:
    return sorted(k for k in attack_perfetto_cases() if k.startswith("meta_"))


@pytest.mark.parametrize("case", _meta_cases())
def test_bad_own_metadata_in_pftrace_is_ignored_and_counted(tmp_path: Path, case: str) -> None:
    """A damaged accel_profiler packet gave KeyError/TypeError/IndexError: now the file reads as any
    other Perfetto file, and the ignored packet is counted."""
    t = read_trace(_write(tmp_path, "m.pftrace", attack_perfetto_cases()[case]))
    assert t.slices["name"].to_pylist() == ["s"]
    assert t.metadata.import_stats.repaired.get("own_metadata_invalid") == 1


def test_perfetto_drops_that_were_silent_are_counted(tmp_path: Path) -> None:
    inst = read_trace(_write(tmp_path, "i.pftrace", attack_perfetto_cases()["flow_id_on_instant"]))
    assert inst.flows.num_rows == 0 and inst.instants.num_rows == 1
    assert inst.metadata.import_stats.dropped.get("flow_on_instant") == 1
    cat = read_trace(_write(tmp_path, "c.pftrace", attack_perfetto_cases()["category_not_interned"]))
    assert cat.slices["category"].to_pylist() == ["42"]
    assert cat.metadata.import_stats.repaired.get("event_category_not_interned") == 1
    ann = read_trace(_write(tmp_path, "a.pftrace", attack_perfetto_cases()["annotation_name_not_interned"]))
    assert json.loads(ann.slices["args"][0].as_py()) == {"arg9": 3, "label": None}
    assert ann.metadata.import_stats.repaired.get("annotation_name_not_interned") == 1
    assert ann.metadata.import_stats.repaired.get("annotation_string_not_interned") == 1


# ---------------------------------------------------------- linear nesting
def _stack_parents(track: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> dict[tuple[int, int, int], int]:
    """Reference nesting by an explicit stack per track (hand-checkable): slice key -> parent's input index."""
    order = sorted(range(ts.size), key=lambda i: (track[i], ts[i], -dur[i], i))
    out: dict[tuple[int, int, int], int] = {}
    stack: list[int] = []
    cur = None
    for i in order:
        if track[i] != cur:
            stack, cur = [], track[i]
        while stack and ts[stack[-1]] + dur[stack[-1]] <= ts[i]:
            stack.pop()
        out[(int(track[i]), int(ts[i]), i)] = stack[-1] if stack else -1
        if dur[i] > 0:
            stack.append(i)
    return out


def test_parents_match_a_stack_on_random_properly_nested_slices() -> None:
    from profiler.nesting import nest

    rng = np.random.default_rng(5)
    tracks, tss, durs = [], [], []
    for tr in range(4):  # properly nested trees: children inside the parent's interval
        def grow(t0: int, t1: int, level: int, tr: int = tr) -> None:
            cur = t0
            while cur < t1 - 2 and rng.random() < 0.8:
                a = int(rng.integers(cur, t1 - 1))
                b = int(rng.integers(a + 1, t1 + 1))
                tracks.append(tr)
                tss.append(a)
                durs.append(b - a)
                if level < 12:
                    grow(a, b, level + 1)
                cur = b
        grow(0, 10_000, 0)
    track, ts, dur = np.array(tracks), np.array(tss), np.array(durs)
    n = nest(track, ts, dur)
    ref = _stack_parents(track, ts, dur)
    got = {(int(track[i]), int(ts[i]), int(i)): (int(n.order[p]) if p >= 0 else -1)
           for i, p in zip(n.order.tolist(), n.parent.tolist(), strict=True)}
    assert got == ref and int(n.depth.max()) >= 5


def test_deep_nesting_and_long_chains_do_not_take_minutes() -> None:
    """Guards against the quadratic paths coming back (100k fully nested slices took 77 s, a
    50k-deep Perfetto track chain 236 s, a 5k-step staircase of overlaps failed with ValueError).
    A generous wall-clock guard in a child, not a benchmark: linear runs take ~2 s here."""
    code = """
import numpy as np
from profiler.builder import TraceBuilder
from profiler.nesting import nest
n = 100_000
ts = np.arange(n, dtype=np.int64); dur = 2 * (n - ts)
r = nest(np.zeros(n, dtype=np.int64), ts, dur)
assert int(r.depth.max()) == n - 1 and (r.parent[1:] == np.arange(n - 1)).all()
b = TraceBuilder(source_format="x"); t = b.add_track("t", "other", None)
m = 20_000
b.add_slices(np.full(m, t), np.arange(m) * 10, np.full(m, 10 * m), ["a"] * m)
tr = b.build()
assert tr.tracks.num_rows > 1 and tr.slices.num_rows == m
import sys, tempfile
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
from profiler.formats import read_trace
pb = PbTrace()
for u in range(1, 50_001):
    d = pb.packet.add().track_descriptor
    d.uuid, d.name = u, "t"
    if u > 1:
        d.parent_uuid = u - 1
with tempfile.NamedTemporaryFile(suffix=".pftrace") as f:
    f.write(pb.SerializeToString()); f.flush()
    assert read_trace(f.name).tracks.num_rows == 50_000
from analysis.context.coverage import covered
has = np.zeros(n, dtype=bool); has[[7, n - 2]] = True
anc, desc = covered(has, np.arange(-1, n - 1), np.arange(n))
assert int(anc.sum()) == n - 8 and int(desc.sum()) == n - 2
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_long_perfetto_track_chain_reads_in_linear_time(tmp_path: Path) -> None:
    from bench.fuzz import attack_perfetto_cases

    p = _write(tmp_path, "chain.pftrace", attack_perfetto_cases()["track_parent_chain_2000"])
    t = read_trace(p)
    assert t.tracks.num_rows == 2000
    parents = t.tracks["parent"].to_pylist()
    assert sum(1 for x in parents if x is None) == 1


# --------------------------------------------------------------- ONNX Runtime
def test_ort_profile_attack_cases(tmp_path: Path) -> None:
    """The ORT reader takes the same limit and repairs: deep nesting is a TraceFormatError (was
    RecursionError), a lone surrogate is replaced and counted (was a TypeError from Arrow)."""
    from bench.fuzz import attack_ort_cases
    from collectors.onnxrt import read_ort_profile

    cases = attack_ort_cases()
    with pytest.raises(TraceFormatError, match="nested too deeply"):
        read_ort_profile(_write(tmp_path, "d.json", cases["ort_args_nested_1000"]))
    t = read_ort_profile(_write(tmp_path, "s.json", cases["ort_lone_surrogate"]))
    assert t.slices.num_rows == 1 and t.metadata.import_stats.repaired == {"lone_surrogate_replaced": 1}
    assert "\ufffd" in t.slices["name"][0].as_py()
    with limited_content(10), pytest.raises(ContentLimitError):
        read_ort_profile(_write(tmp_path, "l.json", cases["ort_lone_surrogate"]))


def test_coverage_of_deep_trees_matches_walking_up_each_slice() -> None:
    """The analyzers' outermost-carrier masks, computed by jumping 2**k levels on deep trees, equal a
    plain walk from every slice to its root."""
    from analysis.context.coverage import covered

    rng = np.random.default_rng(3)
    for trial in range(12):
        n = int(rng.integers(50, 1500))
        parent = np.full(n, -1, dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        stack: list[int] = []
        for i in range(n):  # a random tree in preorder, mostly deep (depth > 64)
            if stack and rng.random() < (0.01 if trial % 2 else 0.3):
                stack = stack[: int(rng.integers(0, len(stack) + 1))]
            parent[i], depth[i] = (stack[-1] if stack else -1), len(stack)
            stack.append(i)
        has = rng.random(n) < 0.05
        anc_ref = np.zeros(n, dtype=bool)
        desc_ref = np.zeros(n, dtype=bool)
        for i in range(n):
            p = parent[i]
            while p >= 0:
                anc_ref[i] |= has[p]
                if has[i]:
                    desc_ref[p] = True
                p = parent[p]
        anc, desc = covered(has, parent, depth)
        assert (anc == anc_ref).all() and (desc == desc_ref).all(), trial


def test_streaming_reader_on_a_damaged_array_with_trailing_text(tmp_path: Path) -> None:
    """Found by the attack_cases fuzz target: the "]" before trailing text closed a nested array,
    not the events array, and the streaming reader let msgspec's DecodeError out."""
    from bench.fuzz import mutate

    data = mutate(attack_json_cases()["header_nested_1000"],
                  [("delete", 6.962007769730613e-182, 34, b""), ("delete", 2.220446049250313e-16, 34, b""),
                   ("delete", 6.962007769730613e-182, 34, b"")])
    p = _write(tmp_path, "t.json", data)
    for read in (lambda: read_trace(p, stream=False), lambda: read_json_streaming(p)):
        with pytest.raises(TraceFormatError):
            read()
