"""Streaming JSON import: identical to the normal reader on real files, cut into tiny pieces.

The memory bound is checked on a generated Kineto-style file in child processes: their peak
address space is measured first, then the streaming reader must fit under a limit the normal
reader does not.  ``python -m bench.bench_streaming`` measures time and peak RSS on larger files.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from profiler.errors import TraceFormatError
from profiler.formats import json_import, json_stream, read_trace, write_trace
from profiler.formats.json_stream import read_json_streaming, uncompressed_size
from profiler.model import Trace

ROOT = Path(__file__).resolve().parent.parent
KINETO_GZ = ROOT / "sample_traces" / "torch_cpu_mlp.pt.trace.json.gz"
DATA = ROOT / "tests" / "data" / "kineto"


def assert_same(a: Trace, b: Trace) -> None:
    for name in a.TABLES:
        ta, tb = a.table(name), b.table(name)
        assert ta.equals(tb), f"{name}: {ta.num_rows} rows vs {tb.num_rows}"
    da, db = a.metadata.to_dict(), b.metadata.to_dict()
    assert da == db


@pytest.mark.parametrize("path, chunk", [
    (KINETO_GZ, 1 << 10),
    (DATA / "a100_alexnet.json.gz", 1 << 12),           # GPU streams, ac2g flows
    (DATA / "amd_mi250_minitoy_train.json.gz", 1 << 10),  # flows from correlation ids
    (DATA / "v100_ns_resolution.json.gz", 1 << 16),      # ns timestamps beyond float64: exact path
])
def test_streaming_equals_the_normal_reader_on_real_kineto(path: Path, chunk: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a = read_trace(path, stream=False)
    monkeypatch.setattr(json_import, "_ARGS_BATCH", 7)  # args decoded in many small batches
    b = read_json_streaming(path, "kineto", chunk_bytes=chunk)
    b.validate()
    assert_same(a, b)


def test_streaming_our_chrome_json_and_bare_arrays(tmp_path: Path) -> None:
    t = read_trace(ROOT / "sample_traces" / "gemm_double_buffered.pftrace")
    ours = tmp_path / "ours.json.gz"  # header fields after the array (otherData: the exact track tree)
    write_trace(t, ours)
    assert_same(read_trace(ours, stream=False), read_json_streaming(ours, "chrome_json", chunk_bytes=1 << 11))
    bare = tmp_path / "bare.json"
    bare.write_bytes(orjson.dumps(orjson.loads(gzip.decompress(KINETO_GZ.read_bytes()))["traceEvents"]))
    assert_same(read_trace(bare, "kineto", stream=False), read_json_streaming(bare, "kineto", chunk_bytes=1 << 10))


def test_boundaries_inside_strings_are_not_cuts(tmp_path: Path) -> None:
    """Names and args full of braces, commas and escaped quotes: cuts land between events only."""
    tricky = ['}, {"ph": "X"}', 'a\\"},{"', "{{{", "}}},,,", 'q"}, "ts": 1}', "\u00e9\u4e2d}{"]
    evs = [{"ph": "X", "name": tricky[i % len(tricky)] + str(i), "pid": 1, "tid": i % 3, "ts": i * 10, "dur": 5,
            "args": {"s": tricky[(i + 1) % len(tricky)] * (i % 4), "n": i}} for i in range(300)]
    p = tmp_path / "tricky.json"
    p.write_bytes(orjson.dumps({"traceEvents": evs, "otherData": {"note": "}], {"}}))
    normal = read_trace(p, stream=False)
    assert normal.slices.num_rows == 300
    for chunk in (64, 200, 1000):
        assert_same(normal, read_json_streaming(p, "chrome_json", chunk_bytes=chunk))


def test_streaming_truncation_keeps_a_prefix(tmp_path: Path) -> None:
    data = gzip.decompress(KINETO_GZ.read_bytes())
    full = read_json_streaming(_write(tmp_path / "full.json", data), "kineto", chunk_bytes=1 << 11)
    prev = -1
    for off in np.linspace(1, len(data) - 1, 40, dtype=np.int64).tolist():
        p = _write(tmp_path / "cut.json", data[:off])
        try:
            t = read_json_streaming(p, "kineto", chunk_bytes=1 << 11)
        except TraceFormatError as exc:
            assert str(p) in str(exc)
            n = 0
        else:
            t.validate()
            n = t.num_events
            if n < full.num_events:
                assert t.metadata.import_stats.events_dropped > 0
        assert prev <= n <= full.num_events
        prev = n


def test_streaming_damage_mid_file_and_cut_gzip(tmp_path: Path) -> None:
    data = gzip.decompress(KINETO_GZ.read_bytes())
    mid = data.index(b'"ph"', len(data) // 2)
    p = _write(tmp_path / "bad.json", data[:mid] + b"@@garbage@@" + data[mid:])
    t = read_json_streaming(p, "kineto", chunk_bytes=1 << 11)
    assert t.metadata.import_stats.dropped.get("event_after_damage", 0) > 0
    assert 0 < t.num_events < read_trace(KINETO_GZ).num_events
    gz = KINETO_GZ.read_bytes()
    p = _write(tmp_path / "cut.json.gz", gz[: len(gz) * 2 // 3])
    t = read_json_streaming(p, "kineto", chunk_bytes=1 << 11)
    assert t.metadata.import_stats.dropped.get("gzip_stream_damaged") == 1
    with pytest.raises(TraceFormatError, match="no traceEvents"):
        read_json_streaming(_write(tmp_path / "h.json", b'{"displayTimeUnit": "ns"}'), "chrome_json")


def test_read_trace_routes_large_files_by_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = json_stream.read_json_streaming

    def spy(path: str | Path, fmt: str = "chrome_json", chunk_bytes: int = json_stream.DEFAULT_CHUNK) -> Trace:
        calls.append(fmt)
        return real(path, fmt, chunk_bytes)

    monkeypatch.setattr(json_stream, "read_json_streaming", spy)
    size = uncompressed_size(KINETO_GZ)
    assert size == len(gzip.decompress(KINETO_GZ.read_bytes()))
    monkeypatch.setenv(json_stream.THRESHOLD_ENV, str(size + 1))
    small = read_trace(KINETO_GZ)
    assert calls == []
    monkeypatch.setenv(json_stream.THRESHOLD_ENV, str(size - 1))
    big = read_trace(KINETO_GZ)
    assert calls == ["kineto"]
    assert_same(small, big)


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


_CHILD = """
import json, resource, sys
limit, how, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
from profiler.formats import read_trace
from profiler.formats.json_stream import read_json_streaming
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    t = read_json_streaming(path, "kineto", chunk_bytes=4 << 20) if how == "streaming" else read_trace(path, stream=False)
    out = {"slices": t.slices.num_rows, "flows": t.flows.num_rows}
