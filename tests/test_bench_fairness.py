"""Benchmarks compare like with like, print the machine, and reject unknown names.

Timings themselves are not asserted (they live in ``python -m bench``); what is checked is how
each benchmark measures: which baseline a ratio divides by, and under which conditions.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import bench.bench_json_load as bjl
from bench import _util

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_benchmark_name_is_a_usage_error() -> None:
    r = subprocess.run([sys.executable, "-m", "bench", "nosuch"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "unknown benchmark(s) nosuch" in r.stderr


def test_every_report_names_the_machine(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_util, "RESULTS", tmp_path)
    _util.report("demo", [{"step": "x", "median_s": 1.0}])
    out = capsys.readouterr().out
    assert re.search(r"machine: .+, \d+ cores, .* GiB, load [\d.]+/[\d.]+/[\d.]+, Python 3\.\d+", out), out
    assert (tmp_path / "demo.json").read_text().count('"cores"') == 1
    assert all("report(" in p.read_text() for p in (ROOT / "bench").glob("bench_*.py"))


def test_no_benchmark_names_an_absolute_path() -> None:
    for p in (ROOT / "bench").glob("*.py"):
        hits = re.findall(r"""["'](/(?:work|home|tmp|Users|mnt)/[^"']*)["']""", p.read_text())
        assert not hits, (p.name, hits)


def test_json_load_ratio_divides_by_orjson_under_the_readers_gc_setting(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Our reader pauses the GC; the headline ratio must be against orjson with the GC paused too."""
    small = bjl.make_kineto_file(tmp_path / "k.json", 600)
    monkeypatch.setattr(bjl, "bench_file", lambda n, epoch=False: small)
    monkeypatch.setattr(bjl, "peak_memory", lambda *a: {"peak_rss_mb": 1.0})
    rows: list[dict[str, Any]] = []
    monkeypatch.setattr(bjl, "report", lambda name, r: rows.extend(r))

    def fake(fn: Any, repeat: int) -> tuple[float, float]:
        if isinstance(fn, partial) and fn.func is bjl._orjson_read:
            return (0.25, 0.25) if fn.args[1] else (1.0, 1.0)  # GC on is ~4x faster to look at than paused
        return 1.2, 1.2  # our reader
    monkeypatch.setattr(bjl, "wall_and_cpu", fake)
    bjl.main(quick=True)
    ours = next(r for r in rows if r["step"] == "read_trace (ours)")
    assert ours["ratio_vs_orjson"] == pytest.approx(1.2) and ours["gc"] == "paused"
    ref = next(r for r in rows if r["step"].startswith("orjson.loads, for reference"))
    assert ref["gc"] == "on" and "ratio_vs_orjson" not in ref
    hta = [r for r in rows if "HolisticTraceAnalysis" in r["step"]]
    assert len(hta) == 1
    if importlib.util.find_spec("hta") is None:
        assert "import failed (ModuleNotFoundError: No module named 'hta')" in hta[0]["step"]


def test_orjson_baseline_pauses_the_gc_like_the_reader(tmp_path: Path) -> None:
    import gc

    seen: list[bool] = []
    p = tmp_path / "x.json"
    p.write_text("[1]")
    try:
        real = bjl.Path.read_bytes

        def spy(self: Path) -> bytes:
            seen.append(gc.isenabled())
            return real(self)
        bjl.Path.read_bytes = spy  # type: ignore[method-assign]
        bjl._orjson_read(p, gc_on=False)
        bjl._orjson_read(p, gc_on=True)
    finally:
        bjl.Path.read_bytes = real  # type: ignore[method-assign]
    assert seen == [False, True] and gc.isenabled()


def test_scalesim_bench_pairs_cold_with_cold_and_warm_with_warm() -> None:
    from collectors.scalesim import ScaleSimConfig, find_scalesim_python

    if find_scalesim_python(required=False) is None:
        pytest.skip("SCALE-Sim interpreter not found (SCALESIM_PYTHON)")
    import bench.bench_scalesim as bss

    cfg = ScaleSimConfig(rows=8, cols=8, dataflow="os", ifmap_sram_kb=64, filter_sram_kb=64, ofmap_sram_kb=32,
                         bandwidth=8, run_name="t")
    row = bss._one(cfg, 16, 16, 16, repeat=1)
    assert row["cold_scalesim/simulator"] == pytest.approx(row["scalesim_cold_s"] / row["simulator_cold_s"])
    assert row["warm_scalesim/simulator"] == pytest.approx(row["scalesim_warm_s"] / row["simulator_warm_s"])
    # A fresh process costs more than a warm run, on both sides.
    assert row["simulator_cold_s"] > row["simulator_warm_s"] and row["scalesim_cold_s"] > row["scalesim_warm_s"]
