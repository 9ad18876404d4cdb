"""Turn a simulated run into a :class:`profiler.Trace` and the simulator's own accounting.

Everything is columnar: one ``add_slices`` for the instructions (so builder slice id ==
instruction id, which the flows and the stall ``waits_for`` rely on), one for the stalls, one
``add_counters`` per counter track.  The accounting in ``metadata.extra["simulator"]`` is computed
from the same rounded nanoseconds that go into the trace, so analyzers can match it exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collectors.simulator.engine import RunResult
from collectors.simulator.machine import Machine
from collectors.simulator.program import K_DMA, K_MATMUL, K_VECTOR, Program
from profiler import Trace, TraceBuilder


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
    kind = np.asarray(prog.kind, dtype=np.int8)
    tracks = np.asarray(eng_track, dtype=np.int64)
    names = np.asarray(prog.names, dtype=object)
    name_idx = np.asarray(prog.name, dtype=np.int64)
    is_dma = kind == K_DMA
    flops = np.asarray(prog.flops, dtype=np.float64)
    flops_col = np.where(is_dma, np.nan, flops)
    nbytes = np.asarray(prog.nbytes, dtype=np.float64)
    cats = np.asarray(["matmul", "vector", "dma"], dtype=object)
    dtypes = np.asarray(prog.dtypes, dtype=object)
    args = np.asarray(prog.args_strings, dtype=object)
    if n:
        b.add_slices(tracks[engine], start, dur, names[name_idx], cats[kind], flops_col, nbytes,
                     dtypes[np.asarray(prog.dtype, dtype=np.int64)], args[np.asarray(prog.args, dtype=np.int64)])

    # stalls
    n_st = len(res.stall_engine)
    stall_ns: dict[str, int] = {}
    stall_count: dict[str, int] = {}
    if n_st:
        s_e = np.asarray(res.stall_engine, dtype=np.int64)
        s_ts = np.rint(np.asarray(res.stall_start)).astype(np.int64)
        s_dur = np.rint(np.asarray(res.stall_end)).astype(np.int64) - s_ts
        by = res.stall_by
        pk, pe = prog.kind, prog.engine
        causes = []
        s_names = []
        s_args = []
        for j in range(n_st):
            p = by[j]
            # the consumer is whatever ran next on the engine; its kind equals the engine's kind
            cons_kind = K_DMA if machine.engines[int(s_e[j])].kind == "dma" else K_MATMUL
            cause = "dma" if pk[p] == K_DMA else ("compute" if cons_kind == K_DMA else "semaphore")
            what = prog.names[prog.name[p]]
            causes.append(cause)
            s_names.append(f"stall: wait {what}")
            s_args.append(f'{{"cause":"{cause}","waits_for":{p},"waits_for_name":"{what}",'
                          f'"waits_for_engine":"{_engine_label(machine, pe[p])}"}}')
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
        b.add_flows(prog.flow_from, prog.flow_to, ["dma"] * len(prog.flow_from))

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
    mat = kind == K_MATMUL
    vec = kind == K_VECTOR
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
