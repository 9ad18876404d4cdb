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
import pyarrow.compute as pc

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
    segs = prog.segments
    live = [k for k, sg in enumerate(segs) if len(sg)]
    offsets = prog.offsets()
    arrs = [segs[k].arrays() for k in live]

    def cat(col: str, dtype: type) -> np.ndarray:
        return np.concatenate([a[col] for a in arrs]) if arrs else np.zeros(0, dtype)

    start = np.rint(res.start).astype(np.int64)
    end = np.rint(res.end).astype(np.int64)
    dur = end - start
    engine = cat("engine", np.int64)
    kinds = cat("kind", np.int8)
    tracks = np.asarray(eng_track, dtype=np.int64)
    is_dma = kinds == K_DMA
    flops = cat("flops", np.float64)
    nbytes = cat("nbytes", np.float64)
    route = cat("route", np.int64)
    if n:
        args_strings, luts = prog.args_strings()
        args_idx = np.concatenate([luts[k][a["route"] + 1] for k, a in zip(live, arrs, strict=True)])
        # dictionary arrays straight from the program's string tables: no per-slice Python strings
        b.add_slices(tracks[engine], start, dur, _dict(cat("name", np.int32), prog.names),
                     _dict(kinds.astype(np.int32), ["matmul", "vector", "dma"]), np.where(is_dma, np.nan, flops),
                     nbytes, _dict(cat("dtype", np.int32), prog.dtypes),
                     _dict(args_idx, args_strings).cast(pa.string()))

    # stalls: one slice per wait, named after what it waited for
    stall_ns: dict[str, int] = {}
    stall_count: dict[str, int] = {}
    if res.stall_engine.size:
        s_e = res.stall_engine
        s_ts = np.rint(res.stall_start).astype(np.int64)
        s_dur = np.rint(res.stall_end).astype(np.int64) - s_ts
        keep = s_dur > 0
        s_e, s_ts, s_dur, by = s_e[keep], s_ts[keep], s_dur[keep], res.stall_by[keep]
        labels = [_engine_label(machine, e) for e in range(len(machine.engines))]
        eng_is_dma = np.asarray([info.kind == "dma" for info in machine.engines], dtype=bool)
        # one class per (waiting engine is a DMA queue, producer's name, producer's engine)
        by_name = cat("name", np.int32)[by].astype(np.int64)
        by_eng = engine[by]
        by_dma = is_dma[by]
        n_names = max(len(prog.names), 1)
        n_eng = len(machine.engines)
        code = (eng_is_dma[s_e].astype(np.int64) * n_names + by_name) * n_eng + by_eng
        uniq, idx, inv = np.unique(code, return_index=True, return_inverse=True)
        causes = ("dma", "compute", "semaphore")
        cls_cause: list[int] = []
        cls_name: list[str] = []
        cls_prefix: list[str] = []
        for u, j in zip(uniq.tolist(), idx.tolist(), strict=True):
            waiter_dma, rest = divmod(u, n_names * n_eng)
            nm, pe = divmod(rest, n_eng)
            cause = 0 if by_dma[j] else (1 if waiter_dma else 2)
            what = prog.names[nm]
            cls_cause.append(cause)
            cls_name.append(f"stall: wait {what}")
            cls_prefix.append(f'{{"cause":"{causes[cause]}","waits_for_name":"{what}",'
                              f'"waits_for_engine":"{labels[pe]}","waits_for":')
        prefix = _dict(inv.astype(np.int32), cls_prefix).cast(pa.string())
        s_args = pc.binary_join_element_wise(prefix, pa.array(by).cast(pa.string()), "}", "")
        b.add_slices(tracks[s_e], s_ts, s_dur, _dict(inv.astype(np.int32), cls_name), "stall", None, None, None,
                     s_args)
        cause_of = np.asarray(cls_cause, dtype=np.int64)[inv]
        ns_by = np.bincount(cause_of, weights=s_dur, minlength=3)
        n_by = np.bincount(cause_of, minlength=3)
        for c in sorted(set(cls_cause), key=lambda c: causes[c]):
            stall_ns[causes[c]] = int(ns_by[c])
            stall_count[causes[c]] = int(n_by[c])

    # counters
    opts = machine.options
    total_ns = int(end.max()) if n else 0
    if opts.counters:
        for c in range(machine.cores):
            b.add_counter(sram_track[c], 0, 0.0)
        if res.sram_ts.size:
            b.add_counters(np.asarray(sram_track, dtype=np.int64)[res.sram_core],
                           np.rint(res.sram_ts).astype(np.int64), res.sram_val)
        b.add_counter(bw_track, 0, 0.0)
        if res.bw_ts.size:
            b.add_counters(bw_track, np.rint(res.bw_ts).astype(np.int64), res.bw_val)
    if opts.flows and n:
        ff, ft = _flows(prog, live, arrs, offsets, kinds)
        if ff.size:
            b.add_flows(ff, ft, _dict(np.zeros(ff.size, dtype=np.int32), ["dma"]).cast(pa.string()))

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


def _flows(prog: Program, live: list[int], arrs: list[dict[str, np.ndarray]], offsets: np.ndarray,
           kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DMA -> consumer flows: those inside each segment, plus an op's first compute instructions
    consuming the previous op's last DMA transfers (the barrier between ops)."""
    sizes = [a["flow_from"].size for a in arrs]
    shift = np.repeat(offsets[live], sizes)
    ff = [np.concatenate([a["flow_from"] for a in arrs]) + shift]
    ft = [np.concatenate([a["flow_to"] for a in arrs]) + shift]
    n_eng = len(prog.machine.engines)
    bf: list[int] = []
    bt: list[int] = []
    barriers = prog.barriers()
    is_dma = (kinds == K_DMA).tolist()
    for k in live:
        dma_b = [x for x in barriers[k] if is_dma[x]]
        if not dma_b:
            continue
        base = int(offsets[k])
        first, _ = prog.segments[k].first_last(n_eng)
        for f in sorted(x for x in first if x >= 0):
            if not is_dma[base + f]:
                bf.extend(dma_b)
                bt.extend([base + f] * len(dma_b))
    ff.append(np.asarray(bf, dtype=np.int64))
    ft.append(np.asarray(bt, dtype=np.int64))
    return np.concatenate(ff), np.concatenate(ft)
