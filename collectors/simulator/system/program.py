"""A multi-device program: ops on each device's compute lane, transfers on its link lane, and a
list scheduler that times them.

Each device has lanes that run one task at a time, in the order tasks were added: ``compute`` (the
ops the single-device simulator timed) and one ``link:<dst>`` per device it sends to.  A task starts
when its lane is free and every task it depends on has ended, so communication overlaps compute
exactly where the dependencies allow (a pipeline stage computes the next micro-batch while the
last one's activations are on the wire; a tensor-parallel layer waits for its all-reduce).

Collectives are added as their steps (:mod:`collectors.simulator.system.collectives`): one task
per transfer, on the sender's lane towards its receiver, timed by :meth:`SystemSpec.step_times`
(links shared within a step divide their bandwidth).  Steps run in lockstep: a step starts when
every transfer of the one before ended (the first when each participant's inputs are ready), which
is what the per-step contention assumes.  Contention between different collectives running at
once is not modelled.  A flow links the transfer that delivered data to a device with the one that
forwards it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors.simulator.system.collectives import Step, steps_for
from profiler.system import SystemSpec


@dataclass
class Task:
    device: int
    lane: str  # "compute", or "link:<dst>" for what it sends to device dst
    name: str
    dur: float  # ns
    deps: tuple[int, ...]
    category: str = "op"  # "op" (compute) or the collective kind
    flops: float = float("nan")
    nbytes: float = float("nan")
    dtype: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


class SystemProgram:
    """Tasks across devices, added in an order each lane runs them in (see the module docstring)."""

    def __init__(self, system: SystemSpec) -> None:
        self.system = system
        self.tasks: list[Task] = []
        self.flows: list[tuple[int, int]] = []
        self.collectives = 0

    def op(self, device: int, name: str, dur: float, deps: tuple[int, ...] = (), **kw: Any) -> int:
        """A compute op on ``device`` lasting ``dur`` ns; returns its task id."""
        self.tasks.append(Task(device, "compute", name, float(dur), tuple(d for d in deps if d >= 0), **kw))
        return len(self.tasks) - 1

    def collective(self, kind: str, group: list[int], nbytes: float, after: dict[int, tuple[int, ...]],
                   algorithm: str = "ring", label: str | None = None,
                   steps: list[Step] | None = None) -> dict[int, tuple[int, ...]]:
        """Add collective ``kind`` of ``nbytes`` over ``group``; ``after[d]``: what device d must
        finish first.  Returns, per device, the tasks whose end means its part is done."""
        steps = steps if steps is not None else steps_for(kind, group, nbytes, algorithm)
        name = label or kind
        self.collectives += 1
        cid = self.collectives
        prev: list[int] = []  # the previous step's transfers: a step starts when all of them ended
        delivered: dict[int, int] = {}  # device -> transfer that last brought it data
        for k, step in enumerate(steps):
            times = self.system.step_times(step)
            now: list[int] = []
            got: dict[int, int] = {}
            for (src, dst, b), t in zip(step, times, strict=True):
                deps = prev if k else list(after.get(src, ())) + list(after.get(dst, ()))
                tid = len(self.tasks)
                self.tasks.append(Task(src, f"link:{dst}", f"{name} step {k + 1}/{len(steps)} -> dev{dst}", t,
                                       tuple(sorted(set(deps))), category=kind, nbytes=b,
                                       args={"collective": cid, "kind": kind, "step": k, "src": src, "dst": dst,
                                             "hops": self.system.hops(src, dst), "algorithm": algorithm}))
                if src in delivered:
                    self.flows.append((delivered[src], tid))
                now.append(tid)
                got[dst] = tid
            prev = now
            delivered.update(got)
        done = tuple(prev)
        return {d: done if steps else tuple(after.get(d, ())) for d in group}

    # ------------------------------------------------------------ schedule
    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) in ns of every task: each lane in order, after the task's dependencies."""
        start: list[float] = []
        end: list[float] = []
        free: dict[tuple[int, str], float] = {}
        for t in self.tasks:
            ready = max([end[d] for d in t.deps], default=0.0)
            lane = (t.device, t.lane)
            st = max(ready, free.get(lane, 0.0))
            start.append(st)
            end.append(st + t.dur)
            free[lane] = st + t.dur
        return np.asarray(start), np.asarray(end)
