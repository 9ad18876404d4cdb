"""Each op's share of a simulated run, read from its summary trace.

Ops run one after another (an op's first instruction waits for the previous op's last), so an
op's time is from the end of the op before it to its own end: the times add up to the run.  Used
by the multi-device simulator (per-op times placed on each device) and by sweeps (which ops gain
most from a lower precision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from profiler.model import Trace


@dataclass(frozen=True)
class OpTime:
    name: str
    dur_ns: float
    flops: float
    nbytes: float
    dtype: str | None


def per_op(trace: Trace) -> list[OpTime]:
    """The ops of a simulated trace (slices carry their op in args ``op``), in the order they ended."""
    s = trace.slices
    labels = [json.loads(a).get("op") if a else None for a in s["args"].to_pylist()]
    end = s["ts"].to_numpy() + s["dur"].to_numpy()
    flops = np.nan_to_num(s["flops"].to_numpy(zero_copy_only=False))
    nbytes = np.nan_to_num(s["bytes"].to_numpy(zero_copy_only=False))
    dts = s["dtype"].to_pylist()
    rows: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        if lab is not None:
            rows.setdefault(lab, []).append(i)
    ends = sorted((float(end[r].max()), lab) for lab, r in rows.items())
    out, prev = [], 0.0
    for e, lab in ends:
        r = rows[lab]
        out.append(OpTime(lab, e - prev, float(flops[r].sum()), float(nbytes[r].sum()),
                          next((dts[i] for i in r if dts[i]), None)))
        prev = e
    return out
