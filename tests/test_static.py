"""ruff on the whole project and mypy on the core stay clean (the project's own checks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (it comes with the [test] extra)")
    return [found]


def test_ruff_clean() -> None:
    r = subprocess.run([*_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean_on_core() -> None:
    r = subprocess.run([*_tool("mypy"), "profiler"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
