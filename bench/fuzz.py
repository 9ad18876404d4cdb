"""Fuzzing every importer and the spec/budget parsers (hypothesis), short in tests, long here.

``python -m bench.fuzz --seconds 300`` splits the time over the targets, runs each with as many
examples as fit, and prints the inputs tried and the failures per target.  The tests in
``tests/test_fuzz_*.py`` run the same targets with a few dozen examples each.

The property is the same everywhere: reading damaged or odd input either returns a trace that
passes :meth:`Trace.validate` or raises the project's own error naming the file
(:class:`TraceFormatError` for traces, :class:`SpecError` for specs, :class:`BudgetError` for
budgets); any other exception is a bug.  Two kinds of input: structured (valid-looking events
with wrong types and values mixed in) and byte-level mutations of real files (bit flips,
deletions, insertions, duplications, truncation).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
KINETO_GZ = ROOT / "sample_traces" / "torch_cpu_mlp.pt.trace.json.gz"
OUR_PFTRACE = ROOT / "sample_traces" / "onnxruntime_cnn.pftrace"
SCALESIM_DIR = ROOT / "tests" / "data" / "scalesim_tiny"
SPECS = sorted((ROOT / "profiler" / "specs").glob("*.toml"))
BUDGETS = sorted((ROOT / "examples" / "ci").glob("*.toml"))


# ------------------------------------------------------------------ seeds
@functools.cache
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz-"))


@functools.cache
def ort_profile_bytes() -> bytes:
    """A real ONNX Runtime profile of a small model (made once per process)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((16, 8), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="act")]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(workdir() / "ort")
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(2):
        s.run(None, {"x": np.ones((4, 16), np.float32)})
    return Path(s.end_profiling()).read_bytes()


@functools.cache
def kineto_bytes() -> bytes:
    return gzip.decompress(KINETO_GZ.read_bytes())


# ------------------------------------------------------------- attack cases
#: Layouts of the whitespace in :func:`gzip_bomb`: between two events, inside one (between two
#: keys), after the events array (before the closing brace).
BOMB_LAYOUTS = {
    "between": (b'{"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":1},',
                b'{"ph":"X","name":"b","pid":1,"tid":1,"ts":5,"dur":1}]}'),
    "inside": (b'{"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":1},{"ph":"X",',
               b'"name":"b","pid":1,"tid":1,"ts":5,"dur":1}]}'),
    "after": (b'{"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":1}]',
              b',"displayTimeUnit":"ns"}'),
}


def gzip_bomb(path: Path, content_bytes: int, layout: str = "between", block: int = 1 << 26) -> Path:
    """A gzip file of ``content_bytes`` of JSON trace that is almost all whitespace (~1000:1).

    One deflate block of whitespace is compressed once and repeated (each ends with a full flush,
    so it refers to nothing before it); the trailer holds the real CRC and the size modulo 2**32,
    so 2**32 + 64 MiB of content claims to be 64 MiB.  4 GiB take ~4 MB and a few seconds.
    """
    import struct
    import zlib

    head, tail = BOMB_LAYOUTS[layout]
    ws_total = content_bytes - len(head) - len(tail)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name
        f.write(c.compress(head) + c.flush(zlib.Z_FULL_FLUSH))
        crc = zlib.crc32(head)
        ws = b" " * min(block, max(ws_total, 0))
        left = ws_total
        if ws:
            blk = c.compress(ws) + c.flush(zlib.Z_FULL_FLUSH)
            while left >= len(ws):
                f.write(blk)
                crc = zlib.crc32(ws, crc)
                left -= len(ws)
        rest = b" " * left + tail
        f.write(c.compress(rest) + c.flush())
        crc = zlib.crc32(rest, crc)
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, content_bytes & 0xFFFFFFFF))
    return path


