"""Turn a parsed SCALE-Sim run into a :class:`~profiler.model.Trace`.

SCALE-Sim simulates each layer on its own, from cycle 0, with DRAM prefetch at negative cycles.
On the trace the layers run back to back: layer ``i`` starts where layer ``i - 1``'s last DRAM
write ended, and its cycle ``c`` sits at ``start_i + (c - first_cycle_i)``.  Cycles become
nanoseconds at ``clock_ghz`` (default 1 GHz: one cycle is one ns, so durations read as cycles).

Tracks, under one device group "scalesim: <rows>x<cols> <dataflow>":

* ``systolic array`` (compute): one slice per layer lasting its "Total Cycles" (compute plus
  stalls) with FLOPs ``2 * MACs``, bytes = the layer's DRAM traffic, dtype from the word size; the
  memory stalls inside it are child slices named ``stall: memory`` (category ``stall``);
* ``dram ifmap read`` / ``dram filter read`` / ``dram ofmap write`` (dma): runs of consecutive
  active cycles merged into one slice each, bytes = words x word size;
* counters: ``mapping efficiency`` and ``compute utilization`` (fractions, one step per layer) and
  ``dram bandwidth`` (GB/s, i.e. bytes per ns, averaged over fixed buckets of cycles).
"""

from __future__ import annotations

import numpy as np

from collectors.scalesim.config import DEFAULT_CLOCK_GHZ, DEFAULT_WORD_SIZE, WORD_SIZE_DTYPES
from collectors.scalesim.reader import OPERANDS, LayerResult, ScaleSimResult
from collectors.scalesim.topology import ConvLayer
from profiler.builder import TraceBuilder
from profiler.model import Trace

DMA_TRACKS = {"ifmap": "dram ifmap read", "filter": "dram filter read", "ofmap": "dram ofmap write"}
#: Aim for about this many samples on the DRAM bandwidth counter over the whole run.
BANDWIDTH_SAMPLES = 400


