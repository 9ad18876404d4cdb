"""The exit-status contract of every verb, through the real entry point (``python -m profiler``).

0 ok, 1 a budget or regression check failed, 2 bad input or usage (one line on stderr naming the
file, no traceback), 3 a bug.  Each verb is run on an input it must reject.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiler import TraceBuilder
from profiler.cli import VERBS
from profiler.schema import TABLE_SCHEMAS

ROOT = Path(__file__).resolve().parents[1]


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "profiler", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=180)


def one_line_bad_input(r: subprocess.CompletedProcess[str], *names: str) -> None:
    """Status 2, exactly one line on stderr that starts with the tool's prefix and names ``names``."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("profiler: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in names:
        assert n in lines[0], (n, lines[0])


def _good_trace(tmp: Path, name: str = "good.trace") -> Path:
    b = TraceBuilder(source_format="test", hardware="edge-npu")
    dev = b.add_track("npu0", kind="group", device="npu0")
    mxu = b.add_track("mxu", kind="compute", parent=dev)
    dma = b.add_track("dma0", kind="dma", parent=dev)
    for i in range(3):
        ld = b.add_slice(dma, i * 30_000, 10_000, f"load {i}", bytes=1e6)
        c = b.add_slice(mxu, i * 30_000 + 10_000, 20_000, "gemm", flops=1e9, bytes=1e6, dtype="int8")
        b.add_flow(ld, c)
    return b.build().save(tmp / name)


@pytest.fixture()
def invalid_trace(tmp_path: Path) -> Path:
    """Parseable, but a flow points past the slices (6 slices, flow to slice 60)."""
    d = _good_trace(tmp_path, "bad.trace")
    flows = pa.table({"id": [0], "from_slice": [0], "to_slice": [60], "name": [None]}, schema=TABLE_SCHEMAS["flows"])
    pq.write_table(flows, d / "flows.parquet")
    return d


def test_analyze_with_budget_on_an_invalid_trace_is_bad_input(tmp_path: Path, invalid_trace: Path) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text("stall_pct_max = 50\n")
    r = run("analyze", invalid_trace, "--budget", budget)
    one_line_bad_input(r, "bad.trace", "flows row 0", "to_slice = 60")


@pytest.mark.parametrize("verb", ["info", "convert", "sql", "diff", "analyze"])
def test_every_trace_reading_verb_rejects_an_invalid_trace(tmp_path: Path, invalid_trace: Path, verb: str) -> None:
    good = _good_trace(tmp_path)
    args = {"info": [invalid_trace], "convert": [invalid_trace, "-o", tmp_path / "x.json"],
            "sql": [invalid_trace, "SELECT 1"], "diff": [good, invalid_trace], "analyze": [invalid_trace]}[verb]
    one_line_bad_input(run(verb, *args), "bad.trace")
    assert not (tmp_path / "x.json").exists()


def test_percent_written_for_a_fraction_budget_is_rejected(tmp_path: Path) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text("mfu_min = 80\n")
    one_line_bad_input(run("analyze", _good_trace(tmp_path), "--budget", budget), "b.toml", "mfu_min", "0.8")
    budget.write_text("stall_pct_max = 0.2\ndma_bubble_pct_max = 150\n")
    one_line_bad_input(run("analyze", _good_trace(tmp_path), "--budget", budget), "dma_bubble_pct_max")


def test_budget_and_regression_failures_exit_1(tmp_path: Path) -> None:
    good = _good_trace(tmp_path)
    budget = tmp_path / "b.toml"
    budget.write_text("stall_pct_max = 0\n")  # the gemm waits on each load: stalls exist
    r = run("analyze", good, "--budget", budget)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    budget.write_text("stall_pct_max = 100\n")
    assert run("analyze", good, "--budget", budget).returncode == 0


@pytest.mark.parametrize(("args", "names"), [
    (["specs", "no-such-chip"], ["no-such-chip"]),
    (["simulate", "no-such-workload", "-o", "{tmp}/x.trace"], ["no-such-workload"]),
    (["simulate", "gemm", "--set", "M", "-o", "{tmp}/x.trace"], ["--set"]),
    (["scalesim", "--gemm", "12x", "-o", "{tmp}/x.trace"], ["12x"]),
    (["convert", "{good}", "-o", "{tmp}/no/such/dir/x.json"], ["x.json"]),
    (["convert", "{good}", "-o", "{tmp}/x.xyz"], ["x.xyz"]),
    (["sql", "{good}", "SELECT nope FROM slices"], ["nope"]),
    (["samples", "no-such-sample"], ["no-such-sample"]),
    (["samples", "--out", "{tmp}"], ["--out"]),
    (["record", "-o", "{tmp}/r.trace", "--", "no_such_script.py"], ["no_such_script.py"]),
    (["ui", "{junk}"], ["junk.json"]),
    (["calibrate", "{junk}", "--hw", "a100-sxm", "-o", "{tmp}/x.toml"], ["junk.json"]),
    (["fleet", "{tmp}/no-such-folder", "--serial"], ["no-such-folder"]),
])
def test_each_verb_reports_bad_input_in_one_line(tmp_path: Path, args: list[str], names: list[str]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"traceEvents": [{"ph": "X", "ts": ')
    fill = {"tmp": tmp_path, "good": _good_trace(tmp_path), "junk": junk}
    one_line_bad_input(run(*[a.format(**fill) for a in args]), *names)


def test_ui_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_bad_input(run("ui", _good_trace(tmp_path), "--port", port), str(port))


def test_usage_errors_exit_2() -> None:
    assert run("analyze").returncode == 2
    assert run("no-such-verb").returncode == 2


def test_every_verb_loads_and_documents_the_exit_statuses() -> None:
    """No verb is registered without a module, and each ``--help`` states the contract."""
    top = run("--help")
    assert top.returncode == 0 and "Exit status" in top.stdout
    listed = {ln.split()[0] for ln in top.stdout.split("Commands:")[1].splitlines() if ln.strip()}
    assert listed == set(VERBS)
    for verb in VERBS:
        h = run(verb, "--help")
        assert h.returncode == 0, (verb, h.stderr)
        text = " ".join(h.stdout.split())
        assert "Exit status: 0 ok; 1 a budget or regression check failed; 2 bad input or usage" in text, verb


def test_a_bug_is_status_3_with_its_traceback(tmp_path: Path) -> None:
    """An exception that is not the user's fault must not look like a failed check (1) or bad input (2)."""
    code = ("import sys, profiler.cli.info as m\n"
            "def boom(*a, **k): raise RuntimeError('boom')\n"
            "m.read_trace = boom\n"
            "from profiler.cli import main\n"
            f"main(['info', {str(_good_trace(tmp_path))!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 3 and "Traceback" in r.stderr and "RuntimeError: boom" in r.stderr
    assert "internal error" in r.stderr.splitlines()[-1]


def test_ctrl_c_is_130_not_1(tmp_path: Path) -> None:
    """click turns Ctrl+C into "Aborted!" and status 1, which CI would read as a failed check."""
    code = ("import profiler.cli.info as m\n"
            "def stop(*a, **k): raise KeyboardInterrupt\n"
            "m.read_trace = stop\n"
            "from profiler.cli import main\n"
            f"main(['info', {str(_good_trace(tmp_path))!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 130 and r.stderr.strip() == "profiler: interrupted"
