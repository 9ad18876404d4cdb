"""Systematic damage to real files of every format we import.

Truncation at many offsets must keep a prefix of the events (more bytes never give fewer events),
count what was lost, and raise nothing but :class:`TraceFormatError` naming the file.  Each kind
of bad event (negative or non-finite durations, unmatched begin/end, unknown phases, wrong types,
out-of-order and out-of-range timestamps) is dropped or repaired and counted by reason.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiler.errors import TraceFormatError
from profiler.formats import read_trace, write_trace
from profiler.model import Trace

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_traces"
KINETO_GZ = SAMPLES / "torch_cpu_mlp.pt.trace.json.gz"
HTA_GPU = ROOT / "tests" / "data" / "kineto" / "a100_alexnet.json.gz"
OUR_PFTRACE = SAMPLES / "gemm_double_buffered.pftrace"


# ------------------------------------------------------------------ inputs
def _tiny_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="act")]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def ort_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX Runtime profile (three runs of a two-node model)."""
    import onnxruntime as ort

    d = tmp_path_factory.mktemp("ort")
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(d / "ort")
    s = ort.InferenceSession(_tiny_model().SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(3):
        s.run(None, {"x": np.ones((4, 16), np.float32)})
    return Path(s.end_profiling())


@pytest.fixture(scope="module")
def scalesim_dir() -> Path:
    """A real SCALE-Sim 3.0.0 output directory (two small GEMM layers; see its README)."""
    return ROOT / "tests" / "data" / "scalesim_tiny"


def _read_ort(p: Path) -> Trace:
    from collectors.onnxrt import read_ort_profile

    return read_ort_profile(p)


def _slice_keys(t: Trace) -> set[tuple[str, int]]:
    df = t.slices.select(["name", "ts"]).to_pandas()
    return set(zip(df["name"].astype(str), df["ts"].astype(int), strict=True))


# ------------------------------------------------------------- truncation
def _sweep(tmp: Path, name: str, data: bytes, reader: Callable[[Path], Trace], steps: int,
           boundaries: set[int] | None = None) -> list[tuple[int, Trace | None]]:
    """Read ``data`` cut at ``steps`` offsets (and whole); check the properties every cut must have."""
    full_path = tmp / f"full_{name}"
    full_path.write_bytes(data)
    full = reader(full_path)
    full_keys = _slice_keys(full)
    offsets = sorted(set(np.linspace(0, len(data), steps, dtype=np.int64).tolist()) | {len(data)})
    got: list[tuple[int, Trace | None]] = []
    prev = -1
    for off in offsets:
        p = tmp / f"cut{off}_{name}"
        p.write_bytes(data[:off])
        try:
            t = reader(p)
        except TraceFormatError as exc:
            assert str(p) in str(exc), f"the error names the file: {exc}"
            got.append((off, None))
            n = 0
        else:
            t.validate()
            n = t.num_events
            assert n <= full.num_events
            assert _slice_keys(t) <= full_keys, f"cut at {off}: slices that are not in the whole file"
            stats = t.metadata.import_stats
            if n < full.num_events and (boundaries is None or off not in boundaries):
                assert stats.events_dropped > 0, f"cut at {off}: {full.num_events - n} events lost, none counted"
            got.append((off, t))
        assert n >= prev, f"cut at {off} gives fewer events ({n}) than a shorter cut ({prev})"
        prev = n
        p.unlink()
    assert got[-1][1] is not None and got[-1][1].num_events == full.num_events
    return got


def test_truncated_kineto_keeps_every_event_before_the_cut(tmp_path: Path) -> None:
    data = gzip.decompress(KINETO_GZ.read_bytes())
    got = _sweep(tmp_path, "t.pt.trace.json", data, read_trace, 120)
    mid = [t for off, t in got if t is not None and 0.4 * len(data) < off < 0.6 * len(data)]
    assert mid and all(t.metadata.import_stats.dropped.get("event_after_damage", 0) > 0 for t in mid)


def test_truncated_gpu_kineto_trace(tmp_path: Path) -> None:
    _sweep(tmp_path, "gpu.json", gzip.decompress(HTA_GPU.read_bytes()), read_trace, 40)


def test_gzip_cut_mid_stream(tmp_path: Path) -> None:
    got = _sweep(tmp_path, "t.pt.trace.json.gz", KINETO_GZ.read_bytes(), read_trace, 60)
    cut = [t for off, t in got[:-1] if t is not None]
    assert cut and all(t.metadata.import_stats.dropped.get("gzip_stream_damaged") == 1 for t in cut)


def test_truncated_chrome_json_of_ours(tmp_path: Path) -> None:
    src = tmp_path / "ours.json"
    write_trace(read_trace(OUR_PFTRACE), src)
    _sweep(tmp_path, "ours.json", src.read_bytes(), read_trace, 80)


def test_truncated_perfetto(tmp_path: Path) -> None:
    from profiler.formats.perfetto_reader import split_packets

    data = OUR_PFTRACE.read_bytes()
    spans, _, _ = split_packets(data)
    got = _sweep(tmp_path, "t.pftrace", data, read_trace, 120, boundaries={0} | {b for _, b in spans})
    assert any(t is not None and t.metadata.import_stats.dropped.get("truncated_packet") for _, t in got)


def test_truncated_perfetto_from_another_writer(tmp_path: Path) -> None:
    """A file without our marker goes packet by packet; cuts behave the same."""
    from profiler.formats.perfetto_reader import split_packets

    data = _foreign_perfetto(40)
    spans, _, _ = split_packets(data)
    _sweep(tmp_path, "foreign.pftrace", data, read_trace, 100, boundaries={0} | {b for _, b in spans})


def test_truncated_ort_profile(tmp_path: Path, ort_profile: Path) -> None:
    got = _sweep(tmp_path, "ort.json", ort_profile.read_bytes(), _read_ort, 80)
    assert any(t is not None and t.metadata.import_stats.dropped.get("ort_json_truncated") for _, t in got)


def test_truncated_scalesim_csvs(tmp_path: Path, scalesim_dir: Path) -> None:
    from collectors.scalesim import read_scalesim_output

    full = read_scalesim_output(scalesim_dir)
    for csv in sorted(scalesim_dir.rglob("*.csv")):
        rel = csv.relative_to(scalesim_dir)
        data = csv.read_bytes()
        prev = -1
        for off in sorted(set(np.linspace(0, len(data), 12, dtype=np.int64).tolist())):
            d = tmp_path / "run"
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(scalesim_dir, d)
            (d / rel).write_bytes(data[:off])
            try:
                t = read_scalesim_output(d)
            except TraceFormatError as exc:
                assert str(d) in str(exc)
                assert rel.name == "COMPUTE_REPORT.csv", f"{rel} cut at {off}: only the main report is required"
                n = 0
            else:
                t.validate()
                n = t.num_events
                if off < len(data) and rel.name != "topology.csv":
                    st = t.metadata.import_stats
                    assert st.events_dropped + st.events_repaired > 0 or n == full.num_events, f"{rel} cut at {off}"
            assert n >= prev, f"{rel}: cut at {off} gives fewer events than a shorter cut"
            prev = n


# -------------------------------------------------------------- bad events
def _chrome(tmp: Path, events: list[Any], raw_patch: tuple[bytes, bytes] | None = None) -> Path:
    good = [{"ph": "X", "name": f"ok{i}", "cat": "c", "pid": 1, "tid": 1, "ts": 10 * i, "dur": 5} for i in range(5)]
    body = orjson.dumps({"traceEvents": good + events})
    if raw_patch:
        body = body.replace(*raw_patch)
    p = tmp / "bad.json"
    p.write_bytes(body)
    return p


_X = {"ph": "X", "name": "bad", "cat": "c", "pid": 1, "tid": 1, "ts": 100, "dur": 3}
CHROME_CASES: dict[str, tuple[list[Any], str]] = {
    "negative_dur": ([{**_X, "dur": -5}], "slice_negative_duration"),
    "nan_dur": ([{**_X, "dur": "NaN"}], "dur_not_a_number"),
    "missing_dur": ([{k: v for k, v in _X.items() if k != "dur"}], "missing_dur"),
    "unmatched_end": ([{**_X, "ph": "E"}], "unmatched_end"),
    "unclosed_begin": ([{**_X, "ph": "B"}], "unclosed_begin"),
    "end_before_begin": ([{**_X, "ph": "E", "ts": 90}, {**_X, "ph": "B", "ts": 95}], "unmatched_end"),
    "unknown_phase": ([{**_X, "ph": "Q"}], "unknown_phase"),
    "phase_not_a_string": ([{**_X, "ph": 5}], "ph_wrong_type"),
    "ts_not_a_number": ([{**_X, "ts": "abc"}], "ts_not_a_number"),
    "ts_out_of_range": ([{**_X, "ts": 1e300}], "ts_out_of_range"),
    "missing_ts": ([{k: v for k, v in _X.items() if k != "ts"}], "missing_ts"),
    "pid_wrong_type": ([{**_X, "pid": [1]}], "pid_wrong_type"),
    "event_not_an_object": ([5], "event_not_an_object"),
    "counter_value_wrong_type": ([{"ph": "C", "name": "c", "pid": 1, "ts": 5, "args": {"v": "x"}}],
                                 "counter_value_not_a_number"),
    "flops_wrong_type": ([{**_X, "args": {"flops": "many"}}], "arg_wrong_type_ignored"),
}


@pytest.mark.parametrize("fmt", ["chrome_json", "kineto"])
@pytest.mark.parametrize("case", sorted(CHROME_CASES))
def test_bad_json_events_are_counted_by_reason(tmp_path: Path, case: str, fmt: str) -> None:
    events, reason = CHROME_CASES[case]
    t = read_trace(_chrome(tmp_path, events), fmt)
    t.validate()
    st = t.metadata.import_stats
    assert reason in st.dropped or reason in st.repaired, st.to_dict()
    names = set(t.slices["name"].to_pylist())
    assert {f"ok{i}" for i in range(5)} <= names
    if reason in st.dropped:
        assert "bad" not in names


def test_out_of_order_json_events_are_sorted_not_lost(tmp_path: Path) -> None:
    evs = [{**_X, "name": f"late{i}", "ts": 1000 - 10 * i, "dur": 2} for i in range(20)]
    t = read_trace(_chrome(tmp_path, evs))
    assert t.slices.num_rows == 25 and t.metadata.import_stats.events_dropped == 0
    ts = t.slices["ts"].to_numpy()
    assert (np.diff(ts) >= 0).all()


@pytest.mark.parametrize("fmt", ["chrome_json", "kineto"])
def test_json_values_beyond_float64_are_dropped_not_fatal(tmp_path: Path, fmt: str) -> None:
    for patch, reason in (((b'"dur":7', b'"dur":1e999'), "dur_out_of_range"), ((b'"dur":7', b'"dur":1e300'), "dur_out_of_range"),
                          ((b'"v":7', b'"v":1e999'), "counter_value_not_finite")):
        extra = {**_X, "dur": 7} if patch[0] == b'"dur":7' else {"ph": "C", "name": "c", "pid": 1, "ts": 5, "args": {"v": 7}}
        t = read_trace(_chrome(tmp_path, [extra], raw_patch=patch), fmt)
        t.validate()
        assert t.metadata.import_stats.dropped == {reason: 1}, (patch, t.metadata.import_stats.to_dict())
        assert t.slices.num_rows == 5 and t.counters.num_rows == 0


def test_json_args_with_invalid_utf8_are_repaired_and_counted(tmp_path: Path) -> None:
    p = _chrome(tmp_path, [{**_X, "args": {"s": "AB"}}])
    p.write_bytes(p.read_bytes().replace(b'"AB"', b'"A' + bytes([0xFF]) + b'B"'))
    t = read_trace(p)
    t.validate()
    assert t.metadata.import_stats.repaired == {"args_not_utf8": 1}
    names = t.slices["name"].to_pylist()
    args = t.slices["args"].to_pylist()[names.index("bad")]
    assert "A\ufffdB" in args


def test_json_nan_literal_is_damage_with_the_prefix_kept(tmp_path: Path) -> None:
    p = _chrome(tmp_path, [{**_X, "dur": 7}], raw_patch=(b'"dur":7', b'"dur":NaN'))
    t = read_trace(p)
    assert t.slices.num_rows == 5 and t.metadata.import_stats.dropped == {"event_after_damage": 1}


def _foreign_perfetto(n_slices: int, extra: list[tuple[int, int, dict[str, Any]]] | None = None) -> bytes:
    """A Perfetto trace written with the official protos (not by our writer)."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent

    t = PbTrace()
    for uuid, name, counter in ((1, "thread", False), (2, "power", True)):
        p = t.packet.add()
        p.trusted_packet_sequence_id = 1
        p.track_descriptor.uuid = uuid
        p.track_descriptor.name = name
        if counter:
            p.track_descriptor.counter.SetInParent()
    evs: list[tuple[int, int, dict[str, Any]]] = []
    for i in range(n_slices):
        evs += [(100 * i, TrackEvent.TYPE_SLICE_BEGIN, {"name": f"s{i}"}), (100 * i + 50, TrackEvent.TYPE_SLICE_END, {})]
    for ts, typ, kw in evs + (extra or []):
        p = t.packet.add()
        p.timestamp = ts
        p.trusted_packet_sequence_id = 1
        te = p.track_event
        te.track_uuid = kw.get("track", 1)
        if typ == -1:  # a type value this proto version does not know (kept as an unknown field)
            te.name = "bad"
            te.MergeFromString(b"\x48\x63")
            continue
        te.type = typ
        if "name" in kw:
            te.name = kw["name"]
        if "v" in kw:
            te.double_counter_value = kw["v"]
    return t.SerializeToString()


def _perfetto_cases() -> dict[str, tuple[list[tuple[int, int, dict[str, Any]]], str]]:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent as TE

    b, e, i, c = TE.TYPE_SLICE_BEGIN, TE.TYPE_SLICE_END, TE.TYPE_INSTANT, TE.TYPE_COUNTER
    return {
        "unmatched_end": ([(10_000, e, {})], "unmatched_slice_end"),
        "unclosed_begin": ([(10_000, b, {"name": "bad"})], "unmatched_slice_begin"),
        "end_before_begin": ([(10_000, e, {}), (10_010, b, {"name": "bad"})], "unmatched_slice_end"),
        "unknown_type": ([(10_000, -1, {})], "track_event_type_0_unsupported"),
        "counter_nan": ([(10_000, c, {"track": 2, "v": float("nan")})], "counter_value_not_finite"),
        "counter_inf": ([(10_000, c, {"track": 2, "v": float("-inf")})], "counter_value_not_finite"),
        "ts_out_of_range": ([(2**64 - 1, i, {"name": "bad"})], "timestamp_out_of_range"),
        "slice_ts_out_of_range": ([(2**63 + 5, b, {"name": "bad"}), (2**63 + 9, e, {})], "timestamp_out_of_range"),
    }


@pytest.mark.parametrize("case", ["unmatched_end", "unclosed_begin", "end_before_begin", "unknown_type", "counter_nan",
                                  "counter_inf", "ts_out_of_range", "slice_ts_out_of_range"])
def test_bad_perfetto_events_are_counted_by_reason(tmp_path: Path, case: str) -> None:
    extra, reason = _perfetto_cases()[case]
    p = tmp_path / "bad.pftrace"
    p.write_bytes(_foreign_perfetto(5, extra))
    t = read_trace(p)
    t.validate()
    assert reason in t.metadata.import_stats.dropped, t.metadata.import_stats.to_dict()
    assert t.slices["name"].to_pylist() == [f"s{k}" for k in range(5)]
    assert t.counters.num_rows == 0 and t.instants.num_rows == 0


def test_out_of_order_perfetto_packets_pair_in_time_order(tmp_path: Path) -> None:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent as TE

    late = [(50_000 - 100 * k, TE.TYPE_SLICE_BEGIN, {"name": f"late{k}"}) for k in range(3)]
    late += [(50_000 - 100 * k + 10, TE.TYPE_SLICE_END, {}) for k in range(3)]
    p = tmp_path / "ooo.pftrace"
    p.write_bytes(_foreign_perfetto(3, late))
    t = read_trace(p)
    assert t.slices.num_rows == 6 and t.metadata.import_stats.events_dropped == 0
    assert set(t.slices["dur"].to_pylist()) <= {50, 10}


ORT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "negative_dur": ({"dur": -4}, "slice_negative_duration"),
    "nan_dur": ({"dur": "NaN"}, "ort_event_missing_ts_dur_or_name"),
    "ts_wrong_type": ({"ts": [1]}, "ort_event_missing_ts_dur_or_name"),
    "ts_out_of_range": ({"ts": 1e300}, "ort_event_time_out_of_range"),
    "dur_out_of_range": ({"dur": 1e300}, "ort_event_time_out_of_range"),
    "begin_phase": ({"ph": "B"}, "ort_phase_B_unsupported"),
    "unknown_phase": ({"ph": "Q"}, "ort_phase_Q_unsupported"),
}


@pytest.mark.parametrize("case", sorted(ORT_CASES))
def test_bad_ort_events_are_counted_by_reason(tmp_path: Path, ort_profile: Path, case: str) -> None:
    patch, reason = ORT_CASES[case]
    events = orjson.loads(ort_profile.read_bytes())
    full = _read_ort(ort_profile)
    bad = dict(events[-1], name="bad", **patch)
    p = tmp_path / "bad_ort.json"
    p.write_bytes(orjson.dumps([*events, bad, 7]))
    t = _read_ort(p)
    t.validate()
    st = t.metadata.import_stats
    assert st.dropped.get(reason) == 1 and st.dropped.get("ort_event_not_an_object") == 1, st.to_dict()
    assert t.slices.num_rows == full.slices.num_rows


def test_bad_scalesim_rows_are_counted(tmp_path: Path, scalesim_dir: Path) -> None:
    from collectors.scalesim import read_scalesim_output

    d = tmp_path / "run"
    shutil.copytree(scalesim_dir, d)
    trace_csv = d / "layer0" / "IFMAP_DRAM_TRACE.csv"
    lines = trace_csv.read_text().splitlines()
    trace_csv.write_text("\n".join([*lines[:2], "x,y,z", *lines[2:]]) + "\n")
    (d / "topology.csv").write_text("Layer, M, N\ng, eight\n")
    t = read_scalesim_output(d)
    t.validate()
    st = t.metadata.import_stats
    assert st.dropped.get("bad row in IFMAP_DRAM_TRACE.csv") == len(lines) - 1
    assert st.repaired.get("unreadable topology, layers named by index") == 1


# -------------------------------------------------- nothing usable: clear errors
@pytest.mark.parametrize("content, where", [
    (b"", "byte 0"),
    (b"   \n", "byte 0"),
    (b'{"traceEvents": [{"ph": "X", "na', "byte"),
    (b'{"displayTimeUnit": "ns"}', "byte 0"),
    (b"[1, 2, oops", "byte"),
])
def test_unusable_json_raises_a_format_error_with_a_place(tmp_path: Path, content: bytes, where: str) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(content)
    with pytest.raises(TraceFormatError) as ei:
        read_trace(p, "chrome_json")
    assert ei.value.path == str(p) and ei.value.where and where in ei.value.where


def test_unusable_perfetto_raises_a_format_error_with_a_place(tmp_path: Path) -> None:
    p = tmp_path / "x.pftrace"
    p.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 10)
    with pytest.raises(TraceFormatError) as ei:
        read_trace(p)
    assert ei.value.path == str(p) and ei.value.where and "byte" in ei.value.where


def test_unusable_ort_profile_raises_a_format_error_with_a_place(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(b'[{"cat": "Session", "na')
    with pytest.raises(TraceFormatError) as ei:
        _read_ort(p)
    assert ei.value.path == str(p) and ei.value.where == "byte 1"


# ------------------------------------------- the loss is shown in the analysis report
def test_analysis_report_shows_import_losses_by_reason(tmp_path: Path) -> None:
    import json

    import analysis
    from analysis.render import to_json, to_markdown, to_text
    from profiler.hardware import load_spec

    data = gzip.decompress(KINETO_GZ.read_bytes())
    p = tmp_path / "cut.pt.trace.json"
    p.write_bytes(data[: len(data) // 2])
    t = read_trace(p)
    st = t.metadata.import_stats
    lost = st.dropped["event_after_damage"]
    report = analysis.run_all(t, load_spec("h100-sxm"))
    text = to_text(report)
    assert f"import: {st.events_read} events read, {st.events_dropped} dropped, 0 repaired" in text
    assert f"dropped {lost}: event_after_damage" in text
    md = to_markdown(report)
    assert "### Import" in md and f"| dropped | event_after_damage | {lost} |" in md
    doc = json.loads(to_json(report))
    assert doc["trace"]["import_stats"] == st.to_dict()
    clean = analysis.run_all(read_trace(KINETO_GZ), load_spec("h100-sxm"))
    assert "0 dropped, 0 repaired" in to_text(clean) and "| dropped |" not in to_markdown(clean)
