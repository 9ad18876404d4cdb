"""SCALE-Sim v3 against our simulator on the same GEMMs: wall time and cycles.

Both sides get the same configuration (array size, dataflow, SRAM sizes, DRAM bandwidth; see
:mod:`collectors.scalesim.compare`).  SCALE-Sim is timed as the subprocess run alone (its cycle
traces written, nothing parsed) and as the full collector (run plus reading its traces into a
Trace); our side is ``simulate()`` producing its trace, and the analytical fold model
(``systolic_gemm_cycles``) as the floor.  The cycle columns show how far the totals agree.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._util import median_time, report
from collectors.scalesim import GemmLayer, ScaleSimConfig, find_scalesim_python, run_scalesim_result
from collectors.scalesim.compare import simulator_setup
from collectors.scalesim.runner import run_scalesim_process
from collectors.scalesim.to_trace import build_trace
from collectors.scalesim.topology import write_layout, write_topology
from collectors.simulator import simulate
from collectors.simulator.systolic import systolic_gemm_cycles

#: (M, N, K) on a 32x32 output-stationary array.
SHAPES = [(256, 256, 256), (1024, 64, 128), (64, 64, 1024)]
QUICK_SHAPES = [(64, 64, 64)]


def _one(cfg: ScaleSimConfig, m: int, n: int, k: int, repeat: int) -> dict[str, object]:
    """Time SCALE-Sim, the collector, the simulator and the fold model on one GEMM layer."""
    layer = GemmLayer(f"g{m}x{n}x{k}", m, n, k)
    work = Path(tempfile.mkdtemp(prefix="bench-scalesim-"))
    try:
        cfg_path = cfg.write(work / "c.cfg")
        topo, _ = write_topology([layer], work / "t.csv")
        lay = write_layout(work / "l.csv")

        def scalesim_only() -> None:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            run_scalesim_process(cfg_path, topo, lay, out, gemm=True)

        t_ss, _ = median_time(scalesim_only, repeat=repeat, warmup=0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    held: dict[str, Any] = {}

    def collector() -> None:
        held["res"] = run_scalesim_result(cfg, [layer])
        held["trace"] = build_trace(held["res"])

    t_col, _ = median_time(collector, repeat=repeat, warmup=0)
    setup = simulator_setup(cfg, layer)

    def ours() -> None:
        held["sim"] = simulate(setup.workload, setup.spec, options=setup.options)

    t_sim, _ = median_time(ours, repeat=max(repeat, 5), warmup=1)
    t_model, _ = median_time(lambda: systolic_gemm_cycles(m, n, k, cfg.rows, cfg.cols, cfg.dataflow), repeat=5)
    ss_cycles = held["res"].layers[0].overall_cycles
    sim_cycles = held["sim"].total_cycles
    return {
        "gemm": f"{m}x{n}x{k}", "array": cfg.array_name,
        "scalesim_s": t_ss, "collector_s": t_col, "simulator_s": t_sim, "fold_model_s": t_model,
        "scalesim/simulator": t_ss / t_sim, "collector/scalesim": t_col / t_ss,
        "scalesim_cycles": ss_cycles, "simulator_cycles": sim_cycles,
        "cycle_error_pct": 100.0 * (sim_cycles - ss_cycles) / ss_cycles,
    }


def main(quick: bool = False) -> None:
    if find_scalesim_python(required=False) is None:
        print("bench_scalesim: SCALE-Sim interpreter not found (set SCALESIM_PYTHON); skipped", file=sys.stderr)
        return
    cfg = ScaleSimConfig(rows=32, cols=32, dataflow="os", ifmap_sram_kb=512, filter_sram_kb=512, ofmap_sram_kb=256,
                         bandwidth=32, run_name="bench")
    repeat = 1 if quick else 3
    report("scalesim", [_one(cfg, m, n, k, repeat) for m, n, k in (QUICK_SHAPES if quick else SHAPES)])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
