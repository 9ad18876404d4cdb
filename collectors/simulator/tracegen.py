"""Turn a simulated run into a :class:`profiler.Trace` and the simulator's own accounting.

Everything is columnar: one ``add_slices`` for the instructions (so builder slice id ==
instruction id, which the flows and the stall ``waits_for`` rely on), one for the stalls, one
``add_counters`` per counter track.  The accounting in ``metadata.extra["simulator"]`` is computed
from the same rounded nanoseconds that go into the trace, so analyzers can match it exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from collectors.simulator.engine import RunResult
from collectors.simulator.machine import Machine
from collectors.simulator.program import K_DMA, K_MATMUL, K_VECTOR, Program
from profiler import Trace, TraceBuilder


def _dict(indices: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32()), pa.array(values, type=pa.string()))


def _engine_label(machine: Machine, e: int) -> str:
    info = machine.engines[e]
    return f"core{info.core}.{info.kind}" + (str(info.queue) if info.kind == "dma" else "")


def build_trace(prog: Program, machine: Machine, res: RunResult, workload_name: str) -> tuple[Trace, dict[str, Any]]:
    spec = machine.spec
    b = TraceBuilder(source_format="simulator", source=f"simulator:{workload_name}", clock="simulated",
                     hardware=spec.name)
    dev = b.add_track(spec.name, kind="group", device=spec.name, attrs={"hardware": spec.name})
    bw_track = b.add_track("DRAM bandwidth", kind="counter", parent=dev,
                           attrs={"unit": "bytes/s", "capacity": machine.dram_bw})
    eng_track: list[int] = []
    sram_track: list[int] = []
    for c in range(machine.cores):
        core = b.add_track(f"core{c}", kind="group", parent=dev, attrs={"core": c})
        for e, info in enumerate(machine.engines):
            if info.core != c:
                continue
            name = info.kind if info.kind != "dma" else f"dma{info.queue}"
            kind = "dma" if info.kind == "dma" else "compute"
            eng_track.append(b.add_track(name, kind=kind, parent=core,
                                         attrs={"engine": info.kind, "core": c, "queue": info.queue}))
            assert len(eng_track) == e + 1
        sram_track.append(b.add_track("SRAM", kind="memory", parent=core,
                                      attrs={"unit": "bytes", "core": c, "capacity": machine.sram_bytes}))

    n = len(prog)
    start = np.rint(np.asarray(res.start, dtype=np.float64)).astype(np.int64)
    end = np.rint(np.asarray(res.end, dtype=np.float64)).astype(np.int64)
    dur = end - start
    engine = np.asarray(prog.engine, dtype=np.int64)
    kinds = np.asarray(prog.kind, dtype=np.int8)
    tracks = np.asarray(eng_track, dtype=np.int64)
    name_idx = np.asarray(prog.name, dtype=np.int32)
    is_dma = kinds == K_DMA
    flops = np.asarray(prog.flops, dtype=np.float64)
    flops_col = np.where(is_dma, np.nan, flops)
    nbytes = np.asarray(prog.nbytes, dtype=np.float64)
    if n:
        # dictionary arrays straight from the program's string tables: no per-slice Python strings
        b.add_slices(tracks[engine], start, dur, _dict(name_idx, prog.names),
                     _dict(kinds.astype(np.int32), ["matmul", "vector", "dma"]), flops_col, nbytes,
                     _dict(np.asarray(prog.dtype, dtype=np.int32), prog.dtypes),
                     _dict(np.asarray(prog.args, dtype=np.int32), prog.args_strings).cast(pa.string()))

    # stalls
    n_st = len(res.stall_engine)
    stall_ns: dict[str, int] = {}
    stall_count: dict[str, int] = {}
    if n_st:
        s_e = np.asarray(res.stall_engine, dtype=np.int64)
        s_ts = np.rint(np.asarray(res.stall_start)).astype(np.int64)
        s_dur = np.rint(np.asarray(res.stall_end)).astype(np.int64) - s_ts
        by = res.stall_by
        pk, pe, pn = prog.kind, prog.engine, prog.name
        labels = [_engine_label(machine, e) for e in range(len(machine.engines))]
        eng_is_dma = [info.kind == "dma" for info in machine.engines]
        cache: dict[tuple[bool, int, int], tuple[str, str, str]] = {}
        causes = []
        s_names = []
        s_args = []
        for j in range(n_st):
            p = by[j]
            key = (eng_is_dma[int(s_e[j])], pn[p], pe[p])
            hit = cache.get(key)
            if hit is None:
                cause = "dma" if pk[p] == K_DMA else ("compute" if key[0] else "semaphore")
                what = prog.names[pn[p]]
                hit = cache[key] = (cause, f"stall: wait {what}",
                                    f'{{"cause":"{cause}","waits_for_name":"{what}",'
                                    f'"waits_for_engine":"{labels[pe[p]]}","waits_for":')
            causes.append(hit[0])
            s_names.append(hit[1])
            s_args.append(f"{hit[2]}{p}}}")
        keep = s_dur > 0
        b.add_slices(tracks[s_e][keep], s_ts[keep], s_dur[keep], np.asarray(s_names, dtype=object)[keep], "stall",
                     None, None, None, np.asarray(s_args, dtype=object)[keep])
        ca = np.asarray(causes, dtype=object)[keep]
        for cause in sorted(set(ca.tolist())):
            sel = ca == cause
            stall_ns[cause] = int(s_dur[keep][sel].sum())
            stall_count[cause] = int(sel.sum())

    # counters
    opts = machine.options
    total_ns = int(end.max()) if n else 0
    if opts.counters:
        for c in range(machine.cores):
            b.add_counter(sram_track[c], 0, 0.0)
        if res.sram_ts:
            sc = np.asarray(res.sram_core, dtype=np.int64)
            b.add_counters(np.asarray(sram_track, dtype=np.int64)[sc],
                           np.rint(np.asarray(res.sram_ts)).astype(np.int64), np.asarray(res.sram_val))
        b.add_counter(bw_track, 0, 0.0)
        if res.bw_ts:
            b.add_counters(bw_track, np.rint(np.asarray(res.bw_ts)).astype(np.int64), np.asarray(res.bw_val))
    if opts.flows and prog.flow_from:
        nf = len(prog.flow_from)
        b.add_flows(np.fromiter(prog.flow_from, np.int64, nf), np.fromiter(prog.flow_to, np.int64, nf),
                    _dict(np.zeros(nf, dtype=np.int32), ["dma"]).cast(pa.string()))

    # accounting (from the rounded numbers that are in the trace)
    busy: dict[str, int] = {}
    if n:
        per_engine = np.bincount(engine, weights=dur, minlength=len(machine.engines))
        for e in range(len(machine.engines)):
            busy[_engine_label(machine, e)] = int(per_engine[e])
    busy_by_kind: dict[str, int] = {}
    for e, info in enumerate(machine.engines):
        busy_by_kind[info.kind] = busy_by_kind.get(info.kind, 0) + busy.get(_engine_label(machine, e), 0)
    routes = np.asarray([("dram" in r) for r in prog.routes] or [False], dtype=bool)
    route = np.asarray(prog.route, dtype=np.int64)
    dram_sel = is_dma & routes[np.maximum(route, 0)]
    mat = kinds == K_MATMUL
    vec = kinds == K_VECTOR
    total_flops = float(flops[~is_dma].sum())
    stats: dict[str, Any] = {
        "workload": workload_name,
        "hardware": spec.name,
        "cores": machine.cores,
        "total_ns": total_ns,
        "total_cycles": int(round(total_ns * machine.clock_hz / 1e9)),
        "instructions": n,
        "busy_ns": busy,
        "busy_ns_by_kind": busy_by_kind,
        "flops": total_flops,
        "matrix_flops": float(flops[mat].sum()),
        "vector_flops": float(flops[vec].sum()),
        "bytes": float(nbytes[is_dma].sum()),
        "dram_bytes": float(nbytes[dram_sel].sum()),
        "peer_bytes": float(nbytes[is_dma & ~dram_sel].sum()),
        "stall_ns": stall_ns,
        "stall_count": stall_count,
        "peak_sram_bytes": max(res.sram_peak) if res.sram_peak else 0.0,
        "peak_sram_bytes_per_core": list(res.sram_peak),
        "sram_capacity_per_core": machine.sram_bytes,
        "dram_bandwidth": machine.dram_bw,
        "systolic": machine.systolic,
    }
    b.metadata.extra["simulator"] = stats
    trace = b.build()
    stats["events"] = trace.num_events
    return trace, stats
