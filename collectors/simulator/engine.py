"""Discrete-event execution of a :class:`Program` (a heap of completion events, not a cycle loop).

Each engine runs its stream in order; an instruction starts once its engine is free and every
instruction it waits for has completed.  Compute durations are fixed when they start.  A DMA
transfer first pays the queue's fixed latency, then moves its bytes at
``min(queue bandwidth, DRAM bandwidth / active DRAM transfers)``.  Peer (core-to-core) transfers
do not touch DRAM.

All active DRAM transfers move at the same rate, so the engine keeps one "virtual byte clock"
``V`` (bytes each active transfer has moved since the DRAM was last idle) instead of remaining
bytes per transfer: a transfer joining at ``V`` finishes when ``V`` reaches ``V + bytes``, the
one with the smallest finish is always next, and a change of share only changes how fast ``V``
runs.  Nothing is recomputed per transfer when the share changes, and no finish event is ever
re-issued.

Every op starts on an idle machine (see :mod:`collectors.simulator.program`), so each distinct
segment is simulated once on its own clock (:func:`simulate_segment`) and :func:`run` places the
segments one after another.  Only the first instruction of each engine in an op looks across
the boundary (its stall starts when the engine last finished, in an earlier op); :func:`run`
records those.  Results are flat lists and numpy arrays, never per-event objects.
"""

from __future__ import annotations

import heapq
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors.simulator.machine import Machine, SimulatorError
from collectors.simulator.program import K_DMA, Program, Segment, describe_row

_F = np.float64
_I = np.int64


@dataclass
class SegmentTiming:
    """One segment's schedule on its own clock (local instruction ids, time 0 = op start)."""

    start: np.ndarray
    end: np.ndarray
    span: float  # when its last instruction ends
    first: list[int]  # per engine, the first instruction on it (-1: none)
    last: list[int]
    stall_engine: np.ndarray  # stalls of all but each engine's first instruction
    stall_start: np.ndarray
    stall_end: np.ndarray
    stall_by: np.ndarray
    sram_core: np.ndarray
    sram_ts: np.ndarray
    sram_val: np.ndarray
    bw_ts: np.ndarray
    bw_val: np.ndarray
    peak: list[float]
    #: how many waits each stall record stands for (None: one each); a sampled op's record
    #: carries all its waits of one engine and cause (collectors.simulator.sampling)
    stall_n: np.ndarray | None = None


@dataclass
class RunResult:
    """Timing of every instruction plus the stall, SRAM and DRAM-bandwidth records (global ids, ns)."""

    start: np.ndarray
    end: np.ndarray
    stall_engine: np.ndarray = field(default_factory=lambda: np.zeros(0, _I))
    stall_start: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))
    stall_end: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))
    stall_by: np.ndarray = field(default_factory=lambda: np.zeros(0, _I))  # instruction that ended the wait
    sram_core: np.ndarray = field(default_factory=lambda: np.zeros(0, _I))
    sram_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))
    sram_val: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))
    sram_peak: list[float] = field(default_factory=list)
    bw_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))
    bw_val: np.ndarray = field(default_factory=lambda: np.zeros(0, _F))  # bytes/s of DRAM in use from bw_ts on
    stall_n: np.ndarray | None = None  # waits per stall record (None: one each; see SegmentTiming)


#: Segments at least this long run in the compiled loop (collectors.simulator.kernel) when numba is
#: installed; shorter ones are not worth converting to arrays.
COMPILED_MIN_INSTRUCTIONS = 64
#: ... and only in programs at least this long, unless the compiled loop is already loaded in this
#: process: importing numba and loading the loop costs about a second once per process, more than
#: the Python loop needs for smaller programs, but nothing once it is loaded.
COMPILED_MIN_PROGRAM = 10_000
#: None: choose as above; False: always the Python loop (what an installation without numba gets);
#: True: the compiled loop for every segment of at least COMPILED_MIN_INSTRUCTIONS.
USE_COMPILED: bool | None = None
_compiled_broken = False


def _compiled_loaded() -> bool:
    """Whether the compiled loop has run in this process already (so using it costs nothing more)."""
    kernel = sys.modules.get("collectors.simulator.kernel")
    loop = getattr(kernel, "segment_loop", None)
    return bool(getattr(kernel, "HAVE_NUMBA", False) and getattr(loop, "signatures", None))


