"""What an ONNX graph says about its nodes: op type, attributes and inferred operand shapes.

ORT's profile names nodes but omits operands it pre-packed (a Gemm's constant weight, say) and
the attributes the FLOP formulas need (``group``, ``transA``, ``kernel_shape``); the graph has
both.  Shapes come from ``onnx.shape_inference`` plus the initializers' own shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.onnxrt.flops import Tensor


@dataclass
class GraphNode:
    name: str
    op_type: str
    attrs: dict[str, Any]
    inputs: list[Tensor | None]
    outputs: list[Tensor | None]


def load_model(model: Any) -> Any:
    """An ``onnx.ModelProto`` from a path, serialized bytes or a ModelProto."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes | bytearray):
        return onnx.load_from_string(bytes(model))
    return onnx.load(str(Path(model)))


def _elem_name(elem_type: int) -> str:
    import onnx

    try:
        name = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:  # noqa: BLE001 - unknown/unsupported element type
        return "float"
    return {"float32": "float", "float64": "double"}.get(name, name)


def graph_nodes(model: Any) -> dict[str, GraphNode]:
    """Node name -> :class:`GraphNode` (unnamed nodes get ORT-like names ``<op>_<index>``)."""
    import onnx

    proto = load_model(model)
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - shapes are a bonus; keep the graph without them
        pass
    g = proto.graph
    shapes: dict[str, Tensor] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        shapes[vi.name] = Tensor(_elem_name(tt.elem_type), dims)
    for init in g.initializer:
        shapes[init.name] = Tensor(_elem_name(init.data_type), list(init.dims))
    out: dict[str, GraphNode] = {}
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()
                 if isinstance(v, int | float | bytes | str | list)}
        out[name] = GraphNode(
            name, node.op_type, attrs,
            [shapes.get(x) if x else None for x in node.input],
            [shapes.get(x) if x else None for x in node.output],
        )
    return out
