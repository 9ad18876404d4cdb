"""A model's compute graph, lowered to the simulator's ops.

Importers (ONNX, ``torch.export``) turn a model into :class:`GraphOp` records (node name, op type,
input and output shapes, attributes) in execution order; :func:`lower` turns each into the
simulator's primitive ops, keeping the node's name as the op's label so the trace, the report and
the dashboard name the model's own nodes.

What each op type becomes (FLOPs are counted as PyTorch's ``FlopCounterMode`` counts them:
2 per multiply-add, bias adds not counted):

* matrix products (MatMul, Gemm, Linear, batched matmul): a GEMM of M x N x K, leading dims of a
  weight product folded into M, of a batched product into ``batch``;
* convolutions (any groups, stride, dilation, padding; depthwise included): im2col GEMMs, one per
  group (``batch`` = groups) of M = N*Ho*Wo, N = Cout/groups, K = Cin/groups*kh*kw;
* elementwise ops and activations: a vector op over the output, reading each tensor input;
* normalizations (LayerNorm, BatchNorm at inference, RMSNorm, GroupNorm): a layernorm-like
  vector op; Softmax: a softmax vector op; reductions and pooling: vector ops over their input;
* data movement (Transpose, Concat, Gather, Slice, Pad, Expand, Cast, ...): a memory-bound op that
  reads and writes the output's bytes;
* views (Reshape, Flatten, Squeeze, Identity, Shape, Constant, Dropout): nothing;
* anything else: a memory-bound op sized by its inputs' and output's bytes, listed as unmodeled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from collectors.simulator.workloads import Elementwise, Gemm, LayerNorm, Softmax, VectorOp

#: element type names -> the simulator's dtype names
DTYPES = {"float": "fp32", "float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
          "double": "fp64", "float64": "fp64", "int8": "int8", "uint8": "int8", "float8_e4m3fn": "fp8",
          "float8_e5m2": "fp8", "int32": "int32", "int64": "int64", "bool": "bool"}

VIEW_OPS = {"reshape", "flatten", "squeeze", "unsqueeze", "identity", "shape", "constant", "dropout", "view",
            "_unsafe_view", "alias", "detach", "t", "expand_dims", "size", "sym_size", "constantofshape",
            "clone", "contiguous", "lift_fresh_copy", "_assert_tensor_metadata"}
MATMUL_OPS = {"matmul", "mm", "bmm", "gemm", "addmm", "linear", "baddbmm", "einsum_matmul"}
CONV_OPS = {"conv", "conv2d", "convolution", "conv1d", "_convolution"}
SOFTMAX_OPS = {"softmax", "_softmax", "logsoftmax", "log_softmax", "_log_softmax"}
NORM_OPS = {"layernormalization", "layer_norm", "native_layer_norm", "batchnormalization", "batch_norm",
            "_native_batch_norm_legit_no_training", "instancenormalization", "groupnormalization", "group_norm",
            "rmsnorm", "rms_norm", "simplifiedlayernormalization", "native_group_norm"}
REDUCE_OPS = {"reducemean", "reducesum", "reducemax", "reducemin", "reduceprod", "mean", "sum", "amax", "amin",
              "argmax", "argmin", "max", "min", "globalaveragepool", "globalmaxpool", "adaptive_avg_pool2d",
              "_adaptive_avg_pool2d"}
POOL_OPS = {"maxpool", "averagepool", "max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "lppool"}
MOVE_OPS = {"transpose", "permute", "concat", "cat", "gather", "slice", "split", "split_with_sizes", "pad",
            "constant_pad_nd", "expand", "tile", "repeat", "where", "cast", "_to_copy", "to", "copy", "index",
            "select", "embedding", "gatherelements", "scatter", "scatternd", "resize", "upsample_nearest2d",
            "upsample_bilinear2d", "depthtospace", "spacetodepth", "roll", "flip", "stack", "narrow",
            "index_select", "masked_fill", "triu", "tril", "arange", "zeros", "ones", "full", "new_zeros",
            "scalar_tensor", "fill", "range"}
#: vector FLOPs per output element of elementwise ops (1 unless the op is a known composite)
ELEMENTWISE_FLOPS = {"gelu": 8.0, "erf": 4.0, "silu": 4.0, "sigmoid": 4.0, "tanh": 4.0, "exp": 1.0,
                     "hardswish": 3.0, "softplus": 3.0, "mish": 6.0, "sqrt": 1.0, "rsqrt": 1.0, "pow": 1.0}


@dataclass(frozen=True)
class GraphOp:
    """One node: its name, op type (lower case), tensor input shapes, output shape, dtype, attrs."""

    name: str
    op_type: str
    inputs: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    dtype: str | None = None
    attrs: tuple[tuple[str, Any], ...] = ()
    weight_inputs: tuple[bool, ...] = ()  # which inputs are constants (weights)

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)


@dataclass(frozen=True)
class ImportedModel:
    """A model as a simulator workload: its lowered ops, and what had no model of its own."""

    ops: tuple[Any, ...]
    nodes: tuple[str, ...] = ()  # graph node of each op (several ops may share a node: one per group)
    unmodeled: tuple[str, ...] = ()  # "node (OpType)" of ops simulated as plain memory traffic
    source: str = "model"
    source_dtype: str | None = None
    dtype: str | None = None
    label: str = "model"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        return list(self.ops)


def _numel(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape)) if shape else 1


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    if not shape:
        return 1, 1
    return max(_numel(shape[:-1]), 1), max(int(shape[-1]), 1)


#: row length elementwise ops are laid out in: they have no row dependency, and a row this long fits
#: any core's working storage with double buffering
FLAT_COLS = 4096


def _flat(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, cols) of an elementwise op's data: its last dim, or FLAT_COLS-long rows when that is longer."""
    r, c = _rows_cols(shape)
    if c <= FLAT_COLS:
        return r, c
    return -(-(r * c) // FLAT_COLS), FLAT_COLS


def _memory_op(name: str, shape: tuple[int, ...], inputs: int = 1) -> VectorOp:
    r, c = _flat(shape)
    return Elementwise(rows=r, cols=c, inputs=inputs, flops_per_element=0.0, label=name)


def _matmul(op: GraphOp) -> list[Any]:
    a, b = op.inputs[0], op.inputs[1]
    if op.op_type == "gemm":  # ONNX Gemm: A (M,K) or transposed, B (K,N) or transposed
        m, k = (a[1], a[0]) if op.attr("transA", 0) else (a[0], a[1])
        n = b[0] if op.attr("transB", 0) else b[1]
        return [Gemm(M=m, N=n, K=k, label=op.name)]
    if op.op_type in ("linear",):  # torch linear: x (..., K) @ W (N, K)^T
        k = a[-1]
        return [Gemm(M=max(_numel(a[:-1]), 1), N=b[0], K=k, label=op.name)]
    if op.op_type in ("addmm", "baddbmm"):  # bias first
        a, b = op.inputs[1], op.inputs[2]
    if len(a) == 1:
        a = (1, a[0])
    if len(b) == 1:
        b = (b[0], 1)
    k, n = a[-1], b[-1]
    out = op.output
    if len(b) == 2:  # a weight (or any 2-D right operand): fold a's leading dims into M
        return [Gemm(M=max(_numel(a[:-1]), 1), N=n, K=k, label=op.name)]
    m = a[-2]
    batch = max(_numel(out[:-2]), 1) if len(out) > 2 else max(_numel(b[:-2]), 1)
    return [Gemm(M=m, N=n, K=k, batch=batch, label=op.name)]


def _conv(op: GraphOp) -> list[Any]:
    x, w = op.inputs[0], op.inputs[1]
    out = op.output
    groups = int(op.attr("group", op.attr("groups", 1)) or 1)
    n_batch = x[0]
    cin = x[1]
    cout = w[0]
    kernel = _numel(w[2:])
    spatial = _numel(out[2:])
    k = (cin // groups) * kernel
    return [Gemm(M=n_batch * spatial, N=cout // groups, K=k, batch=groups, label=op.name)]


def lower(op: GraphOp) -> tuple[list[Any], bool]:
    """(simulator ops, True when the op had a model of its own) for one graph node."""
    t = op.op_type
    out = op.output
    if t in VIEW_OPS:
        return [], True
    if t in MATMUL_OPS and len(op.inputs) >= 2:
        return _matmul(op), True
    if t in CONV_OPS and len(op.inputs) >= 2 and len(op.inputs[0]) >= 3:
        return _conv(op), True
    r, c = _rows_cols(out)
    if t in SOFTMAX_OPS:
        return [Softmax(rows=r, cols=c, label=op.name)], True
    if t in NORM_OPS:
        xr, xc = _rows_cols(op.inputs[0]) if op.inputs else (r, c)
        if t.startswith("batch") or "batch_norm" in t:  # per-channel scale and shift at inference
            fr, fc = _flat(out)
            return [Elementwise(rows=fr, cols=fc, inputs=1, flops_per_element=2.0, label=op.name)], True
        return [LayerNorm(rows=xr, cols=xc, label=op.name)], True
    if t in REDUCE_OPS or t in POOL_OPS:
        src = op.inputs[0] if op.inputs else out
        sr, sc = _rows_cols(src)
        return [VectorOp(rows=sr, cols=sc, inputs=1, flops_per_element=1.0, label=op.name)], True
    if t in MOVE_OPS:
        return ([_memory_op(op.name, out)] if _numel(out) else []), True
    n_tensor_inputs = max(sum(1 for s in op.inputs if _numel(s) > 1), 1)
    if t in ELEMENTWISE_FLOPS or t in _ELEMENTWISE:
        fr, fc = _flat(out)
        return [Elementwise(rows=fr, cols=fc, inputs=n_tensor_inputs, flops_per_element=ELEMENTWISE_FLOPS.get(t, 1.0),
                            label=op.name)], True
    total = _numel(out) + sum(_numel(s) for s in op.inputs)
    rows, cols = _flat((total,)) if total else (1, 1)
    return [Elementwise(rows=rows, cols=cols, inputs=1, flops_per_element=0.0, label=op.name)], False


_ELEMENTWISE = {"add", "sub", "mul", "div", "relu", "leakyrelu", "leaky_relu", "clip", "clamp", "neg", "abs",
                "reciprocal", "sin", "cos", "log", "hardtanh", "relu6", "hardsigmoid", "prelu", "elu", "selu",
                "celu", "sign", "floor", "ceil", "round", "not", "and", "or", "equal", "less", "greater",
                "mod", "minimum", "maximum", "addcmul", "rsub", "bitwise_not", "logical_not", "gt", "lt", "eq",
                "ne", "ge", "le", "square", "mul_", "add_", "silu_", "relu_", "gelu_", "isinf", "isnan"}


def build(graph: list[GraphOp], source: str, label: str) -> ImportedModel:
    """Lower every node (see the module docstring); unmodeled nodes are listed."""
    ops: list[Any] = []
    nodes: list[str] = []
    unmodeled: list[str] = []
    seen: dict[str, int] = {}
    dtypes = [g.dtype for g in graph if g.dtype]
    for g in graph:
        # labels must be unique (the simulator keys per-op accounting by them)
        k = seen.get(g.name, 0)
        seen[g.name] = k + 1
        if k:
            g = GraphOp(f"{g.name}#{k}", g.op_type, g.inputs, g.output, g.dtype, g.attrs, g.weight_inputs)
        lowered, modeled = lower(g)
        ops += lowered
        nodes += [g.name] * len(lowered)
        if not modeled:
            unmodeled.append(f"{g.name} ({g.op_type})")
    if not ops:
        raise ValueError(f"{source}: no op of the model could be simulated")
    return ImportedModel(tuple(ops), tuple(nodes), tuple(unmodeled), source,
                         max(set(dtypes), key=dtypes.count) if dtypes else None, label=label)


__all__ = ["DTYPES", "GraphOp", "ImportedModel", "build", "lower"]
