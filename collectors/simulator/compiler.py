"""The tiling compiler: primitive ops -> per-engine instruction streams.

For every op it lays the work onto the cores -- for a GEMM the way the mapper chooses
(:mod:`collectors.simulator.mapper`: output tiles dealt round-robin over the cores, or a split of
one dimension with the planner's tiles) -- and emits DMA loads into ring buffers of ``buffering`` slots, matmul/vector instructions
that wait for those loads, and stores.  A load into a ring slot waits for the last user of the
slot's previous tile (write-after-read), which is exactly what makes buffering depth matter:
with one slot the next load cannot start until the compute on the current tile ends.

Ops run in sequence: the first instruction of an op on each engine waits for the last
instruction of the previous op on every engine (its inputs are the previous op's outputs), so
all SRAM of an op is released before the next one allocates.  Stores are issued one tile late so
an in-order DMA queue does not sit behind a store while the next tile's loads could run.

On a spec with fixed costs (``[timing] launch_ns`` / ``host_ns``) each op begins with a ``launch``
instruction every core's first loads wait for and a ``host dispatch`` alongside, so an op takes
max(host, launch + work).  With a shared last-level cache (``[timing] llc``) a tile load another
core made recently is served by the cache (route ``l2 -> sram``, the core's load path only) rather
than DRAM (:class:`LlcModel`).

Every compute instruction carries the bytes it moves between its engine and SRAM (the ``bytes``
of its trace slice) and lasts at least as long as the core's SRAM takes to move them (see
:mod:`collectors.simulator.machine`):

* GEMM tile: reads its A and B tiles; the partial sums of an output tile stay in the engine's
  accumulators across the reduction (output-stationary), so the tile's result (accumulator
  width) is written once, by the last k-step;
* attention: ``q@k`` reads Q and K and writes the fp32 scores; ``p@v`` reads P and V and
  updates the fp32 output accumulator in SRAM (written by the first kv tile, read and written by
  the others, since the vector engine rescales it between tiles);
* vector ops: read their inputs, write their output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from collectors.simulator.machine import Machine, SimulatorError
from collectors.simulator.program import K_DMA, K_MATMUL, K_VECTOR, Program, Segment
from collectors.simulator.workloads import Attention, Gemm, VectorOp, ceil_div

_FIELDS: dict[type, tuple[str, ...]] = {}  # per op class, the fields that decide its segment
_DIMS = (4096, 2048, 1024, 512, 256, 128, 64, 32, 16)


def _candidates(dim: int, cap: int = 4096) -> list[int]:
    out = sorted({min(dim, d) for d in _DIMS if d <= cap} | ({dim} if dim <= cap else set()), reverse=True)
    return out


class LlcModel:
    """The shared last-level cache as a least-recently-used set of operand tiles (bytes bounded).

    ``access`` says whether a tile is there (a hit: the load is served by the cache, not DRAM) and
    makes it the most recent.  Capacity 0: nothing is kept, every load reads DRAM.  Eviction
    happens at the end of each round of k-steps (:meth:`end_round`).
    """

    def __init__(self, capacity: float) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.used = 0.0
        self.tiles: OrderedDict[Any, float] = OrderedDict()

    def access(self, key: Any, nbytes: float) -> bool:
        if self.capacity <= 0:
            return False
        t = self.tiles
        if key in t:
            t.move_to_end(key)
            return True
        t[key] = nbytes
        self.used += nbytes
        return False

    def end_round(self) -> None:
        """The cores' accesses of one k-step happen together: evict (least recent first) only after
        all of them, so tiles the cores of one wave share are hits however coarse the k-step is."""
        t = self.tiles
        while self.used > self.capacity and t:
            _, nb = t.popitem(last=False)
            self.used -= nb


class Ring:
    """Slots of one operand's buffer: which instruction last used each slot."""

    def __init__(self, depth: int, first: int | None = None) -> None:
        # ``first``: what the first use of every slot waits for (the op's launch)
        self.users: list[int | None] = [first] * depth
        self.n = 0

    def take(self) -> tuple[int, tuple[int, ...]]:
        slot = self.n % len(self.users)
        self.n += 1
        u = self.users[slot]
        return slot, (() if u is None else (u,))


@dataclass
class GemmPlan:
    tm: int
    tn: int
    tk: int
    a_strip: bool  # keep a whole K-strip of A resident and reuse it across output columns
    cbuf: int
    footprint: float
    est: float = 0.0  # the planner's estimate of the core's time (ns)