_X = {"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 1, "dur": 1}
_DEEP = "[" * 1000 + "]" * 1000


def attack_json_cases() -> dict[str, bytes]:
    """Small Chrome JSON inputs from the attack run: each once broke an importer."""
    def doc(*events: dict[str, Any]) -> bytes:
        return json.dumps({"traceEvents": list(events)}).encode()

    return {
        "lone_surrogate_name": b'{"traceEvents":[' + json.dumps(_X).encode() + b',{"ph":"X","name":"b\\udc80",'
                               b'"pid":1,"tid":1,"ts":3,"dur":1},' + json.dumps({**_X, "ts": 5}).encode() + b"]}",
        "lone_surrogate_args": b'{"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":1,'
                               b'"args":{"x":"\\ud800"}}]}',
        "ts_past_int64_ns": doc({**_X, "ts": 9.3e15}, {**_X, "ts": 5}),
        "ts_past_int64_ns_int": doc({**_X, "ts": 9_300_000_000_000_000}, {**_X, "ts": 5}),
        "ts_plus_dur_overflow": doc({**_X, "ts": 9.0e15, "dur": 9.0e15}, {**_X, "ts": 5}),
        "flow_on_thread_without_slices": doc(_X, {"ph": "s", "id": 1, "pid": 1, "tid": 2, "ts": 1, "name": "f", "cat": "c"},
                                             {"ph": "f", "id": 1, "pid": 1, "tid": 3, "ts": 2, "name": "f", "cat": "c",
                                              "bp": "e"}),
        "args_nested_1000": ('{"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":1,"args":{"x":'
                             + _DEEP + "}}]}").encode(),
        "header_nested_1000": ('{"traceEvents":[' + json.dumps(_X) + '],"otherData":' + _DEEP + "}").encode(),
        "staircase_overlaps": doc(*[{**_X, "ts": i * 0.001, "dur": 10.0} for i in range(300)]),
    }


def attack_ort_cases() -> dict[str, bytes]:
    """ONNX Runtime profiles from the attack run (read by :func:`collectors.onnxrt.read_ort_profile`)."""
    node = {"cat": "Node", "name": "mm_kernel_time", "ph": "X", "ts": 1, "dur": 1, "pid": 1, "tid": 1,
            "args": {"op_name": "MatMul", "provider": "CPUExecutionProvider"}}
    return {
        "ort_args_nested_1000": ('[{"cat":"Node","name":"a_kernel_time","ph":"X","ts":1,"dur":1,"pid":1,"tid":1,'
                                 '"args":{"x":' + _DEEP + "}}]").encode(),
        "ort_lone_surrogate": json.dumps([node]).replace("mm_kernel", "mm\\udc80_kernel").encode(),
        "ort_time_past_int64_ns": json.dumps([{**node, "ts": 9.3e15, "dur": 9.0e15}]).encode(),
    }


def attack_perfetto_cases() -> dict[str, bytes]:
    """Perfetto files with a damaged ``accel_profiler`` metadata packet, and other attack cases."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace

    def pf(meta: Any, chain: int = 1, instant_flow: bool = False, category_iid: bool = False,
           annotation_iid: bool = False) -> bytes:
        t = PbTrace()
        for u in range(1, chain + 1):
            p = t.packet.add()
            p.trusted_packet_sequence_id = 1
            d = p.track_descriptor
            d.uuid, d.name = u, f"t{u}"
            if u > 1:
                d.parent_uuid = u - 1
        for ts, typ in ((10, 1), (15, 3), (20, 2)):
            p = t.packet.add()
            p.timestamp, p.trusted_packet_sequence_id = ts, 1
            te = p.track_event
            te.type, te.track_uuid = typ, chain
            if typ != 2:
                te.name = "s"
            if typ == 3 and instant_flow:
                te.flow_ids.append(7)
            if typ == 1 and category_iid:
                te.category_iids.append(42)
            if typ == 1 and annotation_iid:
                a = te.debug_annotations.add()
                a.name_iid, a.int_value = 9, 3
                b = te.debug_annotations.add()
                b.name, b.string_value_iid = "label", 11
        if meta is not None:
            p = t.packet.add()
            p.trusted_packet_sequence_id = 1
            m = p.chrome_events.metadata.add()
            m.name, m.string_value = "accel_profiler", json.dumps(meta)
        return t.SerializeToString()

    bad_meta = {"not_an_object": [1, 2], "metadata_list": {"version": 1, "metadata": [1]},
                "counter_children_text": {"version": 1, "counter_children": {"a": "b"}},
                "ts_offset_text": {"version": 1, "ts_offset_ns": "x"}, "flow_offset_null": {"version": 1, "flow_id_offset": None},
                "flow_names_no_index": {"version": 1, "flow_names": {"ids": [1]}},
                "flow_names_bad_index": {"version": 1, "flow_names": {"ids": [1], "index": [5], "names": []}},
                "reversed_flows_number": {"version": 1, "reversed_flows": 5},
                "extra_number": {"version": 1, "metadata": {"extra": 5}}}
    out = {f"meta_{k}": pf(v) for k, v in bad_meta.items()}
    out["flow_id_on_instant"] = pf(None, instant_flow=True)
    out["category_not_interned"] = pf(None, category_iid=True)
    out["annotation_name_not_interned"] = pf(None, annotation_iid=True)
    out["track_parent_chain_2000"] = pf(None, chain=2000)
    return out


# ---------------------------------------------------------- the property
class UnexpectedError(AssertionError):
    """An exception other than the project's own, or an own error that does not name the file."""


def expect_trace_or_format_error(read: Callable[[Path], Any], path: Path) -> None:
    from profiler.errors import TraceFormatError

    try:
        trace = read(path)
    except TraceFormatError as exc:
        if str(path) not in str(exc) and str(path.parent) not in str(exc):
            raise UnexpectedError(f"error does not name the file: {exc}") from exc
        return
    trace.validate()


def expect_own_error(load: Callable[[Path], Any], path: Path, own: type[Exception]) -> None:
    try:
        load(path)
    except own as exc:
        if str(path) not in str(exc):
            raise UnexpectedError(f"error does not name the file: {exc}") from exc


# -------------------------------------------------------- byte mutations
_OPS = st.tuples(st.sampled_from(["flip", "delete", "insert", "dup", "truncate", "byte"]),
                 st.floats(0, 1), st.integers(1, 64), st.binary(min_size=1, max_size=8))


def mutate(seed: bytes, ops: list[tuple[str, float, int, bytes]]) -> bytes:
    """Apply a few mutations at relative positions (so one strategy fits files of any size)."""
    b = bytearray(seed)
    for op, rel, n, blob in ops:
        i = min(int(rel * len(b)), max(len(b) - 1, 0))
        if op == "flip" and b:
            b[i] ^= 1 << (n % 8)
        elif op == "byte" and b:
            b[i] = blob[0]
        elif op == "delete":
            del b[i : i + n]
        elif op == "insert":
            b[i:i] = blob
        elif op == "dup":
            b[i:i] = b[i : i + n]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


mutations = st.lists(_OPS, min_size=1, max_size=4)


# ------------------------------------------------------ structured events
_ODD = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4),
                 st.lists(st.integers(-3, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
_TS = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False), _ODD)
_PH = st.one_of(st.sampled_from(list("XXXXBEiICsftMnR") + ["Q", ""]), _ODD)
_CAT = st.one_of(st.sampled_from(["kernel", "cpu_op", "gpu_memcpy", "cuda_runtime", "ac2g", "python_function",
                                  "user_annotation", "Node", "Session"]), _ODD)
