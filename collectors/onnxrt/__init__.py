"""ONNX Runtime collector: run a model with ORT's profiler on and import what it recorded.

``profile(model, inputs, runs=3)`` returns a :class:`profiler.Trace` with session spans on host
tracks and one slice per node execution on per-execution-provider compute tracks (op type,
provider, shapes, FLOPs and bytes).  ``read_ort_profile(json_path, model)`` imports a profile
written elsewhere.
"""

from collectors.onnxrt.reader import read_ort_profile
from collectors.onnxrt.run import profile

__all__ = ["profile", "read_ort_profile"]
