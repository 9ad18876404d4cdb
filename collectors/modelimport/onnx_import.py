"""ONNX files as simulator workloads: shapes from ONNX's own shape inference, nodes in graph order.

ONNX graphs are topologically sorted by the standard, so node order is execution order.  Shapes
come from ``onnx.shape_inference.infer_shapes`` over the graph's inputs, initializers and value
infos; a node whose output shape stays unknown (dynamic dims) is lowered from what is known and,
if nothing is, counted as unmodeled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collectors.modelimport.graph import DTYPES, GraphOp, ImportedModel, build
from profiler.errors import ProfilerError


class ModelImportError(ProfilerError):
    """A model file that cannot be read or has no simulatable op."""


def _dims(t: Any) -> tuple[int, ...] | None:
    shape = t.type.tensor_type.shape
    dims = []
    for d in shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def graph_ops(model: Any) -> list[GraphOp]:
    """The model's nodes as :class:`GraphOp` records (after shape inference)."""
    import onnx
    from onnx import helper, shape_inference

    try:
        model = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # onnx raises its own exception types for inconsistent graphs
        raise ModelImportError(f"shape inference failed: {str(exc).splitlines()[0]}") from None
    g = model.graph
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, str] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
        et = vi.type.tensor_type.elem_type
        if et:
            types[vi.name] = onnx.helper.tensor_dtype_to_np_dtype(et).name
    weights = set()
    for init in g.initializer:
        shapes[init.name] = tuple(int(x) for x in init.dims)
        types[init.name] = helper.tensor_dtype_to_np_dtype(init.data_type).name
        weights.add(init.name)
    out: list[GraphOp] = []
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        ins = [n for n in node.input if n]
        in_shapes = tuple(shapes.get(n, ()) for n in ins)
        o = node.output[0] if node.output else ""
        out_shape = shapes.get(o, ())
        attrs = tuple((a.name, helper.get_attribute_value(a)) for a in node.attribute
                      if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.INTS,
                                    onnx.AttributeProto.STRING))
        dt = DTYPES.get(types.get(o, ""), None)
        out.append(GraphOp(name, node.op_type.lower(), in_shapes, out_shape, dt, attrs,
                           tuple(n in weights for n in ins)))
    return out


def load_onnx(path: str | Path) -> ImportedModel:
    """An ONNX file as a simulator workload (see the module docstring)."""
    try:
        import onnx
    except ModuleNotFoundError:
        raise ModelImportError("reading ONNX needs the onnx package: pip install 'accel-profiler[onnx]'") from None
    p = Path(path)
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # a protobuf decode error, a missing external-data file, ...
        raise ModelImportError(f"{p}: not a readable ONNX model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        return build(graph_ops(model), str(p), p.stem)
    except ValueError as exc:
        raise ModelImportError(str(exc)) from None
