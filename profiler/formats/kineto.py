"""PyTorch profiler (Kineto) JSON reader.

Kineto writes Chrome trace-event JSON with conventions this reader turns into our track tree:

* Device work is found by what the trace says, not by CUDA names: Kineto's device activity
  categories (CUDA/ROCm ``kernel``, ``gpu_memcpy``, ``gpu_memset``; MTIA ``mtia_ccp_events``; HPU
  ``hpu_op``; MLU/GCU copies and sets) and processes named like a device ("GPU 0", "MTIA 17",
  "XPU 0", TPU-style "/device:TPU:0").  Each device becomes a group track; each stream gets a
  compute track ("stream 7") for kernels, a dma track ("stream 7 memcpy") for copies, sets and
  DMA requests (MTIA ``dma_request``), an "annotations" track for GPU-side user ranges (they
  enclose kernels and would otherwise make kernels look nested on the compute track) and an
  "other" track for markers and waits (``cuda_sync``, MTIA ``event_record``/``event_wait``:
  they are not work).
* A category the reader does not know, on a device process, is device work of unknown kind
  (a compute track named "stream N (unknown kind)", attrs ``device_kind = "unknown"``), counted in
  ``metadata.extra["unknown_device_categories"]`` so the report can say so; never host work.
* CPU work (``cpu_op``, ``user_annotation``, ``python_function``) and every runtime or driver span
  (``cuda_runtime``, ``mtia_runtime``, ``xpu_runtime``, ``privateuse1_driver``, ...) is host work:
  one host track per thread, under its process (runtime queues a device process holds too).
* Launches link to device work by ``ac2g`` flow events (``async_cpu_to_gpu`` in older Kineto);
  files without them (some AMD traces) are linked by the ``correlation`` arg instead.
* ``flops`` (``with_flops=True``) and ``bytes`` (copies) args become columns.  torch 2.x no longer
  writes ``flops`` to the JSON, so for matmuls, conv2d and elementwise add/mul without it the
  reader applies torch's own formulas to the recorded shapes (:func:`estimate_flops`).  For ops recorded
  with ``record_shapes=True`` and no ``bytes`` arg, ``bytes`` is *estimated* as the sum over tensor
  inputs of prod(Input Dims) x itemsize(Input type): the bytes the op reads, not what it writes
  (Kineto does not record outputs); scalar and tensor-list inputs are left out.  ``dtype`` is the
  first tensor input's type in short form (fp32, bf16, ...).
* ``baseTimeNanoseconds`` (torch 2.x writes ``ts`` relative to it) is added back, so times are
  Unix-epoch nanoseconds; ``deviceProperties`` and the other header fields go to ``metadata.extra``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from profiler.formats.json_events import decode_file
from profiler.formats.json_flows import flow_kinds
from profiler.formats.json_import import BEGIN, INSTANT, SLICE, JsonImporter
from profiler.model import Trace

HOST, COMPUTE, DMA, GPU_ANNOTATION, GPU_OTHER, DEVICE_UNKNOWN = range(6)
#: Kineto activity categories of device work (libkineto ActivityType names, lower case).
_CAT_CLASS = {"kernel": COMPUTE, "hpu_op": COMPUTE, "mtia_ccp_events": COMPUTE,
              "gpu_memcpy": DMA, "gpu_memset": DMA, "mlu_memcpy": DMA, "mlu_memset": DMA,
              "gcu_memcpy": DMA, "gcu_memset": DMA,
              "gpu_user_annotation": GPU_ANNOTATION, "mlu_user_annotation": GPU_ANNOTATION,
              "gcu_user_annotation": GPU_ANNOTATION,
              "cuda_sync": GPU_OTHER, "cuda_event": GPU_OTHER, "gcu_sync": GPU_OTHER, "mtia_insight": GPU_OTHER,
              "mlu_notifier": GPU_OTHER, "cuda_profiler_range": GPU_OTHER, "mlu_profiler_range": GPU_OTHER,
              "gcu_profiler_range": GPU_OTHER}
_GPU_CATS = frozenset(k for k, v in _CAT_CLASS.items() if v in (COMPUTE, DMA, GPU_ANNOTATION))
#: Host categories: CPU ops, and runtime/driver spans of any vendor (they run on the host).
_HOST_CATS = frozenset({"cpu_op", "user_annotation", "python_function", "cpu_instant_event", "overhead",
                        "external_correlation", "trace", "collective_comm", "glow_runtime"})
_RUNTIME_CAT = re.compile(r"_(runtime|driver)$", re.I)
#: Processes that are devices, by name or label: Kineto's "GPU 0", "MTIA 17", ..., TPU-style "/device:TPU:0".
DEVICE_PROCESS = re.compile(r"^\s*(gpu|mtia|xpu|hpu|npu|tpu|mlu|gcu|ipu|dcu|iluvatar|musa)\b|/device:(?!cpu)", re.I)
#: Device-work names that move data (MTIA ``dma_request``, copy and set ops named like CUDA's).
_DMA_OP = re.compile(r"^(dma|memcpy|memset|memory copy|memory set)|^(hip)?mem(cpy|set)", re.I)
#: Device-work names that mark or wait rather than work (MTIA ``event_record``/``event_wait``).
_MARKER_OP = re.compile(r"^event_(record|wait)$|^(stream )?wait ?event$|^record ?event$", re.I)
_LAUNCH_CATS = ("cuda_runtime", "cuda_driver", "mtia_runtime", "xpu_runtime", "xpu_driver", "privateuse1_runtime",
                "privateuse1_driver", "mlu_runtime", "gcu_runtime", "gcu_driver")
#: Flow-event categories of launch -> GPU links ("async_cpu_to_gpu" in Kineto before torch 1.13):
#: when a file has them, correlation ids would only add the same links again.
_LAUNCH_FLOW_CATS = frozenset({"ac2g", "async_cpu_to_gpu"})
_WORK_PHASES = (SLICE, BEGIN, INSTANT)
_STREAM_NAME = re.compile(r"^\s*stream\s+(\d+)\s*$", re.I)
_CLASS_SUFFIX = {COMPUTE: "", DMA: " memcpy", GPU_ANNOTATION: " annotations", GPU_OTHER: " other",
                 DEVICE_UNKNOWN: " (unknown kind)"}
_CLASS_KIND = {COMPUTE: "compute", DMA: "dma", GPU_ANNOTATION: "other", GPU_OTHER: "other", DEVICE_UNKNOWN: "compute"}


def category_class(cat: str | None) -> int:
    """Class of a Kineto category alone: device work, device marker, host, or -1 (unknown)."""
    c = (cat or "").lower()
    if c in _CAT_CLASS:
        return _CAT_CLASS[c]
    if c in _HOST_CATS or _RUNTIME_CAT.search(c) or not c:
        return HOST
    return -1


#: Torch's "Input type" strings -> (short dtype name, bytes per element).
TORCH_DTYPES: dict[str, tuple[str, int]] = {
    "float": ("fp32", 4), "double": ("fp64", 8), "c10::Half": ("fp16", 2), "c10::BFloat16": ("bf16", 2),
    "c10::Float8_e4m3fn": ("fp8_e4m3", 1), "c10::Float8_e5m2": ("fp8_e5m2", 1),
    "c10::Float8_e4m3fnuz": ("fp8_e4m3", 1), "c10::Float8_e5m2fnuz": ("fp8_e5m2", 1),
    "long int": ("int64", 8), "int": ("int32", 4), "short int": ("int16", 2), "signed char": ("int8", 1),
    "unsigned char": ("uint8", 1), "bool": ("bool", 1), "c10::complex<float>": ("complex64", 8),
    "c10::complex<double>": ("complex128", 16), "c10::complex<c10::Half>": ("complex32", 4),
}


_NO_RAW = msgspec.Raw(b"")


def _raw_list(raw: msgspec.Raw) -> list[Any] | None:
    if not raw:
        return None
    try:
        v = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec: bad UTF-8 in a string
        return None
    return v if isinstance(v, list) else None


def _estimate(name: str, a: Any) -> tuple[float | None, float | None, str | None]:
    """(flops, input bytes, first input dtype) from one op's recorded shapes and types."""
    dims, types = _raw_list(a.input_dims), _raw_list(a.input_type)
    est_f = estimate_flops(name, dims, _raw_list(a.concrete)) if dims is not None else None
    if dims is not None:
        est_b, first = estimate_input_bytes(dims, types)
    elif types is not None:
        est_b, first = None, estimate_input_bytes([[]] * len(types), types)[1]
    else:
        est_b, first = None, None
    return est_f, est_b, first


