"""One helper per meaning: column decoding, stall labels and DMA engine names each live in one place."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("profiler", "analysis", "ui", "collectors", "bench")


def _defs() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            for name in re.findall(r"^\s*def (\w+)\(", f.read_text(), flags=re.M):
                out.setdefault(name, []).append(str(f.relative_to(ROOT)))
    return out


def test_dictionary_columns_are_decoded_by_one_helper() -> None:
    defs = _defs()
    for copy in ("_dict_column", "_dict_parts", "_float_column"):
        assert copy not in defs, (copy, defs.get(copy))
    assert defs["dict_codes"] == ["profiler/columns.py"]


def test_one_stall_rule_and_one_dma_engine_rule() -> None:
    defs = _defs()
    assert defs["is_stall_label"] == ["profiler/stall_labels.py"]
    assert defs["is_dma_engine_name"] == ["profiler/engine_names.py"]
    for f in [*(ROOT / "analysis").rglob("*.py"), *(ROOT / "collectors").rglob("*.py"), *(ROOT / "ui").rglob("*.py")]:
        text = f.read_text()
        assert "_DMA_PREFIXES" not in text and "_DMA_NAME" not in text, f
        assert not re.search(r'_STALL_CAT\b|_STALL_NAME\b', text) or f.name == 'stall_labels.py', f


def test_pct_has_one_meaning() -> None:
    assert _defs().get("pct") == ["analysis/common.py"]  # a percentage number; formatting is fmt_*
