"""The core CLI verbs as a user runs them: info, convert, specs; one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from profiler import read_trace
from sample_traces import HERE as SAMPLES


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_every_verb() -> None:
    r = run("--help")
    assert r.returncode == 0
    for verb in ("info", "convert", "specs", "simulate", "scalesim", "record", "analyze", "diff", "sql", "ui"):
        assert f"  {verb}" in r.stdout, verb
    for verb in ("info", "convert", "analyze"):
        assert run(verb, "--help").returncode == 0


def test_info_without_argument_summarizes_the_bundled_sample() -> None:
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["slices"] > 0 and summary["detected_format"] == "perfetto"
    assert summary["import_stats"]["events_dropped"] == 0


def test_info_shows_import_statistics(tmp_path: Path) -> None:
    bad = tmp_path / "partial.json"
    bad.write_text('{"traceEvents": [{"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0, "dur": 5},'
                   '{"ph": "X", "name": "b", "pid": 1, "tid": 1, "ts": 10, "dur": -3},'
                   '{"ph": "X", "name": "c", "pid": 1, "tid": 1, "ts": 20, "dur": 1}, {"ph": "X", "na')
    r = run("info", str(bad))
    assert r.returncode == 0, r.stderr
    assert "dropped" in r.stdout
    summary = json.loads(run("info", str(bad), "--json").stdout)
    assert summary["slices"] == 2
    assert summary["import_stats"]["events_dropped"] >= 1


@pytest.mark.parametrize("out", ["x.pftrace", "x.json", "x.json.gz", "x.trace", "x.pftrace.gz"])
def test_convert_to_every_format(tmp_path: Path, out: str) -> None:
    src = SAMPLES / "gemm_single_buffered.pftrace"
    dst = tmp_path / out
    r = run("convert", str(src), "-o", str(dst))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    a, b = read_trace(src), read_trace(dst)
    assert (a.slices.num_rows, a.counters.num_rows, a.flows.num_rows) == (b.slices.num_rows, b.counters.num_rows, b.flows.num_rows)


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "empty file"),
        (b"\x00\x01garbage", "unrecognised trace format"),
        (b"\x1f\x8b\x08\x00broken-gzip", "empty file"),
        (b'{"traceEvents": [', "nothing usable"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: bytes, expect: str) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    r = run("info", str(p))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert str(p) in lines[0] and "Traceback" not in r.stderr


def test_convert_rejects_unknown_output_extension(tmp_path: Path) -> None:
    r = run("convert", str(SAMPLES / "cnn_encoder_edge.pftrace"), "-o", str(tmp_path / "x.xyz"))
    assert r.returncode == 2 and "cannot tell the output format" in r.stderr


def test_specs_lists_presets_and_validates_a_file(tmp_path: Path) -> None:
    r = run("specs")
    assert r.returncode == 0 and "h100-sxm" in r.stdout and "edge-npu" in r.stdout
    bad = tmp_path / "chip.toml"
    bad.write_text('name = "chip"\nclock_hz = 1e9\ncores = 0\n')
    r = run("specs", str(bad))
    assert r.returncode == 2 and "missing required key 'peak_flops'" in r.stderr and str(bad) in r.stderr
