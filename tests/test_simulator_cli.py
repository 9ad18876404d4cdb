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
