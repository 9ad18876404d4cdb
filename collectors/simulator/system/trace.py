"""A scheduled multi-device program as one trace: a group per device, its compute and link lanes.

Device groups are named ``dev0`` .. ``devN-1`` (device ``<spec>:<i>``); the ``compute`` track holds
the ops (with flops, bytes and dtype from the single-device simulator), one ``link -> devJ`` track
per device it sends to holds those transfers, named after their collective
(``all_reduce step 3/14 -> dev4``) so analyzers count them as communication.  Flows follow the data of each collective step across
devices.  ``metadata.extra["system"]`` holds the accounting (per device busy and communication
time, the system spec).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collectors.simulator.system.program import SystemProgram
from profiler import Trace, TraceBuilder
from profiler.model import args_json


def build_trace(prog: SystemProgram, start: np.ndarray, end: np.ndarray, spec_name: str, workload: str,
                extra: dict[str, Any] | None = None) -> tuple[Trace, dict[str, Any]]:
    b = TraceBuilder(source_format="simulator", source=f"simulator:{workload}", clock="simulated", hardware=spec_name)
    n_dev = prog.system.devices
    lanes: dict[tuple[int, str], int] = {}
    used = sorted({(t.device, t.lane) for t in prog.tasks if t.lane != "compute"},
                  key=lambda x: (x[0], int(x[1].split(":")[1])))
    for d in range(n_dev):
        g = b.add_track(f"dev{d}", kind="group", device=f"{spec_name}:{d}", attrs={"device_index": d})
        lanes[(d, "compute")] = b.add_track("compute", kind="compute", parent=g, attrs={"engine": "device"})
        for dev, lane in used:
            if dev == d:
                dst = int(lane.split(":")[1])
                lanes[(d, lane)] = b.add_track(f"link -> dev{dst}", kind="compute", parent=g,
                                               attrs={"engine": "link", "to_device": dst})
    s = np.rint(start).astype(np.int64)
    e = np.maximum(np.rint(end).astype(np.int64), s)
    tasks = prog.tasks
    track = np.fromiter((lanes[(t.device, t.lane)] for t in tasks), np.int64, len(tasks))
    nan = float("nan")
    ids = b.add_slices(
        track, s, e - s, [t.name for t in tasks], category=[t.category for t in tasks],
        flops=np.fromiter((t.flops for t in tasks), np.float64, len(tasks)),
        bytes=np.fromiter((t.nbytes if t.nbytes == t.nbytes else nan for t in tasks), np.float64, len(tasks)),
        dtype=[t.dtype for t in tasks], args=[args_json(t.args) if t.args else None for t in tasks])
    if prog.flows:
        fl = np.asarray(prog.flows, dtype=np.int64)
        b.add_flows(ids[fl[:, 0]], ids[fl[:, 1]], name=["collective step"] * len(fl))
    total = int(e.max()) if len(e) else 0
    dev = np.fromiter((t.device for t in tasks), np.int64, len(tasks))
    on_link = np.fromiter((t.lane != "compute" for t in tasks), bool, len(tasks))
    sent = np.nan_to_num(np.fromiter((t.nbytes for t in tasks), np.float64, len(tasks)))
    per_dev = []
    for d in range(n_dev):
        comp = (dev == d) & ~on_link
        link = (dev == d) & on_link
        per_dev.append({"device": d, "compute_ns": int((e[comp] - s[comp]).sum()),
                        "link_ns": _union_ns(s[link], e[link]) if link.any() else 0,
                        "link_bytes": float(sent[link].sum())})
    stats = {"workload": workload, "hardware": spec_name, "total_ns": total, "devices": n_dev,
             "system": prog.system.to_dict(), "per_device": per_dev, "collectives": prog.collectives,
             "events": len(prog.tasks) + len(prog.flows), **(extra or {})}
    b.metadata.extra["system"] = stats
    return b.build(), stats


def _union_ns(start: np.ndarray, end: np.ndarray) -> int:
    """Time covered by at least one of the intervals (a device's transfers may run side by side)."""
    order = np.argsort(start, kind="stable")
    s, e = start[order], np.maximum.accumulate(end[order])
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > e[:-1]
    idx = np.flatnonzero(new)
    ends = np.append(e[idx[1:] - 1], e[-1])
    return int((ends - s[idx]).sum())
