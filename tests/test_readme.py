"""The README's two set-up commands are the ones CI and users run; keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_screen_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", head, flags=re.S)]


def test_exactly_two_setup_commands() -> None:
    cmds = _first_screen_commands()
    assert len(cmds) == 2, cmds
    assert all("\n" not in c for c in cmds)
    assert cmds[0].startswith("pip install -e .") and "profiler " in cmds[0]
    assert "[test" in cmds[1] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_cmd = _first_screen_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in [line.strip() for line in ci], f"{test_cmd!r} not in .ci/run"
    # and it is the last thing CI runs, after the installs
    assert [line.strip() for line in ci if line.strip() and not line.startswith("#")][-1] == test_cmd


def test_readme_says_how_to_get_the_cpu_only_torch_build() -> None:
    """``.[test,torch]`` pulls PyPI's torch, the CUDA build on Linux: the README must not call it CPU
    PyTorch, and the way it gives to the CPU build must work with the extras' requirement."""
    from packaging.requirements import Requirement

    text = " ".join((ROOT / "README.md").read_text().split("\n## ", 1)[0].split())
    assert "CPU PyTorch" not in text
    assert "CPU wheel index" in text and "https://download.pytorch.org/whl/cpu" in text and "--index-url" in text
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    req = Requirement(next(r for r in extras["torch"] if r.startswith("torch")))
    # A CPU wheel's version carries the +cpu local label; pip keeps it when the specifier admits it.
    assert req.specifier.contains("2.5.1+cpu") and req.specifier.contains("2.13.0+cpu")
