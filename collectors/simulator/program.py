"""The program: per-engine instruction streams the tiling compiler emits and the engine runs.

A program is a sequence of *segments*, one per workload op.  Ops run one after another: the
first instruction of an op on each engine waits for the last instruction of the previous op on
every engine (its inputs are the previous op's outputs), so every op starts on an idle machine
with all SRAM released.  That is what lets a segment number its instructions from 0, be
simulated on its own clock starting at 0, and be shared by every op with the same shape (the 32
layers of an LLM repeat ten ops): the engine simulates each distinct segment once and the
program places it at the time its predecessor ends.

A segment stores its instructions as one tuple per instruction while it is emitted (one
``list.append`` per instruction is the cheapest thing Python can do) and transposes them into
columns once.  Cross-engine ordering is semaphore-style: an instruction names the instructions
whose completion it waits for (each one is "signal semaphore of producer, wait for value n");
:meth:`Program.streams` renders that as explicit wait/signal instructions for reading.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from collectors.simulator.machine import Machine

K_MATMUL, K_VECTOR, K_DMA = 0, 1, 2
KIND_NAMES = ("matmul", "vector", "dma")

# Fields of one instruction row, in order.
ENGINE, KIND, NAME, FLOPS, NBYTES, DUR, DEPS, ALLOC, ALLOC_CORE, ROUTE, DTYPE = range(11)
#: rows converted to columns at a time (a block's tuples stay in cache across the fields)
_BLOCK = 4096
#: numeric row fields as (field, numpy dtype), by column name
_ROW_ARRAYS: dict[str, tuple[int, Any]] = {
    "engine": (ENGINE, np.int64), "kind": (KIND, np.int8), "name": (NAME, np.int32), "flops": (FLOPS, np.float64),
    "nbytes": (NBYTES, np.float64), "dur": (DUR, np.float64), "alloc": (ALLOC, np.float64),
    "alloc_core": (ALLOC_CORE, np.int64), "route": (ROUTE, np.int64), "dtype": (DTYPE, np.int32),
}


class Segment:
    """The instructions of one op, numbered from 0; ``deps`` name earlier instructions of the same op.

    ``rows`` holds one tuple per instruction (engine, kind, name id, flops, bytes, duration ns
    (compute; a DMA's time depends on the DRAM share at run time), deps, SRAM bytes reserved at
    start, their core, route id (DMA) or -1, dtype id).  SRAM released at the end of an
    instruction is known only once a tile's last user is known, so it lives in ``frees``.
    """

    __slots__ = ("rows", "frees", "timing", "_cols", "_arrays", "_first_last", "_routes", "_n")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.frees: dict[int, list[float]] = {}  # instr -> [bytes, core]
        self.timing: Any = None  # the engine's SegmentTiming, filled on first run
        self._cols: dict[str, Any] | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._first_last: tuple[list[int], list[int]] | None = None
        self._routes: list[int] | None = None
        self._n: int | None = None  # instruction count once the rows were released

    def __len__(self) -> int:
        return len(self.rows) if self._n is None else self._n

    def release_rows(self) -> None:
        """Keep only the numpy columns: drop the row tuples (and the per-field lists).

        The tuples cost a few hundred bytes per instruction (most of a large program's memory);
        after the run the trace is built from :meth:`arrays`, and :meth:`columns` rebuilds the
        lists (dependencies from the CSR arrays) if anyone still asks for them.
        """
        if self._n is None:
            self.arrays()
            self._n = len(self.rows)
            self.rows = []
            self.frees = {}  # in arrays()["free"] / ["free_core"] now
            self._cols = None

    def add_free(self, instr: int, nbytes: float, core: int) -> None:
        """Make ``instr`` also release ``nbytes`` of ``core``'s SRAM when it ends."""
        f = self.frees.get(instr)
        if f is None:
            self.frees[instr] = [nbytes, core]
            return
        if f[0] and f[1] != core:
            raise ValueError("an instruction frees SRAM on one core only")
        f[0] += nbytes
        f[1] = core

    def columns(self) -> dict[str, Any]:
        """The rows as per-field lists (what the Python event loop and :meth:`Program.flat` index)."""
        if self._cols is None:
            a = self.arrays()
            cols: dict[str, Any] = {k: a[k].tolist() for k in _ROW_ARRAYS}
            if self._n is None:
                cols["deps"] = [r[DEPS] for r in self.rows]
            else:
                ptr, idx = a["dep_ptr"].tolist(), a["dep_idx"].tolist()
                cols["deps"] = [tuple(idx[ptr[i]:ptr[i + 1]]) for i in range(self._n)]
            cols["free"] = a["free"].tolist()
            cols["free_core"] = a["free_core"].tolist()
            self._cols = cols
        return self._cols

    def arrays(self) -> dict[str, np.ndarray]:
        """Numpy columns of the rows, the dependencies in CSR form, and the DMA -> consumer flows.

        Built field by field straight from the row tuples (``fromiter`` over ``itemgetter``), in
        blocks of rows small enough to stay in cache across the fields: about 4x faster than
        transposing the rows with ``zip(*rows)``, and no per-field tuples of Python objects.
        """
        if self._arrays is None:
            rows = self.rows
            n = len(rows)
            out = {k: np.empty(n, dtype=dt) for k, (_, dt) in _ROW_ARRAYS.items()}
            n_deps = np.empty(n, dtype=np.int64)
            dep_parts: list[np.ndarray] = []
            getters = [(out[k], itemgetter(f), dt) for k, (f, dt) in _ROW_ARRAYS.items()]
            get_deps = itemgetter(DEPS)
            for lo in range(0, n, _BLOCK):
                blk = rows[lo:lo + _BLOCK]
                m = len(blk)
                for col, get, dt in getters:
                    col[lo:lo + m] = np.fromiter(map(get, blk), dt, m)
                deps = list(map(get_deps, blk))
                n_deps[lo:lo + m] = np.fromiter(map(len, deps), np.int64, m)
                dep_parts.append(np.fromiter(itertools.chain.from_iterable(deps), np.int64))
            free = np.zeros(n, dtype=np.float64)
            free_core = np.zeros(n, dtype=np.int64)
            if self.frees:
                k = len(self.frees)
                idx = np.fromiter(self.frees.keys(), np.int64, k)
                fv = np.fromiter(itertools.chain.from_iterable(self.frees.values()), np.float64, 2 * k)
                free[idx] = fv[0::2]
                free_core[idx] = fv[1::2].astype(np.int64)
            out["free"], out["free_core"] = free, free_core
            # dependencies in CSR form: instruction i waits for dep_idx[dep_ptr[i]:dep_ptr[i + 1]]
            dep_ptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(n_deps, out=dep_ptr[1:])
            dep_idx = np.concatenate(dep_parts) if dep_parts else np.zeros(0, dtype=np.int64)
            kind = out["kind"]
            consumer = np.repeat(np.arange(n, dtype=np.int64), np.diff(dep_ptr))
            flow = (kind[consumer] != K_DMA) & (kind[dep_idx] == K_DMA)
            out["dep_ptr"], out["dep_idx"] = dep_ptr, dep_idx
            out["flow_from"], out["flow_to"] = dep_idx[flow], consumer[flow]
            self._arrays = out
        return self._arrays

    def routes_used(self) -> list[int]:
        """The distinct route ids of the segment's instructions, -1 (compute) included."""
        if self._routes is None:
            self._routes = np.unique(self.arrays()["route"]).tolist()
        return self._routes

    def first_last(self, n_engines: int) -> tuple[list[int], list[int]]:
        """Per engine, the segment's first and last instruction on it (-1 where it has none)."""
        if self._first_last is None or len(self._first_last[0]) != n_engines:
            engine = self.arrays()["engine"]
            n = engine.size
            idx = np.arange(n, dtype=np.int64)
            first = np.full(n_engines, n, dtype=np.int64)
            np.minimum.at(first, engine, idx)
            first[first == n] = -1
            last = np.full(n_engines, -1, dtype=np.int64)
            np.maximum.at(last, engine, idx)
            self._first_last = (first.tolist(), last.tolist())
        return self._first_last


class _Interner(dict):
    """``key -> index into table``; a missing key is appended to ``table``."""

    def __init__(self, table: list[Any]) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, key: Any) -> int:
        i = self[key] = len(self.table)
        self.table.append(key)
        return i


class Program:
    """The ops' segments in program order plus the string tables (names, dtypes, routes, args)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.segments: list[Segment] = []
        self.ops: list[dict[str, Any]] = []  # args of op k (slice args of segment k)
        self.names: list[str] = []
        self._name_ids = _Interner(self.names)
        self.dtypes: list[str] = []
        self._dtype_ids = _Interner(self.dtypes)
        #: id of a name / dtype in :attr:`names` / :attr:`dtypes`, added on first use.  A bound
        #: ``dict.__getitem__``: the compiler calls these once per instruction, and a hit then
        #: runs no Python frame at all.
        self.name_id: Callable[[str], int] = self._name_ids.__getitem__
        self.dtype_id: Callable[[str], int] = self._dtype_ids.__getitem__
        #: (src, dst) memory of each DMA route, e.g. ("dram", "sram") or ("sram:core0", "sram:core1")
        self.routes: list[tuple[str, str]] = []
        self._route_ids: dict[tuple[str, str], int] = {}
        self._flat: dict[str, Any] | None = None
        self._barriers: list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    # -------------------------------------------------------------- tables
    def route_id(self, src: str, dst: str) -> int:
        key = (src, dst)
        i = self._route_ids.get(key)
        if i is None:
            i = self._route_ids[key] = len(self.routes)
            self.routes.append(key)
        return i

    def add_op(self, segment: Segment, info: dict[str, Any]) -> None:
        """Append an op: its segment (possibly shared with earlier ops) and its slice args."""
        self.segments.append(segment)
        self.ops.append(info)
        self._flat = None
        self._barriers = None

    # ---------------------------------------------------------- placement
    def offsets(self) -> np.ndarray:
        """Global id of each segment's first instruction (len(segments) + 1 entries)."""
        return np.cumsum([0] + [len(s) for s in self.segments], dtype=np.int64)

    def barriers(self) -> list[tuple[int, ...]]:
        """Per segment, the global ids its first instruction on every engine also waits for."""
        if self._barriers is not None:
            return self._barriers
        n_eng = len(self.machine.engines)
        out: list[tuple[int, ...]] = []
        barrier: tuple[int, ...] = ()
        base = 0
        for s in self.segments:
            out.append(barrier)
            if len(s):
                _, last = s.first_last(n_eng)
                barrier = tuple(sorted(base + i for i in last if i >= 0))
            base += len(s)
        self._barriers = out
        return out

    def args_strings(self) -> tuple[list[str], list[np.ndarray]]:
        """Slice args JSON strings, and per segment a lookup ``route + 1 -> string index``.

        Compute slices carry the op's args, DMA slices the op's args plus ``src`` and ``dst``
        (exactly ``orjson.dumps({**info, "src": ..., "dst": ...})``, spliced from two dumps).
        """
        strings: list[str] = []
        luts: list[np.ndarray] = []
        n_routes = len(self.routes)
        route_json = [orjson.dumps({"src": a, "dst": b}).decode()[1:] for a, b in self.routes]
        for info, s in zip(self.ops, self.segments, strict=True):
            lut = np.full(n_routes + 1, -1, dtype=np.int32)
            base = orjson.dumps(info).decode()
            head = base[:-1] + ("," if len(base) > 2 else "")
            for r in s.routes_used():
                lut[r + 1] = len(strings)
                strings.append(base if r < 0 else head + route_json[r])
            luts.append(lut)
        return strings, luts

    # ------------------------------------------------------------- reading
    def flat(self) -> dict[str, Any]:
        """The whole program as global per-instruction lists (deps include the op barriers)."""
        if self._flat is None:
            out: dict[str, list[Any]] = {k: [] for k in ("engine", "kind", "name", "flops", "nbytes", "dur", "deps",
                                                         "route", "dtype", "alloc", "alloc_core", "free", "free_core")}
            n_eng = len(self.machine.engines)
            base = 0
            for s, barrier in zip(self.segments, self.barriers(), strict=True):
                c = s.columns()
                first, _ = s.first_last(n_eng)
                firsts = set(first)
                for k in out:
                    if k != "deps":
                        out[k].extend(c[k])
                for i, ds in enumerate(c["deps"]):
                    g = tuple(base + d for d in ds)
                    out["deps"].append(g + barrier if i in firsts else g)
                base += len(s)
            self._flat = out
        return self._flat

    def streams(self) -> dict[int, list[str]]:
        """Per-engine instruction listing with explicit semaphore waits and signals.

        Each engine pair (producer, consumer) shares one semaphore; a producer instruction that
        someone waits on signals it, and the consumer waits for the count that signal reaches.
        """
        f = self.flat()
        engine, deps = f["engine"], f["deps"]
        sem_of: dict[tuple[int, int], int] = {}
        sem_count: dict[int, int] = {}
        signal_value: dict[tuple[int, int], int] = {}  # (instr, sem) -> value after its signal
        consumers: dict[int, set[int]] = {}
        for i, ds in enumerate(deps):
            for d in ds:
                pe, ce = engine[d], engine[i]
                if pe != ce:
                    consumers.setdefault(d, set()).add(ce)
        out: dict[int, list[str]] = {e: [] for e in range(len(self.machine.engines))}
        for i in range(len(engine)):
            e = engine[i]
            lines: list[str] = []
            for d in deps[i]:
                pe = engine[d]
                if pe == e:
                    continue
                s = sem_of[(pe, e)]
                lines.append(f"wait sem{s} >= {signal_value[(d, s)]}")
            lines.append(self.describe(i))
            for ce in sorted(consumers.get(i, ())):
                s = sem_of.setdefault((e, ce), len(sem_of))
                sem_count[s] = sem_count.get(s, 0) + 1
                signal_value[(i, s)] = sem_count[s]
                lines.append(f"signal sem{s}")
            out[e].extend(lines)
        return out

    def describe(self, i: int) -> str:
        """One global instruction in words."""
        f = self.flat()
        return describe_row(self, f["kind"][i], f["name"][i], f["nbytes"][i], f["flops"][i], f["dur"][i],
                            f["route"][i])


def describe_row(prog: Program, kind: int, name: int, nbytes: float, flops: float, dur: float, route: int) -> str:
    s = f"{KIND_NAMES[kind]} {prog.names[name]}"
    if kind == K_DMA:
        src, dst = prog.routes[route]
        s += f" {int(nbytes)}B {src}->{dst}"
    else:
        s += f" {flops:.0f}flop {dur:.1f}ns"
    return s
