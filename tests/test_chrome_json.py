"""Chrome trace-event JSON: phases, B/E matching, flows, counters, metadata, exact ns, damage, round trips."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from profiler import TraceBuilder
from profiler.errors import TraceFormatError
from profiler.formats import read_trace, write_trace
from profiler.formats.chrome_json import read_chrome_json
from profiler.formats.json_events import Event, EventExactTs, decode_file, raw_numbers_to_ns

SMALL = {
    "traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "main"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "second"}},
        {"ph": "M", "name": "process_sort_index", "pid": 2, "args": {"sort_index": -5}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "worker"}},
        {"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": 3, "args": {"sort_index": -1}},
        {"ph": "X", "name": "outer", "cat": "op", "pid": 1, "tid": 2, "ts": 10, "dur": 100,
         "args": {"flops": 123, "bytes": 64, "dtype": "bf16", "grid": [1, 2]}},
        {"ph": "X", "name": "inner", "pid": 1, "tid": 2, "ts": 20.5, "dur": 10.25},
        {"ph": "B", "name": "b1", "pid": 1, "tid": 3, "ts": 50},
        {"ph": "B", "name": "b2", "pid": 1, "tid": 3, "ts": 51},
        {"ph": "E", "pid": 1, "tid": 3, "ts": 60},
        {"ph": "E", "pid": 1, "tid": 3, "ts": 70.001},
        {"ph": "E", "pid": 1, "tid": 3, "ts": 80},
        {"ph": "i", "name": "mark", "pid": 1, "tid": 2, "ts": 15, "s": "t"},
        {"ph": "I", "name": "proc-mark", "pid": 1, "tid": 2, "ts": 16, "s": "p"},
        {"ph": "i", "name": "global-mark", "pid": 1, "tid": 2, "ts": 17, "s": "g"},
        {"ph": "C", "name": "mem", "pid": 1, "ts": 15, "args": {"a": 1, "b": 2.5}},
        {"ph": "C", "name": "mem", "pid": 1, "ts": 25, "args": {"a": 3, "b": 4}},
        {"ph": "C", "name": "queue", "pid": 1, "ts": 25, "args": {"depth": 7}},
        {"ph": "s", "name": "fl", "cat": "c", "id": 1, "pid": 1, "tid": 2, "ts": 21},
        {"ph": "f", "name": "fl", "cat": "c", "id": 1, "pid": 1, "tid": 3, "ts": 55, "bp": "e"},
        {"ph": "s", "name": "fl2", "cat": "c", "id": 2, "pid": 1, "tid": 2, "ts": 12},
        {"ph": "f", "name": "fl2", "cat": "c", "id": 2, "pid": 1, "tid": 3, "ts": 49},
        {"ph": "X", "name": "other", "pid": 2, "tid": 9, "ts": 1, "dur": 1},
        {"ph": "Q", "name": "weird", "pid": 1, "tid": 2, "ts": 1},
        {"ph": "X", "name": "no-ts", "pid": 1, "tid": 2, "dur": 1},
        {"ph": "X", "name": "no-dur", "pid": 1, "tid": 2, "ts": 1},
    ],
    "displayTimeUnit": "ns",
}


def _write(tmp_path: Path, obj: object, name: str = "t.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def _small(tmp_path: Path):  # type: ignore[no-untyped-def]
    return read_trace(_write(tmp_path, SMALL))


def test_phases_slices_and_nesting(tmp_path: Path) -> None:
    t = _small(tmp_path)
    assert t.metadata.source_format == "chrome_json"
    df = t.slices_df()
    got = {r.name: (r.track_name, r.ts, r.dur, r.depth) for r in df.itertuples()}
    assert got["outer"] == ("worker", 10_000, 100_000, 0)
    assert got["inner"] == ("worker", 20_500, 10_250, 1)
    # B/E: stacks per thread; the E without a B is dropped and counted
    assert got["b1"] == ("Thread 3", 50_000, 20_001, 0)
    assert got["b2"] == ("Thread 3", 51_000, 9_000, 1)
    outer = df[df.name == "outer"].iloc[0]
    assert outer["flops"] == 123 and outer["bytes"] == 64 and outer["dtype"] == "bf16"
    assert json.loads(outer.args)["grid"] == [1, 2]
    stats = t.metadata.import_stats
    assert stats.dropped == {"unknown_phase": 1, "unmatched_end": 1, "missing_ts": 1, "missing_dur": 1}
    assert stats.events_read == len(SMALL["traceEvents"])
    assert t.metadata.extra["displayTimeUnit"] == "ns"  # display only: ts stay microseconds


def test_metadata_names_and_sort_order(tmp_path: Path) -> None:
    t = _small(tmp_path)
    tr = t.tracks_df()
    groups = tr[tr.kind == "group"].sort_values("sort_index")
    assert groups.name.tolist() == ["second", "main"]  # process_sort_index -5 puts pid 2 first
    main = int(tr[tr.name == "main"].id.iloc[0])
    threads = tr[(tr.parent == main) & (tr.kind != "counter")].sort_values("sort_index")
    assert threads.name.tolist() == ["Thread 3", "worker"]  # thread_sort_index -1 first
    assert t.track_path(int(tr[tr.name == "worker"].id.iloc[0])) == ["main", "worker"]


def test_counters_one_track_per_series(tmp_path: Path) -> None:
    t = _small(tmp_path)
    tr = t.tracks_df().set_index("id")
    c = t.counters_df()
    c["track_name"] = [tr.loc[i, "name"] for i in c.track]
    assert sorted(c.track_name.unique()) == ["mem a", "mem b", "queue"]
    assert c[c.track_name == "mem b"][["ts", "value"]].values.tolist() == [[15_000, 2.5], [25_000, 4.0]]
    assert (tr.loc[c.track.unique(), "kind"] == "counter").all()


def test_instants_by_scope(tmp_path: Path) -> None:
    t = _small(tmp_path)
    tr = t.tracks_df().set_index("id")
    ins = t.instants_df()
    where = {r.name: tr.loc[r.track, "name"] for r in ins.itertuples()}
    assert where == {"mark": "worker", "proc-mark": "main", "global-mark": "Global"}


def test_flows_bind_enclosing_and_next(tmp_path: Path) -> None:
    t = _small(tmp_path)
    names = t.slices_df()["name"].tolist()
    pairs = {(names[r.from_slice], names[r.to_slice], r.name) for r in t.flows_df().itertuples()}
    # s at 21 us: the deepest enclosing slice is "inner"; f with bp=e at 55 binds the enclosing "b2";
    # f without bp at 49 binds the next slice, "b1" (starts at 50).
    assert pairs == {("inner", "b2", "fl"), ("outer", "b1", "fl2")}


def test_flow_v2_bind_id(tmp_path: Path) -> None:
    evs = [
        {"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0, "dur": 5, "bind_id": 7, "flow_out": True},
        {"ph": "X", "name": "b", "pid": 1, "tid": 2, "ts": 6, "dur": 5, "bind_id": 7, "flow_in": True},
    ]
    t = read_chrome_json(_write(tmp_path, evs))
    names = t.slices_df()["name"].tolist()
    assert [(names[r.from_slice], names[r.to_slice]) for r in t.flows_df().itertuples()] == [("a", "b")]


def test_bare_array_and_gzip(tmp_path: Path) -> None:
    evs = [{"ph": "X", "name": "k", "pid": 0, "tid": 0, "ts": 1.5, "dur": 2}]
    p = tmp_path / "a.json.gz"
    p.write_bytes(gzip.compress(json.dumps(evs).encode()))
    t = read_trace(p)
    assert t.slices_df()[["ts", "dur"]].values.tolist() == [[1500, 2000]]


def test_ns_exact_for_epoch_microseconds(tmp_path: Path) -> None:
    evs = [{"ph": "X", "name": "k", "pid": 0, "tid": 0, "ts": 1712195495519689.047, "dur": 0.001}]
    # json.dumps would round the float; write the text by hand like a ns-resolution profiler does
    p = tmp_path / "ns.json"
    p.write_text('[{"ph":"X","name":"k","pid":0,"tid":0,"ts":1712195495519689.047,"dur":0.001}]')
    t = read_trace(p)
    assert t.slices["ts"].to_pylist() == [1712195495519689047] and t.slices["dur"].to_pylist() == [1]
    assert float(evs[0]["ts"]) * 1000 != 1712195495519689047  # float64 alone would be wrong
    ns, ok = raw_numbers_to_ns([b"-2.5", b"7", b"1.5e3", b"12.3456", b'"x"', b""])
    assert ns.tolist()[:4] == [-2500, 7000, 1_500_000, 12_346] and ok.tolist() == [True] * 4 + [False] * 2


def test_wrong_types_use_tolerant_path(tmp_path: Path) -> None:
    evs = [
        {"ph": "X", "name": "ok", "pid": 0, "tid": 0, "ts": 1, "dur": 2},
        {"ph": "X", "name": "bad-ts", "pid": 0, "tid": 0, "ts": "soon", "dur": 2},
        {"ph": "X", "name": "neg", "pid": 0, "tid": 0, "ts": 5, "dur": -3},
        {"ph": "X", "name": "bad-pid", "pid": [1], "tid": 0, "ts": 5, "dur": 1},
        "not an event",
    ]
    t = read_chrome_json(_write(tmp_path, evs))
    assert t.slices_df()["name"].tolist() == ["ok"]
    assert t.metadata.import_stats.dropped == {
        "ts_not_a_number": 1, "slice_negative_duration": 1, "pid_wrong_type": 1, "event_not_an_object": 1}


def test_truncated_file_keeps_complete_events(tmp_path: Path) -> None:
    evs = [{"ph": "X", "name": f"e{i}", "pid": 0, "tid": 0, "ts": i * 10, "dur": 5, "args": {"i": {"n": i}}}
           for i in range(50)]
    text = json.dumps({"traceEvents": evs, "meta": 1})
    cut = text.index('"e40"') + 30  # inside event 40's args
    p = tmp_path / "cut.json"
    p.write_text(text[:cut])
    t = read_trace(p)
    assert t.slices_df()["name"].tolist() == [f"e{i}" for i in range(40)]
    assert t.metadata.import_stats.dropped == {"event_after_damage": 1}
    # damage in the middle: keep what came before it
    bad = text[: text.index('"e20"')] + "@@garbage@@" + text[text.index('"e20"'):]
    p.write_text(bad)
    t = read_trace(p)
    assert len(t.slices_df()) == 20  # events 0..19 are complete; 20..49 are counted as lost
    assert t.metadata.import_stats.dropped == {"event_after_damage": 30}


def test_garbage_raises_trace_format_error(tmp_path: Path) -> None:
    p = tmp_path / "g.json"
    p.write_text('{"traceEvents": [@@@')
    with pytest.raises(TraceFormatError) as ei:
        read_chrome_json(p)
    assert str(p) in str(ei.value) and "byte" in str(ei.value)
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(TraceFormatError):
        read_chrome_json(p)
    p.write_text('{"other": 1}')
    with pytest.raises(TraceFormatError, match="traceEvents"):
        read_chrome_json(p)


def _key(t):  # type: ignore[no-untyped-def]
    s = t.slices_df(False)
    return (
        s[["track", "ts", "dur", "name", "depth", "flops", "bytes", "dtype"]].astype(str).values.tolist(),
        t.tracks_df()[["id", "parent", "name", "kind", "device", "sort_index"]].astype(str).values.tolist(),
        t.counters_df().values.tolist(),
        t.instants_df()[["track", "ts", "name"]].values.tolist(),
        t.flows_df()[["from_slice", "to_slice", "name"]].values.tolist(),
    )


def test_round_trip_json_model_json_model(tmp_path: Path) -> None:
    a = _small(tmp_path)
    write_trace(a, tmp_path / "rt1.json")
    b = read_trace(tmp_path / "rt1.json")
    write_trace(b, tmp_path / "rt2.json.gz")
    c = read_trace(tmp_path / "rt2.json.gz")
    assert _key(a) == _key(b) == _key(c)
    assert a.flows.num_rows == 2 and a.counters.num_rows == 5 and a.instants.num_rows == 3


def test_round_trip_deep_tracks_epoch_times_and_crowded_flows(tmp_path: Path) -> None:
    b = TraceBuilder(source_format="test", clock="unix_epoch")
    dev = b.add_track("npu0", kind="group", device="npu0")
    core = b.add_track("core1", kind="group", parent=dev)
    mxu = b.add_track("mxu", kind="compute", parent=core, sort_index=5)
    dma = b.add_track("dma0", kind="dma", parent=core, sort_index=1)
    t0 = 1_735_632_360_123_456_789
    p = b.add_slice(mxu, t0, 1_000, "parent", flops=2e9, dtype="bf16")
    b.add_slice(mxu, t0, 400, "child-at-start")  # the flow source must still bind to "parent"
    k = b.add_slice(dma, t0 + 2_000, 7, "copy", bytes=4096)
    b.add_flow(p, k, name="dep")
    b.add_counter(core, t0 + 5, 3.25)
    b.add_instant(dma, t0 + 9, "sync")
    a = b.build()
    write_trace(a, tmp_path / "deep.json")
    raw = json.loads((tmp_path / "deep.json").read_text())
    xs = [e for e in raw["traceEvents"] if e["ph"] == "X"]
    assert len({(e["pid"], e["tid"]) for e in xs}) == 2  # one thread per track
    c = read_trace(tmp_path / "deep.json")
    assert _key(a) == _key(c)
    assert c.slices["ts"].to_pylist()[0] == t0
    assert c.track_path(mxu) == ["npu0", "core1", "mxu"]
    assert c.metadata.clock == "unix_epoch"
    assert np.array_equal(a.slices["flops"].to_numpy(zero_copy_only=False), c.slices["flops"].to_numpy(zero_copy_only=False),
                          equal_nan=True)


def test_float_timestamps_exact_below_2_43_us(tmp_path: Path) -> None:
    """Relative times take the float path; every 3-decimal value below 2**43 us must come back exact."""
    rng = np.random.default_rng(7)
    whole = rng.integers(0, 2**43 - 1, size=3000)
    whole[:3] = [2**43 - 1, 2**42, 0]
    frac = rng.integers(0, 1000, size=whole.size)
    texts = [f"{w}.{f:03d}" for w, f in zip(whole.tolist(), frac.tolist(), strict=True)]
    body = ",".join(f'{{"ph":"X","name":"k","pid":0,"tid":{i},"ts":{t},"dur":0.001}}' for i, t in enumerate(texts))
    p = tmp_path / "f.json"
    p.write_text("[" + body + "]")
    t = read_trace(p)
    assert sorted(t.slices["ts"].to_pylist()) == sorted((whole * 1000 + frac).tolist())


def test_epoch_timestamps_exact_when_the_sample_misleads(tmp_path: Path) -> None:
    """Small times at both ends of the file, ns-resolution epoch times only in the middle."""
    small = [f'{{"ph":"X","name":"s{i}","pid":0,"tid":0,"ts":{i}.5,"dur":0.25,"args":{{"pad":"{"x" * 100}"}}}}'
             for i in range(4000)]
    huge = [f'{{"ph":"X","name":"h{i}","pid":0,"tid":1,"ts":1712195495519689.{i:03d},"dur":0.001}}' for i in range(5)]
    null_ts = '{"ph":"X","name":"n","pid":0,"tid":1,"ts":null,"dur":1}'
    p = tmp_path / "m.json"
    p.write_text("[" + ",".join(small[:2000] + huge + [null_ts] + small[2000:]) + "]")
    assert p.stat().st_size > 2 * (1 << 18)
    assert type(decode_file(p).events[0]) is Event  # the sample (first and last 256 KiB) saw no huge ts
    t = read_trace(p)
    df = t.slices_df()
    got = dict(zip(df["name"].astype(str), df["ts"], strict=True))
    assert [got[f"h{i}"] for i in range(5)] == [1712195495519689000 + i for i in range(5)]
    assert got["s7"] == 7500 and "n" not in got
    assert t.metadata.import_stats.dropped == {"missing_ts": 1}
    # the same file with a huge ts near the start takes the text path from the outset
    p.write_text("[" + ",".join(huge + [null_ts] + small) + "]")
    assert type(decode_file(p).events[0]) is EventExactTs
    t = read_trace(p)
    assert sorted(t.slices["ts"].to_pylist())[-5:] == [1712195495519689000 + i for i in range(5)]
    assert t.metadata.import_stats.dropped == {"missing_ts": 1}


def test_out_of_order_perfetto_events_are_sorted_and_counted(tmp_path: Path) -> None:
    """A Perfetto file (official protos) whose slices come out of time order: all kept, the reordering counted."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent

    from profiler.formats.perfetto_reader import read_perfetto

    def build(spans: list[tuple[str, int, int]]) -> Path:
        pb = PbTrace()
        p = pb.packet.add()
        p.trusted_packet_sequence_id = 1
        p.track_descriptor.uuid = 11
        p.track_descriptor.name = "worker"
        for name, start, end in spans:
            for ts, typ in ((start, TrackEvent.TYPE_SLICE_BEGIN), (end, TrackEvent.TYPE_SLICE_END)):
                p = pb.packet.add()
                p.trusted_packet_sequence_id = 1
                p.timestamp = ts
                p.track_event.type = typ
                p.track_event.track_uuid = 11
                if typ == TrackEvent.TYPE_SLICE_BEGIN:
                    p.track_event.name = name
        out = tmp_path / f"t{len(list(tmp_path.iterdir()))}.perfetto-trace"
        out.write_bytes(pb.SerializeToString())
        return out

    late_first = read_perfetto(build([("c", 300, 350), ("a", 100, 150), ("b", 200, 250)]))
    assert late_first.slices.column("name").to_pylist() == ["a", "b", "c"]
    assert late_first.metadata.import_stats.events_dropped == 0
    assert late_first.metadata.import_stats.repaired.get("events_out_of_order_sorted", 0) > 0
    in_order = read_perfetto(build([("a", 100, 150), ("b", 200, 250), ("c", 300, 350)]))
    assert "events_out_of_order_sorted" not in in_order.metadata.import_stats.repaired


def test_backward_flow_keeps_its_direction_through_json(tmp_path: Path) -> None:
    """A flow whose destination starts before its source is written reversed (so Perfetto binds it)
    and listed in otherData; our reader turns it back."""
    import json as _json

    from profiler import TraceBuilder, read_trace, write_trace

    b = TraceBuilder()
    t = b.add_track("engine", kind="compute")
    early = b.add_slice(t, 0, 1_000, "early")
    late = b.add_slice(t, 5_000, 1_000, "late")
    b.add_flow(late, early, name="feeds")  # backward in time
    b.add_flow(early, late, name="forward")
    trace = b.build()
    out = tmp_path / "back.json"
    write_trace(trace, out)
    doc = _json.loads(out.read_text())
    assert len(doc["otherData"]["accel_profiler"]["reversed_flows"]) == 1
    back = read_trace(out)
    names = back.slices["name"].to_pylist()
    got = sorted((names[f], names[t_], n) for f, t_, n in zip(back.flows["from_slice"].to_pylist(),
                                                                back.flows["to_slice"].to_pylist(),
                                                                back.flows["name"].to_pylist(), strict=True))
    assert got == [("early", "late", "forward"), ("late", "early", "feeds")]
