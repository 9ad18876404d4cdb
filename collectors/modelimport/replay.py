"""Simulated beside measured: replay the ops of a real PyTorch trace on a hardware spec.

A PyTorch profiler trace recorded with ``record_shapes=True`` gives every ATen op its input
shapes and dtypes (``Input Dims``/``Input type``).  Each matrix op (``aten::mm``, ``addmm``,
``bmm``, ``matmul``, ``linear``; the outermost of nested ones, so ``linear`` over ``addmm``
counts once) and each elementwise, normalization or softmax op is lowered as
:mod:`collectors.modelimport.graph` lowers a model's nodes and simulated alone on the spec
(summary detail, once per distinct shape).  The measured time of an op is what ran for it on
the device (the kernels its launches started, through the launch flows) when the trace has
device work, else its own CPU time.

The result has one row per (op, shapes): count, measured and simulated medians, the dtype the
simulation used, and the error (simulated / measured - 1), plus :func:`error_summary` over the rows.

An fp32 matrix op whose measured time beats the spec's fp32 peak (its FLOPs over the measured
time exceed the dense fp32 FLOP/s) cannot have run in fp32 arithmetic: no kernel is faster than
its roofline.  On a spec with TF32 (an Ampere or later GPU, where PyTorch ran fp32 matmuls on
the tensor cores by default until 1.12) such an op is simulated in tf32, and its row says so
(``sim_dtype``).  An explicit ``dtype`` is used as given.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from collectors.modelimport.graph import DTYPES, GraphOp, ImportedModel, lower
from profiler.errors import ProfilerError
from profiler.hardware import HardwareSpec
from profiler.model import Trace

MATRIX = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"}
VECTOR = {"aten::add", "aten::mul", "aten::relu", "aten::gelu", "aten::silu", "aten::sigmoid", "aten::tanh",
          "aten::softmax", "aten::_softmax", "aten::layer_norm", "aten::native_layer_norm", "aten::div",
          "aten::sub", "aten::add_", "aten::mul_", "aten::relu_"}
TORCH_DTYPES = {"float": "fp32", "c10::half": "fp16", "c10::bfloat16": "bf16", "double": "fp64",
                "signed char": "int8", "c10::float8_e4m3fn": "fp8"}
_MATRIX_TYPES = ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm")  # op types of MATRIX ops
COLUMNS = ["op", "shapes", "dtype", "sim_dtype", "count", "flops", "measured_ns", "simulated_ns", "error_pct"]


def _graph_op(name: str, args: dict[str, Any]) -> GraphOp | None:
    dims = args.get("Input Dims")
    types = args.get("Input type") or []
    if not isinstance(dims, list):
        return None
    shapes = tuple(tuple(int(x) for x in d) for d in dims if isinstance(d, list) and d and
                   all(isinstance(x, int | float) for x in d))
    if not shapes:
        return None
    t = name.split("::", 1)[-1].lower()
    dt = next((TORCH_DTYPES.get(str(x).lower()) for x in types if str(x).lower() in TORCH_DTYPES), None)
    out: tuple[int, ...] = shapes[0] if t not in _MATRIX_TYPES else ()
    return GraphOp(name, t, shapes, out, dt or DTYPES.get(str(types[0]) if types else "", None))


def _measured(trace: Trace, rows: np.ndarray) -> np.ndarray:
    """Device time of each op (its launches' kernels), or its own time when it launched none.

    Slices are sorted by (track, ts), so what an op called on its thread is the contiguous run of
    its track's slices that start inside it: two binary searches per op, not a scan.
    """
    sl = trace.slices
    dur = sl["dur"].to_numpy()
    if trace.flows.num_rows == 0:
        return dur[rows].astype(float)
    track = sl["track"].to_numpy()
    ts = sl["ts"].to_numpy()
    src = trace.flows["from_slice"].to_numpy()
    dst = trace.flows["to_slice"].to_numpy()
    order = np.argsort(src, kind="stable")
    src_s, dst_s = src[order], dst[order]
    bounds = np.searchsorted(track, np.arange(int(track.max()) + 2))  # first row of each track
    out = dur[rows].astype(float)
    for i, r in enumerate(rows):
        lo, hi = bounds[track[r]], bounds[track[r] + 1]
        a = lo + np.searchsorted(ts[lo:hi], ts[r], "left")
        b = lo + np.searchsorted(ts[lo:hi], ts[r] + dur[r], "right")
        f0, f1 = np.searchsorted(src_s, a, "left"), np.searchsorted(src_s, b, "left")
        targets = dst_s[f0:f1]
        targets = targets[track[targets] != track[r]]
        if targets.size:
            out[i] = float(dur[np.unique(targets)].sum())
    return out


def replay(trace: Trace, spec: HardwareSpec, dtype: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """One row per (op, shapes) of the trace: measured vs simulated (see the module docstring).

    Rows come by measured total time (count x median), most first; ``limit`` simulates only
    that many of them.
    """
    sl = trace.slices
    names = np.asarray(sl["name"].to_pylist(), dtype=object)
    wanted = np.isin(names, list(MATRIX | VECTOR))
    parent = np.asarray(sl["parent"].fill_null(-1).to_numpy(), dtype=np.int64) if sl.num_rows else np.zeros(0, int)
    # the outermost supported op only (aten::linear, not the aten::addmm inside it)
    inner = np.zeros(sl.num_rows, dtype=bool)
    for r in np.flatnonzero(wanted):
        p = parent[r]
        while p >= 0:
            if wanted[p]:
                inner[r] = True
                break
            p = parent[p]
    rows = np.flatnonzero(wanted & ~inner)
    if rows.size == 0:
        return pd.DataFrame(columns=COLUMNS)
    args_col = sl["args"].take(rows).to_pylist()
    measured = _measured(trace, rows)
    recs = []
    for r, a, m in zip(rows, args_col, measured, strict=True):
        g = _graph_op(str(names[r]), json.loads(a) if a else {})
        if g is not None:
            recs.append({"op": g.name, "shapes": " x ".join("[" + ",".join(map(str, x)) + "]" for x in g.inputs),
                         "dtype": g.dtype, "measured_ns": m, "g": g})
    if not recs:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(recs)
    agg = df.groupby(["op", "shapes", "dtype"], dropna=False, sort=False).agg(
        count=("measured_ns", "size"), measured_ns=("measured_ns", "median"), total_ns=("measured_ns", "sum"),
        g=("g", "first")).reset_index()
    agg = agg.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    if limit is not None:
        agg = agg.head(limit)
    sims, flops, used = [], [], []
    for g, measured_ns in zip(agg["g"], agg["measured_ns"], strict=True):
        sim_dt = dtype or _sim_dtype(spec, g.dtype)
        sim, fl = _simulate_op(g, spec, sim_dt)
        if dtype is None and _beats_fp32_peak(spec, g, sim_dt, fl, measured_ns):
            sim_dt = "tf32"
            sim, fl = _simulate_op(g, spec, sim_dt)
        sims.append(sim)
        flops.append(fl)
        used.append(sim_dt or "")
    agg["simulated_ns"] = sims
    agg["flops"] = flops
    agg["sim_dtype"] = used
    agg["error_pct"] = (agg["simulated_ns"] / agg["measured_ns"] - 1) * 100
    return agg[COLUMNS]


def _beats_fp32_peak(spec: HardwareSpec, g: GraphOp, sim_dtype: str | None, flops: float,
                     measured_ns: float) -> bool:
    """An fp32 matrix op measured faster than the fp32 roofline, on a spec that has tf32."""
    if g.op_type not in _MATRIX_TYPES or sim_dtype != "fp32" or not spec.supports("tf32"):
        return False
    if not (flops > 0 and measured_ns > 0):
        return False
    return flops / (measured_ns * 1e-9) > spec.peak("fp32")


def _simulate_op(g: GraphOp, spec: HardwareSpec, dtype: str | None) -> tuple[float, float]:
    """(simulated ns, FLOPs) of one op alone on ``spec``; NaN when it has no model or cannot be placed."""
    from collectors.simulator import simulate

    ops, modeled = lower(GraphOp("op", g.op_type, g.inputs, g.output, g.dtype))
    if not ops or not modeled:
        return float("nan"), float("nan")
    try:
        res = simulate(ImportedModel(tuple(ops)), spec, dtype=dtype, detail="summary")
    except ProfilerError:  # a shape the simulator cannot place (a row too long for a core)
        return float("nan"), float("nan")
    return float(res.total_ns), float(res.stats["flops"])


def _sim_dtype(spec: HardwareSpec, dtype: str | None) -> str | None:
    """The trace's dtype when the spec has it, else the spec's own choice (fp32 on a GPU: tf32 if need be)."""
    if dtype and spec.supports(dtype):
        return dtype
    if dtype == "fp32" and spec.supports("tf32"):
        return "tf32"
    return None


def error_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """How far simulated is from measured over the replayed rows (weighted by count)."""
    ok = rows.dropna(subset=["error_pct"])
    if ok.empty:
        return {"rows": 0}
    err = np.abs(ok["error_pct"].to_numpy())
    w = ok["count"].to_numpy()
    return {"rows": int(len(ok)), "instances": int(w.sum()), "median_abs_error_pct": float(np.median(err)),
            "p90_abs_error_pct": float(np.percentile(err, 90)),
            "weighted_mean_abs_error_pct": float((err * w).sum() / w.sum()),
            "within_10_pct": float((err <= 10).mean() * 100), "within_25_pct": float((err <= 25).mean() * 100)}