except MemoryError:
    out = {"error": "MemoryError"}
except Exception as exc:  # Arrow reports failed allocations as its own errors
    out = {"error": type(exc).__name__}
peak = [l for l in open("/proc/self/status") if l.startswith("VmPeak:")][0].split()[1]
out["vm_peak"] = int(peak) * 1024
print(json.dumps(out))
"""


def _child(how: str, path: Path, limit: int = 0) -> dict[str, object]:
    # One malloc arena, one thread, the system allocator for Arrow: the address space then follows
    # what the reader uses, not what idle arenas and thread pools reserve.
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "ARROW_DEFAULT_MEMORY_POOL": "system"}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(limit), how, str(path)], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def test_streaming_fits_under_a_memory_limit_the_normal_reader_exceeds(tmp_path: Path) -> None:
    from bench.bench_streaming import generate

    path = tmp_path / "big.pt.trace.json"
    generate(path, 80 << 20)
    normal, streaming = _child("normal", path), _child("streaming", path)
    assert normal["slices"] == streaming["slices"] and normal["flows"] == streaming["flows"]
    n_peak, s_peak = int(normal["vm_peak"]), int(streaming["vm_peak"])  # type: ignore[call-overload]
    assert s_peak < n_peak - (48 << 20), (s_peak >> 20, n_peak >> 20)
    limit = (n_peak + s_peak) // 2
    fits = _child("streaming", path, limit)
    assert "error" not in fits, (fits, s_peak >> 20, n_peak >> 20)
    assert fits["slices"] == normal["slices"]
    failed = _child("normal", path, limit)
    assert failed.get("error") in ("MemoryError", "ArrowMemoryError"), (failed, s_peak >> 20, n_peak >> 20)


def test_flow_ids_mixed_across_pieces_and_kept_phases(tmp_path: Path) -> None:
    """Flow ids integer in some pieces and mixed in others still chain; B/E, instants, bp survive."""
    evs: list[dict[str, object]] = []
    for k in range(40):
        fid: object = k if k < 20 else (str(k) if k % 2 else k)
        evs += [{"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 100 * k, "dur": 10},
                {"ph": "X", "name": "b", "pid": 1, "tid": 2, "ts": 100 * k + 20, "dur": 10},
                {"ph": "s", "id": fid, "name": "fl", "cat": "c", "pid": 1, "tid": 1, "ts": 100 * k + 1},
                {"ph": "f", "id": fid, "name": "fl", "cat": "c", "pid": 1, "tid": 2, "ts": 100 * k + 21,
                 "bp": "e" if k % 3 else None},
                {"ph": "i", "name": "mark", "pid": 1, "tid": 1, "ts": 100 * k + 5, "s": "t"},
                {"ph": "B", "name": "bb", "pid": 1, "tid": 3, "ts": 100 * k}, {"ph": "E", "pid": 1, "tid": 3, "ts": 100 * k + 50}]
    p = _write(tmp_path / "mixed.json", orjson.dumps({"traceEvents": evs}))
    normal = read_trace(p, "chrome_json", stream=False)
    assert normal.flows.num_rows == 39 and normal.slices.num_rows == 120
    for chunk in (100, 500, 4000):
        assert_same(normal, read_json_streaming(p, chunk_bytes=chunk))


def test_out_of_order_slices_are_sorted_and_counted(tmp_path: Path) -> None:
    evs = [{"ph": "X", "name": n, "pid": 1, "tid": 1, "ts": t, "dur": 1} for n, t in (("a", 10), ("b", 5), ("c", 20), ("d", 1))]
    p = _write(tmp_path / "ooo.json", orjson.dumps({"traceEvents": evs}))
    for t in (read_trace(p, "chrome_json", stream=False), read_json_streaming(p, chunk_bytes=40)):
        assert t.slices.column("ts").to_pylist() == [1000, 5000, 10000, 20000]
        assert t.metadata.import_stats.repaired.get("events_out_of_order_sorted") == 2
    in_order = _write(tmp_path / "in.json", orjson.dumps({"traceEvents": sorted(evs, key=lambda e: e["ts"])}))
    assert "events_out_of_order_sorted" not in read_trace(in_order, "chrome_json", stream=False).metadata.import_stats.repaired


def test_streamed_args_with_invalid_utf8_are_repaired_like_the_normal_reader(tmp_path: Path) -> None:
    evs = [{"ph": "X", "name": f"a{i}", "pid": 1, "tid": 1, "ts": i * 10, "dur": 5, "args": {"s": "AB"}} for i in range(30)]
    p = _write(tmp_path / "bad.json", orjson.dumps({"traceEvents": evs}).replace(b'"AB"', b'"A\xffB"', 3))
    normal = read_trace(p, stream=False)
    assert normal.metadata.import_stats.repaired == {"args_not_utf8": 3}
    assert_same(normal, read_json_streaming(p, chunk_bytes=300))
