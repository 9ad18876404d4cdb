"""Writers replace their output all or nothing (temporary sibling, then rename).

The failures are real where a test can cause them: a file-size limit (``RLIMIT_FSIZE``, what a
full disk looks like to the writer) in a child process running the CLI; an interrupt or an
error in the middle of a trace directory is injected in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.errors import TraceFormatError
from profiler.formats import read_trace, write_trace

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_traces" / "onnxruntime_cnn.pftrace"

_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from profiler.cli import main
sys.argv = ["profiler", *sys.argv[1:]]
main()
"""


def _cli_with_small_disk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _LIMITED, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def _siblings(p: Path) -> list[str]:
    return sorted(x.name for x in p.parent.iterdir() if x.name != p.name and p.name in x.name)


@pytest.mark.parametrize("out", ["out.json", "out.pftrace", "out.json.gz", "out.trace"])
def test_convert_that_runs_out_of_space_keeps_the_old_output(tmp_path: Path, out: str) -> None:
    dst = tmp_path / out
    write_trace(read_trace(SAMPLE), dst)
    before = read_trace(dst)
    r = _cli_with_small_disk("convert", str(SAMPLE), "-o", str(dst))
    assert r.returncode != 0
    after = read_trace(dst)  # still whole and readable (in place it was cut to 4 KB)
    assert after.slices.equals(before.slices) and after.flows.equals(before.flows)
    assert _siblings(dst) == []  # no temporary file left behind


def test_simulate_that_runs_out_of_space_keeps_the_old_output(tmp_path: Path) -> None:
    dst = tmp_path / "sim.json"
    r0 = subprocess.run([sys.executable, "-m", "profiler", "simulate", "gemm", "-o", str(dst)], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)
    assert r0.returncode == 0, r0.stderr
    good = dst.read_bytes()
    r = _cli_with_small_disk("simulate", "gemm", "--set", "M=2048", "-o", str(dst))
    assert r.returncode != 0
    assert dst.read_bytes() == good
    assert _siblings(dst) == []


def test_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import profiler.formats.chrome_json_writer as w

    dst = tmp_path / "t.json"
    t = read_trace(SAMPLE)
    write_trace(t, dst)
    good = dst.read_bytes()
    real = w.write_chrome_json

    def half_then_ctrl_c(trace: object, path: Path) -> None:
        real(trace, path)  # type: ignore[arg-type]
        with open(path, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "write_chrome_json", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_trace(t, dst)
    assert dst.read_bytes() == good
    assert _siblings(dst) == []


def test_trace_directory_is_replaced_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import profiler.store as store

    dst = tmp_path / "run.trace"
    old = read_trace(SAMPLE)
    write_trace(old, dst)
    new = read_trace(ROOT / "sample_traces" / "torch_cpu_mlp.pt.trace.json.gz")
    real = store.pq.write_table
    calls = []

    def fail_third(table: object, where: object, **kw: object) -> None:
        calls.append(where)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(table, where, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store.pq, "write_table", fail_third)
    with pytest.raises(OSError, match="No space left on device") as err:
        write_trace(new, dst)
    assert err.value.filename == str(dst)  # the output, not the temporary sibling
    monkeypatch.setattr(store.pq, "write_table", real)
    kept = read_trace(dst)  # the old trace, every table of it (not half old, half new)
    assert kept.slices.equals(old.slices) and kept.tracks.equals(old.tracks) and kept.counters.equals(old.counters)
    assert _siblings(dst) == []
    write_trace(new, dst)  # and a write that succeeds replaces it whole
    assert read_trace(dst).slices.num_rows == new.slices.num_rows


def test_convert_refuses_to_replace_a_users_directory(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    d.mkdir()
    mine = json.dumps({"traceEvents": [{"ph": "X", "name": "keep me", "ts": 1, "dur": 1}]})
    (d / "trace.json").write_text(mine)
    r = subprocess.run([sys.executable, "-m", "profiler", "convert", str(SAMPLE), "-o", str(d)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2
    assert str(d) in r.stderr and "not a trace directory written by this tool" in r.stderr
    assert "Traceback" not in r.stderr
    assert (d / "trace.json").read_text() == mine and sorted(p.name for p in d.iterdir()) == ["trace.json"]
    with pytest.raises(TraceFormatError):
        write_trace(read_trace(SAMPLE), d, "trace")


def test_written_files_keep_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    mask = os.umask(0o022)
    try:
        write_trace(read_trace(SAMPLE), tmp_path / "p.pftrace")
        write_trace(read_trace(SAMPLE), tmp_path / "p.trace")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "p.pftrace").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "p.trace").stat().st_mode) == 0o755


def test_an_unwritable_output_is_one_line_naming_it(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "profiler", "convert", str(SAMPLE), "-o", str(tmp_path / "no" / "x.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "no" / "x.json") in r.stderr and ".tmp-" not in r.stderr
