"""Discrete-event execution of a :class:`Program` (a heap of completion events, not a cycle loop).

Each engine runs its stream in order; an instruction starts once its engine is free and every
instruction it waits for has completed.  Compute durations are fixed when they start.  A DMA
transfer first pays the queue's fixed latency, then moves its bytes at
``min(queue bandwidth, DRAM bandwidth / active DRAM transfers)``; whenever a transfer joins or
leaves DRAM the share is recomputed and the finish events of the others are re-issued (stale
ones are skipped by version).  Peer (core-to-core) transfers do not touch DRAM.

Results go to flat Python lists of floats/ints, never per-event objects: the trace is built from
them in one columnar call.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from collectors.simulator.machine import Machine, SimulatorError
from collectors.simulator.program import K_DMA, Program

_EV_COMPUTE_END, _EV_DATA_START, _EV_DMA_END = 0, 1, 2


@dataclass
class RunResult:
    """Timing of every instruction plus the stall, SRAM and DRAM-bandwidth records."""

    start: list[float]
    end: list[float]
    stall_engine: list[int] = field(default_factory=list)
    stall_start: list[float] = field(default_factory=list)
    stall_end: list[float] = field(default_factory=list)
    stall_by: list[int] = field(default_factory=list)  # instruction whose completion ended the wait
    sram_core: list[int] = field(default_factory=list)
    sram_ts: list[float] = field(default_factory=list)
    sram_val: list[float] = field(default_factory=list)
    sram_peak: list[float] = field(default_factory=list)
    bw_ts: list[float] = field(default_factory=list)
    bw_val: list[float] = field(default_factory=list)  # bytes/s of DRAM in use from bw_ts on


def run(prog: Program, machine: Machine, progress: Callable[[int], None] | None = None) -> RunResult:
    """Simulate ``prog`` on ``machine``; ``progress(n)`` is called with completed-instruction counts."""
    n = len(prog)
    n_eng = len(machine.engines)
    streams: list[list[int]] = [[] for _ in range(n_eng)]
    for i, e in enumerate(prog.engine):
        streams[e].append(i)
    stream_len = [len(s) for s in streams]
    head = [0] * n_eng
    free_at = [0.0] * n_eng
    done = bytearray(n)
    start = [0.0] * n
    end = [0.0] * n
    waiters: dict[int, list[int]] = {}
    heap: list[tuple[float, int, int, int, int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    seq = itertools.count().__next__

    deps, kind, dur, engine = prog.deps, prog.kind, prog.dur, prog.engine
    alloc, alloc_core, free, free_core = prog.alloc, prog.alloc_core, prog.free, prog.free_core
    nbytes, route = prog.nbytes, prog.route
    uses_dram = [("dram" in (s, d)) for s, d in prog.routes]
    latency = machine.dma_latency_ns
    queue_bw = machine.dma_bw / 1e9  # bytes per ns
    dram_bw = machine.dram_bw / 1e9
    cap = machine.sram_bytes * (1 + 1e-9)
    occ = [0.0] * machine.cores
    res = RunResult(start, end, sram_peak=[0.0] * machine.cores)
    st_e, st_s, st_t, st_by = res.stall_engine, res.stall_start, res.stall_end, res.stall_by
    sr_c, sr_t, sr_v, peak = res.sram_core, res.sram_ts, res.sram_val, res.sram_peak
    bw_t, bw_v = res.bw_ts, res.bw_val
    # DRAM transfers in their data phase: instr -> [remaining bytes, rate bytes/ns, version]
    active: dict[int, list[float]] = {}
    share = [0.0, 0.0]  # [current per-transfer rate, time of last remaining-bytes update]

    def try_start(e: int, now: float) -> None:
        h = head[e]
        if h >= stream_len[e]:
            return
        i = streams[e][h]
        ds = deps[i]
        for d in ds:
            if not done[d]:
                w = waiters.get(d)
                if w is None:
                    waiters[d] = [e]
                else:
                    w.append(e)
                return
        if now > free_at[e] and ds:
            by = ds[0]
            for d in ds:
                if end[d] > end[by]:
                    by = d
            st_e.append(e)
            st_s.append(free_at[e])
            st_t.append(now)
            st_by.append(by)
        head[e] = h + 1
        start[i] = now
        a = alloc[i]
        if a:
            c = alloc_core[i]
            o = occ[c] + a
            if o > cap:
                raise SimulatorError(
                    f"SRAM of core {c} overflows: {o:.0f} bytes > {machine.sram_bytes:.0f} at {now:.0f} ns "
                    f"({prog.describe(i)})"
                )
            occ[c] = o
            if o > peak[c]:
                peak[c] = o
            sr_c.append(c)
            sr_t.append(now)
            sr_v.append(o)
        if kind[i] == K_DMA:
            push(heap, (now + latency, seq(), _EV_DATA_START, i, 0))
        else:
            push(heap, (now + dur[i], seq(), _EV_COMPUTE_END, i, 0))

    def reshare(now: float) -> None:
        """Advance every active DRAM transfer to ``now`` and give each its new fair share."""
        old = share[0]
        dt = now - share[1]
        if dt > 0 and old > 0:
            moved = old * dt
            for st in active.values():
                if st[1] > 0:  # transfers that just joined have moved nothing yet
                    st[0] -= moved
        share[1] = now
        k = len(active)
        rate = min(queue_bw, dram_bw / k) if k else 0.0
        share[0] = rate
        for j, st in active.items():
            if st[1] != rate:
                st[1] = rate
                st[2] += 1
                rem = st[0] if st[0] > 0 else 0.0
                push(heap, (now + rem / rate, seq(), _EV_DMA_END, j, int(st[2])))
        bw_t.append(now)
        bw_v.append(rate * k * 1e9)

    for e in range(n_eng):
        try_start(e, 0.0)

    completed = 0
    while heap:
        now, _, ev, i, ver = pop(heap)
        if ev == _EV_DATA_START:
            if uses_dram[route[i]]:
                active[i] = [nbytes[i], -1.0, 0.0]
                reshare(now)
            else:
                push(heap, (now + nbytes[i] / queue_bw, seq(), _EV_DMA_END, i, -1))
            continue
        if ev == _EV_DMA_END and ver >= 0:
            st = active.get(i)
            if st is None or st[2] != ver:
                continue  # superseded by a later share
            del active[i]
            reshare(now)
        # completion of instruction i
        done[i] = 1
        end[i] = now
        e = engine[i]
        free_at[e] = now
        f = free[i]
        if f:
            c = free_core[i]
            occ[c] -= f
            sr_c.append(c)
            sr_t.append(now)
            sr_v.append(occ[c] if occ[c] > 1e-6 else 0.0)
        try_start(e, now)
        ws = waiters.pop(i, None)
        if ws is not None:
            for w in ws:
                try_start(w, now)
        completed += 1
        if progress is not None and not completed & 4095:
            progress(completed)
    if progress is not None:
        progress(completed)
    stuck = [e for e in range(n_eng) if head[e] < stream_len[e]]
    if stuck:
        i = streams[stuck[0]][head[stuck[0]]]
        raise SimulatorError(f"program deadlocks: {prog.describe(i)} waits for instructions that never run")
    return res
