"""The mapper: how one GEMM is laid onto the machine -- split, tiles, loop order, buffering.

An analytic cost model (:func:`estimate_tiles`) scores every candidate mapping; ``fast`` takes the
best (for small ops it simulates the best few, as ``search`` does: that costs little there and the
model is least exact where fixed latencies dominate), ``search`` runs the event simulation on the
best few and the compiler's own rule and takes the fastest.  Candidates:

* ``tiles``: output tiles of ``tm x tn`` dealt round-robin over the cores (a GPU's CTAs over its
  SMs).  The op then takes ``ceil(tiles / cores)`` tile times (wave quantisation); each tile
  streams ``K`` in k-steps of A and B, from DRAM or -- with a shared last-level cache (``[timing]
  llc``) -- from the cache when a core of the same wave read them already.  Loop orders: ``mnk``
  (row by row), ``nmk`` (column by column), ``swizzle`` (groups of 8 tile rows, column by column:
  a wave covers a squarer block, so it reads less of A and B);
* the compiler's dimension splits (``n``, ``m``, ``batch``, ``none``, and ``k`` for small outputs
  such as a decode step's GEMVs, where the partial sums to exchange are small) with its own planner.

Every estimate includes the op's fixed costs: ``max(host, launch + device time)`` (see
:meth:`collectors.simulator.compiler.Compiler.begin_op`).  Explicit workload fields win: a
split, tile size, buffering or loop order the workload sets is never changed, only the rest is
searched.  Results are cached by (spec, machine options, op shape, dtype).

Plans shared across machines (:func:`shared_plans`): a what-if sweep runs one workload on machines
that differ in a rate or a capacity.  The estimate is not exact (30-50 % off on small GEMMs), so the
plan it ranks first can change between two such machines and the faster machine can get the
slower plan.  Under :func:`shared_plans` the mapper also simulates every plan the sweep found for a
GEMM of the same shape (any dtype) at its other points, where it fits, and keeps the fastest: each
plan's simulated time only falls as bandwidth grows, so the best of one common set does too.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from collectors.simulator.machine import Machine, SimulatorError
from collectors.simulator.workloads import Gemm, ceil_div

#: At most about this many matmul instructions per op when the spec gives ``pipeline_k``: the
#: k-step of an instruction then stands for several slices of the core's software pipeline (SRAM
#: is accounted per real slice, see :func:`sram_scale`), so a large GEMM's program stays small.
STEP_BUDGET = 8192
#: ... but never fewer than this many k-steps per tile (when K has that many pipeline slices)
MIN_STEPS = 4
#: tile edges tried where the spec lists none
_EDGES = (32, 64, 128, 256, 512, 1024, 2048)
_SWIZZLE = 8
#: how many of the model's best mappings ``search`` simulates (plus the compiler's own rule)
SEARCH_TOP = 3
#: ``fast`` simulates the candidates too when together they compile to at most this many instructions
#: (about 0.1 s of simulation per GEMM shape, once: the model alone picked a k split for a 7B decode's
#: int8 ffn_up_gate on edge-npu that simulates 2x slower than the n split it ranks second)
SMALL_OP_INSTRUCTIONS = 20_000

_CACHE: dict[Any, Mapping] = {}
#: plans to try besides the mapper's own, by :func:`plan_key` (see :func:`shared_plans`)
_SHARED: dict[tuple[Any, ...], tuple[Mapping, ...]] = {}
#: every GEMM the mapper placed while :func:`shared_plans` records: exact shape -> (op, its plan)
_LOG: dict[tuple[Any, ...], tuple[Gemm, Mapping]] | None = None
#: shared plans are timed the way the program they go into is (sampled at summary detail)
_SAMPLED = False


@dataclass(frozen=True)
class Mapping:
    """One way to run a GEMM.  ``tm`` None: the compiler's planner picks tiles (dimension splits)."""

    split: str
    tm: int | None
    tn: int | None
    tk: int | None
    buffering: int
    order: str
    cbuf: int = 2
    est_ns: float = 0.0
    sim_ns: float | None = None
    how: str = "rules"  # rules | model | search | shared (a plan found on another machine of a sweep)
    # a dimension split pinned to tiles its planner picked, with the whole K-strip of A resident
    # (see :func:`pin`); the compiler keeps the strip only with these tiles
    a_strip: bool = False

    def describe(self) -> str:
        tile = f"{self.tm}x{self.tn}x{self.tk}" if self.tm else "planner"
        tile += " A-strip" if self.a_strip else ""
        s = f"{self.split} {tile} buffering={self.buffering} order={self.order} ({self.how}, est {self.est_ns / 1e3:.1f} us"
        return s + (f", simulated {self.sim_ns / 1e3:.1f} us)" if self.sim_ns is not None else ")")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def plan(self) -> tuple[Any, ...]:
        """What the compiler runs (without how it was found or what it was estimated to take)."""
        return (self.split, self.tm, self.tn, self.tk, self.buffering, self.order, self.cbuf, self.a_strip)

    def bare(self) -> Mapping:
        """The plan alone, to try on another machine."""
        return Mapping(self.split, self.tm, self.tn, self.tk, self.buffering, self.order, self.cbuf,
                       a_strip=self.a_strip)


