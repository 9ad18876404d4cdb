"""``profiler simulate``: workloads by name, --set overrides, clear errors, a readable trace out."""

from __future__ import annotations

from click.testing import CliRunner

from profiler.cli import cli
from profiler.formats import read_trace


def test_simulate_writes_a_trace_and_prints_a_summary(tmp_path) -> None:
    out = tmp_path / "gemm.trace"
    r = CliRunner().invoke(cli, ["simulate", "gemm", "--hw", "edge-npu", "--dtype", "int8", "--set", "M=512",
                                 "--set", "buffering=1", "--set", "systolic=true", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "ms" in r.output and "% of int8 peak" in r.output
    t = read_trace(out)
    t.validate()
    assert t.metadata.source_format == "simulator"
    ops = t.metadata.extra["simulator"]
    assert ops["systolic"] is True and ops["flops"] == 2 * 512 * 1024 * 1024


def test_simulate_errors_exit_2_with_one_line(tmp_path) -> None:
    runner = CliRunner()
    for args, msg in (
        (["simulate", "nope", "-o", str(tmp_path / "x.trace")], "unknown workload"),
        (["simulate", "gemm", "--dtype", "bf16", "-o", str(tmp_path / "x.trace")], "not supported by edge-npu"),
        (["simulate", "gemm", "--set", "M", "-o", str(tmp_path / "x.trace")], "key=value"),
        (["simulate", "gemm", "--dtype", "int8", "--set", "tile_m=8192", "--set", "M=8192", "--set", "tile_n=8192",
          "--set", "N=8192", "-o", str(tmp_path / "x.trace")], "SRAM"),
    ):
        r = runner.invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output
        assert "Traceback" not in r.output


def test_simulate_prints_the_mappers_choice_and_takes_mapper_modes(tmp_path) -> None:
    out = tmp_path / "g.json"
    r = CliRunner().invoke(cli, ["simulate", "gemm", "--hw", "a100-sxm", "--dtype", "fp16", "--set", "M=2048",
                                 "--set", "N=2048", "--set", "K=2048", "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    line = [ln for ln in r.output.splitlines() if "mapping gemm:" in ln]
    assert len(line) == 1 and "split=tiles" in line[0] and "buffering=" in line[0], r.output
    maps = read_trace(out).metadata.extra["simulator"]["mappings"]
    assert maps[0]["split"] == "tiles" and f"tile={maps[0]['tm']}x{maps[0]['tn']}x{maps[0]['tk']}" in line[0]
    off = CliRunner().invoke(cli, ["simulate", "gemm", "--hw", "a100-sxm", "--dtype", "fp16", "--set", "M=2048",
                                   "--set", "N=2048", "--set", "K=2048", "--set", "mapper=off", "-o", str(out),
                                   "--no-progress"])
    assert off.exit_code == 0 and "split=none" in off.output and "(rules)" in off.output, off.output
    bad = CliRunner().invoke(cli, ["simulate", "gemm", "--hw", "a100-sxm", "--set", "mapper=best", "-o", str(out)])
    assert bad.exit_code == 2 and "mapper must be off, fast or search" in bad.output
