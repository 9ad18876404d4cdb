"""Run every benchmark module (bench/bench_*.py), each exposing ``main(quick: bool)``.

Exit status as the ``profiler`` command's: 0 ok, 2 an unknown benchmark name (usage).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import time

import bench
from bench._util import machine_line


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run, not for quoting)")
    ap.add_argument("names", nargs="*", help="only these benchmarks (e.g. perfetto json_load)")
    a = ap.parse_args()
    mods = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if a.names:
        known = {m.removeprefix("bench_") for m in mods} | set(mods)
        unknown = [n for n in a.names if n not in known]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(m.removeprefix('bench_') for m in mods)}")
        mods = [m for m in mods if m.removeprefix("bench_") in a.names or m in a.names]
    print(machine_line())
    for m in mods:
        t0 = time.perf_counter()
        importlib.import_module(f"bench.{m}").main(quick=a.quick)
        print(f"[{m} took {time.perf_counter() - t0:.1f} s]")


if __name__ == "__main__":
    main()
