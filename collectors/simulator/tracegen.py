"""Turn a simulated run into a :class:`profiler.Trace` and the simulator's own accounting.

Everything is columnar and handed to the builder already in the trace's canonical order: one
``add_slices`` for the instructions and stalls merged (an engine runs in program order, so a
stable radix sort by engine orders its slices by time and the stalls fill the gaps), one
``add_counters`` with each track's samples in time order (the initial 0 first), flows between
final slice ids.  The builder then keeps every row where it is, so the stall arg ``waits_for``
is the slice id of the instruction that ended the wait.  The accounting in
``metadata.extra["simulator"]`` is computed from the same rounded nanoseconds that go into the
trace, so analyzers can match it exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from collectors.simulator.engine import RunResult
from collectors.simulator.machine import Machine
from collectors.simulator.program import K_DMA, K_MATMUL, K_VECTOR, Program
from profiler import Trace, TraceBuilder
from profiler.nesting import canonical_order


def _dict(indices: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32()), pa.array(values, type=pa.string()))


def _engine_label(machine: Machine, e: int) -> str:
    info = machine.engines[e]
    return f"core{info.core}.{info.kind}" + (str(info.queue) if info.kind == "dma" else "")


#: the track tree per device layout (see :func:`_tracks`), at most a few layouts per process
_TRACK_TREES: dict[tuple[Any, ...], tuple[list[dict[str, Any]], tuple[int, list[int], list[int]]]] = {}


def _tracks(b: TraceBuilder, machine: Machine) -> tuple[int, list[int], list[int]]:
    """The device's tracks: DRAM bandwidth counter, per core a group with its engines and SRAM.

    Engine tracks are numbered in engine order (engines are core-major), so sorting slices by
    engine sorts them by track.  The tree depends only on the layout below, so it is built once
    per layout and copied into later traces (a 132-core GPU has over a thousand tracks).
    """
    key = (machine.spec.name, machine.dram_bw, machine.sram_bytes, machine.cores, tuple(machine.engines))
    hit = _TRACK_TREES.get(key)
    if hit is None and b.num_tracks == 0:
        scratch = TraceBuilder()
        ids = _add_tracks(scratch, machine)
        if len(_TRACK_TREES) > 16:
            _TRACK_TREES.clear()
        hit = _TRACK_TREES[key] = (scratch.track_rows(), ids)
    if hit is None:
        return _add_tracks(b, machine)
    b.start_tracks(hit[0])
    bw, eng, sram = hit[1]
    return bw, list(eng), list(sram)


def _add_tracks(b: TraceBuilder, machine: Machine) -> tuple[int, list[int], list[int]]:
    spec = machine.spec
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
    return bw_track, eng_track, sram_track


def _engine_sort(engine: np.ndarray, n_eng: int) -> np.ndarray:
    """Stable argsort by engine: 16-bit keys sort by radix (linear), which keeps program order."""
    key = engine.astype(np.int16) if n_eng < (1 << 15) else engine
    return np.argsort(key, kind="stable")


def _canonical_merge(engine: np.ndarray, ts: np.ndarray, dur: np.ndarray, s_e: np.ndarray, s_ts: np.ndarray,
                     s_dur: np.ndarray, n_eng: int) -> np.ndarray:
    """Row order of instructions (ids 0..n-1) and stalls (ids n..) in the trace's canonical order.

    Canonical is (track, ts, longest first, input position).  An engine runs its instructions in
    program order, so a stable sort by engine already orders them by time; each stall fills the
    gap before an instruction of its engine and is merged in by binary search.  The result is
    checked like the builder checks it; where rounding to whole nanoseconds ties two rows the
    general sort decides, so the builder finds the order canonical and keeps the rows as they
    are (builder id == final slice id, which the flows and stall args use).
    """
    n, m = engine.size, s_e.size
    span = int(max(int(ts.max()) if n else 0, int(s_ts.max()) if m else 0)) + 1
    if n_eng * span >= 2**62:
        track = np.concatenate([engine, s_e])
        return canonical_order(track, np.concatenate([ts, s_ts]), np.concatenate([dur, s_dur]))
    order = _engine_sort(engine, n_eng)
    k_inst = engine[order] * span + ts[order]
    if m:
        k_st = s_e * span + s_ts
        st_order = np.argsort(k_st, kind="stable")
        pos = np.searchsorted(k_inst, k_st[st_order], side="left")
        out = np.empty(n + m, dtype=np.int64)
        inst_at = np.arange(n, dtype=np.int64) + np.searchsorted(pos, np.arange(n), side="right")
        out[inst_at] = order
        out[pos + np.arange(m)] = st_order + n
        key = np.concatenate([engine, s_e]) * span + np.concatenate([ts, s_ts])
    else:
        out = order
        key = engine * span + ts
    k = key[out]
    if out.size > 1 and not bool((k[1:] > k[:-1]).all()):
        track = np.concatenate([engine, s_e])
        d = np.concatenate([dur, s_dur])
        return out[canonical_order(track[out], np.concatenate([ts, s_ts])[out], d[out])]
    return out


def build_trace(prog: Program, machine: Machine, res: RunResult, workload_name: str) -> tuple[Trace, dict[str, Any]]:
    """The full-detail trace: one slice per instruction and per stall, counters, flows."""
    spec = machine.spec
    b = TraceBuilder(source_format="simulator", source=f"simulator:{workload_name}", clock="simulated",
                     hardware=spec.name)
    bw_track, eng_track, sram_track = _tracks(b, machine)
    n_eng = len(machine.engines)

    n = len(prog)
    segs = prog.segments
    live = [k for k, sg in enumerate(segs) if len(sg)]
    offsets = prog.offsets()
    arrs = [segs[k].arrays() for k in live]

    def cat(col: str, dtype: type) -> np.ndarray:
        return np.concatenate([a[col] for a in arrs]) if arrs else np.zeros(0, dtype)

    start = np.rint(res.start).astype(np.int64)
    dur = np.rint(res.end).astype(np.int64) - start
    engine = cat("engine", np.int64)
    kinds = cat("kind", np.int8)
    name_i = cat("name", np.int32)
    tracks = np.asarray(eng_track, dtype=np.int64)
    is_dma = kinds == K_DMA
    flops = cat("flops", np.float64)
    nbytes = cat("nbytes", np.float64)
    route = cat("route", np.int64)
    labels = [_engine_label(machine, e) for e in range(n_eng)]

    # stalls: one slice per wait, named after what it waited for
    s_e = res.stall_engine
    s_ts = np.rint(res.stall_start).astype(np.int64)
    s_dur = np.rint(res.stall_end).astype(np.int64) - s_ts
    keep = s_dur > 0
    s_e, s_ts, s_dur, by = s_e[keep], s_ts[keep], s_dur[keep], res.stall_by[keep]
    m = int(s_e.size)

    # every slice in canonical order, so the builder keeps the rows where they are
    rows = _canonical_merge(engine, start, dur, s_e, s_ts, s_dur, n_eng)
    slice_of = np.empty(n + m, dtype=np.int64)  # instruction id (then stall n + j) -> final slice id
    slice_of[rows] = np.arange(n + m, dtype=np.int64)
    is_inst = rows < n

    stall_ns: dict[str, int] = {}
    stall_count: dict[str, int] = {}
    n_names = max(len(prog.names), 1)
    names = list(prog.names)
    st_name = np.zeros(0, dtype=np.int32)
    st_args = pa.array([], type=pa.string())
    if m:
        eng_is_dma = np.asarray([info.kind == "dma" for info in machine.engines], dtype=bool)
        # one class per (waiting engine is a DMA queue, producer's name, producer's engine)
        by_name = name_i[by].astype(np.int64)
        by_eng = engine[by]
        by_dma = is_dma[by]
        code = (eng_is_dma[s_e].astype(np.int64) * n_names + by_name) * n_eng + by_eng
        # classes by a dense table over the (small) code space: linear, no sort of the stalls
        n_codes = 2 * n_names * n_eng
        first_at = np.full(n_codes, m, dtype=np.int64)
        np.minimum.at(first_at, code, np.arange(m, dtype=np.int64))
        uniq = np.flatnonzero(first_at < m)
        idx = first_at[uniq]
        cls_of = np.full(n_codes, -1, dtype=np.int64)
        cls_of[uniq] = np.arange(uniq.size)
        inv = cls_of[code]
        causes = _CAUSES
        cls_cause: list[int] = []
        cls_name: list[int] = []
        cls_prefix: list[str] = []
        name_ids: dict[str, int] = {}
        for u, j in zip(uniq.tolist(), idx.tolist(), strict=True):
            waiter_dma, rest = divmod(u, n_names * n_eng)
            nm, pe = divmod(rest, n_eng)
            cause = 0 if by_dma[j] else (1 if waiter_dma else 2)
            what = prog.names[nm]
            cls_cause.append(cause)
            label = f"stall: wait {what}"
            if label not in name_ids:
                name_ids[label] = len(names)
                names.append(label)
            cls_name.append(name_ids[label])
            cls_prefix.append(f'{{"cause":"{causes[cause]}","waits_for_name":"{what}",'
                              f'"waits_for_engine":"{labels[pe]}","waits_for":')
        st_name = np.asarray(cls_name, dtype=np.int32)[inv]
        # args of the stalls in their final order (strings written front to back, never gathered
        # from a big dictionary); waits_for: the slice id of the instruction that ended the wait
        st_final = rows[rows >= n] - n
        prefix = _dict(inv[st_final].astype(np.int32), cls_prefix).cast(pa.string())
        st_args = pc.binary_join_element_wise(prefix, pa.array(slice_of[by[st_final]]).cast(pa.string()), "}", "")
        stall_ns, stall_count = _stall_totals(np.asarray(cls_cause, dtype=np.int64)[inv], s_dur)

    if n + m:
        inst_at, stall_at = slice_of[:n], slice_of[n:]

        def merged(inst: np.ndarray, stall: np.ndarray, dtype: Any) -> np.ndarray:
            out = np.empty(n + m, dtype=dtype)
            out[inst_at] = inst
            out[stall_at] = stall
            return out

        eng_all = merged(engine, s_e, np.int64)
        ts_all = merged(start, s_ts, np.int64)
        dur_all = merged(dur, s_dur, np.int64)
        name_all = merged(name_i, st_name, np.int32)
        cat_all = merged(kinds.astype(np.int32), np.full(m, 3, dtype=np.int32), np.int32)
        nan_m = np.full(m, np.nan)
        flops_all = merged(np.where(is_dma, np.nan, flops), nan_m, np.float64)
        bytes_all = merged(nbytes, nan_m, np.float64)
        dtype_all = merged(cat("dtype", np.int32), np.zeros(m, dtype=np.int32), np.int32)
        dtype_arr = pa.DictionaryArray.from_arrays(pa.array(dtype_all, mask=~is_inst), pa.array(prog.dtypes or [""]))
        # args: instructions index the per-(op, route) strings, stalls their own string
        if n:
            args_strings, luts = prog.args_strings()
            args_idx = np.concatenate([luts[k][a["route"] + 1] for k, a in zip(live, arrs, strict=True)])
        else:
            args_strings, args_idx = [], np.zeros(0, dtype=np.int32)
        # one gather: instructions from the small per-(op, route) table, stalls from their strings
        # (already in final order, so that part of the gather reads front to back)
        base = len(args_strings)
        args_all = merged(args_idx.astype(np.int64), np.zeros(m, dtype=np.int64), np.int64)
        args_all[~is_inst] = np.arange(base, base + m, dtype=np.int64)
        # decoding a dictionary array gathers the strings several times faster than ``pc.take`` does
        # (2.3M rows from a table of a few thousand: 0.1 s against 1.5-2.8 s)
        table = pa.concat_arrays([pa.array(args_strings, type=pa.string()), st_args])
        args = pa.DictionaryArray.from_arrays(pa.array(args_all.astype(np.int32)), table).cast(pa.string())
        b.add_slices(tracks[eng_all], ts_all, dur_all, _dict(name_all, names),
                     _dict(cat_all, ["matmul", "vector", "dma", "stall"]), flops_all, bytes_all, dtype_arr, args)

    # counters, each track's samples already in time order (segments are placed in time order)
    opts = machine.options
    total_ns = int((start + dur).max()) if n else 0
    if opts.counters:
        zero_ts = np.zeros(machine.cores, dtype=np.int64)
        sc = np.concatenate([np.arange(machine.cores, dtype=np.int64), res.sram_core])
        sts = np.concatenate([zero_ts, np.rint(res.sram_ts).astype(np.int64)])
        sv = np.concatenate([np.zeros(machine.cores), res.sram_val])
        o = _engine_sort(sc, machine.cores)
        trk = np.asarray(sram_track, dtype=np.int64)
        bw_ts = np.concatenate([[0], np.rint(res.bw_ts).astype(np.int64)])
        bw_v = np.concatenate([[0.0], res.bw_val])
        # the bandwidth track comes before every core's tracks
        b.add_counters(np.concatenate([np.full(bw_ts.size, bw_track, dtype=np.int64), trk[sc[o]]]),
                       np.concatenate([bw_ts, sts[o]]), np.concatenate([bw_v, sv[o]]))
    if opts.flows and n:
        ff, ft = _flows(prog, live, arrs, offsets, kinds)
        if ff.size:
            b.add_flows(slice_of[ff], slice_of[ft], _dict(np.zeros(ff.size, dtype=np.int32), ["dma"]).cast(pa.string()))

    # accounting (from the rounded numbers that are in the trace)
    busy: dict[str, int] = {}
    if n:
        per_engine = np.bincount(engine, weights=dur, minlength=n_eng)
        for e in range(n_eng):
            busy[labels[e]] = int(per_engine[e])
    stats = _stats(prog, machine, workload_name, total_ns, n, busy, kinds, flops, nbytes, route, res.sram_peak)
    stats["stall_ns"] = stall_ns
    stats["stall_count"] = stall_count
    stats["detail"] = "full"
    b.metadata.extra["simulator"] = stats
    trace = b.build()
    stats["events"] = trace.num_events
    return trace, stats


_CAUSES = ("dma", "compute", "semaphore")


def _stall_totals(cause: np.ndarray, dur: np.ndarray,
                  n: np.ndarray | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Stall nanoseconds and counts per cause (0 dma, 1 compute, 2 semaphore), causes present only;
    ``n``: waits per record (None: one each)."""
    ns_by = np.bincount(cause, weights=dur, minlength=3)
    n_by = np.rint(np.bincount(cause, weights=n, minlength=3)).astype(np.int64) if n is not None else \
        np.bincount(cause, minlength=3)
    present = sorted({int(c) for c in np.flatnonzero(n_by)}, key=lambda c: _CAUSES[c])
    return ({_CAUSES[c]: int(ns_by[c]) for c in present}, {_CAUSES[c]: int(n_by[c]) for c in present})