_ARGS = st.one_of(
    st.dictionaries(st.sampled_from(["flops", "bytes", "dtype", "correlation", "Input Dims", "Input type", "name",
                                     "sort_index", "labels", "provider", "op_name", "input_type_shape", "v"]),
                    st.one_of(st.integers(-5, 10**6), st.floats(), st.text(max_size=6),
                              st.lists(st.lists(st.integers(0, 8), max_size=3), max_size=3), _ODD), max_size=4),
    _ODD)
EVENT = st.fixed_dictionaries(
    {"ph": _PH, "ts": _TS},
    optional={"name": st.one_of(st.sampled_from(["aten::mm", "aten::add", "k", "process_name", "thread_name",
                                                  "model_run"]), _ODD),
              "dur": st.one_of(st.integers(-5, 1000), st.floats(-10, 1e4), _ODD),
              "pid": st.one_of(st.integers(0, 3), _ODD), "tid": st.one_of(st.integers(0, 3), _ODD),
              "cat": _CAT, "id": st.one_of(st.integers(0, 5), _ODD), "bp": st.sampled_from(["e", "x"]),
              "s": st.sampled_from(["g", "p", "t", "z"]), "args": _ARGS,
              "bind_id": st.one_of(st.integers(0, 5), _ODD), "flow_in": st.booleans(), "flow_out": st.booleans()},
)
EVENT_FILE = st.tuples(st.lists(st.one_of(EVENT, _ODD.filter(lambda v: not isinstance(v, dict))), max_size=30)
                       .filter(lambda x: True), st.sampled_from(["object", "array", "kineto"]))


