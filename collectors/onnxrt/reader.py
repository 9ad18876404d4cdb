"""Import an ONNX Runtime profile (``SessionOptions.enable_profiling``) into the trace model.

The profile is Chrome-style JSON: complete (``"ph": "X"``) events in microseconds since the
profiler started, category ``Session`` (model loading, ``model_run``, executor spans) or ``Node``
(one kernel execution, with ``op_name``, ``provider`` and operand shapes in ``args``).  Session
spans go to one host track per thread; node executions go to one compute track per execution
provider, named after the graph node, with FLOPs and bytes estimated from the shapes
(:mod:`collectors.onnxrt.flops`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from collectors.onnxrt.flops import DTYPE_NAME, OpShapes, estimate_bytes, estimate_flops, tensors_from_ort
from collectors.onnxrt.graph import GraphNode, graph_nodes
from profiler.builder import TraceBuilder
from profiler.errors import TraceFormatError
from profiler.model import ImportStats, Trace

_KERNEL_SUFFIX = "_kernel_time"
_FENCE_SUFFIXES = ("_fence_before", "_fence_after")
#: Times are int64 nanoseconds; a profile claiming more than ~146 years is damaged.
_NS_LIMIT = 1 << 62
_KEEP_ARGS = ("node_index", "output_size", "activation_size", "parameter_size", "input_type_shape",
              "output_type_shape")


def _load_events(path: Path, stats: ImportStats) -> list[Any]:
    """The event list; a truncated file keeps every complete event before the damage."""
    from profiler.formats.json_events import MAX_DEPTH_MESSAGE, repair_surrogates
    from profiler.formats.source import read_bytes

    raw, gz_problem = read_bytes(path)  # gzip looked through; the content limit applies
    if gz_problem:
        stats.drop("gzip_stream_damaged", 1)
    raw, n_sur = repair_surrogates(raw)  # a lone "\udc80" cannot become UTF-8 text
    stats.repair("lone_surrogate_replaced", n_sur)
    try:
        data = json.loads(raw)
    except RecursionError:
        raise TraceFormatError(str(path), MAX_DEPTH_MESSAGE) from None
    except (ValueError, UnicodeDecodeError) as exc:
        events, where = _salvage(raw)
        if not events:
            raise TraceFormatError(str(path), "not an ONNX Runtime profile (invalid JSON)", str(exc),
                                   where=f"byte {where}") from None
        stats.drop("ort_json_truncated", 1)
        return events
    if isinstance(data, dict):  # some tools wrap the list
        data = data.get("traceEvents", data.get("events"))
    if not isinstance(data, list):
        raise TraceFormatError(str(path), "not an ONNX Runtime profile", "expected a JSON array of events")
    return data


def _salvage(raw: bytes) -> tuple[list[Any], int]:
    """Decode ``[ev, ev, ...`` one event at a time until the first damaged one."""
    text = raw.decode("utf-8", errors="replace")
    dec = json.JSONDecoder()
    i = text.find("[")
    if i < 0:
        return [], 0
    i += 1
    out: list[Any] = []
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            break
        try:
            ev, i = dec.raw_decode(text, i)
        except (ValueError, RecursionError):
            break
        out.append(ev)
    return out, len(text[:i].encode())


def _device_of(provider: str) -> str:
    p = provider.removesuffix("ExecutionProvider").lower()
    return {"cpu": "cpu", "cuda": "cuda:0", "tensorrt": "cuda:0", "rocm": "rocm:0", "dml": "dml:0"}.get(p, p)


def read_ort_profile(json_path: str | Path, model: Any = None, start_ns: int | None = None) -> Trace:
    """Read an ORT profile; ``model`` (path, bytes or ModelProto) adds graph shapes and attributes.

    ``start_ns`` (``InferenceSession.get_profiling_start_time_ns()``) turns the profile's relative
    microseconds into absolute nanoseconds; without it times start at 0.
    """
    path = Path(json_path)
    b = TraceBuilder(source_format="onnxruntime", source=path.name,
                     clock="unix_epoch" if start_ns is not None else "relative")
    stats = b.stats
    events = _load_events(path, stats)
    nodes: dict[str, GraphNode] = graph_nodes(model) if model is not None else {}
    base = int(start_ns or 0)

    proc: int | None = None
    host: dict[Any, int] = {}
    ep_tracks: dict[str, int] = {}
    runs: list[tuple[int, int]] = []
    node_rows: list[tuple[int, int, str, dict[str, Any], Any]] = []

    def proc_track(pid: Any) -> int:
        nonlocal proc
        if proc is None:
            proc = b.add_track(f"onnxruntime (pid {pid})", kind="group", device="host", attrs={"pid": pid})
        return proc

    for ev in events:
        if not isinstance(ev, dict):
            stats.drop("ort_event_not_an_object")
            continue
        stats.events_read += 1
        if ev.get("ph", "X") != "X":
            stats.drop(f"ort_phase_{ev.get('ph')}_unsupported")
            continue
        try:
            ts = base + round(float(ev["ts"]) * 1000)
            dur = round(float(ev["dur"]) * 1000)
            name = str(ev["name"])
        except (KeyError, TypeError, ValueError, OverflowError):
            stats.drop("ort_event_missing_ts_dur_or_name")
            continue
        if not (-_NS_LIMIT < ts < _NS_LIMIT and -_NS_LIMIT < dur < _NS_LIMIT):  # int64 ns cannot hold it
            stats.drop("ort_event_time_out_of_range")
            continue
        raw_args = ev.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        cat = str(ev.get("cat", ""))
        if cat == "Node":
            if name.endswith(_FENCE_SUFFIXES):
                stats.drop("ort_fence_event_skipped")
                continue
            node_rows.append((ts, dur, name.removesuffix(_KERNEL_SUFFIX), args, ev.get("tid")))
            proc_track(ev.get("pid"))
            continue
        tid = ev.get("tid")
        if tid not in host:
            host[tid] = b.add_track(f"thread {tid}", kind="host", parent=proc_track(ev.get("pid")),
                                    attrs={"tid": tid})
        b.add_slice(host[tid], ts, dur, name, category=cat or None)
        if name == "model_run":
            runs.append((ts, ts + dur))

    runs.sort()
    run_starts = np.array([r[0] for r in runs], dtype=np.int64)
    run_ends = np.array([r[1] for r in runs], dtype=np.int64)
    for ts, dur, name, args, tid in node_rows:
        provider = str(args.get("provider") or "UnknownExecutionProvider")
        if provider not in ep_tracks:
            assert proc is not None
            ep_tracks[provider] = b.add_track(provider, kind="compute", parent=proc, device=_device_of(provider),
                                              attrs={"provider": provider})
        gnode = nodes.get(name)
        op_type = str(args.get("op_name") or (gnode.op_type if gnode else name))
        ins = tensors_from_ort(args.get("input_type_shape"))
        outs = tensors_from_ort(args.get("output_type_shape"))
        attrs: dict[str, Any] = {}
        if gnode is not None:
            attrs = gnode.attrs
            if gnode.op_type == op_type:  # same op: fill operands ORT left out (pre-packed weights)
                ins = _fill(ins, gnode.inputs)
                outs = _fill(outs, gnode.outputs)
        shapes = OpShapes(op_type, ins, outs, attrs)
        run = -1
        if runs:
            k = int(np.searchsorted(run_starts, ts, side="right")) - 1
            if k >= 0 and ts <= run_ends[k]:
                run = k
        out0 = outs[0] if outs else None
        dtype = DTYPE_NAME.get(out0.dtype, out0.dtype) if out0 is not None else None
        extra = {k: args[k] for k in _KEEP_ARGS if k in args}
        extra.update(op_type=op_type, provider=provider, tid=tid, run=run, in_graph=gnode is not None)
        flops = estimate_flops(shapes)
        nbytes = estimate_bytes(shapes)
        b.add_slice(ep_tracks[provider], ts, dur, name, category=op_type,
                    flops=None if math.isnan(flops) else flops, bytes=None if math.isnan(nbytes) else nbytes,
                    dtype=dtype, args=extra)
    if not events:
        raise TraceFormatError(str(path), "the ONNX Runtime profile holds no events")
    b.metadata.extra.update({"collector": "collectors.onnxrt", "runs": len(runs)})
    return b.build()


def _fill(got: list[Any], graph: list[Any]) -> list[Any]:
    """ORT's operands where it recorded them, the graph's where it did not (same positions)."""
    if len(got) == len(graph):
        return [g if g is not None else h for g, h in zip(got, graph, strict=True)]
    if len(got) < len(graph):  # pre-packed operands are dropped from ORT's list, in order
        out = list(got)
        # Match recorded shapes to graph operands by shape; fill the rest from the graph.
        result: list[Any] = []
        j = 0
        for h in graph:
            if j < len(out) and out[j] is not None and h is not None and out[j].shape == h.shape:
                result.append(out[j])
                j += 1
            elif j < len(out) and h is None:
                result.append(out[j])
                j += 1
            else:
                result.append(h)
        return result
    return got