class KinetoArgs(msgspec.Struct, gc=False):
    """The Kineto args the reader uses; the rest stays as JSON text in the args column."""

    flops: float | None = None
    bytes: float | None = None
    dtype: str | None = None
    correlation: int | None = None
    input_dims: list[Any] | None = msgspec.field(default=None, name="Input Dims")
    input_type: list[Any] | None = msgspec.field(default=None, name="Input type")
    concrete: list[Any] | None = msgspec.field(default=None, name="Concrete Inputs")


def _pair(v: Any) -> tuple[int, int] | None:
    """A Kineto concrete ScalarList like "[2, 2]" -> (2, 2)."""
    if not isinstance(v, str) or not v.startswith("["):
        return None
    try:
        a = [int(x) for x in v.strip("[]").split(",")]
    except ValueError:
        return None
    return (a[0], a[-1]) if a else None


def estimate_flops(name: str, dims: list[Any] | None, concrete: list[Any] | None) -> float | None:
    """Torch's own flop formulas (torch/csrc/profiler/util.cpp computeFlops) from recorded shapes.

    torch 2.x computes flops with ``with_flops=True`` but no longer writes them to the JSON; applying
    the same formulas to "Input Dims" gives the numbers ``prof.key_averages()`` shows.
    """
    if not dims:
        return None
    try:
        if name in ("aten::mm", "aten::addmm"):
            a, b = (dims[1], dims[2]) if name == "aten::addmm" else (dims[0], dims[1])
            return float(2 * a[0] * a[1] * b[1])
        if name in ("aten::bmm", "aten::baddbmm"):
            a, b = (dims[1], dims[2]) if name == "aten::baddbmm" else (dims[0], dims[1])
            return float(2 * a[0] * a[1] * a[2] * b[2])
        if name == "aten::conv2d":
            x, w = dims[0], dims[1]
            c = concrete or []
            stride = _pair(c[3]) if len(c) > 3 else None
            pad = _pair(c[4]) if len(c) > 4 else None
            dil = _pair(c[5]) if len(c) > 5 else None
            stride, pad, dil = stride or (1, 1), pad or (0, 0), dil or (1, 1)
            ho = (x[2] + 2 * pad[0] - dil[0] * (w[2] - 1) - 1) // stride[0] + 1
            wo = (x[3] + 2 * pad[1] - dil[1] * (w[3] - 1) - 1) // stride[1] + 1
            return float(2 * x[0] * ho * wo * w[2] * w[3] * x[1] * w[0])
        if name in ("aten::mul", "aten::mul_", "aten::add", "aten::add_"):
            return float(math.prod(dims[0]))
    except (IndexError, TypeError):
        return None
    return None