# ------------------------------------------------------------------ tile geometry
def tile_order(batch: int, ti: int, tj: int, order: str) -> list[tuple[int, int, int]]:
    """Output tiles (b, i, j) in the order they are dealt to the cores."""
    if order == "nmk":
        return [(b, i, j) for b in range(batch) for j in range(tj) for i in range(ti)]
    if order == "swizzle":
        return [(b, i, j) for b in range(batch) for i0 in range(0, ti, _SWIZZLE) for j in range(tj)
                for i in range(i0, min(i0 + _SWIZZLE, ti))]
    return [(b, i, j) for b in range(batch) for i in range(ti) for j in range(tj)]


def sram_scale(m: Machine, tk: int) -> float:
    """SRAM a k-step of ``tk`` really holds, as a fraction of its bytes: with ``pipeline_k`` the core
    keeps only one pipeline slice per ring slot, not the whole (coarse) step."""
    pk = m.timing.pipeline_k
    return pk / tk if pk and tk > pk else 1.0


def tiles_footprint(m: Machine, tm: int, tn: int, tk: int, buf: int, cbuf: int, dtb: float) -> float:
    accb = max(4.0, dtb)
    return buf * (tm + tn) * tk * dtb * sram_scale(m, tk) + cbuf * tm * tn * accb


