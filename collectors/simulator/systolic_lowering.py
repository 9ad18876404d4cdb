"""Lower a GEMM layer onto a systolic array the way SCALE-Sim runs it, and simulate it.

:mod:`collectors.simulator.systolic_memory` says, from the layer's shape and the array's SRAMs,
which compute rows each DRAM prefetch must arrive before and how many outputs each row writes.
This module turns that into a program for the discrete-event engine on a machine built from the
array itself (:func:`systolic_array_spec`: ``rows x cols`` MACs at the clock, nothing inherited
from a preset), so the engine's DMA queues and DRAM produce the stalls:

* a DMA queue per SCALE-Sim interface (IFMAP reads, filter reads, OFMAP writes, plus the final
  OFMAP flush, below), each moving ``bandwidth`` words per cycle, with a 1-cycle cost per transfer
  (SCALE-Sim's port latency: a prefetch of ``n`` lines occupies its port ``n + 1`` cycles);
* the read queues issue their prefetches back to back from cycle 0 - the first fills the active
  half of the buffer, each later one the prefetch half - and never wait for buffer space, because
  SCALE-Sim times every prefetch right after the previous one (``read_buffer.new_prefetch``);
* the array runs the layer's demand rows (one per cycle: the fold model of
  :mod:`collectors.simulator.systolic`) as matmul instructions split wherever something has to
  be waited for: a row that needs a prefetch waits for that load.  SCALE-Sim charges such a wait
  twice (``read_buffer.service_reads`` adds a positive wait to its offset a second time); that
  second charge, taken from :func:`collectors.simulator.systolic_memory.scalesim_timing`, is an
  explicit instruction ("prefetch stall counted twice") so it shows in the trace as what it is;
* OFMAP: every output row written goes into the OFMAP SRAM (``ws``/``is`` partial sums
  included); each time more than half of it is used, the queue drains half the buffer to DRAM;
  compute that would overfill the buffer waits for the drain in flight, and what is left drains
  after the last row.  SCALE-Sim times that final flush from the last compute cycle even while a
  drain is still in flight (``write_buffer.empty_all_buffers``), so it gets a queue of its own;
  and it starts a drain only for an output that arrives after the previous drain ended, so a drain
  that could not start before the last row is part of the flush instead (found by simulating the
  layer until that count settles, :func:`_triggered_drains`).

The SRAM halves are accounted here, not by the engine's SRAM allocator (the loads reserve
nothing), since SCALE-Sim's prefetches are not bounded by free space either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from collectors.simulator.machine import Machine, SimOptions
from collectors.simulator.program import K_DMA, K_MATMUL, Program, Segment
from collectors.simulator.systolic_memory import (
    ACTIVE_FRACTION,
    LayerMemory,
    ScaleSimTiming,
    layer_memory,
    scalesim_timing,
)
from profiler.hardware import DmaSpec, HardwareSpec, MemoryLevel, SystolicArray

#: DMA queue of each SCALE-Sim interface; the final OFMAP flush has its own (see the module docstring).
Q_IFMAP, Q_FILTER, Q_OFMAP, Q_FLUSH = 0, 1, 2, 3
QUEUES = 4


@dataclass(frozen=True)
class SystolicConfig:
    """A systolic array with SCALE-Sim's memory system (sizes in words, bandwidth in words/cycle)."""

    rows: int
    cols: int
    dataflow: str
    ifmap_words: int
    filter_words: int
    ofmap_words: int
    bandwidth: int
    word_bytes: int = 1
    clock_hz: float = 1e9
    dtype: str = "int8"

    def __post_init__(self) -> None:
        if self.dataflow not in ("os", "ws", "is"):
            raise ValueError(f"dataflow must be os, ws or is, not {self.dataflow!r}")
        if min(self.rows, self.cols, self.bandwidth, self.word_bytes) < 1:
            raise ValueError("array size, bandwidth and word size must be positive")
        if min(self.ifmap_words, self.filter_words, self.ofmap_words) < 2:
            raise ValueError("each SRAM needs at least two words (an active and a prefetch half)")


def systolic_array_spec(cfg: SystolicConfig) -> HardwareSpec:
    """A one-core machine that is exactly the array: its peak is ``2 x rows x cols x clock``."""
    port = float(cfg.bandwidth * cfg.word_bytes * cfg.clock_hz)
    sram = float((cfg.ifmap_words + cfg.filter_words + cfg.ofmap_words) * cfg.word_bytes)
    return HardwareSpec(
        name=f"systolic-{cfg.rows}x{cfg.cols}-{cfg.dataflow}",
        description=f"{cfg.rows}x{cfg.cols} systolic array ({cfg.dataflow}) with SCALE-Sim's double-buffered SRAMs",
        clock_hz=cfg.clock_hz,
        cores=1,
        peak_flops={cfg.dtype: 2.0 * cfg.rows * cfg.cols * cfg.clock_hz},
        memory=(MemoryLevel("sram", port * QUEUES * 64, sram, "sram"),
                MemoryLevel("dram", QUEUES * port, 1 << 40, "dram")),
        dma=DmaSpec(QUEUES, port, 1e9 / cfg.clock_hz),
        systolic=SystolicArray(cfg.rows, cfg.cols, cfg.dataflow),
        sources={"config": "the SCALE-Sim config being modelled (array, SRAM sizes, interface bandwidth)"},
    )


