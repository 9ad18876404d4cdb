"""One stall rule: the timeline's stalled time is the analyzers' stall class, slice for slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.context import STALL, AnalysisContext
from profiler import TraceBuilder
from profiler.formats import read_trace
from profiler.stall_labels import is_stall_label
from ui.state import LoadedTrace

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"


def _labelled() -> TraceBuilder:
    b = TraceBuilder()
    dev = b.add_track("npu0", kind="group", device="npu0")
    mx = b.add_track("mxu", kind="compute", parent=dev)
    for i, (name, cat) in enumerate([("stall: memory", None), ("install_weights", None), ("wait", None),
                                     ("gemm", "wait"), ("Idle", None), ("wait_for_data", None), ("gemm", "matmul"),
                                     ("gemm", "idle time")]):
        b.add_slice(mx, i * 10, 5, name, category=cat)
    return b


def test_label_rule_words_not_substrings() -> None:
    assert is_stall_label(None, "stall: memory") and is_stall_label("wait", "gemm") and is_stall_label(None, "Idle")
    assert not is_stall_label(None, "install_weights") and not is_stall_label(None, "wait_for_data")
    assert not is_stall_label("idle time", "gemm")


@pytest.mark.parametrize("trace", ["labelled", *sorted(p.name for p in SAMPLES.glob("*.pftrace"))])
def test_timeline_and_analyzers_agree_on_stalls(trace: str) -> None:
    t = _labelled().build() if trace == "labelled" else read_trace(SAMPLES / trace)
    ui = LoadedTrace(0, trace, t).stall_mask
    analysis = AnalysisContext(t).slice_class == STALL
    assert np.array_equal(ui, analysis)
    if trace == "labelled":
        assert analysis.tolist() == [True, False, True, True, True, False, False, False]
