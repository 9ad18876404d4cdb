"""Streaming JSON import: peak memory and time against the normal reader, under an address-space limit.

``python -m bench.bench_streaming`` writes a Kineto-style trace (CPU ops with shapes, runtime
launches, GPU kernels on streams, ac2g flows) of ``--gb`` gigabytes, then in fresh child processes:

* both readers on a smaller file (``--small-mb``) for scale: peak RSS per MB of JSON;
* both readers on the big file under ``RLIMIT_AS`` = ``--limit-gb`` (0: no limit), reporting file
  size, events, wall time and peak RSS, or the MemoryError when the reader does not fit.

What it shows: the streaming reader turns each piece into columns at once and keeps decoded
events only for B/E, instants, counters and metadata, so its peak follows the columnar trace
(about 2.4x the JSON size for this Kineto-style file, whose args text is most of the trace)
instead of the normal reader's ~5.5x; under a limit the normal reader exceeds, it still reads
the big file.  The children run with one malloc arena and Arrow's system allocator so that the
address-space limit measures memory in use, not reservations.

``main(quick=True)`` uses 64 MB / 16 MB files and no limit (a smoke run).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench._util import report

HEADER = {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "totalGlobalMem": 85e9}],
          "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 1}}
TAIL = {"traceName": "synthetic", "displayTimeUnit": "ms", "baseTimeNanoseconds": 1_700_000_000_000_000_000}
OPS = [("aten::mm", [[512, 1024], [1024, 1024]]), ("aten::add", [[512, 1024], [512, 1024]]),
       ("aten::relu", [[512, 1024]]), ("aten::linear", [[512, 1024], [1024, 1024], [1024]])]


def _group(k: int) -> list[dict[str, Any]]:
    """One op: cpu_op, its launch, its kernel and the ac2g flow pair (6 events, ~1.4 kB)."""
    name, dims = OPS[k % len(OPS)]
    t = 1000.0 + k * 20.0
    return [
        {"ph": "X", "cat": "cpu_op", "name": name, "pid": 1234, "tid": 1234, "ts": t, "dur": 12.5,
         "args": {"External id": k, "Record function id": 0, "Sequence number": k, "Fwd thread id": 0,
                  "Input Dims": dims, "Input type": ["float"] * len(dims), "Ev Idx": k}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1234, "tid": 1234, "ts": t + 2,
         "dur": 4.0, "args": {"External id": k, "cbid": 211, "correlation": k}},
        {"ph": "X", "cat": "kernel", "name": f"ampere_sgemm_128x64_nn_{k % 7}", "pid": 0, "tid": 7,
         "ts": t + 9, "dur": 8.25, "args": {"External id": k, "queued": 0, "device": 0, "context": 1, "stream": 7,
                                            "correlation": k, "registers per thread": 126, "shared memory": 16384,
                                            "blocks per SM": 0.5, "warps per SM": 2.0, "grid": [8, 16, 1],
                                            "block": [128, 1, 1], "est. achieved occupancy %": 6}},
        {"ph": "s", "id": k, "pid": 1234, "tid": 1234, "ts": t + 2, "cat": "ac2g", "name": "ac2g"},
        {"ph": "f", "id": k, "pid": 0, "tid": 7, "ts": t + 9, "cat": "ac2g", "name": "ac2g", "bp": "e"},
        {"ph": "X", "cat": "python_function", "name": f"torch/nn/modules/linear.py(114): forward {k % 13}",
         "pid": 1234, "tid": 1234, "ts": t - 1, "dur": 15.0, "args": {"Python id": k, "Python parent id": k // 2}},
    ]


def generate(path: Path, target_bytes: int) -> int:
    """Write a Kineto-style JSON file of about ``target_bytes``; returns its event count."""
    n = 0
    k = 0
    with open(path, "wb") as f:
        f.write(orjson.dumps(HEADER)[:-1] + b', "traceEvents": [\n')
        size = f.tell()
        first = True
        while size < target_bytes:
            evs: list[bytes] = []
            for _ in range(2000):
                evs += [orjson.dumps(e) for e in _group(k)]
                k += 1
            chunk = (b"" if first else b",\n") + b",\n".join(evs)
            first = False
            f.write(chunk)
            size += len(chunk)
            n += len(evs)
        meta = [{"ph": "M", "name": "process_name", "pid": 1234, "tid": 0, "args": {"name": "python"}},
                {"ph": "M", "name": "thread_name", "pid": 1234, "tid": 1234, "args": {"name": "main"}}]
        f.write(b",\n" + b",\n".join(orjson.dumps(m) for m in meta) + b"\n], " + orjson.dumps(TAIL)[1:])
    return n + 2


def _status_kb(key: str) -> float | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return None


def _child(how: str, path: str, limit: int, q: Any) -> None:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from profiler.formats import read_trace

    gc.collect()
    before = _status_kb("VmRSS") or 0.0
    t0 = time.perf_counter()
    try:
        t = read_trace(path, stream=(how == "streaming"))
        out: dict[str, Any] = {"events": t.num_events, "slices": t.slices.num_rows, "flows": t.flows.num_rows,
                               "dropped": t.metadata.import_stats.events_dropped}
    except MemoryError:
        out = {"events": "MemoryError"}
    except Exception as exc:  # e.g. ArrowMemoryError under the limit
        out = {"events": f"{type(exc).__name__}"}
    out.update(seconds=time.perf_counter() - t0, peak_rss_mb=(_status_kb("VmHWM") or 0.0) / 1024,
               baseline_rss_mb=before / 1024)
    q.put(out)


def run_child(how: str, path: Path, limit: int = 0) -> dict[str, Any]:
    """Import ``path`` in a fresh process (optionally under RLIMIT_AS = ``limit`` bytes)."""
    for k, v in (("MALLOC_ARENA_MAX", "1"), ("OMP_NUM_THREADS", "1"), ("ARROW_DEFAULT_MEMORY_POOL", "system")):
        os.environ.setdefault(k, v)  # the spawned child inherits these
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(how, str(path), limit, q))
    p.start()
    p.join()
    return q.get() if not q.empty() else {"events": f"child exited {p.exitcode}"}


def main(quick: bool = False, gb: float = 1.0, small_mb: float = 129, limit_gb: float = 4.0,
         workdir: str | None = None) -> None:
    if quick:
        gb, small_mb, limit_gb = 64 / 1024, 16, 0.0
    d = Path(workdir or tempfile.mkdtemp(prefix="bench-stream-"))
    big, small = d / "big.pt.trace.json", d / "small.pt.trace.json"
    t0 = time.perf_counter()
    n_big = generate(big, int(gb * (1 << 30)))
    n_small = generate(small, int(small_mb * (1 << 20)))
    print(f"generated {big.stat().st_size / 2**20:.0f} MB ({n_big} events) and {small.stat().st_size / 2**20:.0f} MB "
          f"({n_small} events) in {time.perf_counter() - t0:.0f} s", flush=True)
    limit = int(limit_gb * (1 << 30))
    rows: list[dict[str, Any]] = []
    try:
        for how, path, lim in (("normal", small, 0), ("streaming", small, 0), ("normal", big, limit),
                               ("streaming", big, limit)):
            r = run_child(how, path, lim)
            mb = path.stat().st_size / 2**20
            rows.append({"reader": how, "file_mb": round(mb), "limit_gb": lim / 2**30 if lim else None, **r,
                         "peak_per_file_mb": r["peak_rss_mb"] / mb})
            print(rows[-1], flush=True)
    finally:
        for p in (big, small):
            p.unlink(missing_ok=True)
    report("streaming" + ("_quick" if quick else ""), rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gb", type=float, default=1.0, help="size of the big file")
    ap.add_argument("--small-mb", type=float, default=129, help="size of the file the normal reader gets")
    ap.add_argument("--limit-gb", type=float, default=4.0, help="RLIMIT_AS for the big-file children")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(a.quick, a.gb, a.small_mb, a.limit_gb, a.dir)
    sys.exit(0)