def estimate_input_bytes(dims: list[Any] | None, types: list[Any] | None) -> tuple[float | None, str | None]:
    """(bytes read by tensor inputs, dtype of the first tensor input) from Kineto shapes and types."""
    if not dims or not types:
        return None, None
    total = 0
    known = False
    first: str | None = None
    for d, t in zip(dims, types, strict=False):
        info = TORCH_DTYPES.get(t) if isinstance(t, str) else None
        if info is None or not isinstance(d, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in d):
            continue
        total += math.prod(d) * info[1]
        known = True
        if first is None:
            first = info[0]
    return (float(total) if known else None), first


class _KinetoLift(msgspec.Struct, gc=False):
    """What :meth:`KinetoImporter.lift` reads from args; shapes stay raw text (cache keys)."""

    flops: float | None = None
    bytes: float | None = None
    dtype: str | None = None
    input_dims: msgspec.Raw = msgspec.field(default=_NO_RAW, name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=_NO_RAW, name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=_NO_RAW, name="Concrete Inputs")


class _Correlation(msgspec.Struct, gc=False):
    correlation: int | None = None


#: Args that :meth:`KinetoImporter.lift` looks at; slices without any of them are not decoded.
_LIFT_KEYS = '"(?:flops|bytes|dtype|Input Dims|Input type)"'


