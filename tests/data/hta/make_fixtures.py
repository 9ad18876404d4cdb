"""Compute HolisticTraceAnalysis' numbers for the Kineto test traces and store them as JSON fixtures.

Run once, with HTA installed in its own environment (it is not a dependency of this project)::

    python3 -m venv /tmp/hta-venv && /tmp/hta-venv/bin/pip install HolisticTraceAnalysis
    /tmp/hta-venv/bin/python tests/data/hta/make_fixtures.py

Each trace is copied alone into a temporary directory (HTA reads a directory of ranks) and every
HTA analysis the comparison tests use is stored as records, with the HTA version, in
``tests/data/hta/<trace>.json``.  An analysis HTA fails on is stored as its error text.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "kineto"
TRACES = ("a100_alexnet", "v100_ns_resolution", "amd_mi250_minitoy_train", "two_ranks_rank0",
          "mtia_inference_rank0", "a100_event_sync_multi_stream")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def records(df: Any) -> list[dict[str, Any]]:
    """A DataFrame as JSON records, flattened column names, NaN as null."""
    df = df.reset_index()
    df.columns = ["_".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in df.columns]
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def analyses(a: Any) -> dict[str, Any]:
    import pandas as pd

    def frame(x: Any) -> Any:
        if isinstance(x, tuple):
            return [frame(y) for y in x]
        if isinstance(x, dict):
            return {str(k): frame(v) for k, v in x.items()}
        if isinstance(x, pd.DataFrame):
            return records(x)
        return _clean(x)

    calls = {
        "temporal_breakdown": lambda: a.get_temporal_breakdown(visualize=False),
        "comm_comp_overlap": lambda: a.get_comm_comp_overlap(visualize=False),
        "queue_length_summary": lambda: a.get_queue_length_summary(ranks=[0]),
        "time_blocked_on_full_queue": lambda: a.get_time_spent_blocked_on_full_queue(
            a.get_queue_length_time_series(ranks=[0]), max_queue_length=1024),
        # v100_ns_resolution's queue reaches 1022: a lower limit shows the blocked time.
        "time_blocked_on_full_queue_1000": lambda: a.get_time_spent_blocked_on_full_queue(
            a.get_queue_length_time_series(ranks=[0]), max_queue_length=1000),
        "idle_time_breakdown": lambda: a.get_idle_time_breakdown(ranks=[0], visualize=False, show_idle_interval_stats=True),
        "gpu_kernel_breakdown": lambda: a.get_gpu_kernel_breakdown(visualize=False, include_memory_kernels=True),
        "cuda_kernel_launch_stats": lambda: a.get_cuda_kernel_launch_stats(ranks=[0], visualize=False),
        "frequent_cuda_kernel_sequences": lambda: a.get_frequent_cuda_kernel_sequences(
            operator_name="aten::", output_dir=tempfile.mkdtemp(), min_pattern_len=3, rank=0, top_k=5),
    }
    out: dict[str, Any] = {}
    for k, f in calls.items():
        try:
            out[k] = frame(f())
        except Exception as e:  # noqa: BLE001 - record what HTA could not do, as text
            out[k] = {"error": f"{type(e).__name__}: {e}"}
    return out


def main(names: tuple[str, ...] = TRACES) -> int:
    from hta.trace_analysis import TraceAnalysis

    logging.disable(logging.WARNING)
    version = importlib.metadata.version("HolisticTraceAnalysis")
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(DATA / f"{name}.json.gz", Path(d) / f"{name}.json.gz")
            try:
                a = TraceAnalysis(trace_dir=d)
                doc: dict[str, Any] = {"hta_version": version, "trace": f"{name}.json.gz", **analyses(a)}
            except Exception as e:  # noqa: BLE001
                doc = {"hta_version": version, "trace": f"{name}.json.gz", "error": f"{type(e).__name__}: {e}"}
        tmp = HERE / f".{name}.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
        tmp.replace(HERE / f"{name}.json")
        print(name, "done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(tuple(sys.argv[1:]) or TRACES))