#: Seconds the Python loop may spend on segments the compiled loop would take, summed over the
#: process, before loading the compiled loop anyway: about what the import and load cost once,
#: so a process running many small simulations (a sweep, a mapping search) never pays more than
#: about twice the best choice made in hindsight.
COMPILED_AFTER_PYTHON_S = 1.0
_python_loop_s = 0.0


def use_compiled(n_instructions: int) -> bool:
    """Whether :func:`run` uses the compiled loop for a program of ``n_instructions``."""
    if USE_COMPILED is not None:
        return USE_COMPILED
    return (n_instructions >= COMPILED_MIN_PROGRAM or _compiled_loaded()
            or _python_loop_s >= COMPILED_AFTER_PYTHON_S)


def simulate_segment(seg: Segment, prog: Program, machine: Machine, compiled: bool | None = None) -> SegmentTiming:
    """Run one segment from an idle machine at time 0 (its first instructions' outside waits are met).

    ``compiled`` picks the numba loop (None: when numba is there and the segment is long); both
    loops give the same schedule to the last bit.
    """
    if compiled is None:
        compiled = len(seg) >= COMPILED_MIN_INSTRUCTIONS and USE_COMPILED is not False
    global _compiled_broken, _python_loop_s
    if compiled and not _compiled_broken:
        from collectors.simulator import kernel

        if kernel.HAVE_NUMBA:
            try:
                return _simulate_compiled(seg, prog, machine)
            except SimulatorError:
                raise
            except Exception as exc:  # a numba that cannot compile the loop: keep going without it
                _compiled_broken = True
                warnings.warn(f"compiled event loop unavailable ({type(exc).__name__}: {exc}); using the Python loop",
                              RuntimeWarning, stacklevel=2)
    if len(seg) < COMPILED_MIN_INSTRUCTIONS:
        return _simulate_python(seg, prog, machine)
    t0 = time.process_time()
    try:
        return _simulate_python(seg, prog, machine)
    finally:
        _python_loop_s += time.process_time() - t0


def _simulate_compiled(seg: Segment, prog: Program, machine: Machine) -> SegmentTiming:
    from collectors.simulator.kernel import segment_loop

    arr = seg.arrays()
    n = len(seg)
    n_eng = len(machine.engines)
    first, last = seg.first_last(n_eng)
    engine = arr["engine"]
    dram_routes = np.asarray([("dram" in r) for r in prog.routes] or [False], dtype=bool)
    mode = np.where(arr["kind"] == K_DMA, np.where(dram_routes[np.maximum(arr["route"], 0)], 1, 2), 0).astype(np.int8)
    dep_ptr, dep_idx = arr["dep_ptr"], arr["dep_idx"]
    # successor on the same engine: a stable sort by engine keeps program order within an engine
    # (16-bit keys sort by radix, linear in n)
    key = engine.astype(np.int16) if n_eng < (1 << 15) else engine
    order = np.argsort(key, kind="stable")
    succ = np.full(n, -1, dtype=_I)
    same = engine[order[1:]] == engine[order[:-1]]
    succ[order[:-1][same]] = order[1:][same]
    is_first = np.zeros(n, dtype=np.uint8)
    first_a = np.asarray(first, dtype=_I)
    is_first[first_a[first_a >= 0]] = 1
    out = segment_loop(
        engine, mode, arr["dur"], arr["nbytes"], arr["alloc"], arr["alloc_core"], arr["free"], arr["free_core"],
        dep_ptr, dep_idx, succ, is_first, first_a, machine.cores, float(machine.dma_latency_ns),
        machine.dma_bw / 1e9, machine.dram_bw / 1e9, machine.sram_bytes * (1 + 1e-9),
    )
    status, bad, value = int(out[0]), int(out[1]), float(out[2])
    if status:
        what = describe_row(prog, int(arr["kind"][bad]), int(arr["name"][bad]), float(arr["nbytes"][bad]),
                            float(arr["flops"][bad]), float(arr["dur"][bad]), int(arr["route"][bad]))
        if status == 1:
            raise SimulatorError(
                f"SRAM of core {int(arr['alloc_core'][bad])} overflows: {value:.0f} bytes > {machine.sram_bytes:.0f} "
                f"into op {prog.ops[-1].get('op', '?') if prog.ops else '?'} ({what})"
            )
        raise SimulatorError(f"program deadlocks: {what} waits for instructions that never run")
    start, end = out[3], out[4]
    return SegmentTiming(start, end, float(end.max()) if n else 0.0, list(first), list(last), out[5], out[6], out[7],
                         out[8], out[9], out[10], out[11], out[12], out[13], [float(x) for x in out[14]])


