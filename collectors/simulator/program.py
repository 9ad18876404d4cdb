"""The program: per-engine instruction streams the tiling compiler emits and the engine runs.

Instructions are stored as parallel Python lists (one entry per instruction) rather than objects:
the compiler emits hundreds of thousands of them for an LLM step and the engine indexes them in
its hot loop.  Cross-engine ordering is semaphore-style: an instruction names the instructions
whose completion it waits for (each one is "signal semaphore of producer, wait for value n");
:meth:`Program.streams` renders that as explicit wait/signal instructions for reading.
"""

from __future__ import annotations

from typing import Any

import orjson

from collectors.simulator.machine import Machine

K_MATMUL, K_VECTOR, K_DMA = 0, 1, 2
KIND_NAMES = ("matmul", "vector", "dma")


class Program:
    """Instruction table plus the string tables (names, args) its integer columns refer to."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.engine: list[int] = []
        self.kind: list[int] = []
        self.name: list[int] = []
        self.flops: list[float] = []
        self.nbytes: list[float] = []
        self.dur: list[float] = []  # ns for compute; for DMA the transfer size decides at run time
        self.deps: list[tuple[int, ...]] = []
        self.alloc: list[float] = []  # SRAM bytes reserved when the instruction starts
        self.alloc_core: list[int] = []
        self.free: list[float] = []  # SRAM bytes released when it ends
        self.free_core: list[int] = []
        self.route: list[int] = []  # DMA: index into routes; compute: -1
        self.args: list[int] = []  # index into args_strings
        self.dtype: list[int] = []  # index into dtypes
        self.names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self.dtypes: list[str] = []
        self._dtype_ids: dict[str, int] = {}
        #: (src, dst) memory of each DMA route, e.g. ("dram", "sram") or ("sram:core0", "sram:core1")
        self.routes: list[tuple[str, str]] = []
        self._route_ids: dict[tuple[str, str], int] = {}
        self.args_strings: list[str] = []
        self._args_ids: dict[tuple[int, int], int] = {}
        self.ops: list[dict[str, Any]] = []
        self.flow_from: list[int] = []
        self.flow_to: list[int] = []

    def __len__(self) -> int:
        return len(self.engine)

    # -------------------------------------------------------------- tables
    def name_id(self, name: str) -> int:
        i = self._name_ids.get(name)
        if i is None:
            i = self._name_ids[name] = len(self.names)
            self.names.append(name)
        return i

    def dtype_id(self, dtype: str) -> int:
        i = self._dtype_ids.get(dtype)
        if i is None:
            i = self._dtype_ids[dtype] = len(self.dtypes)
            self.dtypes.append(dtype)
        return i

    def route_id(self, src: str, dst: str) -> int:
        key = (src, dst)
        i = self._route_ids.get(key)
        if i is None:
            i = self._route_ids[key] = len(self.routes)
            self.routes.append(key)
        return i

    def new_op(self, **info: Any) -> int:
        """Register a workload op (its args go on every slice it produces); returns its id."""
        self.ops.append(info)
        return len(self.ops) - 1

    def _args_id(self, op: int, route: int) -> int:
        key = (op, route)
        i = self._args_ids.get(key)
        if i is None:
            d = dict(self.ops[op])
            if route >= 0:
                d["src"], d["dst"] = self.routes[route]
            i = self._args_ids[key] = len(self.args_strings)
            self.args_strings.append(orjson.dumps(d).decode())
        return i

    # ---------------------------------------------------------------- emit
    def emit(
        self, engine: int, kind: int, name: int, flops: float, nbytes: float, dur: float, deps: tuple[int, ...],
        op: int, dtype: int, alloc: float = 0.0, alloc_core: int = 0, free: float = 0.0, free_core: int = 0,
        route: int = -1,
    ) -> int:
        """Append one instruction; returns its id.  ``deps`` are ids of earlier instructions."""
        i = len(self.engine)
        self.engine.append(engine)
        self.kind.append(kind)
        self.name.append(name)
        self.flops.append(flops)
        self.nbytes.append(nbytes)
        self.dur.append(dur)
        self.deps.append(deps)
        self.alloc.append(alloc)
        self.alloc_core.append(alloc_core)
        self.free.append(free)
        self.free_core.append(free_core)
        self.route.append(route)
        self.args.append(self._args_id(op, route))
        self.dtype.append(dtype)
        if kind != K_DMA:
            kinds = self.kind
            for d in deps:
                if kinds[d] == K_DMA:
                    self.flow_from.append(d)
                    self.flow_to.append(i)
        return i

    def add_free(self, instr: int, nbytes: float, core: int) -> None:
        """Make ``instr`` also release ``nbytes`` (known only once its tile's last user is known)."""
        if self.free[instr] and self.free_core[instr] != core:
            raise ValueError("an instruction frees SRAM on one core only")
        self.free[instr] += nbytes
        self.free_core[instr] = core

    # ------------------------------------------------------------- reading
    def streams(self) -> dict[int, list[str]]:
        """Per-engine instruction listing with explicit semaphore waits and signals.

        Each engine pair (producer, consumer) shares one semaphore; a producer instruction that
        someone waits on signals it, and the consumer waits for the count that signal reaches.
        """
        sem_of: dict[tuple[int, int], int] = {}
        sem_count: dict[int, int] = {}
        signal_value: dict[tuple[int, int], int] = {}  # (instr, sem) -> value after its signal
        consumers: dict[int, set[int]] = {}
        for i, deps in enumerate(self.deps):
            for d in deps:
                pe, ce = self.engine[d], self.engine[i]
                if pe != ce:
                    consumers.setdefault(d, set()).add(ce)
        out: dict[int, list[str]] = {e: [] for e in range(len(self.machine.engines))}
        lines_by_instr: dict[int, list[str]] = {}
        for i in range(len(self)):
            e = self.engine[i]
            lines: list[str] = []
            for d in self.deps[i]:
                pe = self.engine[d]
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
            lines_by_instr[i] = lines
            out[e].extend(lines)
        return out

    def describe(self, i: int) -> str:
        kind = KIND_NAMES[self.kind[i]]
        s = f"{kind} {self.names[self.name[i]]}"
        if self.kind[i] == K_DMA:
            src, dst = self.routes[self.route[i]]
            s += f" {int(self.nbytes[i])}B {src}->{dst}"
        else:
            s += f" {self.flops[i]:.0f}flop {self.dur[i]:.1f}ns"
        return s
