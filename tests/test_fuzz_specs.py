"""Fuzzing the hardware-spec and budget TOML parsers: only SpecError/BudgetError naming the file.

Structured inputs replace, delete or add values anywhere in the real preset specs and the CI budget
examples; byte-level inputs mutate those files (invalid UTF-8 and TOML included).
"""

from __future__ import annotations

import pytest

from bench.fuzz import run_target, target


@pytest.mark.parametrize("name", ["spec_toml_struct", "spec_toml_bytes", "budget_toml_struct", "budget_toml_bytes"])
def test_fuzz_toml_parser(name: str) -> None:
    t = target(name)
    run_target(t, max_examples=150)
    assert t.tried >= 75
