"""Streaming JSON import: identical to the normal reader on real files, cut into tiny pieces.

The memory bound itself is measured by ``python -m bench.bench_streaming`` (no wall-clock or
memory assertions here).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from profiler.errors import TraceFormatError
from profiler.formats import json_stream, read_trace, write_trace
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
def test_streaming_equals_the_normal_reader_on_real_kineto(path: Path, chunk: int) -> None:
    a = read_trace(path, stream=False)
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
