"""Sampled simulation of large GEMMs and vector ops for the summary level of detail.

A large GEMM repeats one pattern many times: every core runs the same k-step loop over tile after
tile, and the cores advance together wave by wave.  Once the pipeline is full, one more k-step per
tile or one more wave of tiles adds the same time, the same busy time per engine, the same bytes
and the same stalls.  So instead of compiling and simulating every instruction, the summary
simulates the op cut down to a few waves (``t``) and a few k-steps (``s``) -- four small runs at
``t in {t1, t2}`` and ``s in {s1, s2}`` -- and extends each quantity bilinearly to the op's real
``(T, S)``:

    Q(T, S) = Q11 + (T - t1) dQ/dt + (S - s1) dQ/ds + (T - t1)(S - s1) d2Q/dtds

``t`` counts full waves of tiles (``split="tiles"``) or tile rows/columns per core (the dimension
splits); ``s`` counts k-steps of every tile (kept whole when K is split over cores).  A vector op
is cut along one axis: the row tiles each core streams.  The cut keeps everything that is not a
repeat: the op's mapping (split, tiles, loop order, buffering; the planner's tiles are pinned), the
ragged last tile row and k-step, the partial last wave, the launch and host costs.

``(t1, t2)`` and ``(s1, s2)`` are found, not fixed: along each axis the op's time must grow by the
same amount (within :data:`STEADY_TOL`) over two successive steps before the pair is used, and
the probing starts further out (doubling) until it does.  All runs together may cover at most
1/:data:`MAX_SHARE` of the op; otherwise, and for ops under :data:`SAMPLE_MIN_INSTRUCTIONS`
(every op of a decode step, most of a small CNN) and tiles that share a last-level cache smaller
than their operands (which loads hit then depends on how many waves apart a tile's reuse is: no
short run shows that), the op is simulated whole and its summary is exact.

Flops and bytes are linear in both axes and come out exact; time, busy and stall time are as
exact as the steady state is periodic (tests/test_simulator_sampling.py and
``python -m bench sampling`` measure them against every instruction simulated).  The result is
one synthetic segment per op: one instruction per (engine, kind, name, route, dtype) carrying
the extrapolated busy time, flops and bytes between the engine's first start and last end, and
one stall record per (engine, cause) carrying its count -- what
:func:`collectors.simulator.tracegen.build_summary` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from collectors.simulator.engine import SegmentTiming, simulate_segment
from collectors.simulator.program import K_DMA, Program, Segment
from collectors.simulator.workloads import Gemm, VectorOp, ceil_div

if TYPE_CHECKING:
    from collectors.simulator.compiler import Compiler

#: Ops estimated to compile to fewer instructions than this are simulated whole (exact summary).
SAMPLE_MIN_INSTRUCTIONS = 20_000
#: Where the search for a steady state starts along each axis, and its step: (first, step) for
#: waves / tile rows and for k-steps (see :func:`_steady`).
SAMPLE_T = (2, 2)
SAMPLE_S = (4, 4)
#: A dimension is cut only when it has at least this many repeats (else it is kept whole).
MIN_REPEATS = 16
#: The cut-down runs together (probes included) cover at most 1/MAX_SHARE of the op's work; an op
#: with no steady state found within that is simulated whole (so it costs at most that much more).
MAX_SHARE = 8
#: Relative difference of two successive increments of the op's time that counts as steady.
STEADY_TOL = 0.002

_F = np.float64
_I = np.int64


@dataclass
class OpProfile:
    """What one simulated run of an op adds up to (the quantities the summary reports)."""

    span: float
    #: (engine, kind, name, (src, dst) or None, dtype) -> [busy ns, flops, bytes, instructions]
    groups: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)
    first_start: dict[int, float] = field(default_factory=dict)  # engine -> its first instruction's start
    last_end: dict[int, float] = field(default_factory=dict)  # engine -> its last instruction's end
    stalls: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # (engine, cause) -> [ns, count]
    peak: list[float] = field(default_factory=list)  # SRAM peak per core


def profile_run(prog: Program, seg: Segment, tm: SegmentTiming) -> OpProfile:
    """Sum a simulated segment by (engine, kind, name, route, dtype) and its stalls by (engine, cause).

    Causes as the trace counts them: 0 waited on a DMA transfer, 1 a DMA queue waited on compute,
    2 a compute engine waited on compute (a semaphore).
    """
    a = seg.arrays()
    n = len(seg)
    engine, kind, name, route, dtype = a["engine"], a["kind"], a["name"], a["route"], a["dtype"]
    dur = tm.end - tm.start
    out = OpProfile(float(tm.span), peak=[float(x) for x in tm.peak])
    if n:
        # one int64 key per instruction (mixed radix over the five fields), grouped in one 1-D pass
        radix = [int(engine.max()) + 1, 3, len(prog.names), len(prog.routes) + 1, len(prog.dtypes)]
        key = engine.astype(_I)
        for col, r in zip((kind.astype(_I), name.astype(_I), route + 1, dtype.astype(_I)), radix[1:], strict=True):
            key = key * r + col
        uniq, inv = np.unique(key, return_inverse=True)
        m = uniq.size
        keys = np.empty((5, m), dtype=_I)
        rest = uniq.copy()
        for i in range(4, -1, -1):
            keys[i] = rest % radix[i] if i else rest
            rest //= radix[i]
        keys[3] -= 1  # route + 1 -> route
        sums = [np.bincount(inv, weights=w, minlength=m) for w in (dur, np.where(kind == K_DMA, 0.0, a["flops"]),
                                                                     a["nbytes"])]
        count = np.bincount(inv, minlength=m)
        for g in range(m):
            e, k, nm, r, dt = (int(x) for x in keys[:, g])
            key = (e, k, prog.names[nm], prog.routes[r] if r >= 0 else None, prog.dtypes[dt])
            out.groups[key] = [float(sums[0][g]), float(sums[1][g]), float(sums[2][g]), float(count[g])]
        for e, f in enumerate(tm.first):
            if f >= 0:
                out.first_start[e] = float(tm.start[f])
                out.last_end[e] = float(tm.end[tm.last[e]])
    if tm.stall_engine.size:
        eng_is_dma = np.asarray([info.kind == "dma" for info in prog.machine.engines], dtype=bool)
        by = tm.stall_by
        cause = np.where(kind[by] == K_DMA, 0, np.where(eng_is_dma[tm.stall_engine], 1, 2))
        sdur = tm.stall_end - tm.stall_start
        real = sdur >= 0.5  # the trace keeps waits of at least 1 ns after rounding
        key = tm.stall_engine.astype(_I) * 3 + cause
        uniq, inv = np.unique(key, return_inverse=True)
        ns = np.bincount(inv, weights=sdur, minlength=uniq.size)
        cnt = np.bincount(inv, weights=real.astype(_F), minlength=uniq.size)
        for k, d, c in zip(uniq.tolist(), ns.tolist(), cnt.tolist(), strict=True):
            out.stalls[(k // 3, k % 3)] = [d, c]
    return out


def _bilinear(q: dict[tuple[int, int], float], ts: tuple[int, ...], ss: tuple[int, ...], T: int, S: int) -> float:
    """``q`` at (T, S) from its values at the corners ``ts x ss`` (one point per axis: constant)."""
    t1, s1 = ts[0], ss[0]
    base = q[(t1, s1)]
    dt = (q[(ts[1], s1)] - base) / (ts[1] - t1) if len(ts) > 1 else 0.0
    ds = (q[(t1, ss[1])] - base) / (ss[1] - s1) if len(ss) > 1 else 0.0
    dts = 0.0
    if len(ts) > 1 and len(ss) > 1:
        dts = (q[(ts[1], ss[1])] - q[(ts[1], s1)] - q[(t1, ss[1])] + base) / ((ts[1] - t1) * (ss[1] - s1))
    return base + (T - t1) * dt + (S - s1) * ds + (T - t1) * (S - s1) * dts


def extrapolate(runs: dict[tuple[int, int], OpProfile], ts: tuple[int, ...], ss: tuple[int, ...], T: int,
                S: int, pool_of: Callable[[int], int] | None = None) -> OpProfile:
    """The op at (T, S) from its cut-down runs: every quantity extended bilinearly, none below 0.

    ``pool_of(engine)`` names engines whose work moves between them as the op grows (a core's DMA
    queues: each transfer goes to the least loaded one, so one queue's share flips from run to
    run while the core's total grows steadily).  Their groups and stalls are extended as pool
    totals and dealt evenly to the pool's engines that have them in the largest run (over a long
    op the least-loaded choice evens the queues out).
    """
    def ext(get: Any) -> float:
        return max(0.0, _bilinear({k: get(p) for k, p in runs.items()}, ts, ss, T, S))

    pool = pool_of or (lambda e: e)
    ref = runs[(ts[-1], ss[-1])]
    out = OpProfile(ext(lambda p: p.span), peak=list(ref.peak))

    def pooled(table: Any, width: int) -> dict[tuple[Any, ...], list[float]]:
        """``table(p)``: {(engine, *rest): [values]}; extended per (pool, *rest), dealt by ``ref``."""
        def by_pool(p: OpProfile) -> dict[tuple[Any, ...], list[float]]:
            acc: dict[tuple[Any, ...], list[float]] = {}
            for (e, *rest), vals in table(p).items():
                tot = acc.setdefault((pool(e), *rest), [0.0] * width)
                for i, v in enumerate(vals):
                    tot[i] += v
            return acc

        per_run = {k: by_pool(p) for k, p in runs.items()}
        keys = {k for d in per_run.values() for k in d}
        grown = {k: [max(0.0, _bilinear({r: d.get(k, [0.0] * width)[i] for r, d in per_run.items()}, ts, ss, T, S))
                     for i in range(width)] for k in sorted(keys, key=repr)}
        members: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for key in table(ref):
            members.setdefault((pool(key[0]), *key[1:]), []).append(key)
        dealt: dict[tuple[Any, ...], list[float]] = {}
        for pk, tot in grown.items():
            mine = members.get(pk) or [pk]  # in smaller runs only: to the pool's first engine
            for key in mine:
                dealt[key] = [t / len(mine) for t in tot]
        return dealt

    out.groups = pooled(lambda p: p.groups, 4)
    out.stalls = pooled(lambda p: p.stalls, 2)
    for e in {e for p in runs.values() for e in p.first_start}:
        out.first_start[e] = ext(lambda p, e=e: p.first_start.get(e, 0.0))
        out.last_end[e] = ext(lambda p, e=e: p.last_end.get(e, 0.0))
    # No engine is in use after the op ends: which of a core's DMA queues takes the last transfer
    # flips as the op grows, so one engine's last end is no steady quantity, the op's end is.  Nor is
    # an engine busy for longer than it is in use (the op lasts longer only if that is violated).
    busy_of: dict[int, float] = {}
    for (e, *_), (busy, *_) in out.groups.items():
        busy_of[e] = busy_of.get(e, 0.0) + busy
    for e in out.last_end:
        out.last_end[e] = max(min(out.last_end[e], out.span), out.first_start.get(e, 0.0) + busy_of.get(e, 0.0))
    out.span = max([out.span, *out.last_end.values()])
    return out


def synthesize(prog: Program, prof: OpProfile) -> Segment:
    """One segment standing for the whole op: an instruction per group, its timing preset."""
    machine = prog.machine
    n_eng = len(machine.engines)
    seg = Segment()
    starts: list[float] = []
    ends: list[float] = []
    first = [-1] * n_eng
    last = [-1] * n_eng
    by_engine: dict[int, list[tuple[Any, ...]]] = {}
    for key in prof.groups:
        by_engine.setdefault(key[0], []).append(key)
    dma_row = other_row = -1
    for e in sorted(by_engine):
        # the engine's groups back to back from its first start, the last one ending where the
        # engine's last instruction ends (a group alone on its engine is halved to have both ends)
        rows = [(key, *prof.groups[key][:3]) for key in by_engine[e]]
        if len(rows) == 1:
            key, busy, flops, nbytes = rows[0]
            rows = [(key, busy / 2, flops / 2, nbytes / 2)] * 2
        t = prof.first_start.get(e, 0.0)
        for j, (key, busy, flops, nbytes) in enumerate(rows):
            _, kind, name, route, dtype = key
            i = len(seg.rows)
            r = prog.route_id(*route) if route is not None else -1
            seg.rows.append((e, kind, prog.name_id(name), flops, nbytes, busy, (), 0.0, 0, r, prog.dtype_id(dtype)))
            if j == len(rows) - 1:
                t = max(t, prof.last_end.get(e, t + busy) - busy)
            starts.append(t)
            t += busy
            ends.append(t)
            if first[e] < 0:
                first[e] = i
            last[e] = i
            if kind == K_DMA and dma_row < 0:
                dma_row = i
            elif kind != K_DMA and other_row < 0:
                other_row = i
    # stalls: one record per engine and cause, standing for as many waits as the op would have
    se: list[int] = []
    sd: list[float] = []
    sb: list[int] = []
    sn: list[int] = []
    for (e, cause), (ns, count) in sorted(prof.stalls.items()):
        by = dma_row if cause == 0 else other_row
        if by < 0 or count < 0.5 or ns < 0.5:
            continue
        se.append(e)
        sd.append(ns)
        sb.append(by)
        sn.append(int(round(count)))
    z_i, z_f = np.zeros(0, _I), np.zeros(0, _F)
    seg.timing = SegmentTiming(
        np.asarray(starts, dtype=_F), np.asarray(ends, dtype=_F), float(prof.span), first, last,
        np.asarray(se, dtype=_I), np.zeros(len(sd), _F), np.asarray(sd, dtype=_F), np.asarray(sb, dtype=_I),
        z_i, z_f, z_f, z_f, z_f, list(prof.peak), np.asarray(sn, dtype=_I),
    )
    return seg


class _OverBudget(Exception):
    """The cut-down runs would cover more of the op than sampling saves."""


@dataclass
class Cut:
    """How an op is cut down: the repeats it has along each axis (T waves or tile rows, S k-steps)."""

    T: int
    S: int
    cut_dim: str  # "waves" | "m" | "n"
    tile: int  # the tile edge along the cut dimension (m/n), or the wave size in tiles
    tk: int
    plan: Any = None


def plan_cut(comp: Compiler, g: Gemm, mapping: Any) -> Cut | None:
    """The cut for ``g`` under ``mapping``, or None when the op is simulated whole: it is small, or
    its tiles share a last-level cache smaller than its operands (which tiles hit then depends on
    how far apart the waves that reuse them run, which no short run shows)."""
    m = comp.m
    if mapping.split == "tiles":
        tm, tn, tk = mapping.tm, mapping.tn, mapping.tk
        n_tiles = g.batch * ceil_div(g.M, tm) * ceil_div(g.N, tn)
        operands = g.batch * (g.M + g.N) * g.K * m.dtype_bytes(g.dtype or m.default_dtype())
        if 0 < m.llc_bytes < operands:
            return None
        used = min(m.cores, n_tiles)
        T = n_tiles // used
        S = ceil_div(g.K, tk)
        est = 3 * n_tiles * S
        cut = Cut(T, S, "waves", used, tk)
    else:
        _, (split, chunks, Mc, Nc, Kc, bc, _), plan = comp.dimension_split(
            replace(g, split=mapping.split, buffering=mapping.buffering, loop_order=mapping.order), mapping)
        rows, cols = ceil_div(Mc, plan.tm), ceil_div(Nc, plan.tn)
        # cut the dimension the cores do not split (either one when none is), the longer one
        dim = "n" if split == "m" or (split != "n" and cols > rows) else "m"
        T = cols if dim == "n" else rows
        S = 1 if split == "k" else ceil_div(Kc, plan.tk)
        est = 3 * len(chunks) * bc * rows * cols * S
        cut = Cut(T, S, dim, plan.tn if dim == "n" else plan.tm, plan.tk, plan)
    if est < SAMPLE_MIN_INSTRUCTIONS or max(T, S) < MIN_REPEATS:
        return None
    return cut


def _cut_op(g: Gemm, cut: Cut, t: int, s: int) -> Gemm:
    """``g`` with ``T - t`` whole tile rows (or columns) and ``S - s`` whole k-steps left out."""
    kw: dict[str, int] = {}
    if s != cut.S:
        kw["K"] = g.K - (cut.S - s) * cut.tk
    if t != cut.T and cut.cut_dim == "m":
        kw["M"] = g.M - (cut.T - t) * cut.tile
    elif t != cut.T and cut.cut_dim == "n":
        kw["N"] = g.N - (cut.T - t) * cut.tile
    return replace(g, **kw) if kw else g


def _steady(time_at: Callable[[int], float], n: int, first: int, step: int) -> tuple[int, ...]:
    """Two points ``(a, a + step)`` of an axis of ``n`` repeats past the pipeline's fill: the op's
    time grows by the same amount (within :data:`STEADY_TOL`) from ``a`` to ``a + step`` as from
    ``a + step`` to ``a + 2 step``.  ``a`` starts at ``first`` and doubles; ``(n,)`` (no cut) when
    no such point leaves at least half of the axis out."""
    a = first
    while a + 2 * step <= n // 2:
        try:
            t0, t1, t2 = time_at(a), time_at(a + step), time_at(a + 2 * step)
        except _OverBudget:
            break
        d1, d2 = t1 - t0, t2 - t1
        if d1 > 0 and abs(d2 - d1) <= STEADY_TOL * d1:
            return (a, a + step)
        a *= 2
    return (n,)


def _sample(comp: Compiler, T: int, S: int, build: Callable[[Compiler, int, int], None]
            ) -> tuple[OpProfile, dict[str, Any], tuple[int, ...], tuple[int, ...], int] | None:
    """Run the op cut to ``(t, s)`` (``build`` lowers it into a fresh compiler) where its time grows
    steadily, and extend it to ``(T, S)``: (profile, the op's args, ts, ss, runs), or None when it
    should be simulated whole (no steady state within the budget, or nothing to leave out)."""
    from collectors.simulator.compiler import Compiler

    m = comp.m
    runs: dict[tuple[int, int], OpProfile] = {}
    info: dict[str, Any] = {}
    budget = [T * S / MAX_SHARE]  # in (wave or tile row) x k-step units

    def run(t: int, s: int) -> OpProfile:
        nonlocal info
        got = runs.get((t, s))
        if got is None:
            budget[0] -= t * s
            if budget[0] < 0:
                raise _OverBudget
            sub_prog = Program(m)
            build(Compiler(m, sub_prog), t, s)
            seg = sub_prog.segments[-1]
            got = runs[(t, s)] = profile_run(sub_prog, seg, simulate_segment(seg, sub_prog, m))
            info = dict(sub_prog.ops[-1])
        return got

    t_probe = min(T, SAMPLE_T[0])
    ss = _steady(lambda s: run(t_probe, s).span, S, *SAMPLE_S) if S >= MIN_REPEATS else (S,)
    ts = _steady(lambda t: run(t, ss[0]).span, T, *SAMPLE_T) if T >= MIN_REPEATS else (T,)
    if len(ts) == 1 and len(ss) == 1:
        return None  # nothing to leave out: simulate it whole
    try:
        for t in ts:
            for s in ss:
                run(t, s)
    except _OverBudget:
        return None
    engines = m.engines
    first_dma = {eng.core: e for e, eng in reversed(list(enumerate(engines))) if eng.kind == "dma"}

    def pool_of(e: int) -> int:
        """A core's DMA queues pool into its first one; other engines stand alone."""
        return first_dma[engines[e].core] if engines[e].kind == "dma" else e

    return extrapolate(runs, ts, ss, T, S, pool_of), info, ts, ss, len(runs)


def _instructions(prof: OpProfile) -> int:
    return int(round(sum(v[3] for v in prof.groups.values())))


def sampled_gemm(comp: Compiler, g: Gemm, mapping: Any) -> tuple[Segment, dict[str, Any]] | None:
    """The synthetic segment and slice args of ``g`` sampled (see the module docstring), or None
    when ``g`` is simulated whole."""
    cut = plan_cut(comp, g, mapping)
    if cut is None:
        return None

    def build(sub: Compiler, t: int, s: int) -> None:
        sub.plan_override = cut.plan
        if cut.cut_dim == "waves" and t != cut.T:
            sub.keep_waves = t
        sub.gemm(_cut_op(g, cut, t, s), mapping=mapping)

    got = _sample(comp, cut.T, cut.S, build)
    if got is None:
        return None
    prof, info, ts, ss, runs = got
    info.update(op=g.label, M=g.M, N=g.N, K=g.K, batch=g.batch)
    info["sampled"] = {"instructions": _instructions(prof), cut.cut_dim: [list(ts), cut.T],
                       "k_steps": [list(ss), cut.S], "runs": runs}
    return synthesize(comp.p, prof), info


def sampled_vector(comp: Compiler, v: VectorOp, used: int, tile_rows: int) -> tuple[Segment, dict[str, Any]] | None:
    """A large vector op sampled along its row tiles: each core streams tiles of ``tile_rows`` rows,
    so the op is cut to ``t`` tiles per core (tile size pinned) and extended to its ``T``; None when
    it is simulated whole."""
    T = ceil_div(ceil_div(v.rows, used), tile_rows)
    per_tile = 2 + v.inputs * max(1, int(v.passes))  # loads, the op, the store
    if per_tile * T * used < SAMPLE_MIN_INSTRUCTIONS or T < MIN_REPEATS:
        return None

    def build(sub: Compiler, t: int, s: int) -> None:
        sub.vector(replace(v, rows=max(used, v.rows - used * (T - t) * tile_rows), tile_rows=tile_rows))

    got = _sample(comp, T, 1, build)
    if got is None:
        return None
    prof, info, ts, _, runs = got
    info.update(op=v.label, rows=v.rows)
    info["sampled"] = {"instructions": _instructions(prof), "row_tiles": [list(ts), T], "runs": runs}
    return synthesize(comp.p, prof), info
