"""Server memory of the dashboard's timeline per trace, against the Arrow trace it serves.

In a fresh process per size: build ``ui.demo.demo_trace(n, cores)``, hand freed heap back to the
system (``malloc_trim``) and read VmRSS, then build everything the timeline keeps for the trace
(per-track index, decoded columns, stall mask, track tree, the rows) and draw one full view.  Two
numbers against the Arrow tables' bytes: the RSS this adds, and an exact account of the arrays the
timeline holds that are not views of Arrow buffers (numpy arrays whose data lie outside every
Arrow buffer of the trace).  The
analysis report the header and findings need is not included: it belongs to the analyzers and
``bench_ui`` measures the whole server at smaller sizes.

Goal (issue 12): <= 3x the Arrow trace at 15M events.  ``--events=15000000`` (default 15M, quick 1M).
"""

from __future__ import annotations

from typing import Any

from bench._util import report


def _kb(field: str) -> float:
    with open("/proc/self/status") as f:
        return float(next(ln for ln in f if ln.startswith(field + ":")).split()[1])


def _measure(n: int, cores: int, q: Any) -> None:
    import ctypes
    import gc

    import numpy as np

    from bench._util import _reset_peak_rss
    from ui import viewdata as vd
    from ui.demo import demo_trace
    from ui.state import LoadedTrace

    trace = demo_trace(n, cores=cores)
    gc.collect()
    tables = (trace.slices, trace.counters, trace.flows, trace.tracks)
    arrow = sum(t.nbytes for t in tables)
    ranges = [(b.address, b.address + b.size) for t in tables for c in t.columns for ch in c.chunks
              for b in ch.buffers() if b is not None]
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    _reset_peak_rss()
    before = _kb("VmRSS")
    lt = LoadedTrace(0, "bench", trace)
    rows = vd.rows_for(lt, set())
    s, e = lt.index.span
    vd.view_payload(lt, rows, s, e, 1400, 0, min(len(rows), 40))
    gc.collect()
    after, peak = _kb("VmRSS"), _kb("VmHWM")

    def own(a: Any) -> int:
        if not isinstance(a, np.ndarray):
            return 0
        p = a.__array_interface__["data"][0]
        return 0 if any(lo <= p < hi for lo, hi in ranges) else int(a.nbytes)

    ix = lt.index
    arrays = [v for v in vars(ix).values() if isinstance(v, np.ndarray)]
    arrays += [a for pair in ix.counters.values() for a in pair]
    arrays += [v for v in lt.columns.values() if isinstance(v, np.ndarray)] + [lt.stall_mask]
    seen: dict[int, np.ndarray] = {id(a): a for a in arrays}
    owned = sum(own(a) for a in seen.values())
    q.put({"slices": trace.slices.num_rows, "rows": len(rows), "arrow_MB": arrow / 2**20,
           "held_MB": (after - before) / 1024, "peak_MB": (peak - before) / 1024, "owned_MB": owned / 2**20})


def measure(n: int, cores: int) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(n, cores, q))
    p.start()
    out: dict[str, Any] = q.get()
    p.join()
    return out


def main(quick: bool = False, events: int | None = None) -> None:
    n = events or (1_000_000 if quick else 15_000_000)
    cores = 2 if n < 5_000_000 else 176
    m = measure(n, cores)
    report("ui_memory", [{
        "what": f"timeline state for {m['slices']:,} slices / {m['rows']} rows", "arrow_MB": m["arrow_MB"],
        "held_MB": m["held_MB"], "held_ratio": m["held_MB"] / m["arrow_MB"], "peak_ratio": m["peak_MB"] / m["arrow_MB"],
        "arrays_MB": m["owned_MB"], "arrays_ratio": m["owned_MB"] / m["arrow_MB"],
        "goal": "<= 3x the Arrow trace"}])


if __name__ == "__main__":
    import sys

    arg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--events=")), None)
    main(quick="--quick" in sys.argv, events=int(float(arg)) if arg else None)
