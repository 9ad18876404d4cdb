"""Perfetto export/import speed: our column-wise encoder vs the perfetto package's TraceProtoBuilder.

The input is a realistic accelerator trace (4 devices x 4 cores x 6 engines/queues, ops with nested
kernels carrying flops/bytes/dtype, DMA copies, bandwidth counters, flows from copies to kernels).
The baseline writes the very same TrackEvents (same packets, interning and annotations) through
the generated protobuf classes in the same run, so the ratio compares like with like.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from bench._util import median_time, peak_memory, report
from profiler import Trace, TraceBuilder

DEVICES, CORES = 4, 4
ENGINES = ("mxu", "vpu", "scalar")
QUEUES = ("dma_in", "dma_out", "dma_peer")
DTYPES = ("bf16", "fp8", "fp32", "int8")


def make_trace(n_slices: int, seed: int = 0) -> Trace:
    """About ``n_slices`` slices over ~100 tracks, with counters, flows and nesting up to depth 2."""
    rng = np.random.default_rng(seed)
    b = TraceBuilder(source_format="bench", clock="simulated", hardware="bench-npu")
    compute: list[int] = []
    dma: list[int] = []
    counters: list[int] = []
    for d in range(DEVICES):
        dev = b.add_track(f"npu{d}", kind="group", device=f"npu{d}")
        for c in range(CORES):
            core = b.add_track(f"core{c}", kind="group", parent=dev)
            compute += [b.add_track(e, kind="compute", parent=core, attrs={"engine": e}) for e in ENGINES]
            dma += [b.add_track(q, kind="dma", parent=core, attrs={"queue": i}) for i, q in enumerate(QUEUES)]
        counters.append(b.add_track("hbm bandwidth", kind="counter", parent=dev, attrs={"unit": "GB/s"}))
        counters.append(b.add_track("power", kind="counter", parent=dev, attrs={"unit": "W"}))
    op_names = np.array([f"layer{i}.{op}" for i in range(48) for op in ("matmul", "attention", "norm", "gelu")])
    kernel_names = np.array([f"kernel_{k}" for k in range(64)])

    # Compute tracks: ops of 3 kernels each (op: depth 0, kernels: depth 1), back to back with gaps.
    n_compute = int(n_slices * 0.8)
    per_track = max(1, n_compute // 4 // len(compute))  # groups of (op + 3 kernels)
    for t in compute:
        step = rng.integers(2_000, 6_000, per_track)
        op_ts = np.cumsum(step) - step + int(rng.integers(0, 1000))
        op_dur = (step * 0.8).astype(np.int64)
        k_dur = op_dur // 3 - 10
        k_ts = (op_ts[:, None] + np.arange(3)[None, :] * (op_dur // 3)[:, None] + 5).ravel()
        ts = np.concatenate([op_ts, k_ts])
        dur = np.concatenate([op_dur, np.repeat(k_dur, 3)])
        names = np.concatenate([op_names[rng.integers(0, op_names.size, per_track)],
                                kernel_names[rng.integers(0, kernel_names.size, 3 * per_track)]])
        flops = np.concatenate([np.full(per_track, np.nan), rng.uniform(1e6, 1e9, 3 * per_track).round()])
        nbytes = np.concatenate([np.full(per_track, np.nan), rng.uniform(1e3, 1e7, 3 * per_track).round()])
        dtype = np.array(DTYPES, dtype=object)[rng.integers(0, len(DTYPES), 4 * per_track)]
        dtype[:per_track] = None
        cat = np.array(["op"] * per_track + ["kernel"] * (3 * per_track), dtype=object)
        b.add_slices(t, ts, dur, names, category=cat, flops=flops, bytes=nbytes, dtype=dtype)
    # DMA tracks: flat copies.
    n_dma = n_slices - 4 * per_track * len(compute)
    per_q = max(1, n_dma // len(dma))
    dma_ids = []
    for q in dma:
        step = rng.integers(3_000, 12_000, per_q)
        ts = np.cumsum(step) - step
        dur = (step * rng.uniform(0.2, 0.9, per_q)).astype(np.int64)
        dma_ids.append(b.add_slices(q, ts, dur, "copy", category="dma", bytes=rng.uniform(1e3, 1e6, per_q).round()))
    # Flows: every 20th copy feeds a kernel slice (builder ids of compute slices come first).
    all_dma = np.concatenate(dma_ids)
    src = all_dma[::20]
    dst = rng.integers(0, 4 * per_track * len(compute), src.size)
    b.add_flows(src, dst, name=np.full(src.size, "feeds", dtype=object))
    span = int(per_track * 4_000)
    for c in counters:
        ts = np.arange(0, span, 10_000)
        b.add_counters(c, ts, rng.uniform(0, 100, ts.size))
    return b.build()


def baseline_plan(trace: Trace) -> tuple[list[tuple[int, str]], list[tuple]]:
    """Interned names and every TrackEvent of our encoding as plain tuples (not timed).

    Taken from our own output decoded with the official protos, so the baseline writes exactly the
    same packets.
    """
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace

    from profiler.formats.perfetto_writer import encode_perfetto

    pb = PbTrace.FromString(encode_perfetto(trace))
    names = [(e.iid, e.name) for e in pb.packet[0].interned_data.event_names]
    events = []
    for p in pb.packet:
        if not p.HasField("track_event"):
            continue
        te = p.track_event
        ann = {a.name_iid: a for a in te.debug_annotations}
        events.append((
            p.timestamp, te.type, te.track_uuid, te.name_iid, te.category_iids[0] if te.category_iids else 0,
            ann[1].double_value if 1 in ann else None, ann[2].double_value if 2 in ann else None,
            ann[3].string_value_iid if 3 in ann else 0, list(te.flow_ids), list(te.terminating_flow_ids),
            te.double_counter_value if te.type == 4 else None,
        ))
    return names, events


def protobuilder_bytes(plan: tuple[list[tuple[int, str]], list[tuple]]) -> bytes:
    """The planned TrackEvents through perfetto's TraceProtoBuilder (generated protobuf classes)."""
    from perfetto.trace_builder.proto_builder import TraceProtoBuilder

    names, events = plan
    builder = TraceProtoBuilder()
    head = builder.add_packet()
    head.trusted_packet_sequence_id = 1
    head.sequence_flags = 1
    for iid, name in names:
        e = head.interned_data.event_names.add()
        e.iid, e.name = iid, name
    for ts, kind, uuid, name_iid, cat_iid, flops, nbytes, dtype_iid, flows_out, flows_in, value in events:
        p = builder.add_packet()
        p.timestamp = ts
        p.trusted_packet_sequence_id = 1
        p.sequence_flags = 2
        te = p.track_event
        te.type = kind
        te.track_uuid = uuid
        if name_iid:
            te.name_iid = name_iid
        if cat_iid:
            te.category_iids.append(cat_iid)
        if flops is not None:
            a = te.debug_annotations.add()
            a.name_iid, a.double_value = 1, flops
        if nbytes is not None:
            a = te.debug_annotations.add()
            a.name_iid, a.double_value = 2, nbytes
        if dtype_iid:
            a = te.debug_annotations.add()
            a.name_iid, a.string_value_iid = 3, dtype_iid
        if flows_out:
            te.flow_ids.extend(flows_out)
        if flows_in:
            te.terminating_flow_ids.extend(flows_in)
        if value is not None:
            te.double_counter_value = value
    return bytes(builder.serialize())


