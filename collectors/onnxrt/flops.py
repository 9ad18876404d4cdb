"""FLOP and byte estimates for ONNX operators, from shapes (table-driven).

ONNX Runtime reports time and tensor shapes per node but no arithmetic counts; the roofline needs
them.  Formulas (one multiply-add counts as 2 FLOPs; bias adds, padding and integer index math
are not counted, matching what PyTorch's own ``with_flops`` counts for conv and matmul):

==========================  ==============================================================
Conv / ConvTranspose         2 * prod(output) * (C_in / group) * prod(kernel)
                             (weight shape [C_out, C_in/group, k...] gives C_in/group * k)
Gemm                         2 * M * N * K          (Y[M, N] = A[M, K] @ B[K, N])
MatMul                       2 * prod(output) * K   (K = last dim of A)
elementwise (Add, Relu, ..)  1 * prod(output)
MaxPool / AveragePool        prod(output) * prod(kernel_shape)
Global{Average,Max}Pool      prod(input)
Reduce*                      prod(input)
Softmax / LogSoftmax         5 * prod(input)        (max, subtract, exp, sum, divide)
norms (Layer/Batch/Group/    5 * prod(input)        (mean, variance (2), normalize (2))
  InstanceNormalization)
data movement (Reshape,      0
  Flatten, Transpose, ...)
==========================  ==============================================================

Bytes are always ``sum(input sizes) + sum(output sizes)`` times the element size: the traffic a
kernel makes with no cache reuse, the usual roofline convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: ONNX / ORT element type names -> bytes per element.
ITEMSIZE = {
    "float": 4, "float32": 4, "tensor(float)": 4, "double": 8, "float64": 8, "float16": 2, "bfloat16": 2,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1,
    "bool": 1, "float8e4m3fn": 1, "float8e5m2": 1, "string": 0,
}

#: ONNX element type names -> the short dtype names the trace model uses.
DTYPE_NAME = {"float": "fp32", "float32": "fp32", "double": "fp64", "float16": "fp16", "bfloat16": "bf16",
              "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8", "bool": "bool"}

ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Gelu", "Erf", "Exp",
    "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Max", "Min", "Clip", "Elu", "Selu", "HardSigmoid", "HardSwish",
    "Softplus", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "Cast", "Sum", "Mean", "BiasGelu",
    "FastGelu", "QuickGelu", "Mish", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign",
})
REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
                        "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin"})
NORMS = frozenset({"LayerNormalization", "BatchNormalization", "GroupNormalization", "InstanceNormalization",
                   "SimplifiedLayerNormalization", "SkipLayerNormalization", "RMSNormalization"})
MOVEMENT = frozenset({"Reshape", "Flatten", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Concat", "Split",
                      "Slice", "Gather", "Expand", "Shape", "Pad", "Tile", "ReorderInput", "ReorderOutput",
                      "Dropout", "Constant", "ConstantOfShape", "Resize"})


@dataclass
class Tensor:
    """An operand: element type name and shape (None dims are unknown)."""

    dtype: str
    shape: list[int | None]

    @property
    def numel(self) -> float:
        if any(d is None for d in self.shape):
            return math.nan
        return float(math.prod(d for d in self.shape if d is not None))

    @property
    def nbytes(self) -> float:
        return self.numel * ITEMSIZE.get(self.dtype, 4)


@dataclass
class OpShapes:
    """What the estimator needs to know about one node execution."""

    op_type: str
    inputs: list[Tensor | None]
    outputs: list[Tensor | None]
    attrs: dict[str, Any] = field(default_factory=dict)


def _numel(t: Tensor | None) -> float:
    return math.nan if t is None else t.numel


def estimate_flops(op: OpShapes) -> float:
    """FLOPs of one execution of ``op`` (NaN when the shapes do not tell)."""
    t = op.op_type
    ins, outs = op.inputs, op.outputs
    out = outs[0] if outs else None
    x = ins[0] if ins else None
    if t in ("Conv", "ConvTranspose", "FusedConv", "NhwcConv", "QLinearConv"):
        w = ins[1] if len(ins) > 1 else None
        if w is None or len(w.shape) < 3 or out is None:
            return math.nan
        if t == "ConvTranspose":  # weight [C_in, C_out/group, k...]: every input element meets C_out/g*k
            return 2.0 * _numel(x) * float(math.prod(d or 0 for d in w.shape[1:]))
        per_out = float(math.prod(d or 0 for d in w.shape[1:]))  # C_in/group * prod(kernel)
        return 2.0 * out.numel * per_out
    if t in ("Gemm", "FusedGemm"):
        a = x
        if a is None or out is None or len(a.shape) != 2 or len(out.shape) != 2:
            return math.nan
        trans_a = int(op.attrs.get("transA", 0))
        m = out.shape[0]
        k = a.shape[0] if trans_a else a.shape[1]
        if "transA" not in op.attrs and a.shape[0] != m:  # attributes unknown: the dim that is not M
            k = a.shape[0]
        if m is None or k is None or out.shape[1] is None:
            return math.nan
        return 2.0 * m * out.shape[1] * k
    if t in ("MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul"):
        if x is None or out is None or not x.shape or x.shape[-1] is None:
            return math.nan
        return 2.0 * out.numel * x.shape[-1]
    if t in ELEMENTWISE:
        return _numel(out)
    if t in ("MaxPool", "AveragePool", "LpPool"):
        k = op.attrs.get("kernel_shape")
        if not k or out is None:
            return math.nan
        return out.numel * float(math.prod(k))
    if t in ("GlobalAveragePool", "GlobalMaxPool") or t in REDUCTIONS:
        return _numel(x)
    if t in ("Softmax", "LogSoftmax") or t in NORMS:
        return 5.0 * _numel(x)
    if t in MOVEMENT:
        return 0.0
    return math.nan


def estimate_bytes(op: OpShapes) -> float:
    """Bytes read and written: every known input and output once."""
    total = 0.0
    seen = False
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None:
            total += tensor.nbytes
            seen = True
    return total if seen else math.nan


def tensors_from_ort(shapes: Sequence[Any] | None) -> list[Tensor | None]:
    """ORT's ``input_type_shape`` / ``output_type_shape``: ``[{"float": [2, 3]}, ...]``."""
    out: list[Tensor | None] = []
    for item in shapes or []:
        if isinstance(item, dict) and len(item) == 1:
            (dt, shape), = item.items()
            if isinstance(shape, list) and all(isinstance(d, int) for d in shape):
                out.append(Tensor(str(dt), [int(d) for d in shape]))
                continue
        out.append(None)
    return out