def _simulate_python(seg: Segment, prog: Program, machine: Machine) -> SegmentTiming:
    """The event loop in plain Python (lists and tuples, the fastest form without a compiler).

    Three event sources, each already in time order or nearly: a heap of compute (and peer
    transfer) completions, a FIFO of DMA data starts (every DMA pays the same latency, so they
    arrive in the order the transfers started), and the next DRAM completion from the byte clock.
    """
    cols = seg.columns()
    n = len(seg)
    n_eng = len(machine.engines)
    engine, kind, dur, deps = cols["engine"], cols["kind"], cols["dur"], cols["deps"]
    alloc, alloc_core, free, free_core = cols["alloc"], cols["alloc_core"], cols["free"], cols["free_core"]
    nbytes, route = cols["nbytes"], cols["route"]
    first, last = seg.first_last(n_eng)
    # pend[e]: the instruction engine e runs next (-1: stream done); succ[i]: the one after i on its engine
    succ = [-1] * n
    nxt_on = [-1] * n_eng
    for i in range(n - 1, -1, -1):
        e = engine[i]
        succ[i] = nxt_on[e]
        nxt_on[e] = i
    pend = list(first)
    is_first = bytearray(n)
    for f in first:
        if f >= 0:
            is_first[f] = 1
    dram_routes = [("dram" in (s, d)) for s, d in prog.routes]
    # 0: compute, 1: DMA through DRAM, 2: DMA between cores' SRAMs
    mode = [0 if k != K_DMA else (1 if dram_routes[r] else 2) for k, r in zip(kind, route, strict=True)]
    free_at = [0.0] * n_eng
    done = bytearray(n)
    start = [0.0] * n
    end = [0.0] * n
    waiters: dict[int, list[int]] = {}
    heap: list[tuple[float, int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    joins: deque[tuple[float, int]] = deque()
    latency = machine.dma_latency_ns
    queue_bw = machine.dma_bw / 1e9  # bytes per ns
    dram_bw = machine.dram_bw / 1e9
    cap = machine.sram_bytes * (1 + 1e-9)
    occ = [0.0] * machine.cores
    peak = [0.0] * machine.cores
    st_e: list[int] = []
    st_s: list[float] = []
    st_t: list[float] = []
    st_by: list[int] = []
    sr_c: list[int] = []
    sr_t: list[float] = []
    sr_v: list[float] = []
    bw_t: list[float] = []
    bw_v: list[float] = []
    # DRAM: active transfers as (virtual finish, instr); v = virtual bytes at time tv
    act: list[tuple[float, int]] = []
    v = 0.0
    tv = 0.0
    rate = 0.0
    inf = float("inf")
    nxt = inf  # real time of the next DRAM completion
    jt = inf  # time of the next DMA data start
    now = 0.0
    tries: Any = range(n_eng)
    while True:
        # start what the engines in ``tries`` can start now (in order: the engine that just
        # finished, then the engines that waited for it)
        for e in tries:
            i = pend[e]
            if i < 0:
                continue
            ds = deps[i]
            for d in ds:
                if not done[d]:
                    w = waiters.get(d)
                    if w is None:
                        waiters[d] = [e]
                    else:
                        w.append(e)
                    break
            else:
                if now > free_at[e] and ds and not is_first[i]:
                    by = ds[0]
                    for d in ds:
                        if end[d] > end[by]:
                            by = d
                    st_e.append(e)
                    st_s.append(free_at[e])
                    st_t.append(now)
                    st_by.append(by)
                pend[e] = succ[i]
                start[i] = now
                a = alloc[i]
                if a:
                    c = alloc_core[i]
                    o = occ[c] + a
                    if o > cap:
                        raise SimulatorError(
                            f"SRAM of core {c} overflows: {o:.0f} bytes > {machine.sram_bytes:.0f} at {now:.0f} ns "
                            f"into op {prog.ops[-1].get('op', '?') if prog.ops else '?'} "
                            f"({describe_row(prog, kind[i], cols['name'][i], nbytes[i], cols['flops'][i], dur[i], route[i])})"
                        )
                    occ[c] = o
                    if o > peak[c]:
                        peak[c] = o
                    sr_c.append(c)
                    sr_t.append(now)
                    sr_v.append(o)
                if mode[i]:
                    if not joins:
                        jt = now + latency
                    joins.append((now + latency, i))
                else:
                    push(heap, (now + dur[i], i))
        # the next event
        th = heap[0][0] if heap else inf
        if nxt <= th and nxt <= jt:
            if nxt == inf:
                break
            # a DRAM transfer finishes: the byte clock is exactly at its virtual finish
            now = nxt
            v, i = pop(act)
            tv = now
            k = len(act)
            if k:
                r = dram_bw / k
                rate = queue_bw if queue_bw < r else r
                nxt = tv + (act[0][0] - v) / rate
            else:
                rate = 0.0
                v = 0.0
                nxt = inf
            bw_t.append(now)
            bw_v.append(rate * k * 1e9)
        elif th <= jt:
            now, i = pop(heap)
        else:
            # a DMA's fixed latency is over: its data starts moving
            now, i = joins.popleft()
            jt = joins[0][0] if joins else inf
            if mode[i] == 1:
                if act:
                    v += rate * (now - tv)
                tv = now
                push(act, (v + nbytes[i], i))
                k = len(act)
                r = dram_bw / k
                rate = queue_bw if queue_bw < r else r
                nxt = tv + (act[0][0] - v) / rate
                bw_t.append(now)
                bw_v.append(rate * k * 1e9)
            else:
                push(heap, (now + nbytes[i] / queue_bw, i))
            tries = ()
            continue
        # completion of instruction i
        done[i] = 1
        end[i] = now
        e = engine[i]
        free_at[e] = now
        f = free[i]
        if f:
            c = free_core[i]
            o = occ[c] - f
            occ[c] = o
            sr_c.append(c)
            sr_t.append(now)
            sr_v.append(o if o > 1e-6 else 0.0)
        ws = waiters.pop(i, None)
        tries = (e,) if ws is None else [e, *ws]
    stuck = [e for e in range(n_eng) if pend[e] >= 0]
    if stuck:
        i = pend[stuck[0]]
        what = describe_row(prog, kind[i], cols["name"][i], nbytes[i], cols["flops"][i], dur[i], route[i])
        raise SimulatorError(f"program deadlocks: {what} waits for instructions that never run")
    if any(abs(o) > 0.5 for o in occ):
        raise SimulatorError(f"an op leaves SRAM allocated at its end ({occ} bytes per core)")
    end_a = np.asarray(end, dtype=_F)
    return SegmentTiming(
        np.asarray(start, dtype=_F), end_a, float(end_a.max()) if n else 0.0, list(first), list(last),
        np.asarray(st_e, dtype=_I), np.asarray(st_s, dtype=_F), np.asarray(st_t, dtype=_F), np.asarray(st_by, dtype=_I),
        np.asarray(sr_c, dtype=_I), np.asarray(sr_t, dtype=_F), np.asarray(sr_v, dtype=_F),
        np.asarray(bw_t, dtype=_F), np.asarray(bw_v, dtype=_F), peak,
    )


def run(prog: Program, machine: Machine, progress: Callable[[int], None] | None = None) -> RunResult:
    """Simulate ``prog`` on ``machine``; ``progress(n)`` is called with placed-instruction counts.

    Op k starts when op k-1's last instruction ends (``t0``); its instructions keep their segment
    schedule shifted by ``t0``.  A shift is ``t0 + local`` for every time of the op, so a repeated
    op lands exactly where simulating it in place would put it.
    """
    n_eng = len(machine.engines)
    segs = prog.segments
    barriers = prog.barriers()
    offsets = prog.offsets()
    t0s: list[float] = []
    timings: list[SegmentTiming] = []
    # each engine's last instruction so far: global end time (the start of a cross-op stall)
    free_at = [0.0] * n_eng
    end_of: dict[int, float] = {}  # global end of the instructions some barrier names
    x_e: list[int] = []  # cross-op stalls of first instructions
    x_s: list[float] = []
    x_t: list[float] = []
    x_by: list[int] = []
    peak = [0.0] * machine.cores
    t0 = 0.0
    placed = 0
    compiled = use_compiled(len(prog))
    for k, seg in enumerate(segs):
        n = len(seg)
        if not n:
            t0s.append(t0)
            timings.append(None)  # type: ignore[arg-type]
            continue
        tm = seg.timing
        if tm is None:
            tm = seg.timing = simulate_segment(seg, prog, machine, compiled and len(seg) >= COMPILED_MIN_INSTRUCTIONS)
        base = int(offsets[k])
        barrier = barriers[k]
        arr = seg.arrays()
        dep_ptr, dep_idx = arr["dep_ptr"], arr["dep_idx"]
        # the barrier instruction ending last (the first such in wait order), found once per op
        bar_end, bar_by = -1.0, -1
        for b in barrier:
            if end_of[b] > bar_end or bar_by < 0:
                bar_end, bar_by = end_of[b], b
        for e, f in enumerate(tm.first):
            if f < 0:
                continue
            s = t0 + float(tm.start[f])
            ds = dep_idx[dep_ptr[f]:dep_ptr[f + 1]].tolist()
            if s > free_at[e] and (ds or barrier):
                # the dependency that ended the wait: the first one (in wait order: the
                # instruction's own deps, then the barrier) ending last
                by_end, by = bar_end, bar_by
                if ds:
                    by_end, by = t0 + float(tm.end[ds[0]]), base + ds[0]
                    for d in ds:
                        ce = t0 + float(tm.end[d])
                        if ce > by_end:
                            by_end, by = ce, base + d
                    if barrier and bar_end > by_end:
                        by_end, by = bar_end, bar_by
                x_e.append(e)
                x_s.append(free_at[e])
                x_t.append(s)
                x_by.append(by)
        for e, la in enumerate(tm.last):
            if la >= 0:
                free_at[e] = t0 + float(tm.end[la])
                end_of[base + la] = free_at[e]
        for c, p in enumerate(tm.peak):
            if p > peak[c]:
                peak[c] = p
        t0s.append(t0)
        timings.append(tm)
        t0 += tm.span
        placed += n
        if progress is not None:
            progress(placed)
    live = [(k, tm) for k, tm in enumerate(timings) if tm is not None]
    if not live:
        z = np.zeros(0, _F)
        return RunResult(z, z, sram_peak=peak)
    t0a = np.asarray([t0s[k] for k, _ in live], dtype=_F)
    basea = np.asarray([offsets[k] for k, _ in live], dtype=_I)

    def cat(attr: str, shift: np.ndarray | None) -> np.ndarray:
        parts = [getattr(tm, attr) for _, tm in live]
        out = np.concatenate(parts)
        if shift is not None:
            out = out + np.repeat(shift, [p.size for p in parts])
        return out

    start = cat("start", t0a)
    end = cat("end", t0a)
    st_e = np.concatenate([cat("stall_engine", None), np.asarray(x_e, dtype=_I)])
    st_s = np.concatenate([cat("stall_start", t0a), np.asarray(x_s, dtype=_F)])
    st_t = np.concatenate([cat("stall_end", t0a), np.asarray(x_t, dtype=_F)])
    st_by = np.concatenate([cat("stall_by", basea), np.asarray(x_by, dtype=_I)])
    st_n = None
    if any(tm.stall_n is not None for _, tm in live):
        st_n = np.concatenate([tm.stall_n if tm.stall_n is not None else np.ones(tm.stall_engine.size, _I)
                               for _, tm in live] + [np.ones(len(x_e), _I)])
    return RunResult(start, end, st_e, st_s, st_t, st_by, cat("sram_core", None), cat("sram_ts", t0a),
                     cat("sram_val", None), peak, cat("bw_ts", t0a), cat("bw_val", None), st_n)