class KinetoImporter(JsonImporter):
    source_format = "kineto"
    lift_struct = KinetoArgs

    def event_classes(self, cat_codes: np.ndarray, cat_dict: pa.Array, pt_code: np.ndarray) -> np.ndarray:
        cat_words = cat_dict.to_pylist()
        lut = np.array([category_class(c) for c in cat_words] + [HOST], dtype=np.int64)
        cls = lut[cat_codes]  # code -1 (no category) picks the HOST at the end
        device_work = np.isin(cls, (COMPUTE, DMA, GPU_ANNOTATION))
        gpu_pts = np.unique(pt_code[device_work])
        pts = list(self._pt_keys())
        self._gpu_pids = {pts[i][0] for i in gpu_pts.tolist()}
        for p in {pid for pid, _ in pts}:
            label = f"{self.meta.process_labels.get(p) or ''} {self.meta.process_name.get(p) or ''}"
            if DEVICE_PROCESS.search(self.meta.process_labels.get(p) or "") or DEVICE_PROCESS.search(
                    self.meta.process_name.get(p) or "") or label.strip().startswith("GPU "):
                self._gpu_pids.add(p)
        on_gpu = np.isin(pt_code, np.array([i for i, (p, _) in enumerate(pts) if p in self._gpu_pids], dtype=np.int64))
        # Device work named as a copy is DMA; named as an event record or wait, a marker.
        combo, names, phase = self.combo_names
        dma_name = np.array([bool(isinstance(w, str) and _DMA_OP.search(w)) for w in names], dtype=bool)
        marker = np.array([bool(isinstance(w, str) and _MARKER_OP.search(w)) for w in names], dtype=bool)
        if combo.size == cls.size and len(names):
            cls[(cls == COMPUTE) & dma_name[combo]] = DMA
            cls[(cls == COMPUTE) & marker[combo]] = GPU_OTHER
        # A category nobody knows: device work of unknown kind on a device, host work elsewhere.
        unknown = cls == -1
        if unknown.any():
            dev_unknown = unknown & on_gpu
            cls[unknown & ~on_gpu] = HOST
            cls[dev_unknown] = DEVICE_UNKNOWN
            dev_unknown &= np.isin(phase, _WORK_PHASES)  # flow points carry their own categories
            if dev_unknown.any():
                u_codes, u_counts = np.unique(cat_codes[dev_unknown], return_counts=True)
                self.b.metadata.extra["unknown_device_categories"] = {
                    str(cat_words[c]): int(k) for c, k in zip(u_codes.tolist(), u_counts.tolist(), strict=True)}
        self._device_host_tracks = on_gpu & (cls == HOST)
        return cls

    def _pt_keys(self) -> list[tuple[Any, Any]]:
        return self._pt_all

    def group_track(self, pid: Any) -> int:
        t = self._group.get(pid)
        if t is not None:
            return t
        if pid in getattr(self, "_gpu_pids", ()):
            label = self.meta.process_labels.get(pid) or f"GPU {pid}"
            t = self.b.add_track(label, "group", None, device=label, attrs={"pid": pid},
                                 sort_index=self._process_rank.get(pid, 0))
            self._group[pid] = t
            return t
        return super().group_track(pid)

    def make_track(self, pid: Any, tid: Any, cls: int) -> int:
        if pid in self._gpu_pids and cls != HOST:
            parent = self.group_track(pid)
            # The runtime's stream number when the thread is named after it (MTIA: tid 3774 is
            # "Stream 108"), else the tid (CUDA: the tid is the stream).
            m = _STREAM_NAME.match(self.meta.thread_name.get((pid, tid)) or "")
            stream = int(m.group(1)) if m else tid
            name = f"stream {stream}{_CLASS_SUFFIX.get(cls, '')}"
            sort = self._thread_rank.get((pid, tid), 0) * 8 + cls
            attrs: dict[str, Any] = {"pid": pid, "stream": stream}
            if m:
                attrs["tid"] = tid
            if cls == DEVICE_UNKNOWN:
                attrs["device_kind"] = "unknown"
            elif cls in (GPU_ANNOTATION, GPU_OTHER):
                attrs["role"] = "other"  # labels, markers and waits over the work, not work
            return self.b.add_track(name, _CLASS_KIND.get(cls, "other"), parent, attrs=attrs, sort_index=sort)
        parent = self.group_track(pid)
        name = self.meta.thread_name.get((pid, tid)) or f"Thread {tid}"
        kind = "host" if isinstance(pid, int) else "other"
        return self.b.add_track(name, kind, parent, attrs={"pid": pid, "tid": tid},
                                sort_index=self._thread_rank.get((pid, tid), 0))

    def lift(self, rows: np.ndarray, args: pa.Array, cats: pa.Array) -> dict[str, Any]:
        n = rows.size
        self._slice_cats = cats
        self._slice_rows = rows
        if n == 0:
            return {}
        hit = pc.match_substring_regex(args, _LIFT_KEYS).fill_null(False)
        sel = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        parsed = self._decode_args(rows[sel], _KinetoLift)
        flops = np.full(n, np.nan)
        nbytes = np.full(n, np.nan)
        dtype: list[str | None] = [None] * n
        names = self.name_dict.to_pylist()
        name_code = self.name_codes[rows[sel]].tolist()
        # Shapes repeat (the same layers every step): estimate once per distinct (name, shapes).
        cache: dict[tuple[Any, ...], tuple[float | None, float | None, str | None]] = {}
        estimated = 0
        flops_estimated = 0
        for j, nc, a in zip(sel.tolist(), name_code, parsed, strict=True):
            if a is None:
                continue
            dt = a.dtype
            if a.input_dims or a.input_type:
                key = (nc, bytes(a.input_dims), bytes(a.input_type), bytes(a.concrete))
                est = cache.get(key)
                if est is None:
                    est = cache[key] = _estimate(names[nc] if nc >= 0 else "", a)
                est_f, est_b, first = est
                if a.flops is None and est_f is not None:
                    flops[j] = est_f
                    flops_estimated += 1
                if a.bytes is None and est_b is not None:
                    nbytes[j] = est_b
                    estimated += 1
                dt = dt or first
            if a.flops is not None:
                flops[j] = a.flops
            if a.bytes is not None:
                nbytes[j] = a.bytes
            dtype[j] = dt
        self.b.metadata.extra["bytes_estimated_from_input_shapes"] = estimated
        self.b.metadata.extra["flops_estimated_from_input_shapes"] = flops_estimated
        return {"flops": flops, "bytes": nbytes, "dtype": dtype}

    def extra_flows(self, slice_rows: np.ndarray, slice_ids: np.ndarray, flow_cats: set[str]) -> None:
        """Without ac2g flow events, link launches to GPU work through the correlation id."""
        if flow_cats & _LAUNCH_FLOW_CATS or slice_rows.size == 0 or self._own:
            return
        cats = self._slice_cats.cast(pa.string()).to_numpy(zero_copy_only=False)
        launch = np.isin(cats, _LAUNCH_CATS)
        gpu = np.isin(cats, list(_GPU_CATS - {"gpu_user_annotation"}))
        want = np.flatnonzero(launch | gpu)
        corr = np.full(slice_rows.size, -1, dtype=np.int64)
        got = self._decode_args(slice_rows[want], _Correlation)
        corr[want] = [-1 if a is None or a.correlation is None else a.correlation for a in got]
        is_launch = launch & (corr >= 0)
        is_gpu = gpu & (corr >= 0)
        launch_of = dict(zip(corr[is_launch].tolist(), np.flatnonzero(is_launch).tolist(), strict=True))
        fr: list[int] = []
        to: list[int] = []
        for j in np.flatnonzero(is_gpu).tolist():
            k = launch_of.get(int(corr[j]))
            if k is not None:
                fr.append(int(slice_ids[k]))
                to.append(int(slice_ids[j]))
        if fr:
            self.b.add_flows(np.asarray(fr), np.asarray(to), name=["ac2g"] * len(fr))
            self.b.metadata.extra["flow_kinds"] = flow_kinds(np.asarray(fr), np.asarray(to))
        self.b.metadata.extra["flows_from_correlation_ids"] = len(fr)

    def finish(self) -> None:
        super().finish()
        if not self._own and self.ts_max > 10**17:  # after 1973 in ns: Kineto's clock is the Unix epoch
            self.b.metadata.clock = "unix_epoch"

    def _time_base(self) -> int:
        if self._own:
            return super()._time_base()
        base = self.dec.header.get("baseTimeNanoseconds")
        return int(base) if isinstance(base, int) and not isinstance(base, bool) else 0


def read_kineto(path: str | Path) -> Trace:
    """Read a PyTorch profiler / Kineto JSON trace (``.gz`` too) into a Trace."""
    return KinetoImporter(decode_file(path)).run()