def build_summary(prog: Program, machine: Machine, res: RunResult, workload_name: str) -> tuple[Trace, dict[str, Any]]:
    """The summary trace: one slice per op per engine, no per-tile events, counters or flows.

    A slice spans the op's first instruction start to its last instruction end on that engine;
    its flops and bytes are the sums over those instructions, and its args add ``busy_ns`` (the
    rounded instruction durations summed exactly as the full trace's slices would be) and
    ``instructions``.  The accounting (``stats``) is the full trace's, computed from the same
    rounded times, so summary and full detail agree on total time, flops, bytes, busy and stall
    time per engine.  An op sampled at compile time (:mod:`collectors.simulator.sampling`) is one
    synthetic instruction per (engine, kind, route) carrying its extrapolated busy time, flops and
    bytes; ``instructions`` then counts what was placed, and the op's args say ``sampled`` (with
    the instruction count the whole op would have).
    """
    spec = machine.spec
    b = TraceBuilder(source_format="simulator", source=f"simulator:{workload_name}", clock="simulated",
                     hardware=spec.name)
    _, eng_track, _ = _tracks(b, machine)
    n_eng = len(machine.engines)
    n = len(prog)
    segs = prog.segments
    live = [k for k, sg in enumerate(segs) if len(sg)]
    arrs = [segs[k].arrays() for k in live]

    def cat(col: str, dtype: type) -> np.ndarray:
        return np.concatenate([a[col] for a in arrs]) if arrs else np.zeros(0, dtype)

    start = np.rint(res.start).astype(np.int64)
    end = np.rint(res.end).astype(np.int64)
    dur = end - start
    engine = cat("engine", np.int64)
    kinds = cat("kind", np.int8)
    flops = cat("flops", np.float64)
    nbytes = cat("nbytes", np.float64)
    route = cat("route", np.int64)
    is_dma = kinds == K_DMA
    labels = [_engine_label(machine, e) for e in range(n_eng)]

    # one group per (op, engine): instructions of op j are a contiguous id range
    sizes = np.asarray([len(segs[k]) for k in live], dtype=np.int64)
    op_of = np.repeat(np.arange(len(live), dtype=np.int64), sizes)
    key = op_of * n_eng + engine
    n_keys = len(live) * n_eng
    count = np.bincount(key, minlength=n_keys)
    busy_k = np.bincount(key, weights=dur, minlength=n_keys)
    flops_k = np.bincount(key, weights=np.where(is_dma, 0.0, flops), minlength=n_keys)
    bytes_k = np.bincount(key, weights=nbytes, minlength=n_keys)
    first = np.full(n_keys, n, dtype=np.int64)
    np.minimum.at(first, key, np.arange(n, dtype=np.int64))
    last = np.full(n_keys, -1, dtype=np.int64)
    np.maximum.at(last, key, np.arange(n, dtype=np.int64))
    # canonical order: by engine (track), then op (time)
    used = np.flatnonzero(count)
    e_of, j_of = used % n_eng, used // n_eng
    used = used[np.lexsort((j_of, e_of))]
    e_of, j_of = used % n_eng, used // n_eng
    ts = start[first[used]]
    sdur = end[last[used]] - ts
    kind_of = kinds[first[used]].astype(np.int32)
    dtype_of = cat("dtype", np.int32)[first[used]]
    infos = [orjson.dumps(prog.ops[k]).decode() for k in live]
    args = [f'{infos[j][:-1]}{"," if len(infos[j]) > 2 else ""}"busy_ns":{int(bu)},"instructions":{int(c)}}}'
            for j, bu, c in zip(j_of.tolist(), busy_k[used].tolist(), count[used].tolist(), strict=True)]
    op_names = [str(prog.ops[k].get("op", f"op{k}")) for k in live]
    if used.size:
        b.add_slices(np.asarray(eng_track, dtype=np.int64)[e_of], ts, sdur,
                     _dict(j_of.astype(np.int32), op_names),
                     _dict(kind_of, ["matmul", "vector", "dma"]),
                     np.where(kind_of == K_DMA, np.nan, flops_k[used]), bytes_k[used],
                     _dict(dtype_of, prog.dtypes or [""]), pa.array(args, type=pa.string()))

    busy: dict[str, int] = {}
    if n:
        per_engine = np.bincount(engine, weights=dur, minlength=n_eng)
        busy = {labels[e]: int(per_engine[e]) for e in range(n_eng)}
    total_ns = int(end.max()) if n else 0
    stats = _stats(prog, machine, workload_name, total_ns, n, busy, kinds, flops, nbytes, route, res.sram_peak)
    # stall totals as the full trace counts them (waits of at least 1 ns after rounding)
    s_ts = np.rint(res.stall_start).astype(np.int64)
    s_dur = np.rint(res.stall_end).astype(np.int64) - s_ts
    keep = s_dur > 0
    if keep.any():
        eng_is_dma = np.asarray([info.kind == "dma" for info in machine.engines], dtype=bool)
        by = res.stall_by[keep]
        cause = np.where(is_dma[by], 0, np.where(eng_is_dma[res.stall_engine[keep]], 1, 2))
        n = res.stall_n[keep] if res.stall_n is not None else None
        stats["stall_ns"], stats["stall_count"] = _stall_totals(cause, s_dur[keep], n)
    stats["detail"] = "summary"
    b.metadata.extra["simulator"] = stats
    trace = b.build()
    stats["events"] = trace.num_events
    return trace, stats


