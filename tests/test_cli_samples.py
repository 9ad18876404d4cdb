"""``profiler samples``: lists the bundled samples and regenerates them from their sources."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from profiler.formats import read_trace
from sample_traces import HERE
from sample_traces.regenerate import FILES, SAMPLES, simulate_sample

ROOT = Path(__file__).resolve().parents[1]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "profiler", "samples", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_lists_every_bundled_sample() -> None:
    r = run()
    assert r.returncode == 0, r.stderr
    shipped = {p.name for p in HERE.iterdir() if p.suffix in (".pftrace", ".gz")}
    assert set(FILES.values()) == shipped  # every shipped file has a maker, every maker a file
    for name, file in FILES.items():
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(name + " "))
        assert str(HERE / file) in line and "KiB" in line


def test_regenerates_a_sample_elsewhere_without_touching_the_bundled_one(tmp_path: Path) -> None:
    bundled = HERE / FILES["gemm_single_buffered"]
    before = hashlib.sha256(bundled.read_bytes()).hexdigest()
    r = run("--regenerate", "gemm_single_buffered", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    made = tmp_path / FILES["gemm_single_buffered"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [made.name]  # no temporary left behind
    got = read_trace(made).slices
    want = simulate_sample("gemm_single_buffered").slices
    assert got.num_rows == want.num_rows > 0
    assert got["name"].to_pylist() == want["name"].to_pylist() and got["dur"].to_pylist() == want["dur"].to_pylist()
    assert hashlib.sha256(bundled.read_bytes()).hexdigest() == before
    assert set(SAMPLES) == set(FILES)
