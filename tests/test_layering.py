"""Data flows one way: collectors -> profiler -> analysis -> ui/CLI.  Imports must not run upstream.

Checked statically on every module's import statements (including imports inside functions), so a
lazy import in the wrong direction fails too.  Only ``profiler/cli`` (the top of the flow) may
reach the packages around the core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> top-level packages it must never import
FORBIDDEN = {
    "profiler": {"collectors", "analysis", "ui"},
    "collectors": {"analysis", "ui"},
    "analysis": {"ui", "collectors"},
    "ui": {"collectors"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _modules() -> list[tuple[str, Path]]:
    mods = []
    for pkg in FORBIDDEN:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if pkg == "profiler" and "cli" in f.relative_to(ROOT / pkg).parts:
                continue
            mods.append((pkg, f))
    return mods


@pytest.mark.parametrize(("pkg", "path"), _modules(), ids=lambda x: str(x.relative_to(ROOT)) if isinstance(x, Path) else x)
def test_no_upstream_imports(pkg: str, path: Path) -> None:
    bad = _imports(path) & FORBIDDEN[pkg]
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, against the data flow"


def test_core_import_is_light() -> None:
    """Importing the core must not pull in Dash, torch or the analyzers (CLI start-up time)."""
    import subprocess
    import sys

    code = "import sys, profiler; print(','.join(m for m in ('dash','torch','analysis','ui','collectors','duckdb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out == ""
