"""Shared benchmark helpers: medians of repeated timings, peak memory in a child process, reports."""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _status_kb(field: str) -> float | None:
    """A ``/proc/self/status`` value in kB (Linux), None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where Linux does not allow it.

    Why: a spawned child inherits the parent's ``ru_maxrss`` across fork+exec on Linux, so a child
    of a big parent would report the parent's peak, not its own.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _child(target: Callable[..., Any], args: tuple[Any, ...], q: Any) -> None:
    gc.collect()
    own = _reset_peak_rss() and _status_kb("VmHWM") is not None
    before = _status_kb("VmRSS") if own else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    target(*args)
    dt = time.perf_counter() - t0
    after = _status_kb("VmHWM") if own else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put({"seconds": dt, "peak_rss_mb": (after or 0.0) / 1024, "baseline_rss_mb": (before or 0.0) / 1024})


def peak_memory(target: Callable[..., Any], *args: Any) -> dict[str, float]:
    """Run ``target(*args)`` in a fresh process; return its time and peak RSS (MB).

    ``peak_rss_mb`` is the child's own peak (VmHWM after a reset, so nothing inherited from this
    process), the interpreter and imports included; ``baseline_rss_mb`` is its RSS before ``target``.

    ``target`` must be a module-level function (it is pickled to the child).
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(target, args, q))
    p.start()
    out = q.get()
    p.join()
    return out  # type: ignore[no-any-return]


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, memory, load, Python and OS.

    Benchmarks on a shared machine are noisy; the load average at the time says how noisy.
    """
    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            mem_gb = round(int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:
        avail = os.cpu_count() or 0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu, "cores": avail, "memory_gb": mem_gb, "load_1_5_15": [round(x, 2) for x in load],
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def machine_line() -> str:
    m = machine()
    return (f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, load {'/'.join(map(str, m['load_1_5_15']))}, "
            f"Python {m['python']}, {m['os']}")


def report(name: str, rows: list[dict[str, Any]]) -> None:
    """Print rows as an aligned table, with the machine they were measured on, and save them to
    bench/results/NAME.json."""
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print(f"\n== {name}")
    print(machine_line())
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"python": sys.version, "machine": machine(), "rows": rows}, indent=2, default=str))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
