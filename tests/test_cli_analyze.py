"""The analyze, diff and sql verbs: formats, budgets and exit codes (0 pass, 1 budget failed, 2 bad input)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.report_schema import validate
from profiler import TraceBuilder
from profiler.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _trace(tmp: Path, name: str, gemm_ns: int, hardware: str | None = "edge-npu") -> Path:
    """Single-buffered loop (see test_analysis.single_buffered) with a configurable gemm time."""
    b = TraceBuilder(source_format="test", hardware=hardware)
    dev = b.add_track("npu0", kind="group", device="npu0")
    mxu = b.add_track("mxu", kind="compute", parent=dev)
    dma = b.add_track("dma0", kind="dma", parent=dev)
    t = 0
    for i in range(4):
        ld = b.add_slice(dma, t, 10_000, f"load {i}", bytes=1e6)
        c = b.add_slice(mxu, t + 10_000, gemm_ns, "gemm", flops=1e9, bytes=1e6, dtype="int8")
        b.add_flow(ld, c)
        t += 10_000 + gemm_ns
    return b.build().save(tmp / name)


@pytest.fixture()
def traces(tmp_path: Path) -> dict[str, Path]:
    return {"base": _trace(tmp_path, "base.trace", 20_000), "slow": _trace(tmp_path, "slow.trace", 30_000),
            "nohw": _trace(tmp_path, "nohw.trace", 20_000, hardware=None), "dir": tmp_path}


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def budget(tmp: Path, text: str) -> Path:
    p = tmp / "b.toml"
    p.write_text(text)
    return p


def test_analyze_text_names_the_bottleneck(traces) -> None:
    r = run("analyze", traces["base"], "--hw", "edge-npu")
    assert r.exit_code == 0, r.output
    assert "MFU" in r.output and "dma_bubble" in r.output and "waits" in r.output


def test_analyze_json_follows_the_schema(traces) -> None:
    r = run("analyze", traces["base"], "--format", "json")  # spec from the trace's metadata
    doc = json.loads(r.output)
    assert validate(doc) == []
    assert doc["hardware"] == "edge-npu" and doc["summary"]["total_ns"] == 120_000
    assert set(doc["analyzers"]) >= {"utilization", "stalls", "dma_bubbles", "roofline", "overlap", "dma_efficiency", "gaps"}
    assert doc["findings"][0]["gain_ns"] >= doc["findings"][-1]["gain_ns"]


def test_budgets_pass_and_fail(traces) -> None:
    tmp = traces["dir"]
    ok = run("analyze", traces["base"], "--budget", budget(tmp, "mfu_min = 0.001\nstall_pct_max = 50\n"), "--format", "md")
    assert ok.exit_code == 0, ok.output
    assert "✅ all 2 budgets passed" in ok.output and "| mfu_min | ✅ pass |" in ok.output
    bad = run("analyze", traces["base"], "--budget", budget(tmp, 'dma_bubble_pct_max = 1\nmax_findings_severity = "low"\n'),
              "--format", "md")
    assert bad.exit_code == 1
    assert "❌ 2 of 2 budgets failed" in bad.output and "### Top findings" in bad.output


def test_junit_one_testcase_per_budget(traces) -> None:
    tmp = traces["dir"]
    out = tmp / "junit.xml"
    r = run("analyze", traces["base"], "--budget", budget(tmp, "mfu_min = 0.001\ndma_bubble_pct_max = 1\n"),
            "--format", "junit", "-o", out)
    assert r.exit_code == 1
    assert "FAIL dma_bubble_pct_max" in r.output  # verdict still reaches the terminal
    suite = ET.parse(out).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"mfu_min", "dma_bubble_pct_max"} and suite.get("failures") == "1"
    assert cases["dma_bubble_pct_max"].find("failure") is not None and cases["mfu_min"].find("failure") is None


def test_regression_budget_against_baseline(traces) -> None:
    tmp = traces["dir"]
    b = budget(tmp, "op_regression_pct_max = 5\n")
    r = run("analyze", traces["slow"], "--baseline", traces["base"], "--budget", b, "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["summary"]["op_regression_pct_max"] == pytest.approx(50.0)  # 80 us -> 120 us of gemm
    assert doc["budgets"][0]["passed"] is False and validate(doc) == []
    assert run("analyze", traces["base"], "--baseline", traces["base"], "--budget", b).exit_code == 0


@pytest.mark.parametrize("text, message", [
    ("mfu_minimum = 0.5\n", "unknown budget key"),
    ("mfu_min = 'high'\n", "must be a number"),
    ("mfu_min = \n", "invalid TOML"),
    ('max_findings_severity = "severe"\n', "must be one of"),
    ("op_regression_pct_max = 5\n", "needs a baseline"),
])
def test_bad_budget_files_exit_2(traces, text: str, message: str) -> None:
    r = run("analyze", traces["base"], "--budget", budget(traces["dir"], text))
    assert r.exit_code == 2 and message in r.output


def test_bad_inputs_exit_2(traces) -> None:
    tmp = traces["dir"]
    r = run("analyze", traces["nohw"], "--budget", budget(tmp, "mfu_min = 0.5\n"))
    assert r.exit_code == 2 and "needs a hardware spec" in r.output
    junk = tmp / "junk.json"
    junk.write_text('{"traceEvents": [{"ph": "X", "ts": ')
    r = run("analyze", junk)
    assert r.exit_code == 2 and "junk.json" in r.output and "Traceback" not in r.output
    assert run("analyze", traces["base"], "--hw", "no-such-chip").exit_code == 2


def test_diff_exit_codes_and_formats(traces) -> None:
    r = run("diff", traces["base"], traces["slow"])
    assert r.exit_code == 1 and "gemm" in r.output and "regressed" in r.output
    assert run("diff", traces["base"], traces["base"]).exit_code == 0
    doc = json.loads(run("diff", traces["base"], traces["slow"], "--format", "json").output)
    gemm = next(o for o in doc["ops"] if o["name"] == "gemm")
    assert gemm["delta_pct"] == pytest.approx(50.0) and doc["passed"] is False
    md = run("diff", traces["base"], traces["slow"], "--format", "md").output
    assert "| gemm | regressed |" in md
    # gemm +50%, run time +33% (120 -> 160 us): under a 60% threshold nothing regressed
    assert run("diff", traces["base"], traces["slow"], "--threshold", "60").exit_code == 0
    assert run("diff", traces["base"], traces["slow"], "--threshold", "40").exit_code == 1  # gemm only


def test_sql_over_trace_tables(traces) -> None:
    q = "SELECT name, count(*) AS n, sum(dur) AS total FROM slices GROUP BY name ORDER BY name"
    r = run("sql", traces["base"], q, "--json")
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert rows[0] == {"name": "gemm", "n": 4, "total": 80_000}
    csv = run("sql", traces["base"], "SELECT track_name, count(*) n FROM slices_x GROUP BY 1 ORDER BY 1", "--csv").output
    assert csv.splitlines()[1:] == ['"dma0",4', '"mxu",4']
    table = run("sql", traces["base"], "SELECT count(*) AS flows FROM flows").output
    assert "flows" in table and "4" in table
    bad = run("sql", traces["base"], "SELECT nope FROM slices")
    assert bad.exit_code == 2 and "SQL error" in bad.output and "Traceback" not in bad.output


def _ci_commands() -> list[tuple[str, int]]:
    text = (ROOT / "examples" / "ci" / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert block
    out = []
    for line in block.group(1).strip().splitlines():
        cmd, _, rc = line.partition("  # exit ")
        out.append((cmd.strip(), int(rc)))
    return out


def test_ci_example_commands(tmp_path: Path) -> None:
    """The README's CI example, verbatim: the pass budget exits 0, the fail budget 1, with a readable summary."""
    exe = Path(sys.executable).with_name("profiler")
    if not exe.exists() and not shutil.which("profiler"):
        pytest.skip("the profiler console script is not installed")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary), PATH=f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    cmds = _ci_commands()
    assert [rc for _, rc in cmds].count(1) >= 1 and any("budget_pass.toml" in c for c, rc in cmds if rc == 0)
    for cmd, want in cmds:
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == want, f"{cmd}\n{r.stdout}\n{r.stderr}"
    md = summary.read_text()
    assert "✅ all 4 budgets passed" in md and "❌ 2 of 3 budgets failed" in md
    assert "| mfu_min | ❌ FAIL | mfu = 0.919" in md
    cases = ET.parse(tmp_path / "budgets.xml").getroot().find("testsuite")
    assert cases.get("tests") == "4" and cases.get("failures") == "0"