class Compiler:
    """Lowers ops onto a :class:`Program`, one after another."""

    def __init__(self, machine: Machine, prog: Program, sampled: bool = False) -> None:
        self.m = machine
        self.p = prog
        #: summary detail: large GEMMs are simulated cut down and extrapolated
        #: (:mod:`collectors.simulator.sampling`); the two fields below are how a cut-down run is told
        self.sampled = sampled
        self.keep_waves: int | None = None  # split="tiles": keep this many full waves (and the partial last)
        self.plan_override: GemmPlan | None = None  # dimension splits: these tiles, not the planner's
        self.q_load = [[0.0] * machine.dma_queues for _ in range(machine.cores)]
        self._lat_bytes = machine.dma_latency_ns * 1e-9 * machine.dma_bw  # latency as bytes it could move
        self._dma_base = [machine.dma(c, 0) for c in range(machine.cores)]
        self.seg = Segment()
        self.rows = self.seg.rows
        self.info: dict[str, Any] = {}
        self.reuse = machine.options.reuse
        self._reuse: dict[Any, tuple[Segment, dict[str, Any], list[list[float]]]] = {}
        self._plans: dict[tuple[Any, ...], GemmPlan] = {}
        self._reuse_maps: dict[Any, dict[str, Any]] = {}
        if not hasattr(prog, "mappings"):
            prog.mappings = []  # type: ignore[attr-defined]  # the mapper's choice per GEMM, in op order
        # deferred stores per core, in the order deferred (item[9]: a sequence number across cores)
        self._pending: list[list[list[Any]]] = [[] for _ in range(machine.cores)]
        self._n_pending = [0] * machine.cores  # their counts (the hot loops skip empty flushes)
        self._seq = 0
        self.r_load = prog.route_id("dram", "sram")
        self.r_store = prog.route_id("sram", "dram")

    # ------------------------------------------------------------ plumbing
    def begin_op(self, **info: Any) -> None:
        """Start a new segment; on a spec with fixed costs, emit the op's launch and host dispatch.

        ``launch`` (device side, ``[timing] launch_ns`` of the op kind) comes before the op's first
        load on every core; ``host dispatch`` (``host_ns``) runs alongside, so the op takes
        max(host, launch + work) -- what a timed loop of calls measures per call.
        """
        self.seg = Segment()
        self.rows = self.seg.rows
        kind = info.pop("op_kind", None) or info.get("kind", "vector")
        self.info = info
        self.launch: int | None = None
        m = self.m
        if m.fixed_costs:
            t = m.timing
            launch, host = t.launch(kind), t.host(kind)
            dt = self.p.dtype_id(m.default_dtype())
            self.launch = len(self.rows)
            self.rows.append((m.launch_engine, K_VECTOR, self.p.name_id("launch"), 0.0, 0.0, launch, (), 0.0, 0, -1,
                              dt))
            self.rows.append((m.host_engine, K_VECTOR, self.p.name_id("host dispatch"), 0.0, 0.0, host, (), 0.0, 0,
                              -1, dt))

    def end_op(self) -> None:
        self.flush_stores()
        self.p.add_op(self.seg, self.info)

    def emit(self, engine: int, kind: int, name: str, flops: float, nbytes: float, dur: float,
             deps: tuple[int, ...], dtype: str, alloc: float = 0.0, alloc_core: int = 0, free: float = 0.0,
             free_core: int = 0, route: int = -1) -> int:
        rows = self.rows
        i = len(rows)
        rows.append((engine, kind, self.p.name_id(name), flops, nbytes, dur, deps, alloc, alloc_core, route,
                     self.p.dtype_id(dtype)))
        if free:
            self.seg.frees[i] = [free, free_core]
        return i

    def queue(self, core: int, nbytes: float) -> int:
        """The core's DMA queue with the least work assigned so far (bytes plus latency)."""
        loads = self.q_load[core]
        if len(loads) == 2:
            q = 0 if loads[0] <= loads[1] else 1
        else:
            q = min(range(len(loads)), key=loads.__getitem__)
        loads[q] += nbytes + self._lat_bytes
        return self._dma_base[core] + q

    def load(self, core: int, nbytes: float, name: str, deps: tuple[int, ...], dtype: str, alloc: bool = True) -> int:
        return self.emit(self.queue(core, nbytes), K_DMA, name, 0.0, nbytes, 0.0, deps, dtype,
                         alloc=nbytes if alloc else 0.0, alloc_core=core, route=self.r_load)

    def store(self, core: int, nbytes: float, name: str, deps: tuple[int, ...], dtype: str, free: float) -> int:
        return self.emit(self.queue(core, nbytes), K_DMA, name, 0.0, nbytes, 0.0, deps, dtype,
                         free=free, free_core=core, route=self.r_store)

    def defer_store(self, core: int, nbytes: float, name: str, deps: tuple[int, ...], dtype: str, free: float,
                    ring: Ring, slot: int, chunks: int = 1) -> None:
        """Queue a store to be issued after the next tile's loads (see the module docstring).

        With ``chunks`` > 1 it is issued in pieces, one per :meth:`flush_stores` call, so a big
        output tile does not take the DRAM away from the next tile's loads in one burst.
        """
        self._pending[core].append([core, nbytes, name, deps, dtype, free, ring, slot, max(1, int(chunks)), self._seq])
        self._seq += 1
        self._n_pending[core] += 1

    def flush_stores(self, core: int | None = None, everything: bool = True) -> None:
        """Issue the deferred stores of ``core`` (None: of every core, in the order they were
        deferred); ``everything`` False issues one chunk of each."""
        if core is None:
            cores: range | tuple[int, ...] = range(len(self._pending))
            items = sorted((it for lst in self._pending for it in lst), key=lambda it: it[9])
        else:
            cores = (core,)
            items = self._pending[core]
        keep: dict[int, list[list[Any]]] = {c: [] for c in cores}
        for item in items:
            c, nbytes, name, deps, dtype, free, ring, slot, left, _ = item
            piece = nbytes / left
            while left:
                last = left == 1
                sid = self.store(c, piece, name, deps, dtype, free if last else 0.0)
                left -= 1
                if last:
                    ring.users[slot] = sid
                if not everything:
                    break
            if left:
                item[1] = nbytes - piece
                item[8] = left
                keep[c].append(item)
        for c, kept in keep.items():
            self._pending[c] = kept
            self._n_pending[c] = len(kept)

    def check_fit(self, footprint: float, what: str) -> None:
        if footprint > self.m.sram_bytes:
            raise SimulatorError(
                f"{what} needs {footprint:,.0f} bytes of SRAM per core but a core has {self.m.sram_bytes:,.0f}; "
                "use smaller tiles or less buffering"
            )

    def check_buffering(self, b: int, what: str) -> int:
        if b not in (1, 2, 3):
            raise SimulatorError(f"{what}: buffering must be 1, 2 or 3, got {b}")
        return b

    # ----------------------------------------------------------------- ops
    def lower(self, op: Any) -> None:
        """Append ``op``'s segment, reusing the one of an identical earlier op when that is exact.

        Two ops share a segment when they differ only in their label's prefix (``layer3.qkv`` and
        ``layer7.qkv``) and the DMA queues start equally balanced; the queue loads are whole bytes
        then, so shifting them by a constant changes no queue choice and the end state is the start
        state plus the same increments.
        """
        # Every op starts on an idle machine (the barrier between ops), so the DMA queues' balance
        # starts afresh: what earlier ops put on a queue has finished.  That also makes every op
        # start from the same queue state, so identical ops always share their segment.
        for loads in self.q_load:
            loads[:] = [0.0] * len(loads)
        key = None
        if self.reuse:
            state = self._queue_state()
            if state is not None:
                names = _FIELDS.get(type(op))
                if names is None:
                    names = _FIELDS[type(op)] = tuple(f.name for f in dataclasses.fields(op) if f.name != "label")
                key = (type(op), op.label.rsplit(".", 1)[-1], *(getattr(op, f) for f in names), state)
                hit = self._reuse.get(key)
                if hit is not None:
                    seg, info, delta = hit
                    for loads, inc in zip(self.q_load, delta, strict=True):
                        for q, d in enumerate(inc):
                            loads[q] += d
                    self.p.add_op(seg, {"op": op.label, **info})
                    mp = self._reuse_maps.get(key)
                    if mp is not None:
                        self.p.mappings.append({**mp, "op": op.label})  # type: ignore[attr-defined]
                    return
        before = [list(loads) for loads in self.q_load]
        if isinstance(op, Gemm):
            self.gemm(op)
        elif isinstance(op, VectorOp):
            self.vector(op)
        elif isinstance(op, Attention):
            self.attention(op)
        else:
            raise TypeError(f"cannot lower {type(op).__name__}")
        if key is not None and self._queue_state() is not None:
            delta = [[a - b for a, b in zip(after, bef, strict=True)] for after, bef in zip(self.q_load, before,
                                                                                          strict=True)]
            info = {k: v for k, v in self.info.items() if k != "op"}
            self._reuse[key] = (self.seg, info, delta)
            if isinstance(op, Gemm):
                self._reuse_maps[key] = self.p.mappings[-1]  # type: ignore[attr-defined]

    def _queue_state(self) -> tuple[tuple[float, ...], ...] | None:
        """Queue loads relative to each core's least-loaded queue; None unless all are whole bytes."""
        out = []
        for loads in self.q_load:
            if not all(x.is_integer() for x in loads):
                return None
            low = min(loads)
            out.append(tuple(x - low for x in loads))
        return tuple(out)

    # ---------------------------------------------------------------- GEMM
    def _gemm_footprint(self, tm: int, tn: int, tk: int, K: int, a_strip: bool, buf: int, cbuf: int,
                        dtb: float, accb: float, reduce_peers: int) -> float:
        a = tm * (K if a_strip else tk) * dtb
        b = tk * tn * dtb
        c = tm * tn * accb
        return buf * (a + b) + cbuf * c * (1 + reduce_peers)

    def plan_gemm(self, g: Gemm, Mc: int, Nc: int, Kc: int, batch: int, cores: int, reduce_peers: int) -> GemmPlan:
        """Tiles for one core's share (memoized: an LLM repeats the same few shapes per layer)."""
        strip = self._pinned_strip(g)
        key = (g.dtype, g.buffering, g.loop_order, g.tile_m, g.tile_n, g.tile_k, g.label if g.tile_m else "",
               Mc, Nc, Kc, batch, cores, reduce_peers, strip)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan_gemm(g, Mc, Nc, Kc, batch, cores, reduce_peers, strip)
        return plan

    def _pinned_strip(self, g: Gemm) -> bool:
        """Whether the op's mapping pins these tiles with a resident A strip: a plan the planner made
        on another machine of a sweep, reproduced exactly (:attr:`collectors.simulator.mapper.Mapping.a_strip`)."""
        mp = getattr(self, "mapping", None)
        return bool(getattr(mp, "a_strip", False) and g.tile_m is not None
                    and (mp.tm, mp.tn, mp.tk) == (g.tile_m, g.tile_n, g.tile_k))

    def _plan_gemm(self, g: Gemm, Mc: int, Nc: int, Kc: int, batch: int, cores: int, reduce_peers: int,
                   strip: bool = False) -> GemmPlan:
        m = self.m
        dt = g.dtype or m.default_dtype()
        dtb = m.dtype_bytes(dt)
        accb = max(4.0, dtb)
        buf = g.buffering
        cbuf = min(buf, 2)
        given = (g.tile_m, g.tile_n, g.tile_k)
        if any(x is not None for x in given):
            for nm, v in zip(("tile_m", "tile_n", "tile_k"), given, strict=True):
                if v is not None and v < 1:
                    raise SimulatorError(f"{g.label}: {nm} must be >= 1, got {v}")
            tm = min(g.tile_m or 256, Mc)
            tn = min(g.tile_n or 256, Nc)
            tk = min(g.tile_k or 256, Kc)
            fp = self._gemm_footprint(tm, tn, tk, Kc, strip, buf, cbuf, dtb, accb, reduce_peers)
            self.check_fit(fp, f"{g.label}: tile {tm}x{tn}x{tk} ({dt}, buffering {buf})")
            return GemmPlan(tm, tn, tk, strip, cbuf, fp)
        bw = min(m.dram_bw / cores, m.dma_queues * m.dma_bw) / 1e9
        best: tuple[float, float] | None = None
        plan: GemmPlan | None = None
        for tm in _candidates(Mc):
            ti = ceil_div(Mc, tm)
            for tn in _candidates(Nc):
                tj = ceil_div(Nc, tn)
                for tk in _candidates(Kc, 2048):
                    tks = ceil_div(Kc, tk)
                    # a resident A strip pays off only when it costs about as much as a B tile to load
                    strip_ok = g.loop_order == "mnk" and tj > 1 and tks > 1 and tm * Kc <= 4 * tk * tn
                    for strip in ((False, True) if strip_ok else (False,)):
                        fp = self._gemm_footprint(tm, tn, tk, Kc, strip, buf, cbuf, dtb, accb, reduce_peers)
                        if fp > m.sram_bytes:
                            continue
                        steps = batch * ti * tj * tks
                        a_bytes = batch * (ti if strip else ti * tj) * Kc * tm * dtb
                        b_bytes = batch * ti * tj * Kc * tn * dtb
                        n_xfer = steps * 2 + batch * ti * tj
                        lat = m.dma_latency_ns
                        dma = (a_bytes + b_bytes + Mc * Nc * batch * dtb) / bw + n_xfer * lat / m.dma_queues
                        step = m.matmul_ns(tm, tn, tk, dt, (tm * tk + tk * tn) * dtb)
                        comp = steps * step
                        # pipeline fill (first loads) and drain (last store) are not overlapped
                        first = (tm * (Kc if strip else tk) + tk * tn) * dtb / bw + lat
                        fill = first + step + tm * tn * dtb / bw + lat
                        est = comp + dma if buf == 1 else max(comp, dma) + fill
                        score = (est, fp)
                        if best is None or score < best:
                            best, plan = score, GemmPlan(tm, tn, tk, strip, cbuf, fp, est)
        if plan is None:
            fp = self._gemm_footprint(min(16, Mc), min(16, Nc), min(16, Kc), Kc, False, buf, cbuf, dtb, accb,
                                      reduce_peers)
            self.check_fit(fp, f"{g.label}: even a 16x16x16 tile")
            raise SimulatorError(f"{g.label}: no tile fits SRAM")  # pragma: no cover
        return plan

    def legacy_split(self, g: Gemm) -> str:
        """The fixed rule the compiler splits a GEMM by without a mapper."""
        cores = self.m.cores
        if g.split != "auto":
            return g.split
        return "batch" if g.batch >= cores else "n" if g.N >= 64 * cores else "m" if g.M >= 64 * cores else "none"

    def split_shape(self, g: Gemm, split: str) -> tuple[str, list[tuple[int, int]], int, int, int, int, int]:
        """(split, per-core chunks, Mc, Nc, Kc, batch per core, reduction peers) of a dimension split."""
        if self.m.cores == 1:
            split = "none"
        dim = {"n": g.N, "m": g.M, "k": g.K, "batch": g.batch, "none": 1}[split]
        used = min(self.m.cores, dim) if split != "none" else 1
        chunks = [(dim * c // used, dim * (c + 1) // used) for c in range(used)]
        first = chunks[0][1] - chunks[0][0]
        return (split, chunks, first if split == "m" else g.M, first if split == "n" else g.N,
                first if split == "k" else g.K, first if split == "batch" else g.batch,
                used - 1 if split == "k" else 0)

    def check_gemm(self, g: Gemm) -> Gemm:
        m = self.m
        dt = m.check_dtype(g.dtype or m.default_dtype())
        g = g if g.dtype == dt else _replace(g, dtype=dt)
        if g.buffering is not None:
            self.check_buffering(g.buffering, g.label)
        if g.loop_order is not None and g.loop_order not in ("mnk", "nmk", "swizzle"):
            raise SimulatorError(f"{g.label}: loop_order must be mnk, nmk or swizzle, got {g.loop_order!r}")
        for nm in ("M", "N", "K", "batch"):
            if getattr(g, nm) < 1:
                raise SimulatorError(f"{g.label}: {nm} must be >= 1, got {getattr(g, nm)}")
        if g.split not in ("auto", "n", "m", "k", "batch", "tiles", "none"):
            raise SimulatorError(f"{g.label}: split must be auto, n, m, k, batch, tiles or none, got {g.split!r}")
        return g

    def gemm(self, g: Gemm, mapping: Any = None) -> None:
        """Lower a GEMM the way ``mapping`` says (default: the mapper's choice, see
        :mod:`collectors.simulator.mapper`; fields the workload sets explicitly always win)."""
        from collectors.simulator import mapper

        g = self.check_gemm(g)
        if mapping is None:
            mapping = mapper.choose_gemm(self.m, g)
        self.mapping = mapping
        self.p.mappings.append({"op": g.label, **mapping.as_dict()})  # type: ignore[attr-defined]
        if self.sampled:
            from collectors.simulator.sampling import sampled_gemm

            if self._place_sampled(sampled_gemm(self, g, mapping)):
                return
        g = _replace(g, split=mapping.split, buffering=mapping.buffering, loop_order=mapping.order)
        if mapping.split == "tiles":
            self._gemm_tiles(g, mapping)
            return
        g, (split, chunks, Mc, Nc, Kc, bc, reduce_peers), plan = self.dimension_split(g, mapping)
        self.begin_op(op=g.label, kind="gemm", M=g.M, N=g.N, K=g.K, batch=g.batch, split=split,
                      tile=[plan.tm, plan.tn, plan.tk], buffering=g.buffering, mapping=mapping.describe(),
                      op_kind=g.kind)
        gens = []
        for c, (lo, hi) in enumerate(chunks):
            rng = {"m": (0, g.M), "n": (0, g.N), "k": (0, g.K), "batch": (0, g.batch)}
            if split != "none":
                rng[split] = (lo, hi)
            gens.append(self._gemm_core(c, g, plan, rng["batch"][1] - rng["batch"][0], rng["m"][1] - rng["m"][0],
                                        rng["n"][1] - rng["n"][0], rng["k"][1] - rng["k"][0], split == "k"))
        live = list(range(len(gens)))
        msgs: list[Any] = [None] * len(gens)
        while live:
            yielded: dict[int, Any] = {}
            for c in live:
                try:
                    yielded[c] = gens[c].send(msgs[c])
                except StopIteration:
                    pass
            live = [c for c in live if c in yielded]
            if split == "k" and yielded:
                msgs = self._reduce_tile(g, yielded, plan, msgs)
        self.end_op()

    def dimension_split(self, g: Gemm, mapping: Any) -> tuple[Gemm, tuple[Any, ...], GemmPlan]:
        """How a dimension-split ``mapping`` runs ``g``: the op with the mapping's tiles (where the
        workload sets none), its :meth:`split_shape`, and its tiles (``plan_override``, else the
        planner's)."""
        if mapping.tm is not None and g.tile_m is None:
            g = _replace(g, tile_m=mapping.tm, tile_n=mapping.tn, tile_k=mapping.tk)
        shape = self.split_shape(g, mapping.split)
        _, chunks, Mc, Nc, Kc, bc, reduce_peers = shape
        plan = self.plan_override or self.plan_gemm(g, Mc, Nc, Kc, bc, len(chunks), reduce_peers)
        return g, shape, plan

    def _place_sampled(self, got: tuple[Segment, dict[str, Any]] | None) -> bool:
        """Add a sampled op's synthetic segment and args as the op (summary detail); False when the
        op is to be simulated whole (``got`` None)."""
        if got is None:
            return False
        self.seg, self.info = got
        self.p.add_op(self.seg, self.info)
        return True

    def _gemm_tiles(self, g: Gemm, mp: Any) -> None:
        """Output tiles dealt round-robin over the cores (a GPU's CTAs over its SMs): core c computes
        tiles c, c + used, ...; a tile streams its k-steps of A and B from DRAM, or from the shared
        last-level cache when a core read them recently (:class:`LlcModel`).  The cores advance one
        k-step at a time in turn, so the cache sees the accesses in about the order they happen.
        A core's tiles run back to back, so the op takes as many tile times as it has waves.
        """
        from collectors.simulator.mapper import sram_scale, tile_order, tiles_footprint

        m = self.m
        dt = g.dtype or m.default_dtype()
        dtb = m.dtype_bytes(dt)
        buf = g.buffering or 2
        tm, tn, tk = mp.tm, mp.tn, mp.tk
        order = tile_order(g.batch, ceil_div(g.M, tm), ceil_div(g.N, tn), g.loop_order or "mnk")
        used = min(m.cores, len(order))
        if self.keep_waves is not None:  # a cut-down run: the first full waves and the partial last one
            full = len(order) // used
            order = order[:self.keep_waves * used] + order[full * used:]
        fp = tiles_footprint(m, tm, tn, tk, buf, mp.cbuf, dtb)
        self.check_fit(fp, f"{g.label}: tile {tm}x{tn}x{tk} ({dt}, buffering {buf})")
        self.begin_op(op=g.label, kind="gemm", M=g.M, N=g.N, K=g.K, batch=g.batch, split="tiles",
                      tile=[tm, tn, tk], buffering=buf, loop_order=g.loop_order, mapping=mp.describe(),
                      op_kind=g.kind)
        llc = LlcModel(m.llc_bytes)
        r_llc = self.p.route_id(m.timing.llc or "llc", "sram")
        scale = sram_scale(m, tk)
        gens = [self._tiles_core(c, g, order[c::used], tm, tn, tk, buf, mp.cbuf, scale, llc, r_llc)
                for c in range(used)]
        while gens:
            gens = [gen for gen in gens if next(gen, False) is not False]
            llc.end_round()
        self.end_op()

    def _gemm_locals(self, core: int, dt: str) -> tuple[Any, ...]:
        """What the GEMM hot loops keep in locals: the core's matrix engine, the rows and their
        append, the SRAM releases, the core's DMA queue loads (count, latency as bytes, first
        engine), the load route, the ids of the names ``load A``/``load B``/``matmul`` and of ``dt``."""
        p = self.p
        loads = self.q_load[core]
        return (self.m.matrix(core), self.rows, self.rows.append, self.seg.frees, loads, len(loads), self._lat_bytes,
                self._dma_base[core], self.r_load, p.name_id("load A"), p.name_id("load B"), p.name_id("matmul"),
                p.dtype_id(dt))

    def _tiles_core(self, core: int, g: Gemm, tiles: list[tuple[int, int, int]], tm: int, tn: int, tk: int,
                    buf: int, cbuf: int, scale: float, llc: LlcModel, r_llc: int) -> Generator[bool, None, None]:
        """One core's tiles of :meth:`_gemm_tiles`; yields after each k-step.

        Every GPU GEMM runs through here, so the rings and rows are inlined as in
        :meth:`_gemm_core` and both operands' loads share one local ``load`` (queue choice and cache
        lookup included); it emits exactly what :meth:`emit`, :meth:`queue`, :meth:`Ring.take` and
        :meth:`LlcModel.access` would.
        """
        m = self.m
        dt = g.dtype or m.default_dtype()
        dtb = m.dtype_bytes(dt)
        accb = max(4.0, dtb)
        M, N, K = g.M, g.N, g.K
        tks = ceil_div(K, tk)
        launch = self.launch
        a_users: list[int | None] = [launch] * buf
        b_users: list[int | None] = [launch] * buf
        n_a = n_b = 0
        c_ring = Ring(cbuf)
        mx, rows, app, frees, loads, n_q, lat, dbase, r_load, name_a, name_b, name_mm, dti = self._gemm_locals(core, dt)
        cached = llc.capacity > 0
        held = llc.tiles
        n_pending = self._n_pending

        def load(name: int, key: tuple[Any, ...], nb: float, u: int | None) -> int:
            """One operand tile's load (from the shared cache when a core read it recently)."""
            route = r_load
            if cached:
                if key in held:
                    held.move_to_end(key)
                    route = r_llc
                else:
                    held[key] = nb
                    llc.used += nb
            q = (0 if loads[0] <= loads[1] else 1) if n_q == 2 else min(range(n_q), key=loads.__getitem__)
            loads[q] += nb + lat
            i = len(rows)
            app((dbase + q, K_DMA, name, 0.0, nb, 0.0, () if u is None else (u,), nb * scale, core, route, dti))
            return i

        step_ns: dict[tuple[int, int, int, bool], tuple[float, float]] = {}
        for b, i, j in tiles:
            mi = min(tm, M - i * tm)
            nj = min(tn, N - j * tn)
            c_slot, c_dep = c_ring.take()
            cbytes = mi * nj * accb
            mm = -1
            for k in range(tks):
                kk = min(tk, K - k * tk)
                last = k == tks - 1
                a_slot = n_a % buf
                n_a += 1
                nb_a = mi * kk * dtb
                a_id = load(name_a, ("A", b, i, k), nb_a, a_users[a_slot])
                b_slot = n_b % buf
                n_b += 1
                nb_b = kk * nj * dtb
                b_id = load(name_b, ("B", b, k, j), nb_b, b_users[b_slot])
                shape = (mi, nj, kk, last)
                got = step_ns.get(shape)
                if got is None:
                    sb = nb_a + nb_b + (cbytes if last else 0.0)
                    got = step_ns[shape] = (m.matmul_ns(mi, nj, kk, dt, sb), sb)
                dur, sb = got
                mm = len(rows)
                first = k == 0  # the tile's first k-step also waits for its accumulator slot and takes it
                app((mx, K_MATMUL, name_mm, 2.0 * mi * nj * kk, sb, dur, (a_id, b_id, *c_dep) if first else (a_id, b_id),
                     cbytes if first else 0.0, core, -1, dti))
                frees[mm] = [(nb_a + nb_b) * scale, core]
                a_users[a_slot] = mm
                b_users[b_slot] = mm
                if n_pending[core]:
                    self.flush_stores(core, everything=last)
                yield True
            if cbuf == 1:
                c_ring.users[c_slot] = self.store(core, mi * nj * dtb, "store C", (mm,), dt, cbytes)
            else:
                chunks = min(tks, ceil_div(int(mi * nj * dtb), 1 << 18))
                self.defer_store(core, mi * nj * dtb, "store C", (mm,), dt, cbytes, c_ring, c_slot, chunks)
        self.flush_stores(core)

    def _reduce_tile(self, g: Gemm, yielded: dict[int, Any], plan: GemmPlan, msgs: list[Any]) -> list[Any]:
        """Tensor-parallel reduction of one output tile: peers send partials to the tile's root core,
        whose vector engine adds them before the root stores the result."""
        m = self.m
        dt = g.dtype or m.default_dtype()
        t, _, mi, nj = next(iter(yielded.values()))
        accb = max(4.0, m.dtype_bytes(dt))
        cbytes = mi * nj * accb
        root = t % len(msgs) if t % len(msgs) in yielded else min(yielded)
        sends = []
        for c, (_, mm, _, _) in yielded.items():
            if c == root:
                continue
            r = self.p.route_id(f"sram:core{c}", f"sram:core{root}")
            sends.append(self.emit(self.queue(c, cbytes), K_DMA, "send partial", 0.0, cbytes, 0.0, (mm,), dt,
                                   alloc=cbytes, alloc_core=root, free=cbytes, free_core=c, route=r))
        own = yielded[root][1]
        n_in = len(sends)
        red = self.emit(m.vector(root), K_VECTOR, "reduce partials", float(n_in * mi * nj), (n_in + 2) * cbytes,
                        m.vector_ns(n_in * mi * nj, (n_in + 2) * cbytes), (own, *sends), dt,
                        free=n_in * cbytes, free_core=root)
        st = self.store(root, mi * nj * m.dtype_bytes(dt), "store C", (red,), dt, cbytes)
        out = list(msgs)
        for c in yielded:
            out[c] = st if c == root else red
        return out

    def _gemm_core(self, core: int, g: Gemm, plan: GemmPlan, B: int, M: int, N: int, K: int,
                   reduce: bool) -> Generator[tuple[int, int, int, int], Any, None]:
        """Emit one core's share; yields (tile index, last matmul, rows, cols) after each output tile.

        In reduce mode the driver answers with the instruction that frees the accumulator slot.
        This is the compiler's hot loop (a large GEMM is most of a program's instructions), so rows
        are appended directly and rings, queue choice and SRAM releases are inlined; it emits
        exactly what :meth:`load`, :meth:`emit` and :meth:`_release` would.
        """
        m = self.m
        dt = g.dtype or m.default_dtype()
        dtb = m.dtype_bytes(dt)
        accb = max(4.0, dtb)
        tm, tn, tk = plan.tm, plan.tn, plan.tk
        ti, tj, tks = ceil_div(M, tm), ceil_div(N, tn), ceil_div(K, tk)
        if g.loop_order != "nmk":
            tiles = [(b, i, j) for b in range(B) for i in range(ti) for j in range(tj)]
        else:
            tiles = [(b, i, j) for b in range(B) for j in range(tj) for i in range(ti)]
        a_ring, b_ring, c_ring = Ring(g.buffering, self.launch), Ring(g.buffering, self.launch), Ring(plan.cbuf)
        a_users, b_users = a_ring.users, b_ring.users
        depth = g.buffering
        n_a = n_b = 0  # loads issued into each ring
        mx, rows, app, frees, loads, n_q, lat, dbase, r_load, name_a, name_b, name_mm, dti = self._gemm_locals(core, dt)
        strip = plan.a_strip
        n_pending = self._n_pending
        kks = [min(tk, K - k * tk) for k in range(tks)]
        last_k = tks - 1
        step_ns: dict[tuple[int, int, int, bool], tuple[float, float]] = {}  # shape -> (ns, SRAM bytes)
        # current A and B tiles: key, load id, ring slot, bytes, last user
        a_key = b_key = -1
        a_id = a_slot = b_id = b_slot = -1
        a_nb = b_nb = 0.0
        a_user = b_user = -1
        mm = -1
        for t, (b, i, j) in enumerate(tiles):
            mi = min(tm, M - i * tm)
            nj = min(tn, N - j * tn)
            c_slot, c_dep = c_ring.take()
            cbytes = mi * nj * accb
            for k, kk in enumerate(kks):
                key = b * ti + i if strip else (b * ti + i) * tks + k
                if key != a_key:
                    if a_key >= 0:  # release the previous A tile after its last user
                        f = frees.get(a_user)
                        if f is None:
                            frees[a_user] = [a_nb, core]
                        else:
                            f[0] += a_nb
                            f[1] = core
                        a_users[a_slot] = a_user
                    a_slot = n_a % depth
                    n_a += 1
                    u = a_users[a_slot]
                    nb = mi * (K if strip else kk) * dtb
                    q = (0 if loads[0] <= loads[1] else 1) if n_q == 2 else min(range(n_q), key=loads.__getitem__)
                    loads[q] += nb + lat
                    a_id = len(rows)
                    app((dbase + q, K_DMA, name_a, 0.0, nb, 0.0, () if u is None else (u,), nb, core, r_load, dti))
                    a_key, a_nb = key, nb
                key = (b * tks + k) * tj + j
                if key != b_key:
                    if b_key >= 0:
                        f = frees.get(b_user)
                        if f is None:
                            frees[b_user] = [b_nb, core]
                        else:
                            f[0] += b_nb
                            f[1] = core
                        b_users[b_slot] = b_user
                    b_slot = n_b % depth
                    n_b += 1
                    u = b_users[b_slot]
                    nb = kk * nj * dtb
                    q = (0 if loads[0] <= loads[1] else 1) if n_q == 2 else min(range(n_q), key=loads.__getitem__)
                    loads[q] += nb + lat
                    b_id = len(rows)
                    app((dbase + q, K_DMA, name_b, 0.0, nb, 0.0, () if u is None else (u,), nb, core, r_load, dti))
                    b_key, b_nb = key, nb
                shape = (mi, nj, kk, k == last_k)
                got = step_ns.get(shape)
                if got is None:
                    # A and B tiles read; the result written by the last k-step (module docstring)
                    sb = (mi * kk + kk * nj) * dtb + (cbytes if k == last_k else 0.0)
                    got = step_ns[shape] = (m.matmul_ns(mi, nj, kk, dt, sb), sb)
                dur, sb = got
                mm = len(rows)
                first = k == 0  # the tile's first k-step also waits for its accumulator slot and takes it
                app((mx, K_MATMUL, name_mm, 2.0 * mi * nj * kk, sb, dur, (a_id, b_id, *c_dep) if first else (a_id, b_id),
                     cbytes if first else 0.0, core, -1, dti))
                a_user = b_user = mm
                if not reduce and n_pending[core]:
                    self.flush_stores(core, everything=k == tks - 1)
            if reduce:
                freed = yield (t, mm, mi, nj)
                c_ring.users[c_slot] = freed
            elif plan.cbuf == 1:
                c_ring.users[c_slot] = self.store(core, mi * nj * dtb, "store C", (mm,), dt, cbytes)
            else:
                chunks = min(tks, ceil_div(int(mi * nj * dtb), 1 << 18))
                self.defer_store(core, mi * nj * dtb, "store C", (mm,), dt, cbytes, c_ring, c_slot, chunks)
        if a_key >= 0:
            self.seg.add_free(a_user, a_nb, core)
            a_users[a_slot] = a_user
        if b_key >= 0:
            self.seg.add_free(b_user, b_nb, core)
            b_users[b_slot] = b_user
        if not reduce:
            self.flush_stores(core)

    def _release(self, ring: Ring, cur: list[Any], core: int) -> None:
        """The tile in ``cur`` has had its last user: free its bytes there and mark the slot."""
        self.seg.add_free(cur[4], cur[3], core)
        ring.users[cur[2]] = cur[4]

    # -------------------------------------------------------------- vector
    def vector_tiles(self, v: VectorOp, dt: str, buf: int) -> tuple[int, int]:
        """(cores used, rows per tile) of a vector op; errors when a tile does not fit SRAM."""
        m = self.m
        row_bytes = v.cols * m.dtype_bytes(dt)
        per_row = (buf * v.inputs + min(buf, 2)) * row_bytes
        used = min(m.cores, v.rows)
        if v.tile_rows is not None:
            if v.tile_rows < 1:
                raise SimulatorError(f"{v.label}: tile_rows must be >= 1")
            tr = v.tile_rows
            self.check_fit(per_row * tr, f"{v.label}: tile of {tr} rows x {v.cols} ({dt}, buffering {buf})")
        else:
            self.check_fit(per_row, f"{v.label}: one row of {v.cols} ({dt}, buffering {buf})")
            # ~256 KiB transfers amortize DMA latency; never more than half the SRAM
            tr = max(1, min(int((1 << 18) // row_bytes), int(m.sram_bytes / 2 // per_row), ceil_div(v.rows, used)))
        return used, tr

    def vector(self, v: VectorOp) -> None:
        m = self.m
        dt = m.check_dtype(v.dtype or m.default_dtype())
        buf = self.check_buffering(v.buffering, v.label)
        if v.rows < 1 or v.cols < 1:
            raise SimulatorError(f"{v.label}: rows and cols must be >= 1")
        dtb = m.dtype_bytes(dt)
        row_bytes = v.cols * dtb
        used, tr = self.vector_tiles(v, dt, buf)
        if self.sampled:
            from collectors.simulator.sampling import sampled_vector

            if self._place_sampled(sampled_vector(self, v, used, tr)):
                return
        self.begin_op(op=v.label, kind="vector", rows=v.rows, cols=v.cols, tile_rows=tr, buffering=buf,
                      op_kind=v.kind)
        passes = max(1, int(v.passes))
        if 0 < m.timing.vector_row_bytes < row_bytes and v.kind in ("layernorm", "softmax"):
            passes = max(passes, 2)  # the row does not stay on chip between the two passes
        for c in range(used):
            lo, hi = v.rows * c // used, v.rows * (c + 1) // used
            in_ring, out_ring = Ring(buf, self.launch), Ring(min(buf, 2))
            vec = m.vector(c)
            for r0 in range(lo, hi, tr):
                rows = min(tr, hi - r0)
                nb = rows * row_bytes
                slot, dep = in_ring.take()
                loads = tuple(self.load(c, nb, f"load x{n}" if v.inputs > 1 else "load x", dep, dt)
                              for n in range(v.inputs))
                for _ in range(passes - 1):  # the input read again (module docstring of workloads)
                    loads += tuple(self.load(c, nb, "reload x", loads, dt, alloc=False) for n in range(v.inputs))
                self.flush_stores(c)
                oslot, odep = out_ring.take()
                fl = v.flops_per_element * rows * v.cols
                op = self.emit(vec, K_VECTOR, v.label.rsplit(".", 1)[-1], fl, (v.inputs + 1) * nb,
                               m.vector_ns(fl, (v.inputs + 1) * nb), loads + odep, dt,
                               alloc=nb, alloc_core=c, free=v.inputs * nb, free_core=c)
                in_ring.users[slot] = op
                if out_ring.users.__len__() == 1:
                    out_ring.users[oslot] = self.store(c, nb, "store y", (op,), dt, nb)
                else:
                    self.defer_store(c, nb, "store y", (op,), dt, nb, out_ring, oslot)
            self.flush_stores(c)
        self.end_op()

    # ----------------------------------------------------------- attention
    def attention(self, a: Attention) -> None:
        """Flash-style: per (batch, head group, query tile) stream K/V tiles; scores stay in SRAM."""
        m = self.m
        dt = m.check_dtype(a.dtype or m.default_dtype())
        buf = self.check_buffering(a.buffering, a.label)
        dtb = m.dtype_bytes(dt)
        d, skv = a.head_dim, a.kv
        try:
            grp = a.group  # grouped-query: a unit is a K/V head, its query heads' rows packed token-major
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None
        sq, past = a.seq_len * grp, skv - a.seq_len
        if min(d, sq, skv, a.heads, a.batch) < 1 or (a.causal and past < 0):
            raise SimulatorError(f"{a.label}: every dimension must be >= 1 (causal: kv_len >= seq_len)")
        units_total = a.batch * (a.heads // grp)
        used = min(m.cores, units_total)
        per_core = ceil_div(units_total, used)
        tq = min(sq, a.tile_q or 128)
        tkv = min(skv, a.tile_kv or 512)
        g = 1 if sq > 1 else max(1, min(per_core, (1 << 19) // max(1, int(tkv * d * dtb))))

        def footprint(g: int, tq: int, tkv: int) -> float:
            q = g * tq * d * dtb
            kv = g * tkv * d * dtb
            s = g * tq * tkv * 4
            o = g * tq * d * 4
            return buf * (q + 2 * kv) + 2 * s + min(buf, 2) * o

        if a.tile_q is None and a.tile_kv is None:
            while footprint(g, tq, tkv) > m.sram_bytes and (g > 1 or tkv > 16 or tq > 16):
                if g > 1:
                    g //= 2
                elif tkv > 16:
                    tkv //= 2
                else:
                    tq //= 2
        self.check_fit(footprint(g, tq, tkv), f"{a.label}: q tile {tq}, kv tile {tkv}, {g} head(s) ({dt})")
        self.begin_op(op=a.label, kind="flash_attention", batch=a.batch, heads=a.heads, kv_heads=a.heads // grp,
                      causal=a.causal, seq_len=a.seq_len, kv_len=skv, head_dim=d, tile=[tq, tkv], head_group=g,
                      op_kind=a.kind)
        # Work per core: whole (batch, head) units when there are enough for every core; otherwise
        # (a GPU's SMs outnumber the heads) query tiles of the units are dealt out too, as
        # FlashAttention's grid does, so no core idles.
        q_starts = list(range(0, sq, tq))
        work: list[list[tuple[int, int, list[int]]]] = []
        if units_total >= m.cores or g > 1 or len(q_starts) == 1:
            for c in range(used):
                lo, hi = units_total * c // used, units_total * (c + 1) // used
                work.append([(u0, min(g, hi - u0), q_starts) for u0 in range(lo, hi, g)])
        else:
            items = [(u, q0) for u in range(units_total) for q0 in q_starts]
            used = min(m.cores, len(items))
            for c in range(used):
                mine = items[len(items) * c // used: len(items) * (c + 1) // used]
                per_unit: dict[int, list[int]] = {}
                for u, q0 in mine:
                    per_unit.setdefault(u, []).append(q0)
                work.append([(u, 1, qs) for u, qs in per_unit.items()])
        for c in range(used):
            q_ring, k_ring, v_ring = Ring(buf, self.launch), Ring(buf, self.launch), Ring(buf, self.launch)
            s_ring, o_ring = Ring(2), Ring(min(buf, 2))
            mx, vec = m.matrix(c), m.vector(c)
            for _u0, gg, qs in work[c]:
                for q0 in qs:
                    rq = min(tq, sq - q0)
                    qb = gg * rq * d * dtb
                    qslot, qdep = q_ring.take()
                    ldq = self.load(c, qb, "load Q", qdep, dt)
                    oslot, odep = o_ring.take()
                    prev = -1
                    mm1 = -1
                    kv_end = min(skv, past + (q0 + rq - 1) // grp + 1) if a.causal else skv  # keys the tile sees
                    for k0 in range(0, kv_end, tkv):
                        rk = min(tkv, kv_end - k0)
                        kvb = gg * rk * d * dtb
                        kslot, kdep = k_ring.take()
                        ldk = self.load(c, kvb, "load K", kdep, dt)
                        vslot, vdep = v_ring.take()
                        ldv = self.load(c, kvb, "load V", vdep, dt)
                        if k0 == 0:
                            self.flush_stores(c)
                        sslot, sdep = s_ring.take()
                        sb = gg * rq * rk * 4
                        fl = 2.0 * gg * rq * rk * d
                        qk_bytes = qb + kvb + sb  # Q, K read; scores written
                        mm1 = self.emit(mx, K_MATMUL, "q@k", fl, qk_bytes,
                                        m.matmul_ns(rq, rk, d, dt, qk_bytes / gg) * gg, (ldq, ldk) + sdep, dt, alloc=sb, alloc_core=c, free=kvb, free_core=c)
                        k_ring.users[kslot] = mm1
                        sfl = 5.0 * gg * rq * rk
                        sm = self.emit(vec, K_VECTOR, "online softmax", sfl, 2 * sb,
                                       m.vector_ns(sfl, 2 * sb), (mm1,), dt)
                        ob = gg * rq * d * 4
                        deps = (sm, ldv) + (odep if k0 == 0 else ())
                        pv_bytes = sb // 2 + kvb + (2 * ob if k0 else ob)  # P, V read; O accumulator updated
                        mm2 = self.emit(mx, K_MATMUL, "p@v", fl, pv_bytes,
                                        m.matmul_ns(rq, d, rk, dt, pv_bytes / gg) * gg, deps, dt, alloc=ob if k0 == 0 else 0.0, alloc_core=c, free=sb + kvb,
                                        free_core=c)
                        v_ring.users[vslot] = mm2
                        s_ring.users[sslot] = mm2
                        prev = mm2
                    self.seg.add_free(mm1, qb, c)
                    q_ring.users[qslot] = mm1
                    ob = gg * rq * d * 4
                    fin = self.emit(vec, K_VECTOR, "rescale", float(gg * rq * d), 2 * ob,
                                    m.vector_ns(gg * rq * d, 2 * ob), (prev,), dt)
                    if o_ring.users.__len__() == 1:
                        o_ring.users[oslot] = self.store(c, qb, "store O", (fin,), dt, ob)
                    else:
                        self.defer_store(c, qb, "store O", (fin,), dt, ob, o_ring, oslot)
            self.flush_stores(c)
        self.end_op()


def _replace(obj: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **kw)