def event_file_bytes(events: list[Any], form: str) -> bytes:
    """JSON text; non-finite floats become NaN/Infinity tokens (invalid JSON a reader must survive)."""
    if form == "array":
        doc: Any = events
    elif form == "kineto":
        doc = {"schemaVersion": 1, "deviceProperties": [], "traceEvents": events, "baseTimeNanoseconds": 10**18}
    else:
        doc = {"traceEvents": events, "displayTimeUnit": "ns"}
    return json.dumps(doc, allow_nan=True).encode()


# ------------------------------------------------------ structured Perfetto
_PKT = st.tuples(
    st.sampled_from([1, 2, 3, 4, 0]),                                  # TrackEvent type (0: unspecified)
    st.one_of(st.integers(0, 10**6), st.integers(0, 2**64 - 1)),       # timestamp
    st.sampled_from([1, 2, 3, 99]),                                    # track uuid (99: never described)
    st.text(max_size=4),                                               # name
    st.one_of(st.floats(), st.integers(-(2**63), 2**63 - 1)),          # counter value
    st.lists(st.integers(0, 3), max_size=2),                           # flow ids
    st.lists(st.integers(0, 3), max_size=2),                           # terminating flow ids
    st.integers(0, 3),                                                 # sequence id
)


def perfetto_bytes(pkts: list[tuple[Any, ...]], parent_cycle: bool) -> bytes:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace

    t = PbTrace()
    for uuid, name, parent in ((1, "a", 3 if parent_cycle else None), (2, "counter", None), (3, "b", 1)):
        p = t.packet.add()
        p.trusted_packet_sequence_id = 1
        d = p.track_descriptor
        d.uuid = uuid
        d.name = name
        if parent is not None:
            d.parent_uuid = parent
        if uuid == 2:
            d.counter.SetInParent()
    for typ, ts, track, name, val, fo, fi, seq in pkts:
        p = t.packet.add()
        p.timestamp = ts
        p.trusted_packet_sequence_id = seq
        te = p.track_event
        te.type = typ
        te.track_uuid = track
        te.name = name
        if typ == 4:
            if isinstance(val, float):
                te.double_counter_value = val
            else:
                te.counter_value = val
        te.flow_ids.extend(fo)
        te.terminating_flow_ids.extend(fi)
    return t.SerializeToString()


# --------------------------------------------------------- TOML (specs, budgets)
def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def toml_doc(d: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in d.items())


_TOML_ODD = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=5),
                      st.lists(st.integers(-2, 2), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def edit_doc(doc: dict[str, Any], edits: list[tuple[float, int, Any]]) -> dict[str, Any]:
    """Replace, delete or add values at positions in a nested document."""
    out = json.loads(json.dumps(doc))
    for rel, op, val in edits:
        # Walk down to a random container.
        cur: Any = out
        for _ in range(3):
            keys = list(cur) if isinstance(cur, dict) else list(range(len(cur))) if isinstance(cur, list) else []
            if not keys:
                break
            k = keys[min(int(rel * len(keys)), len(keys) - 1)]
            if op == 0 or not isinstance(cur[k], dict | list):
                if op == 1 and isinstance(cur, dict):
                    del cur[k]
                elif op == 2 and isinstance(cur, dict):
                    cur[f"extra_{rel:.2f}"] = val
                else:
                    cur[k] = val
                break
            cur = cur[k]
    return out


TOML_EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), _TOML_ODD), min_size=1, max_size=4)


