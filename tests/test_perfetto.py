"""Perfetto export/import: decoded with the official protos, lossless round trip, damage handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackDescriptor, TrackEvent

from profiler import Trace, TraceBuilder
from profiler.errors import TraceFormatError
from profiler.formats import detect_format, read_trace, write_trace
from profiler.formats.perfetto_reader import read_perfetto
from profiler.formats.perfetto_writer import encode_perfetto, write_perfetto


def _accelerator_trace() -> Trace:
    """Two devices, nested slices, ties, zero-duration slices, counters, instants, flows, args."""
    b = TraceBuilder(source_format="test", clock="simulated", hardware="edge-npu")
    mxus, dmas, hbms, vpus = [], [], [], []
    for d in range(2):
        dev = b.add_track(f"npu{d}", kind="group", device=f"npu{d}")
        core = b.add_track("core0", kind="group", parent=dev)
        # Inserted in an order that sorting by name would change: z before a.
        mxus.append(b.add_track("z_mxu", kind="compute", parent=core, attrs={"engine": "mxu"}))
        vpus.append(b.add_track("a_vpu", kind="compute", parent=core))
        dmas.append(b.add_track("dma0", kind="dma", parent=core, attrs={"queue": 0}))
        hbms.append(b.add_track("hbm", kind="counter", parent=dev, attrs={"unit": "GB/s"}))
    mxu, dma = mxus[0], dmas[0]
    b.add_slice(mxu, 1_000, 1_000, "layer0", category="op", args={"shape": [128, 256]})
    k1 = b.add_slice(mxu, 1_000, 400, "matmul", category="kernel", flops=2.5e9, bytes=65536, dtype="bf16")
    b.add_slice(mxu, 1_400, 0, "barrier")  # zero duration exactly where k1 ends
    k2 = b.add_slice(mxu, 1_400, 600, "gelu", flops=1e6, bytes=4096, dtype="fp8")  # ends with outer
    b.add_slice(mxu, 2_000, 500, "layer1")  # starts where layer0 ends
    b.add_slice(mxu, 2_000, 0, "mark")
    b.add_slice(mxu, 2_000, 0, "mark2")
    b.add_slice(mxu, 1_000, 1_000, "same_span_inner")  # identical span: nests inside layer0
    cp = b.add_slice(dma, 500, 450, "copy", category="dma", bytes=1 << 20)
    b.add_slice(mxus[1], 0, 5_000, "remote")
    b.add_slice(vpus[0], 3_000, 100, "softmax")
    b.add_flow(cp, k1, name="feeds")
    b.add_flow(k1, k2)
    b.add_flow(k2, cp)  # a flow that goes back in time
    b.add_counter(hbms[0], 0, 1.5)
    b.add_counter(hbms[0], 1_000, 2.25)
    b.add_counter(mxu, 1_500, 7.0)  # counter on a track that also has slices
    b.add_instant(mxu, 1_200, "sync", category="sync", args={"step": 3})
    b.add_instant(dma, 700, "doorbell")
    return b.build()


def _packets(data: bytes) -> list:
    return list(PbTrace.FromString(data).packet)


def _assert_same(a: Trace, b: Trace) -> None:
    for name in Trace.TABLES:
        ta, tb = a.table(name), b.table(name)
        assert ta.num_rows == tb.num_rows, name
        for col in ta.column_names:
            assert ta[col].to_pylist() == tb[col].to_pylist(), f"{name}.{col}"


def test_official_protos_decode_tracks_events_and_flags() -> None:
    t = _accelerator_trace()
    pkts = _packets(encode_perfetto(t))
    descs = [p.track_descriptor for p in pkts if p.HasField("track_descriptor")]
    # Every track plus one counter child for the track holding both slices and counters.
    assert len(descs) == t.tracks.num_rows + 1
    by_uuid = {d.uuid: d for d in descs}
    tracks = t.tracks_df()
    for row in tracks.itertuples():
        d = by_uuid[row.id + 1]
        assert d.name == row.name
        assert d.sibling_order_rank == row.sort_index
        if row.parent is not None and not np.isnan(row.parent):
            assert d.parent_uuid == int(row.parent) + 1
            assert by_uuid[d.parent_uuid].child_ordering == TrackDescriptor.ChildTracksOrdering.EXPLICIT
    names_in_core = [d.name for d in descs if d.parent_uuid == 2]  # core0 (id 1)
    assert names_in_core == ["z_mxu", "a_vpu", "dma0"]
    assert [by_uuid[u].sibling_order_rank for u in (3, 4, 5)] == [0, 1, 2]
    hbm = [d for d in descs if d.name == "hbm"]
    assert all(d.HasField("counter") and d.counter.unit_name == "GB/s" for d in hbm)

    events = [p for p in pkts if p.HasField("track_event")]
    types = [p.track_event.type for p in events]
    assert types.count(TrackEvent.TYPE_SLICE_BEGIN) == t.slices.num_rows
    assert types.count(TrackEvent.TYPE_SLICE_END) == t.slices.num_rows
    assert types.count(TrackEvent.TYPE_COUNTER) == t.counters.num_rows
    assert types.count(TrackEvent.TYPE_INSTANT) == t.instants.num_rows
    # Timestamps never go back.
    ts = [p.timestamp for p in events]
    assert ts == sorted(ts)

    # Interned names resolve to the slice names; flows appear once as source and once as end.
    interned = pkts[0].interned_data
    names = {e.iid: e.name for e in interned.event_names}
    begun = [names[p.track_event.name_iid] for p in events if p.track_event.type == TrackEvent.TYPE_SLICE_BEGIN]
    assert sorted(begun) == sorted(t.slices["name"].to_pylist())
    outs = [f for p in events for f in p.track_event.flow_ids]
    ins = [f for p in events for f in p.track_event.terminating_flow_ids]
    assert sorted(outs) == sorted(ins) and len(outs) == t.flows.num_rows
    ann_names = {a.iid: a.name for a in interned.debug_annotation_names}
    mm = next(p.track_event for p in events if p.track_event.name_iid and names[p.track_event.name_iid] == "matmul")
    anns = {ann_names[a.name_iid]: a for a in mm.debug_annotations}
    assert anns["flops"].double_value == 2.5e9 and anns["bytes"].double_value == 65536
    dtypes = {s.iid: s.str.decode() for s in interned.debug_annotation_string_values}
    assert dtypes[anns["dtype"].string_value_iid] == "bf16"
    cats = {c.iid: c.name for c in interned.event_categories}
    assert cats[mm.category_iids[0]] == "kernel"

    # One sequence; the first packet clears incremental state, all others need it.
    assert {p.trusted_packet_sequence_id for p in pkts} == {1}
    assert pkts[0].first_packet_on_sequence and pkts[0].sequence_flags == PbTrace().packet.add().SEQ_INCREMENTAL_STATE_CLEARED
    assert all(p.sequence_flags == 2 and not p.first_packet_on_sequence for p in pkts[1:])


def test_ties_and_nesting_order_of_begin_and_end() -> None:
    t = _accelerator_trace()
    pkts = _packets(encode_perfetto(t))
    names = {e.iid: e.name for e in pkts[0].interned_data.event_names}
    mxu_uuid = int(t.tracks_df().query("name == 'z_mxu'")["id"].iloc[0]) + 1
    seq = []
    for p in pkts:
        te = p.track_event
        if p.HasField("track_event") and te.track_uuid == mxu_uuid and te.type in (1, 2):
            seq.append(("B " + names[te.name_iid]) if te.type == 1 else "E")
    # Replaying with a stack must give each slice its own end.
    stack, closed = [], []
    for s in seq:
        if s.startswith("B"):
            stack.append(s[2:])
        else:
            closed.append(stack.pop())
    assert not stack
    assert closed == ["matmul", "barrier", "gelu", "same_span_inner", "layer0", "mark", "mark2", "layer1"]


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    t = _accelerator_trace()
    path = tmp_path / "t.pftrace"
    assert write_trace(t, path) == "perfetto"
    assert detect_format(path) == "perfetto"
    back = read_trace(path)
    back.validate()
    _assert_same(t, back)
    assert back.metadata.clock == "simulated" and back.metadata.hardware == "edge-npu"
    assert back.metadata.import_stats.events_dropped == 0
    assert back.slices_df().query("name == 'matmul'")["depth"].item() == 2


def test_gzip_round_trip_and_negative_times(tmp_path: Path) -> None:
    b = TraceBuilder()
    tr = b.add_track("cpu", kind="host")
    b.add_slice(tr, -5_000, 2_000, "before zero")
    b.add_slice(tr, 100, 10, "after zero")
    b.add_counter(tr, -7_000, 1.0)
    t = b.build()
    path = tmp_path / "neg.pftrace.gz"
    write_trace(t, path)
    _assert_same(t, read_trace(path))


def test_empty_trace(tmp_path: Path) -> None:
    t = TraceBuilder().build()
    path = tmp_path / "empty.pftrace"
    write_perfetto(t, path)
    assert not [p for p in _packets(path.read_bytes()) if p.HasField("track_event")]
    back = read_perfetto(path)
    assert back.num_events == 0 and back.tracks.num_rows == 0


def test_truncated_file_keeps_complete_packets(tmp_path: Path) -> None:
    t = _accelerator_trace()
    data = encode_perfetto(t)
    cut = tmp_path / "cut.pftrace"
    cut.write_bytes(data[: len(data) - 7])
    back = read_perfetto(cut)
    stats = back.metadata.import_stats
    assert stats.dropped.get("truncated_packet") == 1
    # The last packet was a slice end: that slice's begin is now unmatched, everything else stays.
    assert stats.dropped.get("unmatched_slice_begin") == 1
    assert back.slices.num_rows == t.slices.num_rows - 1
    assert back.counters.num_rows == t.counters.num_rows


def test_garbage_raises_format_error_with_offset(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pftrace"
    bad.write_bytes(b"\x0a\xff\xff\xff\x0f" + b"\x00" * 10)
    with pytest.raises(TraceFormatError) as err:
        read_perfetto(bad)
    assert "bad.pftrace" in str(err.value) and "byte 0" in str(err.value)
    empty = tmp_path / "empty.pftrace"
    empty.write_bytes(b"")
    with pytest.raises(TraceFormatError):
        read_perfetto(empty)
    # Valid protobuf, but no TrackEvent data in it (a packet with only a sequence id).
    other = tmp_path / "other.pftrace"
    other.write_bytes(b"\x0a\x02\x50\x01")
    with pytest.raises(TraceFormatError, match="no TrackEvent data"):
        read_perfetto(other)
    as_json = tmp_path / "json.pftrace"
    as_json.write_bytes(b'{"traceEvents": []}')
    with pytest.raises(TraceFormatError, match="byte 0"):
        read_perfetto(as_json)


def _general_trace_bytes() -> bytes:
    """A TrackEvent trace as other producers write it: process/thread tracks, inline names,
    two sequences with their own interning, an unmatched end, a lost-state packet."""
    pb = PbTrace()

    def pkt(seq: int, **kw):  # type: ignore[no-untyped-def]
        p = pb.packet.add()
        p.trusted_packet_sequence_id = seq
        for k, v in kw.items():
            setattr(p, k, v)
        return p

    p = pkt(1)
    p.track_descriptor.uuid = 10
    p.track_descriptor.process.pid = 42
    p.track_descriptor.process.process_name = "trainer"
    p = pkt(1)
    p.track_descriptor.uuid = 11
    p.track_descriptor.parent_uuid = 10
    p.track_descriptor.thread.pid = 42
    p.track_descriptor.thread.tid = 43
    p.track_descriptor.thread.thread_name = "main"
    p = pkt(1)
    p.track_descriptor.uuid = 12
    p.track_descriptor.name = "loss"
    p.track_descriptor.counter.SetInParent()
    # Sequence 2 interns names; sequence 3 needs state it never got.
    p = pkt(2, sequence_flags=1)
    p.interned_data.event_names.add(iid=1, name="forward")
    p.interned_data.debug_annotation_names.add(iid=1, name="flops")
    p.interned_data.debug_annotation_names.add(iid=2, name="batch")
    p.interned_data.event_categories.add(iid=1, name="model")
    p = pkt(2, timestamp=100, sequence_flags=2)
    te = p.track_event
    te.type, te.track_uuid, te.name_iid = 1, 11, 1
    te.category_iids.append(1)
    te.debug_annotations.add(name_iid=1, int_value=1000)
    te.debug_annotations.add(name_iid=2, uint_value=32)
    te.flow_ids.append(7)
    p = pkt(1, timestamp=150)
    te = p.track_event
    te.type, te.track_uuid, te.name = 1, 11, "inner"
    te.debug_annotations.add(name="dtype", string_value="fp16")
    te.terminating_flow_ids.append(7)
    pkt(1, timestamp=180).track_event.SetInParent()
    pb.packet[-1].track_event.type, pb.packet[-1].track_event.track_uuid = 2, 11
    p = pkt(2, timestamp=300, sequence_flags=2)
    p.track_event.type, p.track_event.track_uuid = 2, 11
    p = pkt(1, timestamp=400)
    p.track_event.type, p.track_event.track_uuid = 2, 11  # unmatched end
    p = pkt(1, timestamp=120)
    p.track_event.type, p.track_event.track_uuid, p.track_event.double_counter_value = 4, 12, 0.5
    p = pkt(1, timestamp=130)
    p.track_event.type, p.track_event.track_uuid, p.track_event.name = 3, 11, "checkpoint"
    p = pkt(3, timestamp=140, sequence_flags=2)
    p.track_event.type, p.track_event.track_uuid, p.track_event.name_iid = 3, 11, 5
    return pb.SerializeToString()


def test_reads_general_track_event_traces(tmp_path: Path) -> None:
    path = tmp_path / "general.pftrace"
    path.write_bytes(_general_trace_bytes())
    t = read_perfetto(path)
    tracks = t.tracks_df()
    assert tracks["name"].tolist() == ["trainer", "main", "loss"]
    assert tracks["kind"].tolist() == ["group", "host", "counter"]
    assert t.track_path(int(tracks.loc[1, "id"])) == ["trainer", "main"]
    assert json.loads(tracks.loc[1, "attrs"]) == {"pid": 42, "tid": 43}
    s = t.slices_df()
    assert s["name"].tolist() == ["forward", "inner"]
    assert s["ts"].tolist() == [100, 150] and s["dur"].tolist() == [200, 30]
    assert s["depth"].tolist() == [0, 1]
    assert s.loc[0, "flops"] == 1000 and s.loc[0, "category"] == "model"
    assert json.loads(s.loc[0, "args"]) == {"batch": 32}
    assert s.loc[1, "dtype"] == "fp16"
    assert t.flows_df()[["from_slice", "to_slice"]].values.tolist() == [[0, 1]]
    assert t.counters_df()["value"].tolist() == [0.5]
    assert t.instants_df()["name"].tolist() == ["checkpoint"]
    assert t.metadata.import_stats.dropped == {"unmatched_slice_end": 1, "incremental_state_missing": 1}


def test_many_flows_on_one_slice_and_args_everywhere(tmp_path: Path) -> None:
    b = TraceBuilder()
    tr = b.add_track("q", kind="dma")
    src = b.add_slice(tr, 0, 10, "src", args={"k": "v" * 300})
    dst = b.add_slices(tr, np.arange(20, 220, 20), np.full(10, 5), "dst", args=[json.dumps({"i": i}) for i in range(10)])
    b.add_flows(np.full(10, src), dst)
    t = b.build()
    path = tmp_path / "flows.pftrace"
    write_perfetto(t, path)
    _assert_same(t, read_perfetto(path))


def test_column_wise_fast_path_matches_the_packet_by_packet_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import profiler.formats.perfetto_fast as fast

    t = _accelerator_trace()
    path = tmp_path / "t.pftrace"
    write_perfetto(t, path)
    assert fast.decode_ours(path.read_bytes()) is not None  # our file takes the fast path
    quick = read_perfetto(path)
    monkeypatch.setattr(fast, "decode_ours", lambda data: None)
    slow = read_perfetto(path)
    _assert_same(quick, slow)
    _assert_same(t, quick)
    assert quick.metadata.import_stats.to_dict() == slow.metadata.import_stats.to_dict()


KINETO = Path("/work/shared/data/kineto")


@pytest.mark.parametrize("name", ["a100_alexnet.json.gz", "compare_base.json.gz", "amd_mi250_minitoy_train.json.gz"])
def test_real_gpu_traces_round_trip(name: str, tmp_path: Path) -> None:
    """Real Kineto traces (HolisticTraceAnalysis): GPU streams, CPU ops, flows, long args."""
    src = KINETO / name
    if not src.exists():
        pytest.skip(f"{src} not present")
    t = read_trace(src)
    assert t.slices.num_rows and t.flows.num_rows
    path = tmp_path / "real.pftrace"
    write_perfetto(t, path)
    back = read_perfetto(path)
    _assert_same(t, back)
    assert back.metadata.import_stats.events_dropped == 0


def test_truncated_file_reads_the_same_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import profiler.formats.perfetto_fast as fast

    b = TraceBuilder()
    tracks = [b.add_track(f"q{i}", kind="dma") for i in range(3)]
    n = 3000
    ids = b.add_slices(np.arange(n) % 3, np.arange(n) * 10, np.full(n, 25), "copy", bytes=np.arange(n, dtype=float),
                       args=[json.dumps({"i": i}) if i % 7 == 0 else None for i in range(n)])
    b.add_slices(np.arange(n) % 3, np.arange(n) * 10 + 1, np.full(n, 5), "inner", dtype="bf16")
    b.add_flows(ids[:-3], ids[3:])
    b.add_counters(tracks[0], np.arange(100) * 7, np.arange(100.0))
    t = b.build()
    data = encode_perfetto(t)
    path = tmp_path / "cut.pftrace"
    path.write_bytes(data[: len(data) * 2 // 3])  # cut in the middle of the events
    quick = read_perfetto(path)
    monkeypatch.setattr(fast, "decode_ours", lambda data: None)
    slow = read_perfetto(path)
    _assert_same(quick, slow)
    assert quick.metadata.import_stats.to_dict() == slow.metadata.import_stats.to_dict()
    assert quick.metadata.import_stats.dropped["truncated_packet"] == 1
    assert 0 < quick.slices.num_rows < t.slices.num_rows
