"""Cost of one region: both SDK implementations (C and pure Python; enabled, disabled; a bare
``region("step")``, ``region()`` with numbers and labels as an accelerator kernel carries them
(flops and bytes different on every call), a pre-built ``Region``, a ``@traced`` call of an empty
function) vs a bare function call, torch.profiler.record_function in an active profile, and
viztracer.

All variants run in the same process, timed in thread CPU time (the wall clock of a shared
machine counts other processes too), and the report names the machine and its load (at the start
and at the end).  The SDK variants run interleaved round by round, so load on the machine
hits them alike; each number is the median over rounds of (loop time / iterations), and
``net_ns`` subtracts the cost of an empty loop iteration measured the same way.  Goals: an enabled
region, bare or with numbers, <= 300 ns and >= 20x cheaper than record_function; disabled close
to a bare call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._util import machine, report

#: The loops are timed in this thread's CPU time: on a shared machine the wall clock also counts
#: the time other processes hold the CPU, which says nothing about what a region costs.
_clock = time.thread_time_ns
GOAL_NS = 300.0
GOAL_RATIO = 20.0
FORMS = ("region()", "region(numbers)", "Region", "@traced")


def _plain() -> None:
    return None


def _loops(n: int) -> dict[str, Callable[[], None]]:
    from collectors.runtime import _recorder

    def empty() -> None:
        for _ in range(n):
            pass

    def bare_call() -> None:
        f = _plain
        for _ in range(n):
            f()

    out: dict[str, Callable[[], None]] = {"empty": empty, "bare_call": bare_call}
    for name, impl in _recorder.IMPLEMENTATIONS.items():
        out[f"{name} region()"] = _region_loop(impl.region, n)
        out[f"{name} region(numbers)"] = _metrics_loop(impl.region, n)
        out[f"{name} Region"] = _prebuilt_loop(impl.Region(f"bench_prebuilt_{name}"), n)
        out[f"{name} @traced"] = _call_loop(impl.wrap(_plain, impl.Region(f"bench_traced_{name}")), n)
    return out


def _call_loop(fn: Callable[[], None], n: int) -> Callable[[], None]:
    def loop() -> None:
        f = fn
        for _ in range(n):
            f()

    return loop


def _region_loop(region: Any, n: int) -> Callable[[], None]:
    def loop() -> None:
        for _ in range(n):
            with region("bench_region"):
                pass

    return loop


def _metrics_loop(region: Any, n: int) -> Callable[[], None]:
    values = [float(2 * i + 1) for i in range(n)]  # a new number on every call

    def loop() -> None:
        for v in values:
            with region("bench_matmul", flops=v, bytes=v, dtype="bf16", engine="mxu"):
                pass

    return loop


def _prebuilt_loop(pre: Any, n: int) -> Callable[[], None]:
    def loop() -> None:
        for _ in range(n):
            with pre:
                pass

    return loop


def _per_call(fns: dict[str, Callable[[], None]], n: int, rounds: int,
              enter: Callable[[], Any] | None = None, leave: Callable[[Any], None] | None = None) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            ctx = enter() if enter else None
            t0 = _clock()
            fn()
            dt = _clock() - t0
            if leave:
                leave(ctx)
            samples[name].append(dt / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def main(quick: bool = False) -> None:
    from collectors.runtime import _recorder, session

    n = 20_000 if quick else 200_000
    rounds = 5 if quick else 15
    load_before = machine()["load_1_5_15"]
    loops = _loops(n)
    impls = list(_recorder.IMPLEMENTATIONS)
    off = _per_call(loops, n, rounds)

    def start_sdk() -> Any:
        return session().start()

    def stop_sdk(s: Any) -> None:
        s.stop()

    on = _per_call({k: v for k, v in loops.items() if k != "bare_call"}, n, rounds, start_sdk, stop_sdk)
    rf = _record_function(n // 20, max(3, rounds // 3))
    vz = _viztracer(n // 4, max(3, rounds // 3))

    empty = off["empty"]
    bare = off["bare_call"] - empty
    rows: list[dict[str, Any]] = [
        {"variant": f"load average (1/5/15 min) before / after: {load_before} / {machine()['load_1_5_15']}; "
                    "times are thread CPU time"},
        {"variant": "empty loop iteration", "ns_per_call": empty, "net_ns": 0.0},
        {"variant": "bare function call", "ns_per_call": off["bare_call"], "net_ns": bare},
    ]
    if rf is not None:
        rows.append({"variant": "torch record_function (profiling)", "ns_per_call": rf, "net_ns": rf - empty})
    if vz is not None:
        rows.append({"variant": "viztracer plain call", "ns_per_call": vz, "net_ns": vz - empty})
    enabled: dict[str, float] = {}
    for impl in impls:
        for form in FORMS:
            key = f"{impl} {form}"
            rows.append({"variant": f"sdk[{impl}] {form} disabled", "ns_per_call": off[key],
                         "net_ns": off[key] - empty})
            enabled[key] = on[key] - on["empty"]
            rows.append({"variant": f"sdk[{impl}] {form} enabled", "ns_per_call": on[key], "net_ns": enabled[key]})
    for key, cost in enabled.items():
        impl, form = key.split(" ", 1)
        if form == "@traced":  # a call plus a region: compared with the bare call below
            continue
        cost = max(cost, 1e-9)
        if rf is not None:
            ratio = (rf - empty) / cost
            ok = cost <= GOAL_NS and ratio >= GOAL_RATIO
            rows.append({"variant": f"ratio record_function / sdk[{impl}] {form} enabled", "ratio": ratio,
                         "goal": f"{'met' if ok else 'MISSED'} (<= {GOAL_NS:.0f} ns, >= {GOAL_RATIO:.0f}x)"})
        if vz is not None:
            rows.append({"variant": f"ratio viztracer / sdk[{impl}] {form} enabled", "ratio": (vz - empty) / cost})
    for impl in impls:
        for form in FORMS:
            key = f"{impl} {form}"
            rows.append({"variant": f"ratio sdk[{impl}] {form} disabled / bare call",
                         "ratio": (off[key] - empty) / max(bare, 1e-9)})
    if "c" in impls and "python" in impls:
        for form in ("region()", "region(numbers)", "Region"):
            rows.append({"variant": f"ratio sdk[python] / sdk[c] {form} enabled",
                         "ratio": enabled[f"python {form}"] / max(enabled[f"c {form}"], 1e-9)})
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
            t0 = _clock()
            loop()
            out.append((_clock() - t0) / n)
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
        t0 = _clock()
        loop()
        dt = _clock() - t0
        tracer.stop()
        tracer.clear()
        out.append(dt / n)
    return statistics.median(out)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