def _stats(prog: Program, machine: Machine, workload_name: str, total_ns: int, n: int, busy: dict[str, int],
           kinds: np.ndarray, flops: np.ndarray, nbytes: np.ndarray, route: np.ndarray,
           sram_peak: list[float]) -> dict[str, Any]:
    """The accounting in ``metadata.extra["simulator"]`` (same keys at every level of detail)."""
    busy_by_kind: dict[str, int] = {}
    for e, info in enumerate(machine.engines):
        busy_by_kind[info.kind] = busy_by_kind.get(info.kind, 0) + busy.get(_engine_label(machine, e), 0)
    is_dma = kinds == K_DMA
    routes = np.asarray([("dram" in r) for r in prog.routes] or [False], dtype=bool)
    dram_sel = is_dma & routes[np.maximum(route, 0)]
    return {
        "workload": workload_name,
        "hardware": machine.spec.name,
        "cores": machine.cores,
        "total_ns": total_ns,
        "total_cycles": int(round(total_ns * machine.clock_hz / 1e9)),
        "instructions": n,
        "busy_ns": busy,
        "busy_ns_by_kind": busy_by_kind,
        "flops": float(flops[~is_dma].sum()),
        "matrix_flops": float(flops[kinds == K_MATMUL].sum()),
        "vector_flops": float(flops[kinds == K_VECTOR].sum()),
        "bytes": float(nbytes[is_dma].sum()),
        "dram_bytes": float(nbytes[dram_sel].sum()),
        "peer_bytes": float(nbytes[is_dma & ~dram_sel].sum()),
        "stall_ns": {},
        "stall_count": {},
        "peak_sram_bytes": max(sram_peak) if sram_peak else 0.0,
        "peak_sram_bytes_per_core": list(sram_peak),
        "sram_capacity_per_core": machine.sram_bytes,
        "dram_bandwidth": machine.dram_bw,
        "systolic": machine.systolic,
    }


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
