"""Fleet throughput: traces per second, serial in one process vs a Dask LocalCluster of 2 workers.

Both sides analyze the same generated job (bench/fleet_traces.py: runs x ranks of Kineto JSON)
from a warm Parquet cache (the import is paid once, before timing, as in a fleet run that saw the
files before), with the garbage collector in its default state on both sides.  The cluster is
started before timing (a long-lived scheduler is the deployment this models); its start-up time
is printed apart.  On this 2-core machine two workers can at best double the serial rate.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from analysis.fleet import run_fleet
from bench._util import median_time, report
from bench.fleet_traces import write_job


def main(quick: bool = False) -> None:
    runs, ranks, steps = (2, 8, 100) if quick else (4, 16, 200)
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "jobs", str(Path(tmp) / "cache")
        paths = [str(p) for p in write_job(root, runs, ranks, steps=steps, slow_rank=(1, 3), run_scale={runs - 1: 1.2})]
        t0 = time.perf_counter()
        run_fleet(paths, str(root), cache)  # fills the cache
        first = time.perf_counter() - t0
        serial, _ = median_time(lambda: run_fleet(paths, str(root), cache), repeat=repeat, warmup=0)
        rows = [{"path": "serial (1 process)", "traces": len(paths), "median_s": round(serial, 3),
                 "traces_per_s": round(len(paths) / serial, 1), "vs_serial": 1.0},
                {"path": "serial, first run (imports into the cache)", "traces": len(paths),
                 "median_s": round(first, 3), "traces_per_s": round(len(paths) / first, 1),
                 "vs_serial": round(serial / first, 2)}]
        try:
            from dask.distributed import Client, LocalCluster
        except ModuleNotFoundError:
            rows.append({"path": "dask LocalCluster: dask.distributed not installed"})
            report("fleet", rows)
            return
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            startup = time.perf_counter() - t0

            def mapper(func, items):  # type: ignore[no-untyped-def]
                return client.gather(client.map(func, items, pure=False))

            run_fleet(paths[:4], str(root), cache, mapper=mapper)  # workers import the modules once
            dask_t, _ = median_time(lambda: run_fleet(paths, str(root), cache, mapper=mapper), repeat=repeat,
                                    warmup=0)
        rows.append({"path": "dask LocalCluster, 2 workers", "traces": len(paths), "median_s": round(dask_t, 3),
                     "traces_per_s": round(len(paths) / dask_t, 1), "vs_serial": round(serial / dask_t, 2),
                     "cluster_start_s": round(startup, 2)})
    report("fleet", rows)


if __name__ == "__main__":
    main()
