"""Run a model under ONNX Runtime's profiler and return the imported trace."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from collectors.onnxrt.graph import load_model
from profiler.model import Trace


def profile(
    model: str | Path | bytes | Any,
    inputs: dict[str, Any],
    runs: int = 1,
    *,
    providers: list[str] | None = None,
    optimize: bool = True,
    warmup: int = 0,
    keep_profile: str | Path | None = None,
) -> Trace:
    """Run ``model`` ``runs`` times on ``inputs`` with profiling on; returns the trace.

    ``optimize=False`` turns ORT's graph rewrites off so every profiled node is a node of the
    given graph (fused kernels otherwise get new names).  ``warmup`` runs happen before profiling
    starts only in the sense that they are dropped from the trace's run numbering: ORT cannot
    pause its profiler, so they are run in a separate, unprofiled session.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # an optional extra
        raise RuntimeError("the ONNX Runtime collector needs onnxruntime (pip install 'accel-profiler[onnx]')") from exc
    proto = load_model(model)
    data = proto.SerializeToString()
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if warmup:
        wo = ort.SessionOptions()
        wo.graph_optimization_level = level
        ws = ort.InferenceSession(data, wo, providers=providers or ["CPUExecutionProvider"])
        for _ in range(warmup):
            ws.run(None, inputs)
    from collectors.onnxrt.reader import read_ort_profile

    with tempfile.TemporaryDirectory(prefix="ortprof") as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        so.graph_optimization_level = level
        sess = ort.InferenceSession(data, so, providers=providers or ["CPUExecutionProvider"])
        start = int(sess.get_profiling_start_time_ns())
        for _ in range(runs):
            sess.run(None, inputs)
        json_path = Path(sess.end_profiling())
        if keep_profile is not None:
            Path(keep_profile).write_bytes(json_path.read_bytes())
        return read_ort_profile(json_path, model=proto, start_ns=start)
