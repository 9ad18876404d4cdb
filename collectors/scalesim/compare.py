"""Run our simulator configured like a SCALE-Sim config, layer by layer, and line the cycles up.

:func:`compare_layers` is the comparison: every layer of a SCALE-Sim result is lowered with
:mod:`collectors.simulator.systolic_lowering` (SCALE-Sim's fold order, its double-buffered
IFMAP/filter prefetch, OFMAP drains with ``ws``/``is`` partial sums, small-SRAM refetches and
stalls; see :mod:`collectors.simulator.systolic_memory`) and run on the discrete-event engine on
a machine that is the configured array, then set next to SCALE-Sim's "Total Cycles (incl.
prefetch)" (first DRAM read to last DRAM write).  A layer of any size works at any SRAM size.

How the config maps (:func:`systolic_config`): array rows/cols and dataflow as they are; each SRAM
in SCALE-Sim's words (one byte each: its memory model hard-wires the word size); the USER-mode
interface bandwidth in words per cycle for all three interfaces.  Convolution layers are run as
their GEMM (``M`` output pixels, ``N`` filters, ``K`` window x channels); SCALE-Sim's im2col IFMAP
repeats addresses across overlapping windows, which a GEMM does not, so its IFMAP SRAM hits can
differ for convolutions with windows larger than 1x1 (measured on a 20x20x16 -> 32, 3x3 layer on a
16x16 array: os within 0.3 %, but ws with 64 KiB SRAMs +70 % and is with 2 KiB +30 %; 1x1
convolutions agree as GEMMs do).

:func:`simulator_setup` is the older whole-layer-as-one-tile mapping onto the general simulator
(kept for ``bench/bench_scalesim.py``); it needs the layer to fit the SRAMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors.scalesim.config import ScaleSimConfig
from collectors.scalesim.reader import ScaleSimResult
from collectors.scalesim.topology import Layer
from collectors.simulator import Gemm, SimOptions
from collectors.simulator.systolic_lowering import SystolicConfig, layer_cycles
from profiler.hardware import DTYPE_BYTES, HardwareSpec, load_spec

#: A spec with a systolic array and an int8 datapath; every figure that matters is overridden.
DEFAULT_SPEC = "edge-npu"


@dataclass(frozen=True)
class SimSetup:
    workload: Gemm
    spec: HardwareSpec
    options: SimOptions


def simulator_setup(cfg: ScaleSimConfig, layer: Layer, spec: HardwareSpec | None = None) -> SimSetup:
    """The simulator workload, spec and options that mirror ``cfg`` running ``layer``."""
    sp = spec or load_spec(DEFAULT_SPEC)
    port = float(cfg.bandwidth * cfg.word_size * sp.clock_hz)  # bytes/s of one SCALE-Sim DRAM port
    opts = SimOptions(
        systolic=True, systolic_rows=cfg.rows, systolic_cols=cfg.cols, dataflow=cfg.dataflow,
        sram_bytes=float((cfg.ifmap_sram_kb + cfg.filter_sram_kb + cfg.ofmap_sram_kb) * 1024),
        dram_bandwidth=3 * port, dma_engines=3, dma_bandwidth=port, dma_latency_ns=0.0, cores=1,
        flows=False, counters=False,
    )
    m, n, k = layer.gemm
    gemm = Gemm(M=m, N=n, K=k, dtype=cfg.dtype, tile_m=m, tile_n=n, tile_k=k, buffering=1, split="none",
                label=layer.name)
    return SimSetup(gemm, sp, opts)


def systolic_config(cfg: ScaleSimConfig) -> SystolicConfig:
    """The simulator's model of the array and memory system ``cfg`` describes."""
    if cfg.interface_bandwidth != "USER":
        raise ValueError("comparing needs InterfaceBandwidth = USER (CALC mode sizes the bandwidth itself)")
    return SystolicConfig(
        rows=cfg.rows, cols=cfg.cols, dataflow=cfg.dataflow,
        ifmap_words=cfg.ifmap_sram_kb * 1024, filter_words=cfg.filter_sram_kb * 1024,
        ofmap_words=cfg.ofmap_sram_kb * 1024, bandwidth=cfg.bandwidth, word_bytes=cfg.word_size,
        clock_hz=cfg.clock_ghz * 1e9, dtype=cfg.dtype if cfg.dtype in DTYPE_BYTES else "int8",
    )


def compare_layers(result: ScaleSimResult) -> list[dict[str, Any]]:
    """One row per layer: SCALE-Sim's total cycles next to the simulator's for the same layer and config.

    ``error_pct`` is ``100 * (ours - SCALE-Sim) / SCALE-Sim``.
    """
    cfg = result.config
    if cfg is None:
        raise ValueError("comparing needs the SCALE-Sim config the run used")
    sc = systolic_config(cfg)
    rows: list[dict[str, Any]] = []
    for lr in result.layers:
        if lr.layer is None:
            raise ValueError("comparing needs the topology the run used")
        m, n, k = lr.layer.gemm
        ours = layer_cycles(lr.name, m, n, k, sc)
        ss = lr.overall_cycles
        rows.append({
            "layer": lr.name, "M": m, "N": n, "K": k, "dataflow": cfg.dataflow, "array": f"{cfg.rows}x{cfg.cols}",
            "scalesim_cycles": ss, "scalesim_compute": lr.compute_cycles, "scalesim_stall": lr.stall_cycles,
            "sim_cycles": ours, "error_pct": 100.0 * (ours - ss) / ss if ss else 0.0,
        })
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """The per-layer table ``profiler scalesim --compare`` prints, with a summary line."""
    head = f"{'layer':<24} {'M':>6} {'N':>6} {'K':>6} {'SCALE-Sim':>12} {'ours':>12} {'error %':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['layer'][:24]:<24} {r['M']:>6} {r['N']:>6} {r['K']:>6} {r['scalesim_cycles']:>12,} "
                     f"{r['sim_cycles']:>12,} {r['error_pct']:>+8.1f}")
    if rows:
        errs = [abs(r["error_pct"]) for r in rows]
        within = sum(e <= 10.0 for e in errs)
        lines.append(f"{within}/{len(rows)} layers within 10 %, max |error| {max(errs):.1f} %, "
                     f"mean |error| {sum(errs) / len(errs):.1f} %")
    return "\n".join(lines)
