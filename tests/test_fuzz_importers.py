"""Fuzzing the trace importers (hypothesis; a few dozen inputs per target so the suite stays fast).

Property (see :mod:`bench.fuzz`, which runs the same targets for minutes): a structured or
byte-mutated input gives a trace that passes ``validate()`` or a TraceFormatError naming the file.
``python -m bench.fuzz --seconds 300`` is the long run.
"""

from __future__ import annotations

import pytest

from bench.fuzz import run_target, target

EXAMPLES = {
    "chrome_json_struct": 150,
    "kineto_bytes": 150,
    "kineto_gz_bytes": 60,
    "perfetto_struct": 150,
    "perfetto_bytes": 150,
    "ort_struct": 150,
    "ort_bytes": 150,
    "scalesim_bytes": 60,
    "attack_cases": 80,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_fuzz_importer(name: str) -> None:
    t = target(name)
    run_target(t, max_examples=EXAMPLES[name])
    assert t.tried >= EXAMPLES[name] // 2  # hypothesis may stop early only on a tiny input space