# ------------------------------------------------------------------ targets
@dataclass
class Target:
    """One fuzz target: a strategy of inputs and a check that raises on a property violation."""

    name: str
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Callable[[Any], None]
    tried: int = 0
    failures: list[str] = field(default_factory=list)


def _file(name: str, data: bytes) -> Path:
    p = workdir() / name
    p.write_bytes(data)
    return p


def _read_trace(fmt: str | None) -> Callable[[Path], Any]:
    from profiler.formats import read_trace

    return lambda p: read_trace(p, fmt)


def _read_ort(p: Path) -> Any:
    from collectors.onnxrt import read_ort_profile

    return read_ort_profile(p)


def check_chrome_struct(x: tuple[list[Any], str]) -> None:
    events, form = x
    data = event_file_bytes(events, form)
    expect_trace_or_format_error(_read_trace("kineto" if form == "kineto" else "chrome_json"), _file("s.json", data))
    expect_trace_or_format_error(_read_trace(None), _file("s.json", data))


def check_json_bytes(ops: list[Any]) -> None:
    expect_trace_or_format_error(_read_trace(None), _file("m.pt.trace.json", mutate(kineto_bytes(), ops)))


def check_json_gz_bytes(ops: list[Any]) -> None:
    expect_trace_or_format_error(_read_trace(None), _file("m.json.gz", mutate(KINETO_GZ.read_bytes(), ops)))


def check_perfetto_bytes(ops: list[Any]) -> None:
    expect_trace_or_format_error(_read_trace("perfetto"), _file("m.pftrace", mutate(OUR_PFTRACE.read_bytes(), ops)))


def check_perfetto_struct(x: tuple[list[Any], bool]) -> None:
    expect_trace_or_format_error(_read_trace("perfetto"), _file("s.pftrace", perfetto_bytes(*x)))


def check_ort_struct(x: tuple[list[Any], str]) -> None:
    events, form = x
    data = event_file_bytes(events, "array" if form != "object" else "object")
    expect_trace_or_format_error(_read_ort, _file("ort_s.json", data))


def check_ort_bytes(ops: list[Any]) -> None:
    expect_trace_or_format_error(_read_ort, _file("ort_m.json", mutate(ort_profile_bytes(), ops)))


def check_scalesim_bytes(x: tuple[int, list[Any]]) -> None:
    from collectors.scalesim import read_scalesim_output

    which, ops = x
    files = sorted(p.relative_to(SCALESIM_DIR) for p in SCALESIM_DIR.rglob("*") if p.is_file())
    rel = files[which % len(files)]
    d = workdir() / "scalesim"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(SCALESIM_DIR, d)
    (d / rel).write_bytes(mutate((SCALESIM_DIR / rel).read_bytes(), ops))
    expect_trace_or_format_error(lambda p: read_scalesim_output(p.parent), d / rel)


def _spec_check(text: bytes) -> None:
    from profiler.errors import SpecError
    from profiler.hardware import load_spec

    expect_own_error(load_spec, _file("spec.toml", text), SpecError)


def check_spec_bytes(x: tuple[int, list[Any]]) -> None:
    which, ops = x
    _spec_check(mutate(SPECS[which % len(SPECS)].read_bytes(), ops))


def check_spec_struct(x: tuple[int, list[Any]]) -> None:
    import tomllib

    which, edits = x
    doc = tomllib.loads(SPECS[which % len(SPECS)].read_text())
    _spec_check(toml_doc(edit_doc(doc, edits)).encode())


def _budget_check(text: bytes) -> None:
    from analysis.budget import BudgetError, load_budgets

    expect_own_error(load_budgets, _file("budget.toml", text), BudgetError)


def check_budget_bytes(x: tuple[int, list[Any]]) -> None:
    which, ops = x
    _budget_check(mutate(BUDGETS[which % len(BUDGETS)].read_bytes(), ops))


def check_budget_struct(x: tuple[int, list[Any]]) -> None:
    import tomllib

    which, edits = x
    doc = tomllib.loads(BUDGETS[which % len(BUDGETS)].read_text())
    _budget_check(toml_doc(edit_doc(doc, edits)).encode())


