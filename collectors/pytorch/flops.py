"""FLOP and byte estimates for PyTorch (aten) ops from Kineto's recorded shapes (table-driven).

Kineto records "Input Dims", "Input type" and "Concrete Inputs" (scalars, lists) per op but no
outputs and, in torch 2.x, no FLOPs in the exported JSON.  This table infers each op's output
shape and its arithmetic.  Conventions (a multiply-add is 2 FLOPs):

=================================  ==========================================================
mm [M,K]x[K,N], addmm              2*M*N*K
bmm, baddbmm [B,M,K]x[B,K,N]        2*B*M*N*K
matmul, linear                     2*prod(output)*K          (K = last dim of the first input)
conv1d/2d/3d, convolution          2*prod(output)*(C_in/groups)*prod(kernel)
                                   (weight [C_out, C_in/groups, k...]; output size from stride,
                                   padding, dilation in Concrete Inputs)
scaled_dot_product_attention       2*B*H*L*S*E + 2*B*H*L*S*Ev (Q K^T and P V; softmax not counted)
elementwise (add, mul, relu, gelu,  prod(output)              (output = broadcast of the inputs)
  silu, sigmoid, tanh, ...)
sum, mean, amax, ...               prod(input)
softmax, log_softmax               5*prod(input)             (max, subtract, exp, sum, divide)
layer_norm, batch_norm, group_norm, 5*prod(input)             (mean, variance (2), normalize (2))
  rms_norm, instance_norm
=================================  ==========================================================

Bytes are ``(sum of tensor inputs + output) * itemsize``: what the op reads and writes once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from profiler.formats.kineto import TORCH_DTYPES

Shape = list[int]


@dataclass
class OpCall:
    """One recorded op: tensor operands (None for scalars/lists) and its concrete inputs."""

    name: str
    dims: list[Any]
    types: list[Any]
    concrete: list[Any]

    def tensor(self, i: int) -> Shape | None:
        if i >= len(self.dims):
            return None
        d, t = self.dims[i], self.types[i] if i < len(self.types) else None
        if not isinstance(t, str) or t not in TORCH_DTYPES or not isinstance(d, list):
            return None
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in d):
            return None
        return d

    def tensors(self) -> list[tuple[Shape, str]]:
        return [(d, self.types[i]) for i in range(len(self.dims)) if (d := self.tensor(i)) is not None]

    def ints(self, i: int) -> list[int] | None:
        """A concrete int list such as "[1, 1]" (or a single int "2") at position i."""
        if i >= len(self.concrete):
            return None
        v = self.concrete[i]
        if not isinstance(v, str) or not v:
            return None
        nums = re.findall(r"-?\d+", v)
        if not nums or not re.fullmatch(r"\s*\[?[\s\d,\-]*\]?\s*", v):
            return None
        return [int(x) for x in nums]


def _numel(s: Shape) -> int:
    return math.prod(s)


def _broadcast(shapes: list[Shape]) -> Shape:
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        for i, d in enumerate(s):
            j = nd - len(s) + i
            out[j] = max(out[j], d) if d != 0 else 0
    return out


Estimate = tuple[float, Shape] | None


def _mm(c: OpCall, a_i: int = 0) -> Estimate:
    a, b = c.tensor(a_i), c.tensor(a_i + 1)
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    return 2.0 * a[0] * a[1] * b[1], [a[0], b[1]]


def _bmm(c: OpCall, a_i: int = 0) -> Estimate:
    a, b = c.tensor(a_i), c.tensor(a_i + 1)
    if a is None or b is None or len(a) != 3 or len(b) != 3:
        return None
    return 2.0 * a[0] * a[1] * a[2] * b[2], [a[0], a[1], b[2]]


def _matmul(c: OpCall) -> Estimate:
    a, b = c.tensor(0), c.tensor(1)
    if a is None or b is None or not a or not b:
        return None
    k = a[-1]
    if len(b) == 1:
        out = a[:-1]
    elif len(a) == 1:
        out = b[:-2] + [b[-1]]
    else:
        out = _broadcast([a[:-2], b[:-2]]) + [a[-2], b[-1]]
    return 2.0 * _numel(out) * k, out


def _linear(c: OpCall) -> Estimate:
    x, w = c.tensor(0), c.tensor(1)
    if x is None or w is None or not x or len(w) != 2:
        return None
    out = x[:-1] + [w[0]]
    return 2.0 * _numel(out) * x[-1], out


def _conv(stride_i: int, pad_i: int, dil_i: int, groups_i: int) -> Callable[[OpCall], Estimate]:
    def est(c: OpCall) -> Estimate:
        x, w = c.tensor(0), c.tensor(1)
        if x is None or w is None or len(w) < 3 or len(x) != len(w):
            return None
        sp = len(w) - 2
        stride = c.ints(stride_i) or [1]
        dil = c.ints(dil_i) or [1]
        pad_raw = c.concrete[pad_i] if pad_i < len(c.concrete) else ""
        same = isinstance(pad_raw, str) and "same" in pad_raw
        pad = [0] if isinstance(pad_raw, str) and "valid" in pad_raw else (c.ints(pad_i) or [0])

        def at(v: list[int], i: int) -> int:
            return v[i] if i < len(v) else v[-1]

        out_sp = []
        for i in range(sp):
            n, k = x[2 + i], w[2 + i]
            if same:
                out_sp.append(n)
            else:
                out_sp.append((n + 2 * at(pad, i) - at(dil, i) * (k - 1) - 1) // at(stride, i) + 1)
        out = [x[0], w[0], *out_sp]
        return 2.0 * _numel(out) * _numel(w[1:]), out

    return est


def _sdpa(c: OpCall) -> Estimate:
    q, k, v = c.tensor(0), c.tensor(1), c.tensor(2)
    if q is None or k is None or v is None or len(q) < 2:
        return None
    batch = _numel(q[:-2])
    L, E, S, Ev = q[-2], q[-1], k[-2], v[-1]
    return 2.0 * batch * L * S * E + 2.0 * batch * L * S * Ev, q[:-1] + [Ev]


def _elementwise(c: OpCall) -> Estimate:
    ts = [s for s, _ in c.tensors()]
    if not ts:
        return None
    out = _broadcast(ts)
    return float(_numel(out)), out


def _reduction(c: OpCall) -> Estimate:
    x = c.tensor(0)
    if x is None:
        return None
    dims = c.ints(1)
    keep = len(c.concrete) > 2 and c.concrete[2] == "True"
    if dims is None:
        out: Shape = []
    else:
        axes = {d % len(x) for d in dims} if x else set()
        out = [1 if i in axes else n for i, n in enumerate(x)] if keep else [n for i, n in enumerate(x) if i not in axes]
    return float(_numel(x)), out


def _same_shape(factor: float) -> Callable[[OpCall], Estimate]:
    def est(c: OpCall) -> Estimate:
        x = c.tensor(0)
        if x is None:
            return None
        return factor * _numel(x), list(x)

    return est


ELEMENTWISE = ("add", "sub", "mul", "div", "relu", "gelu", "silu", "sigmoid", "tanh", "clamp_min", "clamp",
               "neg", "exp", "log", "sqrt", "rsqrt", "pow", "abs", "maximum", "minimum", "hardtanh", "leaky_relu",
               "elu", "mish", "hardswish", "hardsigmoid", "where", "threshold", "reciprocal", "sin", "cos",
               "erf", "rsub", "addcmul", "addcdiv", "lerp")

#: aten op name (without "aten::" and a trailing "_") -> estimator returning (flops, output shape).
TABLE: dict[str, Callable[[OpCall], Estimate]] = {
    "mm": _mm,
    "addmm": lambda c: _mm(c, 1),
    "bmm": _bmm,
    "baddbmm": lambda c: _bmm(c, 1),
    "matmul": _matmul,
    "linear": _linear,
    # conv2d(input, weight, bias, stride, padding, dilation, groups)
    "conv1d": _conv(3, 4, 5, 6), "conv2d": _conv(3, 4, 5, 6), "conv3d": _conv(3, 4, 5, 6),
    # convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    "convolution": _conv(3, 4, 5, 8), "_convolution": _conv(3, 4, 5, 8),
    "mkldnn_convolution": _conv(4, 3, 5, 6),  # (input, weight, bias, padding, stride, dilation, groups)
    "scaled_dot_product_attention": _sdpa,
    "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "sum": _reduction, "mean": _reduction, "amax": _reduction, "amin": _reduction, "prod": _reduction,
    "softmax": _same_shape(5.0), "_softmax": _same_shape(5.0), "log_softmax": _same_shape(5.0),
    "_log_softmax": _same_shape(5.0),
    "layer_norm": _same_shape(5.0), "native_layer_norm": _same_shape(5.0), "batch_norm": _same_shape(5.0),
    "native_batch_norm": _same_shape(5.0), "_batch_norm_impl_index": _same_shape(5.0),
    "group_norm": _same_shape(5.0), "native_group_norm": _same_shape(5.0), "instance_norm": _same_shape(5.0),
    "rms_norm": _same_shape(5.0), "_fused_rms_norm": _same_shape(5.0),
}
TABLE.update({name: _elementwise for name in ELEMENTWISE})


def op_key(name: str) -> str:
    """``aten::add_`` -> ``add`` (in-place variants count like their functional form)."""
    base = name.split("::", 1)[-1]
    return base[:-1] if base.endswith("_") and not base.startswith("_") else base


def estimate(name: str, dims: list[Any] | None, types: list[Any] | None,
             concrete: list[Any] | None) -> tuple[float | None, float | None]:
    """(flops, bytes) for one op call; None where the table or the shapes do not tell."""
    fn = TABLE.get(op_key(name))
    if fn is None or not dims or not types:
        return None, None
    call = OpCall(name, list(dims), list(types), list(concrete or []))
    try:
        res = fn(call)
    except (IndexError, TypeError, ValueError, ZeroDivisionError):
        return None, None
    if res is None:
        return None, None
    flops, out = res
    tensors = call.tensors()
    itemsize = TORCH_DTYPES[tensors[0][1]][1] if tensors else 4
    nbytes = sum(_numel(s) * TORCH_DTYPES[t][1] for s, t in tensors) + _numel(out) * itemsize
    return float(flops), float(nbytes)
