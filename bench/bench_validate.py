"""Trace.validate on a 5,000,000-slice trace, against building the same trace.

``validate`` runs on every build and every load of a stored trace, so it must stay a small
fraction of what the builder costs: it checks the canonical order, the stored depth and parent and
sibling overlaps with a handful of vectorized passes (one stable sort of the depth column), no
per-slice Python.  Baseline in the same run: ``TraceBuilder.build(validate=False)`` of the same
columns (sort, nest, assemble).
"""

from __future__ import annotations

import sys

import numpy as np

from bench._util import median_time, report


def _builder(n: int):  # -> TraceBuilder
    """8 tracks of three-level stacks: a 1000 ns op holding two kernels, one holding a copy."""
    from profiler import TraceBuilder

    b = TraceBuilder(source_format="synthetic")
    tracks = [b.add_track(f"t{i}", kind="compute") for i in range(8)]
    per = max(n // (4 * len(tracks)), 1)
    for t in tracks:
        base = np.arange(per, dtype=np.int64) * 1000
        ts = np.concatenate([base, base + 100, base + 500, base + 150])
        dur = np.concatenate([np.full(per, 900), np.full(per, 300), np.full(per, 300), np.full(per, 100)])
        b.add_slices(t, ts, dur, "op")
    return b


def main(quick: bool = False) -> None:
    n = 500_000 if quick else 5_000_000
    repeat = 3
    t_build, _ = median_time(lambda: _builder(n).build(validate=False), repeat=repeat, warmup=0)
    trace = _builder(n).build(validate=False)
    t_val, _ = median_time(trace.validate, repeat=repeat)
    rows = trace.slices.num_rows
    report("validate" + ("_quick" if quick else ""), [
        {"step": "TraceBuilder.build(validate=False) (baseline)", "slices": rows, "median_s": t_build},
        {"step": "Trace.validate", "slices": rows, "median_s": t_val, "ns_per_slice": t_val / rows * 1e9,
         "ratio_vs_build": t_val / t_build},
    ])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
