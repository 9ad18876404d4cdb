"""Multi-device simulator speed: trace events per second with 8 devices, beside one device.

Events are the slices and flows of the returned trace; the time is the whole call (op timing
by the single-device simulator, scheduling, trace building).  The baseline is the single-device
simulator on the same model in the same run (full detail, its own events/s).  Op timings are
cached across calls (the layers and devices repeat them): the first call pays them, so both the
cold first call and the warm median are printed.
"""

from __future__ import annotations

import time

from bench._util import median_time, report
from collectors.simulator import LlmDecodeStep, ModelConfig, simulate
from collectors.simulator.system import Collective, ParallelLlm, simulate_system
from collectors.simulator.system import parallel as par
from profiler.hardware import load_spec


def _events(trace) -> int:  # type: ignore[no-untyped-def]
    return trace.slices.num_rows + trace.flows.num_rows


def main(quick: bool = False) -> None:
    spec = load_spec("a100-sxm")
    cfg = ModelConfig.llama7b(layers=8 if quick else 32, batch=8)
    rows = []
    cases = [
        ("llm-decode-7b tp=8", ParallelLlm(cfg, tp=8)),
        ("llm-decode-7b tp=2 pp=4 mb=8", ParallelLlm(cfg, tp=2, pp=4, microbatches=8)),
        ("allreduce 1 GiB on 8 (ring)", Collective("all_reduce", bytes=1 << 30, devices=8)),
        ("alltoall 1 GiB on 8", Collective("all_to_all", bytes=1 << 30, devices=8)),
    ]
    for label, w in cases:
        par._OP_TIMES.clear()
        t0 = time.perf_counter()
        res = simulate_system(w, spec)
        cold = time.perf_counter() - t0
        med, _ = median_time(lambda w=w: simulate_system(w, spec), repeat=3 if quick else 5, warmup=0)
        n = _events(res.trace)
        rows.append({"workload": label, "devices": res.stats["devices"], "events": n, "cold_s": round(cold, 3),
                     "warm_median_s": round(med, 4), "events_per_s_warm": round(n / med),
                     "simulated_ms": round(res.total_ns / 1e6, 3)})
    one = LlmDecodeStep(cfg)
    med, _ = median_time(lambda: simulate(one, spec), repeat=3, warmup=1)
    res1 = simulate(one, spec)
    n1 = _events(res1.trace)
    rows.append({"workload": "baseline: llm-decode-7b on 1 device, full detail", "devices": 1, "events": n1,
                 "warm_median_s": round(med, 4), "events_per_s_warm": round(n1 / med),
                 "simulated_ms": round(res1.total_ns / 1e6, 3)})
    report("system", rows)


if __name__ == "__main__":
    main()
