"""Cost of one region: our SDK (enabled, disabled) vs torch.profiler.record_function and viztracer.

All variants run in the same process, interleaved round by round so that load on the machine
hits them alike; each number is the median over rounds of (loop time / iterations) minus the
cost of an empty loop iteration measured the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._util import report


def _plain() -> None:
    return None


def _loops(n: int) -> dict[str, Callable[[], None]]:
    from collectors.runtime import Region, region

    pre = Region("bench_prebuilt")

    def empty() -> None:
        for _ in range(n):
            pass

    def bare_call() -> None:
        f = _plain
        for _ in range(n):
            f()

    def sdk_region() -> None:
        for _ in range(n):
            with region("bench_region"):
                pass

    def sdk_prebuilt() -> None:
        for _ in range(n):
            with pre:
                pass

    return {"empty": empty, "bare_call": bare_call, "sdk_region": sdk_region, "sdk_prebuilt": sdk_prebuilt}


def _per_call(fns: dict[str, Callable[[], None]], n: int, rounds: int,
              enter: Callable[[], Any] | None = None, leave: Callable[[Any], None] | None = None) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            ctx = enter() if enter else None
            t0 = time.perf_counter_ns()
            fn()
            dt = time.perf_counter_ns() - t0
            if leave:
                leave(ctx)
            samples[name].append(dt / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def main(quick: bool = False) -> None:
    from collectors.runtime import session

    n = 20_000 if quick else 200_000
    rounds = 5 if quick else 15
    loops = _loops(n)
    off = _per_call(loops, n, rounds)

    def start_sdk() -> Any:
        return session().start()

    def stop_sdk(s: Any) -> None:
        s.stop()

    on = _per_call({k: loops[k] for k in ("empty", "sdk_region", "sdk_prebuilt")}, n, rounds, start_sdk, stop_sdk)

    rows: list[dict[str, Any]] = []
    empty = off["empty"]
    rows.append({"variant": "empty loop iteration", "ns_per_call": empty, "net_ns": 0.0})
    rows.append({"variant": "bare function call", "ns_per_call": off["bare_call"], "net_ns": off["bare_call"] - empty})
    rows.append({"variant": "sdk region() disabled", "ns_per_call": off["sdk_region"], "net_ns": off["sdk_region"] - empty})
    rows.append({"variant": "sdk Region disabled", "ns_per_call": off["sdk_prebuilt"], "net_ns": off["sdk_prebuilt"] - empty})
    rows.append({"variant": "sdk region() enabled", "ns_per_call": on["sdk_region"], "net_ns": on["sdk_region"] - on["empty"]})
    rows.append({"variant": "sdk Region enabled", "ns_per_call": on["sdk_prebuilt"], "net_ns": on["sdk_prebuilt"] - on["empty"]})

    rf = _record_function(n // 20, max(3, rounds // 3))
    if rf is not None:
        rows.append({"variant": "torch record_function (profiling)", "ns_per_call": rf, "net_ns": rf - empty})
    vz = _viztracer(n // 4, max(3, rounds // 3))
    if vz is not None:
        rows.append({"variant": "viztracer plain call", "ns_per_call": vz, "net_ns": vz - empty})

    ours = {"region()": on["sdk_region"] - on["empty"], "Region": on["sdk_prebuilt"] - on["empty"]}
    for label, cost in ours.items():
        if rf is not None:
            rows.append({"variant": f"ratio record_function / sdk {label}", "ratio": (rf - empty) / cost})
        if vz is not None:
            rows.append({"variant": f"ratio viztracer / sdk {label}", "ratio": (vz - empty) / cost})
    rows.append({"variant": "ratio sdk Region disabled / bare call",
                 "ratio": (off["sdk_prebuilt"] - empty) / max(off["bare_call"] - empty, 1e-9)})
    report("sdk", rows)


def _record_function(n: int, rounds: int) -> float | None:
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile, record_function
    except ImportError:
        return None
    del torch

    def loop() -> None:
        for _ in range(n):
            with record_function("bench"):
                pass

    out = []
    for _ in range(rounds):
        with profile(activities=[ProfilerActivity.CPU]):
            loop()  # warm inside the same profile
            t0 = time.perf_counter_ns()
            loop()
            out.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(out)


def _viztracer(n: int, rounds: int) -> float | None:
    try:
        from viztracer import VizTracer
    except ImportError:
        return None

    def loop() -> None:
        f = _plain
        for _ in range(n):
            f()

    out = []
    for _ in range(rounds):
        tracer = VizTracer(verbose=0, tracer_entries=4 * n + 1000)
        tracer.start()
        t0 = time.perf_counter_ns()
        loop()
        dt = time.perf_counter_ns() - t0
        tracer.stop()
        tracer.clear()
        out.append(dt / n)
    return statistics.median(out)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
