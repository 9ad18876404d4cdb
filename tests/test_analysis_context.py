"""The analysis context: small parts with one job each, and every name analyzers use still there."""

from __future__ import annotations

import ast
from pathlib import Path

from analysis.context import AnalysisContext

ROOT = Path(__file__).resolve().parents[1]


def test_context_parts_are_small() -> None:
    """The context is split into parts; none grows back into a many-hundred-line module."""
    parts = sorted((ROOT / "analysis" / "context").glob("*.py"))
    assert len(parts) >= 6
    sizes = {p.name: len(p.read_text().splitlines()) for p in parts}
    assert max(sizes.values()) <= 200, sizes


def test_every_ctx_name_used_by_analyzers_exists() -> None:
    """Analyzers (and the dashboard) reach the context as ``ctx.<name>``: each name resolves."""
    used: set[str] = set()
    for f in [*(ROOT / "analysis").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ctx":
                used.add(node.attr)
    assert len(used) > 30
    from profiler import TraceBuilder

    b = TraceBuilder()
    b.add_slice(b.add_track("mxu", kind="compute"), 0, 10, "gemm")
    ctx = AnalysisContext(b.build())
    missing = sorted(u for u in used if not hasattr(ctx, u))
    assert not missing
