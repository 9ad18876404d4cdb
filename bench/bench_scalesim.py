"""SCALE-Sim v3 against our simulator on the same GEMMs: wall time and cycles.

Both sides get the same configuration (array size, dataflow, SRAM sizes, DRAM bandwidth; see
:mod:`collectors.scalesim.compare`) and are timed under the same conditions, twice:

* cold against cold: a fresh process each run, interpreter start and imports included (what a
  user waits for from the command line).  SCALE-Sim runs through its own API without writing its
  per-cycle traces (``save_disk_space``), ours produces its in-memory trace;
* warm against warm: inside one long-lived process each, after a warm-up run: SCALE-Sim in its own
  interpreter (a driver that times repeated runs), ours in this one.

The full collector (SCALE-Sim writing its cycle traces, then read into a Trace) and the analytical
fold model (``systolic_gemm_cycles``, the floor) are listed beside them; the cycle columns show how
far the totals agree.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._util import median_time, report
from collectors.scalesim import GemmLayer, ScaleSimConfig, find_scalesim_python, run_scalesim_result
from collectors.scalesim.compare import simulator_setup
from collectors.scalesim.to_trace import build_trace
from collectors.scalesim.topology import write_layout, write_topology
from collectors.simulator import simulate
from collectors.simulator.systolic import systolic_gemm_cycles

#: Times ``runs`` SCALE-Sim runs in one process after a warm-up run; prints the list of seconds.
_SCALESIM_WARM = (
    "import json, shutil, sys, time\n"
    "from scalesim.scale_sim import scalesim\n"
    "cfg, topo, layout, out, runs = sys.argv[1:6]\n"
    "times = []\n"
    "for i in range(int(runs) + 1):\n"
    "    shutil.rmtree(out, ignore_errors=True)\n"
    "    t0 = time.perf_counter()\n"
    "    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout, input_type_gemm=True)\n"
    "    s.run_scale(top_path=out)\n"
    "    times.append(time.perf_counter() - t0)\n"
    "print(json.dumps(times[1:]))\n"
)

#: Runs our simulator once on a pickled setup (a fresh process: the cold side).
_SIMULATOR_COLD = (
    "import pickle, sys\n"
    "from collectors.simulator import simulate\n"
    "s = pickle.load(open(sys.argv[1], 'rb'))\n"
    "simulate(s.workload, s.spec, options=s.options)\n"
)

#: (M, N, K) on a 32x32 output-stationary array.
SHAPES = [(256, 256, 256), (1024, 64, 128), (64, 64, 1024)]
QUICK_SHAPES = [(64, 64, 64)]


def _process_time(cmd: list[str], cwd: Path, repeat: int) -> float:
    """Median wall time of a whole process (start, imports, work, exit)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env={**os.environ, "TQDM_DISABLE": "1"})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _one(cfg: ScaleSimConfig, m: int, n: int, k: int, repeat: int) -> dict[str, object]:
    """Time SCALE-Sim and the simulator cold and warm, the collector and the fold model on one GEMM layer."""
    layer = GemmLayer(f"g{m}x{n}x{k}", m, n, k)
    setup = simulator_setup(cfg, layer)
    py = find_scalesim_python()
    assert py is not None
    root = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="bench-scalesim-"))
    try:
        cfg_path = cfg.write(work / "c.cfg")
        topo, _ = write_topology([layer], work / "t.csv")
        lay = write_layout(work / "l.csv")
        (work / "setup.pkl").write_bytes(pickle.dumps(setup))
        from collectors.scalesim.runner import _NO_TRACE_DRIVER

        out = work / "out"
        out.mkdir()
        ss_cold = _process_time([py, "-c", _NO_TRACE_DRIVER, str(cfg_path), str(topo), str(lay), str(out), "gemm"],
                                out, repeat)
        sim_cold = _process_time([sys.executable, "-c", _SIMULATOR_COLD, str(work / "setup.pkl")], root, repeat)
        warm = subprocess.run([py, "-c", _SCALESIM_WARM, str(cfg_path), str(topo), str(lay), str(work / "warm"),
                               str(max(repeat, 3))], cwd=work, check=True, capture_output=True, text=True,
                              env={**os.environ, "TQDM_DISABLE": "1"})
        ss_warm = statistics.median(json.loads(warm.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    held: dict[str, Any] = {}

    def collector() -> None:
        held["res"] = run_scalesim_result(cfg, [layer])
        held["trace"] = build_trace(held["res"])

    t_col, _ = median_time(collector, repeat=repeat, warmup=0)

    def ours() -> None:
        held["sim"] = simulate(setup.workload, setup.spec, options=setup.options)

    sim_warm, _ = median_time(ours, repeat=max(repeat, 3), warmup=1)
    t_model, _ = median_time(lambda: systolic_gemm_cycles(m, n, k, cfg.rows, cfg.cols, cfg.dataflow), repeat=5)
    ss_cycles = held["res"].layers[0].overall_cycles
    sim_cycles = held["sim"].total_cycles
    return {
        "gemm": f"{m}x{n}x{k}", "array": cfg.array_name,
        "scalesim_cold_s": ss_cold, "simulator_cold_s": sim_cold, "cold_scalesim/simulator": ss_cold / sim_cold,
        "scalesim_warm_s": ss_warm, "simulator_warm_s": sim_warm, "warm_scalesim/simulator": ss_warm / sim_warm,
        "collector_cold_s": t_col, "fold_model_s": t_model,
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