def merge_runs(cycles: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge consecutive active cycles: (first cycle, length in cycles, words) per run."""
    if cycles.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    brk = np.flatnonzero(np.diff(cycles) != 1) + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [cycles.size]])
    first = cycles[starts]
    length = cycles[ends - 1] - first + 1
    total = np.add.reduceat(words, starts)
    return first.astype(np.int64), length.astype(np.int64), total.astype(np.int64)


def _layer_extent(lr: LayerResult) -> tuple[int, int]:
    """(first cycle, one past the last cycle) of everything the layer does."""
    lo, hi = 0, lr.compute_cycles + 1
    for s in lr.dram.values():
        if s.cycles.size:
            lo = min(lo, int(s.cycles[0]))
            hi = max(hi, int(s.cycles[-1]) + 1)
    return lo, hi


def build_trace(
    result: ScaleSimResult,
    clock_ghz: float | None = None,
    word_size: int | None = None,
    dtype: str | None = None,
    source: str | None = None,
    hardware: str | None = None,
) -> Trace:
    """Build the trace (see the module docstring); options override the config's values."""
    cfg = result.config
    clock = clock_ghz or (cfg.clock_ghz if cfg else DEFAULT_CLOCK_GHZ)
    wsize = word_size or (cfg.word_size if cfg else DEFAULT_WORD_SIZE)
    dt = dtype or WORD_SIZE_DTYPES.get(wsize, f"{8 * wsize}bit")

    def ns(cyc: np.ndarray | int) -> np.ndarray:
        return np.round(np.asarray(cyc, dtype=np.float64) / clock).astype(np.int64)

    b = TraceBuilder(source_format="scalesim", source=source or str(result.run_dir), clock="simulated",
                     hardware=hardware, stats=result.stats)
    array = cfg.array_name if cfg else f"{result.layers[0].pes or '?'} PEs"
    group = b.add_track(f"scalesim: {array}", kind="group", device=f"scalesim: {array}",
                        attrs={"rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow} if cfg else None)
    comp = b.add_track("systolic array", kind="compute", parent=group, attrs={"engine": "matrix", "unit": "systolic"})
    dma = {op: b.add_track(name, kind="dma", parent=group,
                           attrs={"operand": op, "direction": "write" if op == "ofmap" else "read", "engine": "dma"})
           for op, name in DMA_TRACKS.items()}
    map_ctr = b.add_track("mapping efficiency", kind="counter", parent=group, attrs={"unit": "fraction"})
    util_ctr = b.add_track("compute utilization", kind="counter", parent=group, attrs={"unit": "fraction"})
    bw_ctr = b.add_track("dram bandwidth", kind="counter", parent=group, attrs={"unit": "GB/s"})

    origin = 0  # global cycle where the current layer's first cycle lands
    bw_cycles: list[np.ndarray] = []
    bw_words: list[np.ndarray] = []
    totals = {"compute_cycles": 0, "stall_cycles": 0, "overall_cycles": 0, "dram_bytes": 0}
    for lr in result.layers:
        lo, hi = _layer_extent(lr)
        shift = origin - lo  # layer cycle c -> global cycle c + shift
        layer_bytes = 0
        for op in OPERANDS:
            s = lr.dram.get(op)
            if s is None or s.cycles.size == 0:
                continue
            first, length, words = merge_runs(s.cycles, s.words)
            g0 = first + shift
            t0 = ns(g0)
            nbytes = words * wsize
            b.add_slices(dma[op], t0, ns(g0 + length) - t0, DMA_TRACKS[op], category="dma",
                         bytes=nbytes.astype(np.float64), dtype=dt)
            layer_bytes += int(nbytes.sum())
            bw_cycles.append(s.cycles + shift)
            bw_words.append(s.words)
        m = n = k = None
        if lr.layer is not None:
            m, n, k = lr.layer.gemm
        macs = lr.macs
        args: dict[str, object] = {
            "layer": lr.index, "M": m, "N": n, "K": k,
            "cycles": lr.compute_cycles, "stall_cycles": lr.stall_cycles, "cycles_incl_prefetch": lr.overall_cycles,
            "mapping_efficiency_pct": lr.mapping_efficiency, "compute_util_pct": lr.compute_util,
            "overall_util_pct": lr.overall_util, "macs": macs,
            "sram_reads_ifmap": lr.detail.get("SRAM IFMAP Reads"), "sram_reads_filter": lr.detail.get("SRAM Filter Reads"),
            "sram_writes_ofmap": lr.detail.get("SRAM OFMAP Writes"),
        }
        if isinstance(lr.layer, ConvLayer):
            args["conv"] = {"ifmap": [lr.layer.ifmap_h, lr.layer.ifmap_w], "filter": [lr.layer.filter_h, lr.layer.filter_w],
                            "channels": lr.layer.channels, "filters": lr.layer.num_filters, "stride": lr.layer.stride}
        c0 = int(ns(shift))
        c1 = int(ns(shift + lr.compute_cycles))
        b.add_slice(comp, c0, c1 - c0, lr.name, category="conv" if isinstance(lr.layer, ConvLayer) else "gemm",
                    flops=None if macs is None else 2.0 * macs, bytes=float(layer_bytes), dtype=dt,
                    args={k2: v for k2, v in args.items() if v is not None})
        if lr.stall_dur.size:
            st = ns(lr.stall_start + shift)
            b.add_slices(comp, st, ns(lr.stall_start + lr.stall_dur + shift) - st, "stall: memory", category="stall")
        b.add_counter(map_ctr, c0, lr.mapping_efficiency / 100.0)
        b.add_counter(util_ctr, c0, lr.compute_util / 100.0)
        totals["compute_cycles"] += lr.compute_cycles
        totals["stall_cycles"] += lr.stall_cycles
        totals["overall_cycles"] += lr.overall_cycles
        totals["dram_bytes"] += layer_bytes
        origin += hi - lo
    end = int(ns(origin))
    b.add_counter(map_ctr, end, 0.0)
    b.add_counter(util_ctr, end, 0.0)
    _bandwidth_counter(b, bw_ctr, bw_cycles, bw_words, origin, wsize, clock)
    b.metadata.extra.update({
        "scalesim": {
            "config": cfg.__dict__ if cfg else None,
            "clock_ghz": clock, "word_size": wsize, "layers": len(result.layers),
            "span_cycles": origin, **totals,
        }
    })
    return b.build()


def _bandwidth_counter(b: TraceBuilder, track: int, cycles: list[np.ndarray], words: list[np.ndarray],
                       span: int, wsize: int, clock: float) -> None:
    """DRAM bytes per ns over fixed buckets of cycles (a step counter, 0 after the run)."""
    if span <= 0:
        return
    bucket = max(1, -(-span // BANDWIDTH_SAMPLES))
    nb = -(-span // bucket)
    per = np.zeros(nb, dtype=np.float64)
    for c, w in zip(cycles, words, strict=True):
        np.add.at(per, np.clip(c // bucket, 0, nb - 1), w * wsize)
    starts = np.arange(nb, dtype=np.int64) * bucket
    widths = np.minimum(starts + bucket, span) - starts
    gbps = per / (widths / clock)  # bytes per ns == GB/s
    ts = np.round(np.append(starts, span) / clock).astype(np.int64)
    b.add_counters(track, ts, np.append(gbps, 0.0))