def _k_step(m: Machine, K: int, units: int, tk: int | None) -> int:
    if tk is not None:
        return min(tk, K)
    pk = m.timing.pipeline_k
    if not pk:
        return min(K, 512)
    most = ceil_div(K, pk)
    # at least MIN_STEPS k-steps per tile, so loads stream alongside compute as in the real pipeline
    steps = max(min(most, MIN_STEPS), min(most, STEP_BUDGET // max(1, units)))
    return min(K, ceil_div(ceil_div(K, steps), pk) * pk)


# ------------------------------------------------------------------ the cost model
#: exponent of :func:`smooth_max`
_P = 4.0


def smooth_max(a: float, b: float) -> float:
    """About max(a, b), but larger when the two are close: overlapped loads and compute (or DRAM
    traffic and a core's own streaming) interfere near balance -- a transfer that arrives late
    stalls the pipeline -- which the event simulation shows and a plain max misses."""
    if a <= 0 or b <= 0:
        return max(a, b)
    return float((a**_P + b**_P) ** (1 / _P))


def fixed_ns(m: Machine, kind: str, device_ns: float) -> float:
    """An op's time with its fixed costs: max(host dispatch, launch + device time)."""
    if not m.fixed_costs:
        return device_ns
    return max(m.timing.host(kind), m.timing.launch(kind) + device_ns)


def dram_traffic(m: Machine, g: Gemm, tm: int, tn: int, order: str, used: int, dtb: float) -> float:
    """Bytes of A and B the tiles read from DRAM (see :func:`_traffic`; memoized per geometry)."""
    return _traffic(g.batch, g.M, g.N, g.K, tm, tn, order, used, dtb, m.llc_bytes)


@functools.lru_cache(maxsize=4096)
def _traffic(batch: int, M: int, N: int, K: int, tm: int, tn: int, order: str, used: int, dtb: float,
             llc_bytes: float) -> float:
    """Bytes of A and B the tiles read from DRAM.

    Without a shared cache every tile reads its strips.  With one, a wave (``used`` consecutive
    tiles) reads each distinct A row strip and B column strip once; a strip the previous wave read
    is still cached when the previous wave's strips fit in the cache.  Everything fitting in the
    cache caps it at reading A and B once.
    """
    ti, tj = ceil_div(M, tm), ceil_div(N, tn)
    a_strip, b_strip = tm * K * dtb, tn * K * dtb
    units = batch * ti * tj
    if llc_bytes <= 0:
        return units * (a_strip + b_strip)
    once = batch * (M + N) * K * dtb
    if once <= llc_bytes:
        return once
    o = np.asarray(tile_order(batch, ti, tj, order), dtype=np.int64)
    wave = np.arange(len(o)) // used
    first = o[:used]
    foot = (np.unique(first[:, 0] * ti + first[:, 1]).size * a_strip
            + np.unique(first[:, 0] * tj + first[:, 2]).size * b_strip)
    reuse_prev = foot <= llc_bytes
    total = 0.0
    for rows, strip, n in ((o[:, 0] * ti + o[:, 1], a_strip, batch * ti),
                           (o[:, 0] * tj + o[:, 2], b_strip, batch * tj)):
        keys = np.unique(wave * n + rows)
        count = int((~np.isin(keys - n, keys)).sum()) if reuse_prev else keys.size
        total += strip * count
    return max(min(total, units * (a_strip + b_strip)), once)


def estimate_tiles(m: Machine, g: Gemm, mp: Mapping) -> float:
    """Analytic time (ns) of a ``tiles`` mapping, fixed costs included."""
    assert mp.tm and mp.tn and mp.tk
    dt = g.dtype or m.default_dtype()
    dtb = m.dtype_bytes(dt)
    accb = max(4.0, dtb)
    tm, tn = min(mp.tm, g.M), min(mp.tn, g.N)
    ti, tj = ceil_div(g.M, mp.tm), ceil_div(g.N, mp.tn)
    units = g.batch * ti * tj
    used = min(m.cores, units)
    waves = ceil_div(units, used)
    kk = min(mp.tk, g.K)
    tks = ceil_div(g.K, kk)
    q, qbw = m.dma_queues, m.dma_bw / 1e9  # queues, bytes per ns each
    lat = m.dma_latency_ns
    nb_a, nb_b = tm * kk * dtb, kk * tn * dtb
    nb = nb_a + nb_b
    comp = m.matmul_ns(tm, tn, kk, dt, nb + tm * tn * accb / tks)
    # a step's loads: A and B on two queues side by side, or one after the other on one queue
    load = (max(nb_a, nb_b) / qbw + lat) if q >= 2 else (nb / qbw + 2 * lat)
    # with ``buffering`` slots a load starts when the matmul buffering-1 steps back ends, so its
    # latency and transfer hide behind buffering-1 matmuls; the queues must also keep up on average
    if mp.buffering >= 2:
        step = smooth_max(comp, max(load / (mp.buffering - 1), (nb / qbw + 2 * lat) / q))
    else:
        step = comp + load
    store = tm * tn * dtb / (q * qbw) + lat
    unit = tks * step + (store if mp.cbuf == 1 else 0.0)
    dev = waves * unit + load + store
    traffic = dram_traffic(m, g, mp.tm, mp.tn, mp.order, used, dtb) + g.batch * g.M * g.N * dtb
    dev = smooth_max(dev, traffic / (m.dram_bw / 1e9) + load + store)
    return fixed_ns(m, g.kind, dev)


# ------------------------------------------------------------------ candidates
def _edges(m: Machine, dim: int) -> list[int]:
    sizes = m.timing.tile_sizes or _EDGES
    out = {s for s in sizes if s < dim}
    fit = [s for s in sizes if s >= dim]
    out.add(min(fit) if fit else dim) if fit and m.timing.tile_sizes else out.add(dim)
    return sorted(x for x in out if x <= max(dim, min(sizes)))


def tiles_candidates(m: Machine, g: Gemm) -> list[Mapping]:
    dtb = m.dtype_bytes(g.dtype or m.default_dtype())
    bufs = (g.buffering,) if g.buffering else (2, 3)
    orders: tuple[str, ...] = (g.loop_order,) if g.loop_order else (
        ("mnk", "nmk", "swizzle") if m.llc_bytes > 0 else ("mnk",))
    out = []
    for tm in ([g.tile_m] if g.tile_m else _edges(m, g.M)):
        for tn in ([g.tile_n] if g.tile_n else _edges(m, g.N)):
            units = g.batch * ceil_div(g.M, tm) * ceil_div(g.N, tn)
            tks = [g.tile_k] if g.tile_k else (
                [_k_step(m, g.K, units, None)] if m.timing.pipeline_k else sorted({min(g.K, x) for x in (128, 256, 512, 1024, 2048)}))
            for tk in tks:
                for buf in bufs:
                    cbuf = 2
                    if tiles_footprint(m, tm, tn, tk, buf, cbuf, dtb) > m.sram_bytes:
                        cbuf = 1
                        if tiles_footprint(m, tm, tn, tk, buf, cbuf, dtb) > m.sram_bytes:
                            continue
                    for order in orders:
                        out.append(Mapping("tiles", tm, tn, tk, buf, order, cbuf))
    return out


def _rules(m: Machine, g: Gemm) -> Mapping:
    """What the compiler does without a mapper (and what explicit dimension splits get)."""
    from collectors.simulator.compiler import Compiler
    from collectors.simulator.program import Program

    comp = Compiler(m, Program(m))
    split = comp.legacy_split(g)
    order = g.loop_order if g.loop_order in ("mnk", "nmk") else "mnk"
    buf = g.buffering or 2
    if split == "tiles":
        best = min(tiles_candidates(m, g) or [Mapping("tiles", 128, 128, 128, buf, order)],
                   key=lambda c: estimate_tiles(m, g, c))
        return Mapping(**{**best.as_dict(), "est_ns": estimate_tiles(m, g, best)})
    _, (split, *_), plan = comp.dimension_split(replace(g, buffering=buf, loop_order=order, split=split),
                                                 Mapping(split, None, None, None, buf, order))
    return Mapping(split, None, None, None, buf, order, plan.cbuf, fixed_ns(m, g.kind, plan.est))


def _key(m: Machine, g: Gemm) -> tuple[Any, ...]:
    o = m.options
    opts = tuple((f.name, getattr(o, f.name)) for f in fields(o) if f.name not in ("flows", "counters", "reuse"))
    shape = tuple(getattr(g, f.name) for f in fields(g) if f.name != "label")
    return (repr(m.spec), opts, shape)


def plan_key(g: Gemm) -> tuple[Any, ...]:
    """What makes two GEMMs take the same plans: every field but the label and the dtype."""
    return tuple(getattr(g, f.name) for f in fields(g) if f.name not in ("label", "dtype"))


@contextlib.contextmanager
def shared_plans(plans: dict[tuple[Any, ...], tuple[Mapping, ...]] | None = None, sampled: bool = False
                 ) -> Iterator[dict[tuple[Any, ...], tuple[Gemm, Mapping]]]:
    """Within the block, every GEMM also tries ``plans[plan_key(g)]`` (found for the same shape on
    other machines); yields a log of each distinct GEMM placed in the block and the plan it got.
    ``sampled``: the block compiles at summary detail with sampling (large GEMMs extrapolated, see
    :mod:`collectors.simulator.sampling`), so the plans are timed that way too: the time a plan is
    picked by is the time the run reports."""
    global _LOG, _SHARED, _SAMPLED
    log: dict[tuple[Any, ...], tuple[Gemm, Mapping]] = {}
    saved = _LOG, _SHARED, _SAMPLED
    _LOG, _SHARED, _SAMPLED = log, dict(plans or {}), sampled
    try:
        yield log
    finally:
        _LOG, _SHARED, _SAMPLED = saved


def choose_gemm(m: Machine, g: Gemm) -> Mapping:
    """The mapping the compiler runs ``g`` with on ``m`` (``SimOptions.mapper`` says how it is found)."""
    mode = m.options.mapper
    explicit_split = g.split not in ("auto", "tiles")
    explicit_tiles = g.split != "tiles" and any(x is not None for x in (g.tile_m, g.tile_n, g.tile_k))
    fixed = mode == "off" or explicit_split or explicit_tiles or m.cores == 1 and g.split == "auto"
    shared = () if fixed else _SHARED.get(plan_key(g), ())
    base = _key(m, g)
    key = (base, tuple(p.plan for p in shared))
    mp = _CACHE.get(key)
    if mp is None:
        own = _CACHE.get((base, ()))
        if own is None:
            own = _rules(m, g) if fixed else _model(m, g, mode)
            _remember((base, ()), own)
        mp = _best_shared(m, g, own, shared) if shared else own
        _remember(key, mp)
    if _LOG is not None:
        _LOG.setdefault((plan_key(g), g.dtype), (g, mp))
    return mp


def _remember(key: tuple[Any, ...], mp: Mapping) -> None:
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = mp


def remember(m: Machine, g: Gemm, mp: Mapping) -> None:
    """Take ``mp`` as the mapper's own plan for ``g`` on ``m`` (found, and maybe simulated, before:
    a sweep's second pass does not search again what its first pass found)."""
    _remember((_key(m, g), ()), mp)


def _model(m: Machine, g: Gemm, mode: str) -> Mapping:
    """The analytic model's pick, confirmed by simulating the best few for small ops or ``search``."""
    cands = [(estimate_tiles(m, g, c), c) for c in tiles_candidates(m, g)]
    if g.split == "auto":
        for split in ("n", "m", "k", "batch", "none"):
            dim = {"n": g.N, "m": g.M, "k": g.K if g.M * g.N <= 65536 else 0, "batch": g.batch,
                   "none": m.cores}[split]
            if dim < m.cores and split != "none":
                continue
            r = _rules(m, replace(g, split=split))
            cands.append((r.est_ns, r))
    cands.sort(key=lambda x: x[0])
    est, best = cands[0]
    mp = Mapping(**{**best.as_dict(), "est_ns": est, "how": "model"})
    top = [Mapping(**{**c.as_dict(), "est_ns": e}) for e, c in cands[:SEARCH_TOP]]
    if g.split == "auto" and not any(c.split != "tiles" for c in top):
        top.append(_rules(m, g))  # the compiler's own rule is always in the running
    if mode == "search" or sum(_instructions(g, c) for c in top) <= SMALL_OP_INSTRUCTIONS:
        # small ops: simulating the best few costs about as much as modelling them, and the
        # model is least exact where fixed latencies dominate
        mp = _search(m, g, top)
    return mp


def _fits(m: Machine, g: Gemm, mp: Mapping) -> Mapping | None:
    """``mp`` as it runs on ``m`` (one accumulator buffer if two do not fit), or None if it cannot."""
    if mp.split != "tiles" or mp.tm is None or mp.tn is None or mp.tk is None:
        return mp  # the compiler's planner sizes the tiles for this machine
    dtb = m.dtype_bytes(g.dtype or m.default_dtype())
    for cbuf in (mp.cbuf, 1) if mp.cbuf > 1 else (mp.cbuf,):
        if tiles_footprint(m, mp.tm, mp.tn, mp.tk, mp.buffering, cbuf, dtb) <= m.sram_bytes:
            return Mapping(mp.split, mp.tm, mp.tn, mp.tk, mp.buffering, mp.order, cbuf, a_strip=mp.a_strip)
    return None


def pin(m: Machine, g: Gemm, mp: Mapping) -> Mapping | None:
    """A dimension split whose planner picks the tiles, pinned to the tiles (and A strip) it picks
    on ``m``: the same schedule here, and a fixed plan on any other machine (re-planned there it
    could pick other tiles, slower on a faster machine).  None for plans already fixed."""
    if mp.split == "tiles" or mp.tm is not None:
        return None
    from collectors.simulator.compiler import Compiler
    from collectors.simulator.program import Program

    _, _, plan = Compiler(m, Program(m)).dimension_split(
        replace(g, split=mp.split, buffering=mp.buffering, loop_order=mp.order), mp)
    return Mapping(mp.split, plan.tm, plan.tn, plan.tk, mp.buffering, mp.order, plan.cbuf, a_strip=plan.a_strip)


def _best_shared(m: Machine, g: Gemm, own: Mapping, shared: tuple[Mapping, ...]) -> Mapping:
    """The fastest (simulated) of ``own`` and the shared plans that fit; ``own`` wins ties."""
    here = pin(m, g, own)  # own's tiles on this machine: the same schedule, not simulated twice
    seen = {own.plan} | ({here.plan} if here is not None else set())
    others = []
    for p in shared:
        f = _fits(m, g, p)
        if f is not None and f.plan not in seen:
            seen.add(f.plan)
            others.append(f)
    if not others:
        return own
    if own.sim_ns is None:
        own = Mapping(**{**_search(m, g, [own], _SAMPLED).as_dict(), "how": own.how})
    best = own
    for c in others:
        try:
            done = _search(m, g, [c], _SAMPLED)
        except SimulatorError:  # a plan this machine cannot run (a split its cores do not divide)
            continue
        if (done.sim_ns or math.inf) < (best.sim_ns or math.inf):
            best = Mapping(**{**done.as_dict(), "how": "shared"})
    return best


def _instructions(g: Gemm, mp: Mapping) -> int:
    """About how many instructions a mapping compiles to (loads, matmuls, stores)."""
    tm, tn, tk = mp.tm or 256, mp.tn or 256, mp.tk or 256
    return 3 * g.batch * ceil_div(g.M, tm) * ceil_div(g.N, tn) * ceil_div(g.K, tk)


def _search(m: Machine, g: Gemm, top: list[Mapping], sampled: bool = False) -> Mapping:
    """Simulate each of ``top`` on its own (``sampled``: as summary detail does) and keep the fastest."""
    from collectors.simulator.compiler import Compiler
    from collectors.simulator.engine import simulate_segment
    from collectors.simulator.program import Program

    best: Mapping | None = None
    for c in top:
        prog = Program(m)
        Compiler(m, prog, sampled=sampled).gemm(g, mapping=c)
        seg = prog.segments[-1]
        # a sampled op's segment comes with its extrapolated timing (what the program's run takes)
        span = (seg.timing or simulate_segment(seg, prog, m)).span
        done = Mapping(**{**c.as_dict(), "sim_ns": span, "how": "search"})
        if best is None or span < (best.sim_ns or math.inf):
            best = done
    assert best is not None
    return best