def _write_ours(trace: Trace, path: Path) -> None:
    from profiler.formats.perfetto_writer import write_perfetto

    write_perfetto(trace, path)


def _peak_build(n: int, path: str) -> None:
    make_trace(n)


def _peak_write(n: int, path: str) -> None:
    _write_ours(make_trace(n), Path(path))


def _peak_read(path: str) -> None:
    from profiler.formats.perfetto_reader import read_perfetto

    read_perfetto(path)


def main(quick: bool = False) -> None:
    from profiler.formats.perfetto_reader import read_perfetto

    n = 100_000 if quick else 1_000_000
    # Peak memory first, while this process is small: Linux keeps the parent's peak RSS across
    # the exec that starts a child, so measuring after building the big trace here would only
    # report this process' own peak.
    mem_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mem.pftrace"
        built = peak_memory(_peak_build, n, str(path))
        wrote = peak_memory(_peak_write, n, str(path))
        read = peak_memory(_peak_read, str(path))
        mem_rows.append({"what": "peak RSS: build the trace only", "median_s": built["seconds"], "MB": built["peak_rss_mb"]})
        mem_rows.append({"what": "peak RSS: build + write", "median_s": wrote["seconds"], "MB": wrote["peak_rss_mb"]})
        mem_rows.append({"what": "peak RSS: read", "median_s": read["seconds"], "MB": read["peak_rss_mb"]})
    trace = make_trace(n)
    n_events = 2 * trace.slices.num_rows + trace.counters.num_rows + trace.instants.num_rows
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pftrace"
        t_ours, _ = median_time(lambda: _write_ours(trace, path), repeat=3 if quick else 5)
        size = os.path.getsize(path)
        # Baseline on a slice of the events (it is slow); events/s is what is compared.
        base_n = min(n, 100_000)
        base_trace = make_trace(base_n, seed=1)
        base_events = 2 * base_trace.slices.num_rows + base_trace.counters.num_rows
        plan = baseline_plan(base_trace)
        assert len(plan[1]) == base_events
        t_base, _ = median_time(lambda: protobuilder_bytes(plan), repeat=3, warmup=0)
        ours_rate = n_events / t_ours
        base_rate = base_events / t_base
        rows.append({"what": "write ours", "slices": trace.slices.num_rows, "events": n_events,
                     "median_s": t_ours, "Mevents_per_s": ours_rate / 1e6, "MB": size / 1e6})
        rows.append({"what": "write TraceProtoBuilder", "slices": base_trace.slices.num_rows,
                     "events": base_events, "median_s": t_base, "Mevents_per_s": base_rate / 1e6,
                     "MB": len(protobuilder_bytes(plan)) / 1e6})
        rows.append({"what": "ratio ours/baseline", "Mevents_per_s": ours_rate / base_rate})
        # The output decodes with the official protos (baseline_plan did) and reads back completely.
        t_read, _ = median_time(lambda: read_perfetto(path), repeat=1 if quick else 3, warmup=0)
        back = read_perfetto(path)
        assert back.slices.num_rows == trace.slices.num_rows and back.flows.num_rows == trace.flows.num_rows
        rows.append({"what": "read ours", "slices": back.slices.num_rows, "events": n_events,
                     "median_s": t_read, "Mevents_per_s": n_events / t_read / 1e6})
        # The general (packet-by-packet, official protos) reader on the smaller file, for scale.
        import profiler.formats.perfetto_fast as fast

        base_path = Path(tmp) / "base.pftrace"
        _write_ours(base_trace, base_path)
        t_fast_small, _ = median_time(lambda: read_perfetto(base_path), repeat=3, warmup=0)
        saved = fast.decode_ours
        fast.decode_ours = lambda data: None  # type: ignore[assignment]
        try:
            t_general, _ = median_time(lambda: read_perfetto(base_path), repeat=1, warmup=0)
        finally:
            fast.decode_ours = saved
        rows.append({"what": "read ours, column-wise path", "slices": base_trace.slices.num_rows,
                     "events": base_events, "median_s": t_fast_small, "Mevents_per_s": base_events / t_fast_small / 1e6})
        rows.append({"what": "read ours, packet-by-packet path", "slices": base_trace.slices.num_rows,
                     "events": base_events, "median_s": t_general, "Mevents_per_s": base_events / t_general / 1e6})
    report("perfetto", rows + mem_rows)


if __name__ == "__main__":
    main()