def _workflow_steps() -> list[dict[str, str]]:
    import yaml

    text = (ROOT / "examples" / "ci" / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S)
    assert block
    steps = yaml.safe_load(block.group(1))
    assert isinstance(steps, list) and all("run" in s for s in steps)
    return steps


def test_github_workflow_example_runs_green(tmp_path: Path) -> None:
    """The README's GitHub workflow, step by step and verbatim, in bash as GitHub runs ``run:`` steps.

    The ``pip install`` step is checked, not re-run: re-installing into the environment the tests
    run in would disturb it; instead the ``profiler`` script it installs must come from this checkout.
    """
    exe = Path(sys.executable).with_name("profiler")
    if not exe.exists():
        pytest.skip("the profiler console script is not installed")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary), PATH=f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    steps = _workflow_steps()
    assert steps[0]["run"] == "pip install -e ."
    where = subprocess.run([sys.executable, "-c", "import profiler; print(profiler.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(ROOT)
    for step in steps[1:]:
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{step['run']}\n{r.stdout}\n{r.stderr}"
    assert "✅ all 4 budgets passed" in summary.read_text()
    cases = ET.parse(tmp_path / "budgets.xml").getroot().find("testsuite")
    assert cases is not None and cases.get("tests") == "4" and cases.get("failures") == "0"