def _stores(mem: LayerMemory, cfg: SystolicConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """OFMAP drains: (row that triggers each, words each moves, first word each, words per drain)."""
    total = cfg.ofmap_words
    drain = total - math.ceil(total * ACTIVE_FRACTION)
    per = max(1, math.ceil(drain / cfg.bandwidth)) * cfg.bandwidth
    written = int(mem.ofmap_words)
    wc = np.cumsum(mem.ofmap_per_row, dtype=np.int64)
    trig_words = np.arange(drain + 1, written + 1, per, dtype=np.int64)
    trig_rows = np.searchsorted(wc, trig_words, side="left")
    first = np.arange(trig_rows.size, dtype=np.int64) * per
    sizes = np.minimum(per, written - first)
    return trig_rows, sizes, first, per


@dataclass
class Lowered:
    """What :func:`lower_layer` appended: the op's slice args and where its drains and last row are."""

    info: dict[str, Any]
    drain_ids: list[int]  # segment-local ids of the drains during compute
    last_row: int  # segment-local id of the last compute instruction (-1: none)


def lower_layer(prog: Program, mem: LayerMemory, cfg: SystolicConfig, label: str,
                triggered: int | None = None, timing: ScaleSimTiming | None = None) -> Lowered:
    """Append one layer's segment (one op) to ``prog``.

    ``triggered``: how many half-buffer drains happen during compute (None: every one whose
    trigger word is written); the rest of the outputs go to the final flush.  ``timing``: SCALE-Sim's
    own accounting of the layer (:func:`scalesim_timing`), for the stalls it charges twice.
    """
    m = prog.machine
    seg = Segment()
    rows = seg.rows
    dti = prog.dtype_id(cfg.dtype)
    r_load = prog.route_id("dram", "sram")
    r_store = prog.route_id("sram", "dram")
    mx = m.matrix(0)
    wb = cfg.word_bytes
    ns_per_cycle = 1e9 / cfg.clock_hz
    n_rows = mem.demand_rows
    macs_per_row = (mem.M * mem.N * mem.K) / max(n_rows, 1)

    # --- read streams: back-to-back prefetches per operand ------------------------------------
    load_ids: dict[str, list[int]] = {}
    need_rows: dict[str, np.ndarray] = {}
    for op, q, name in (("ifmap", Q_IFMAP, "load IFMAP"), ("filter", Q_FILTER, "load filter")):
        rs = mem.reads[op]
        nid = prog.name_id(name)
        ids = []
        for i in range(1 + rs.prefetches):
            nb = float((rs.first_lines if i == 0 else rs.lines) * rs.words_per_line * wb)
            ids.append(len(rows))
            rows.append((m.dma(0, q), K_DMA, nid, 0.0, nb, 0.0, (), 0.0, 0, r_load, dti))
        load_ids[op] = ids
        need_rows[op] = np.concatenate([[0], rs.miss_rows]).astype(np.int64)

    # --- OFMAP drains and the rows where the buffer would overflow -----------------------------
    trig_rows, sizes, _, per = _stores(mem, cfg)
    if triggered is not None:
        trig_rows, sizes = trig_rows[:triggered], sizes[:triggered]
    wc = np.cumsum(mem.ofmap_per_row, dtype=np.int64)
    # the buffer is full (the array stalls until the drain in flight ends) at output T + j * per
    full_words = cfg.ofmap_words + np.arange(trig_rows.size + 1, dtype=np.int64) * per
    full_rows = np.searchsorted(wc, full_words, side="left")

    cuts = np.unique(np.concatenate([[0, n_rows], need_rows["ifmap"], need_rows["filter"], trig_rows,
                                     full_rows]))
    cuts = cuts[(cuts >= 0) & (cuts <= n_rows)]
    starts, ends = cuts[:-1], cuts[1:]
    # the last prefetch each piece needs, per operand (pieces start at every row that needs one)
    need = {op: np.searchsorted(need_rows[op], starts, side="right") - 1 for op in need_rows}
    # drains that must have started for a piece's last output to find room: storing output x leaves
    # T - x + per * started words free and the array stalls at 0; drain j starts when drain j-1 ends
    out_last = wc[np.maximum(ends - 1, 0)]
    must_start = np.where(out_last >= cfg.ofmap_words, (out_last - cfg.ofmap_words) // per + 1, 0)
    nid_mm = prog.name_id("systolic rows")
    nid_st = prog.name_id("drain OFMAP")
    piece_ids = np.empty(starts.size, np.int64)
    store_ids: list[int] = []
    trig_piece = np.searchsorted(ends, trig_rows, side="left")  # piece that writes the trigger word
    next_store = 0
    # SCALE-Sim charges a row that waited for a prefetch the wait a second time; that second charge is
    # an explicit matrix-engine instruction before the row, after the loads it waited for
    extra = dict(zip(timing.extra_rows.tolist(), timing.extra_cycles.tolist(), strict=True)) if timing else {}
    nid_echo = prog.name_id("prefetch stall counted twice")
    for p in range(starts.size):
        deps = [load_ids["ifmap"][int(need["ifmap"][p])], load_ids["filter"][int(need["filter"][p])]]
        x = extra.get(int(starts[p]), 0)
        if x:
            rows.append((mx, K_MATMUL, nid_echo, 0.0, 0.0, x * ns_per_cycle, tuple(deps), 0.0, 0, -1, dti))
        js = int(must_start[p]) - 2
        if 0 <= js < len(store_ids):
            deps.append(store_ids[js])
        n = int(ends[p] - starts[p])
        piece_ids[p] = len(rows)
        rows.append((mx, K_MATMUL, nid_mm, 2.0 * macs_per_row * n, 0.0, n * ns_per_cycle, tuple(deps), 0.0, 0, -1,
                     dti))
        while next_store < trig_rows.size and trig_piece[next_store] <= p:
            store_ids.append(len(rows))
            rows.append((m.dma(0, Q_OFMAP), K_DMA, nid_st, 0.0, float(sizes[next_store] * wb), 0.0,
                         (int(piece_ids[p]),), 0.0, 0, r_store, dti))
            next_store += 1
    left = int(mem.ofmap_words) - int(sizes.sum())
    last_row = int(piece_ids[-1]) if piece_ids.size else -1
    flush_deps = (last_row,) if last_row >= 0 else ()
    while left > 0:
        nb = min(per, left)
        rows.append((m.dma(0, Q_FLUSH), K_DMA, nid_st, 0.0, float(nb * wb), 0.0, flush_deps, 0.0, 0, r_store, dti))
        left -= nb
    info = {
        "op": label, "kind": "systolic_gemm", "M": mem.M, "N": mem.N, "K": mem.K, "dataflow": mem.dataflow,
        "array": [mem.rows, mem.cols], "compute_cycles": n_rows,
        "dram_words": {op: mem.reads[op].dram_words for op in ("ifmap", "filter")} | {"ofmap": mem.ofmap_words},
        "prefetches": {op: mem.reads[op].prefetches + 1 for op in ("ifmap", "filter")},
        "drains": int(trig_rows.size),
    }
    prog.add_op(seg, info)
    return Lowered(info, store_ids, last_row)


def systolic_machine(cfg: SystolicConfig) -> Machine:
    spec = systolic_array_spec(cfg)
    return Machine(spec, SimOptions(systolic=True, systolic_rows=cfg.rows, systolic_cols=cfg.cols,
                                    dataflow=cfg.dataflow, flows=False, reuse=False))


def _triggered_drains(mem: LayerMemory, cfg: SystolicConfig, label: str, timing: ScaleSimTiming) -> int:
    """How many drains start during compute: a drain SCALE-Sim would only trigger with an output
    written after the previous drain ended, so one that cannot start before the last compute row
    ends never happens there (its words go out with the final flush).  Found by simulating the
    layer alone until the count stops changing."""
    from collectors.simulator.engine import run

    machine = systolic_machine(cfg)
    keep: int | None = None
    for _ in range(4):
        prog = Program(machine)
        low = lower_layer(prog, mem, cfg, label, keep, timing)
        ids = low.drain_ids
        if not ids:
            return 0
        res = run(prog, machine)
        end = float(res.end[low.last_row])
        new = int(np.count_nonzero(res.start[np.asarray(ids)] + 1e9 / cfg.clock_hz < end))
        if new == len(ids):
            return new
        keep = new
    return int(keep or 0)


def simulate_systolic_layers(layers: list[tuple[str, int, int, int]], cfg: SystolicConfig) -> Any:
    """Simulate GEMM layers ``(name, M, N, K)`` one after another; returns the simulator's SimResult."""
    from collectors.simulator.api import SimResult, build_trace_for
    from collectors.simulator.engine import run

    machine = systolic_machine(cfg)
    prog = Program(machine)
    for name, M, N, K in layers:  # noqa: N806
        mem = layer_memory(M, N, K, cfg.rows, cfg.cols, cfg.dataflow, cfg.ifmap_words, cfg.filter_words,
                           cfg.bandwidth)
        timing = scalesim_timing(mem, cfg.ofmap_words, cfg.bandwidth)
        lower_layer(prog, mem, cfg, name, _triggered_drains(mem, cfg, name, timing), timing)
    res = run(prog, machine)
    trace, stats = build_trace_for(prog, machine, res, "systolic layers")
    return SimResult(trace, int(stats["total_ns"]), int(stats["total_cycles"]), stats, prog)


def layer_cycles(name: str, M: int, N: int, K: int, cfg: SystolicConfig) -> int:  # noqa: N803
    """Simulated cycles of one layer from an idle array (first prefetch to last OFMAP write)."""
    return int(simulate_systolic_layers([(name, M, N, K)], cfg).total_cycles)
