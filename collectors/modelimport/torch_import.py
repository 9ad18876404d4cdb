"""``torch.export`` programs as simulator workloads: ATen ops with the shapes the export traced.

``torch.export.export(module, example_inputs)`` records every ATen call with its output's fake
tensor (``node.meta["val"]``), so shapes and dtypes are exact for those inputs.  A saved program
(``torch.export.save`` -> ``.pt2``) is read with ``torch.export.load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collectors.modelimport.graph import DTYPES, GraphOp, ImportedModel, build
from collectors.modelimport.onnx_import import ModelImportError


def _shape(v: Any) -> tuple[int, ...] | None:
    shape = getattr(v, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(int(d) for d in shape)
    except TypeError:  # symbolic dims
        return None


def graph_ops(program: Any) -> list[GraphOp]:
    """The exported program's ATen calls as :class:`GraphOp` records, in graph order."""
    gm = program.graph_module
    params = set(getattr(program.graph_signature, "inputs_to_parameters", {}) or {})
    params |= set(getattr(program.graph_signature, "inputs_to_buffers", {}) or {})
    out: list[GraphOp] = []
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        target = getattr(node.target, "__name__", str(node.target))
        op_type = target.split(".")[0].lower()
        val = node.meta.get("val")
        if isinstance(val, list | tuple):
            val = val[0] if val else None
        out_shape = _shape(val) or ()
        ins, weight = [], []
        for a in node.args:
            if hasattr(a, "meta"):
                s = _shape(a.meta.get("val"))
                if s is not None:
                    ins.append(s)
                    weight.append(a.name in params)
        attrs: list[tuple[str, Any]] = []
        if op_type in ("conv2d", "convolution", "conv1d", "_convolution"):
            groups = node.kwargs.get("groups", node.args[-1] if op_type == "conv2d" and len(node.args) >= 7 else 1)
            if op_type == "convolution" and len(node.args) >= 9:
                groups = node.args[8]
            attrs.append(("groups", int(groups) if isinstance(groups, int) else 1))
        dt = DTYPES.get(str(getattr(val, "dtype", "")).replace("torch.", ""), None)
        out.append(GraphOp(node.name, op_type, tuple(ins), out_shape, dt, tuple(attrs), tuple(weight)))
    return out


def from_exported(program: Any, label: str = "model", source: str = "torch.export") -> ImportedModel:
    try:
        return build(graph_ops(program), source, label)
    except ValueError as exc:
        raise ModelImportError(str(exc)) from None


def load_exported(path: str | Path) -> ImportedModel:
    """A program saved with ``torch.export.save`` (``.pt2``) as a simulator workload."""
    try:
        import torch
    except ModuleNotFoundError:
        raise ModelImportError("reading .pt2 programs needs PyTorch: pip install 'accel-profiler[torch]'") from None
    p = Path(path)
    try:
        program = torch.export.load(str(p))
    except Exception as exc:  # torch raises many types for a bad archive
        raise ModelImportError(f"{p}: not a torch.export program: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return from_exported(program, p.stem, str(p))