def check_attack(x: tuple[str, list[Any] | None]) -> None:
    """An attack case as it is, or mutated."""
    name, ops = x
    cases = {**attack_json_cases(), **attack_perfetto_cases(), **attack_ort_cases()}
    data = cases[name] if not ops else mutate(cases[name], ops)
    if name.startswith("ort_"):
        expect_trace_or_format_error(_read_ort, _file("attack_ort.json", data))
        return
    suffix = ".pftrace" if name in attack_perfetto_cases() else ".json"
    expect_trace_or_format_error(_read_trace(None), _file(f"attack{suffix}", data))
    if suffix == ".json":
        from profiler.formats.json_stream import read_json_streaming

        expect_trace_or_format_error(lambda p: read_json_streaming(p), _file("attack_s.json", data))


@functools.cache
def attack_names() -> list[str]:
    return sorted({**attack_json_cases(), **attack_perfetto_cases(), **attack_ort_cases()})


def targets() -> list[Target]:
    pick = st.integers(0, 63)
    return [
        Target("chrome_json_struct", lambda: EVENT_FILE, check_chrome_struct),
        Target("kineto_bytes", lambda: mutations, check_json_bytes),
        Target("kineto_gz_bytes", lambda: mutations, check_json_gz_bytes),
        Target("perfetto_struct", lambda: st.tuples(st.lists(_PKT, max_size=25), st.booleans()), check_perfetto_struct),
        Target("perfetto_bytes", lambda: mutations, check_perfetto_bytes),
        Target("ort_struct", lambda: EVENT_FILE, check_ort_struct),
        Target("ort_bytes", lambda: mutations, check_ort_bytes),
        Target("scalesim_bytes", lambda: st.tuples(pick, mutations), check_scalesim_bytes),
        Target("spec_toml_struct", lambda: st.tuples(pick, TOML_EDITS), check_spec_struct),
        Target("spec_toml_bytes", lambda: st.tuples(pick, mutations), check_spec_bytes),
        Target("budget_toml_struct", lambda: st.tuples(pick, TOML_EDITS), check_budget_struct),
        Target("budget_toml_bytes", lambda: st.tuples(pick, mutations), check_budget_bytes),
        Target("attack_cases", lambda: st.tuples(st.sampled_from(attack_names()), st.none() | mutations), check_attack),
    ]


def target(name: str) -> Target:
    return next(t for t in targets() if t.name == name)


def run_target(t: Target, max_examples: int, seed: int | None = None, shrink: bool = True) -> None:
    """Run ``max_examples`` inputs of ``t``; raises the (shrunk) failing example's error."""

    def body(x: Any) -> None:
        t.tried += 1
        t.check(x)

    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    test = settings(max_examples=max_examples, deadline=None, database=None, phases=phases, derandomize=seed is None,
                    suppress_health_check=list(HealthCheck))(given(t.strategy())(body))
    if seed is not None:
        from hypothesis import seed as hseed

        test = hseed(seed)(test)
    test()


def main(seconds: float = 300.0, only: list[str] | None = None) -> int:
    import warnings

    warnings.simplefilter("ignore")
    ts = [t for t in targets() if not only or t.name in only]
    ort_profile_bytes()  # made once, outside the timed loops
    per = seconds / len(ts)
    print(f"fuzzing {len(ts)} targets for {per:.0f} s each (hypothesis, random seeds)")
    for t in ts:
        end = time.monotonic() + per
        batch = 0
        while time.monotonic() < end:
            batch += 1
            try:
                run_target(t, max_examples=200, seed=batch * 7919 + len(t.name))
            except Exception as exc:  # a property violation: keep the shrunk example's traceback
                msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                t.failures.append(msg[:400])
                if len(t.failures) >= 5:
                    break
        print(f"{t.name:20s} inputs={t.tried:7d} failures={len(t.failures)}", flush=True)
        for f in t.failures[:3]:
            print("    " + f.replace("\n", "\n    "))
    total = sum(t.tried for t in ts)
    bad = sum(len(t.failures) for t in ts)
    print(f"total inputs={total} failures={bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--only", nargs="*", help="target names")
    a = ap.parse_args()
    sys.exit(main(a.seconds, a.only))
