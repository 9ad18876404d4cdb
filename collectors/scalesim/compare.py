"""Run our simulator configured like a SCALE-Sim config, layer by layer, and line the totals up.

How a SCALE-Sim config maps onto :class:`collectors.simulator.SimOptions`:

* array rows/cols and dataflow -> ``systolic_rows``/``systolic_cols``/``dataflow`` with
  ``systolic=True``: the matrix engine times tiles with :mod:`collectors.simulator.systolic`,
  which reproduces SCALE-Sim's compute cycles exactly;
* SCALE-Sim reads IFMAP and filter from DRAM on two ports and writes OFMAP on a third, each at
  ``bandwidth`` words per cycle -> three DMA queues of ``bandwidth x word size x clock`` bytes/s,
  a DRAM that can feed all three at once, and no per-transfer latency (SCALE-Sim has none);
* SRAM: the three SCALE-Sim buffers together -> ``sram_bytes`` of one core.

When the SRAMs hold a layer's operands, SCALE-Sim prefetches all of A and B before cycle 0, computes,
then drains C: one tile, single-buffered.  The workload is therefore one Gemm tile of the whole layer
(``buffering=1``), which is the same schedule in our simulator.

One SCALE-Sim modelling choice we do not copy: with ``ws`` and ``is`` it writes a partial-sum OFMAP
to DRAM after every fold of the reduction dimension (DRAM OFMAP writes = ``M x N x ceil(K / rows)``),
where the simulator accumulates in SRAM.  Those writes partly overlap compute, so they cannot simply
be subtracted: :func:`compare_with_simulator` also reports SCALE-Sim's own prefetch and compute
phases followed by a single OFMAP write (``scalesim_total_single_ofmap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors.scalesim.config import ScaleSimConfig
from collectors.scalesim.reader import ScaleSimResult
from collectors.scalesim.topology import Layer
from collectors.simulator import Gemm, SimOptions, simulate
from profiler.hardware import HardwareSpec, load_spec

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


def compare_with_simulator(result: ScaleSimResult, spec: HardwareSpec | None = None) -> list[dict[str, Any]]:
    """One row per layer: SCALE-Sim's cycles next to the simulator's for the same layer and config."""
    cfg = result.config
    if cfg is None:
        raise ValueError("comparing needs the SCALE-Sim config the run used")
    rows: list[dict[str, Any]] = []
    for lr in result.layers:
        if lr.layer is None:
            raise ValueError("comparing needs the topology the run used")
        setup = simulator_setup(cfg, lr.layer, spec)
        sim = simulate(setup.workload, setup.spec, options=setup.options)
        m, n, _ = lr.layer.gemm
        extra_words = max(lr.dram_count("ofmap") - m * n, 0)
        extra_cycles = -(-extra_words // cfg.bandwidth)
        starts = [int(s.cycles[0]) for op, s in lr.dram.items() if op != "ofmap" and s.cycles.size]
        prefetch = -min([0, *starts])
        matrix_ns = float(sim.stats.get("busy_ns_by_kind", {}).get("matrix", 0.0))
        rows.append({
            "layer": lr.name, "M": m, "N": n, "K": lr.layer.gemm[2], "dataflow": cfg.dataflow,
            "scalesim_total": lr.overall_cycles, "scalesim_compute": lr.compute_cycles,
            "scalesim_stall": lr.stall_cycles, "scalesim_partial_sum_drain": extra_cycles,
            "scalesim_prefetch": prefetch,
            # SCALE-Sim's prefetch and compute phases followed by one write of the final OFMAP.
            "scalesim_total_single_ofmap": prefetch + lr.compute_cycles + 1 + -(-m * n // cfg.bandwidth),
            "sim_total": sim.total_cycles, "sim_matrix": int(round(matrix_ns * setup.spec.clock_hz / 1e9)),
        })
    return rows

