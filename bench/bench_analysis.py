"""The full analyzer suite on a 10,000,000-slice trace: time and peak memory.

Goal: ``run_all`` under 10 s with a peak RSS increase under 3x the trace's Arrow size.  The trace
is a 4-core accelerator (matrix engine + 2 DMA queues per core, explicit stalls, DMA->compute
flows), built columnar and stored once; a fresh process loads it and samples its own RSS while the
analyzers run, so the number is the analysis' own footprint, not the build's.

Baseline in the same run: HolisticTraceAnalysis' temporal breakdown on a real Kineto trace next to
ours (same trace, same process kind), when ``hta`` is importable.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import median_time, report

CORES = 4
#: The real Kineto trace of the HTA comparison: one stored in the repository (found from this file,
#: whatever the working directory), or any other named by ACCEL_PROFILER_BENCH_KINETO.
KINETO_ENV = "ACCEL_PROFILER_BENCH_KINETO"
KINETO_DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "kineto" / "v100_ns_resolution.json.gz"


def kineto_trace() -> Path | None:
    """The Kineto trace to compare on, or None (the reason is printed)."""
    p = Path(os.environ.get(KINETO_ENV) or KINETO_DEFAULT)
    if not p.is_file():
        print(f"HTA comparison: no Kineto trace at {p} (set {KINETO_ENV})")
        return None
    return p


def synthetic(n_slices: int):  # -> Trace
    """A double-buffered GEMM loop on each core, with a stall before every fourth tile.

    Per tile (period 1000 ns): load A on dma0 and load B on dma1 ahead of the tile, gemm on the
    matrix engine, a flow from load A to the gemm.  3.25 slices per tile.
    """
    from profiler import TraceBuilder

    tiles = max(int(n_slices / (CORES * 3.25)), 4)
    b = TraceBuilder(source_format="synthetic", hardware="dojo-tile", clock="simulated")
    dev = b.add_track("tile", kind="group", device="tile")
    rng = np.random.default_rng(0)
    names = np.array([f"gemm_{i}" for i in range(8)], dtype=object)
    for c in range(CORES):
        core = b.add_track(f"core{c}", kind="group", parent=dev)
        mx = b.add_track("matrix", kind="compute", parent=core, attrs={"engine": "matrix", "core": c})
        d0 = b.add_track("dma0", kind="dma", parent=core, attrs={"engine": "dma", "core": c})
        d1 = b.add_track("dma1", kind="dma", parent=core, attrs={"engine": "dma", "core": c})
        t = np.arange(tiles, dtype=np.int64) * 1000
        jitter = rng.integers(0, 50, tiles)
        stall = (np.arange(tiles) % 4) == 0
        g_ts = t + 100 + np.where(stall, 100, 0)
        g_dur = 700 + jitter
        gid = b.add_slices(mx, g_ts, g_dur, names[np.arange(tiles) % 8], category="matmul",
                           flops=np.full(tiles, 2.0 * 128**3), bytes=np.full(tiles, 2.0 * 128 * 128 * 2), dtype="bf16")
        st = np.flatnonzero(stall)
        b.add_slices(mx, t[st], np.full(st.size, 200), "stall: wait load A", category="stall",
                     args=np.full(st.size, '{"cause":"dma","waits_for_name":"load A","waits_for_engine":"dma0"}', dtype=object))
        la = b.add_slices(d0, t, np.full(tiles, 180), "load A", category="dma", bytes=np.full(tiles, 32768.0), dtype="bf16")
        b.add_slices(d1, t + 200, np.full(tiles, 180), "load B", category="dma", bytes=np.full(tiles, 32768.0), dtype="bf16")
        b.add_flows(la, gid)
    return b.build(validate=False)


def table_nbytes(trace: Any) -> int:
    return int(sum(trace.table(n).nbytes for n in trace.TABLES))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _analyze_child(path: str, out: Any) -> None:
    """In a fresh process: load, then run the suite while a thread samples RSS every 5 ms."""
    from analysis import run_all
    from profiler.model import Trace

    trace = Trace.load(path)
    gc.collect()
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    rep = run_all(trace)
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    peak[0] = max(peak[0], _rss())
    out.put({"seconds": dt, "rss_before_mb": base / 2**20, "peak_delta_mb": (peak[0] - base) / 2**20,
             "findings": len(rep.findings), "trace_mb": table_nbytes(trace) / 2**20})


def _run_child(path: str) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_analyze_child, args=(path, q))
    p.start()
    res = q.get()
    p.join()
    return res  # type: ignore[no-any-return]


def _hta_rows(quick: bool) -> list[dict[str, Any]]:
    src = kineto_trace()
    if src is None:
        return []
    try:
        import logging

        from hta.trace_analysis import TraceAnalysis
    except ImportError as exc:
        print(f"HTA comparison: not run, HolisticTraceAnalysis does not import here ({exc})")
        return []
    from analysis import run_all
    from profiler.formats import read_trace

    tmp = Path(tempfile.mkdtemp())
    shutil.copy(src, tmp / src.name)
    logging.disable(logging.WARNING)
    try:
        def hta() -> Any:
            return TraceAnalysis(trace_dir=str(tmp)).get_temporal_breakdown(visualize=False)

        def ours() -> Any:
            return run_all(read_trace(src), analyzers=("overlap",))

        reps = 1 if quick else 3
        t_hta, _ = median_time(hta, repeat=reps, warmup=0)
        t_ours, _ = median_time(ours, repeat=reps, warmup=0)
        h = hta().iloc[0]
        o = ours().results["overlap"].summary["devices"][0]
        t_full, _ = median_time(lambda: run_all(read_trace(src)), repeat=reps, warmup=0)
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        {"case": f"HTA temporal breakdown ({src.name}, read+analyze)", "median_s": t_hta,
         "idle_pct": float(h["idle_time_pctg"]), "compute_pct": float(h["compute_time_pctg"]),
         "non_compute_pct": float(h["non_compute_time_pctg"]), "ratio_vs_hta": 1.0},
        {"case": "ours: overlap analyzer (read+analyze)", "median_s": t_ours, "idle_pct": round(o["idle_pct"], 2),
         "compute_pct": round(o["compute_pct"], 2), "non_compute_pct": round(o["non_compute_pct"], 2),
         "ratio_vs_hta": t_hta / t_ours},
        {"case": "ours: all analyzers (read+analyze)", "median_s": t_full, "ratio_vs_hta": t_hta / t_full},
    ]


def main(quick: bool = False) -> None:
    n = 1_000_000 if quick else 10_000_000
    t0 = time.perf_counter()
    trace = synthetic(n)
    build_s = time.perf_counter() - t0
    nbytes = table_nbytes(trace)
    tmp = Path(tempfile.mkdtemp()) / "synthetic.trace"
    trace.save(tmp)
    slices = trace.slices.num_rows
    del trace
    gc.collect()
    runs = [_run_child(str(tmp)) for _ in range(1 if quick else 3)]
    shutil.rmtree(tmp.parent, ignore_errors=True)
    secs = sorted(r["seconds"] for r in runs)[len(runs) // 2]
    peak = max(r["peak_delta_mb"] for r in runs)
    rows = [{
        "case": f"run_all on {slices:,} slices", "build_s": round(build_s, 2), "median_s": secs,
        "trace_arrow_mb": round(nbytes / 2**20, 1), "peak_rss_delta_mb": round(peak, 1),
        "peak_over_trace": round(peak / (nbytes / 2**20), 2),
        "goal": "< 10 s, < 3x trace", "met": bool(secs < 10 and peak < 3 * nbytes / 2**20),
        "findings": runs[0]["findings"],
    }]
    report("analysis", rows)
    hta = _hta_rows(quick)
    if hta:
        report("analysis_vs_hta", hta)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
