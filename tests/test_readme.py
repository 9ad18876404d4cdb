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
