"""Workload descriptions: what to simulate, independent of any machine.

Each workload is a frozen dataclass.  Composite workloads (a transformer block, a CNN encoder,
an LLM decode step) expand into a sequence of primitive ops -- :class:`Gemm`,
:class:`VectorOp` subclasses and :class:`Attention` -- that the tiling compiler lowers.
``dtype=None`` means "the caller's dtype, else the spec's preferred matmul dtype".
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union


@dataclass(frozen=True)
class Gemm:
    """C[M,N] = A[M,K] @ B[K,N], ``batch`` independent times.

    ``split`` says how cores share the work: ``n``/``m`` split output columns/rows, ``k`` splits
    the reduction (tensor parallel: partial sums travel core to core and are added on a vector
    engine), ``batch`` splits the batch, ``auto`` picks one.
    """

    M: int = 1024
    N: int = 1024
    K: int = 1024
    dtype: str | None = None
    tile_m: int | None = None
    tile_n: int | None = None
    tile_k: int | None = None
    buffering: int | None = None  # ring slots per operand; None: the mapper's choice (2 without one)
    # mnk | nmk | swizzle (output tiles in groups of 8 tile rows, column by column); the reduction
    # loop is innermost (output-stationary).  None: the mapper's choice (mnk without one)
    loop_order: str | None = None
    batch: int = 1
    split: str = "auto"  # auto | n | m | k | batch | tiles | none
    label: str = "gemm"
    kind: ClassVar[str] = "gemm"  # the op kind a spec's [timing] fixed costs are keyed by


@dataclass(frozen=True)
class Conv2d:
    """A 2-D convolution (NHWC), lowered to a GEMM through im2col."""

    batch: int = 1
    height: int = 56
    width: int = 56
    in_channels: int = 64
    out_channels: int = 64
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    dtype: str | None = None
    tile_m: int | None = None
    tile_n: int | None = None
    tile_k: int | None = None
    buffering: int = 2
    label: str = "conv2d"

    @property
    def out_hw(self) -> tuple[int, int]:
        ho = (self.height + 2 * self.padding - self.kernel) // self.stride + 1
        wo = (self.width + 2 * self.padding - self.kernel) // self.stride + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"{self.label}: kernel {self.kernel} does not fit a {self.height}x{self.width} input")
        return ho, wo

    def as_gemm(self) -> Gemm:
        ho, wo = self.out_hw
        return Gemm(M=self.batch * ho * wo, N=self.out_channels, K=self.in_channels * self.kernel**2,
                    dtype=self.dtype, tile_m=self.tile_m, tile_n=self.tile_n, tile_k=self.tile_k,
                    buffering=self.buffering, label=self.label)


@dataclass(frozen=True)
class VectorOp:
    """A row-wise op on the vector engine; streams ``inputs`` tensors of rows x cols in, one out."""

    rows: int = 4096
    cols: int = 4096
    dtype: str | None = None
    buffering: int = 2
    tile_rows: int | None = None
    inputs: int = 1
    flops_per_element: float = 1.0
    label: str = "vector"
    # how many times the kernel reads its inputs from DRAM (a row too long to keep on chip is
    # read once for its statistics and again to produce the output)
    passes: int = 1
    kind: ClassVar[str] = "vector"


@dataclass(frozen=True)
class Elementwise(VectorOp):
    inputs: int = 2
    flops_per_element: float = 1.0
    label: str = "add"
    kind: ClassVar[str] = "elementwise"


@dataclass(frozen=True)
class Gelu(VectorOp):
    """GELU over a rows x cols tensor (one input, one output)."""

    inputs: int = 1
    # tanh form: x^3, two multiply-adds, tanh, 1 + t, two multiplies (ASSUMPTION: ~8 FLOPs/element)
    flops_per_element: float = 8.0
    label: str = "gelu"
    kind: ClassVar[str] = "gelu"


@dataclass(frozen=True)
class LayerNorm(VectorOp):
    # mean, variance (sub, square, sum), normalize (sub, mul rsqrt), scale and shift
    flops_per_element: float = 8.0
    label: str = "layernorm"
    kind: ClassVar[str] = "layernorm"


@dataclass(frozen=True)
class Softmax(VectorOp):
    # max, sub, exp, sum, divide
    flops_per_element: float = 5.0
    label: str = "softmax"
    # ASSUMPTION: a framework's softmax reads each row twice (max and sum, then normalise): the
    # measured A100 rates (tests/data/measured_a100) sit at half of what one read would allow
    passes: int = 2
    kind: ClassVar[str] = "softmax"


@dataclass(frozen=True)
class Attention:
    """softmax(Q K^T) V over ``heads`` heads.  ``flash``: tiled, scores never leave SRAM;
    otherwise two batched GEMMs around a softmax with the scores in DRAM.

    ``kv_heads``: grouped-query attention; the ``heads/kv_heads`` query heads sharing a K/V head
    are packed into one unit's query rows, so K/V are read once per K/V head.  ``causal``: query i
    sees keys up to ``kv - seq_len + i``; the flash kernel skips the K/V beyond a query tile's last
    row (about half the FLOPs of a prefill); the unfused form computes every score anyway."""

    batch: int = 1
    heads: int = 8
    seq_len: int = 512  # query length
    kv_len: int | None = None  # keys/values length (KV cache length when decoding); None = seq_len
    head_dim: int = 64
    dtype: str | None = None
    flash: bool = True
    tile_q: int | None = None
    tile_kv: int | None = None
    buffering: int = 2
    label: str = "attention"
    kv_heads: int | None = None  # None: one K/V head per query head
    causal: bool = False
    kind: ClassVar[str] = "attention"

    @property
    def kv(self) -> int:
        return self.kv_len or self.seq_len

    @property
    def group(self) -> int:
        """Query heads per K/V head."""
        kvh = self.kv_heads or self.heads
        if kvh < 1 or self.heads % kvh:
            raise ValueError(f"{self.label}: heads {self.heads} is not a multiple of kv_heads {kvh}")
        return self.heads // kvh

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        grp = self.group
        if self.flash:
            return [self]
        bh = self.batch * self.heads
        return [
            Gemm(M=self.seq_len * grp, N=self.kv, K=self.head_dim, batch=bh // grp, dtype=dtype, buffering=self.buffering,
                 label=f"{self.label}.qk"),
            Softmax(rows=bh * self.seq_len, cols=self.kv, dtype=act_dtype, buffering=self.buffering,
                    label=f"{self.label}.softmax"),
            Gemm(M=self.seq_len * grp, N=self.head_dim, K=self.kv, batch=bh // grp, dtype=dtype, buffering=self.buffering,
                 label=f"{self.label}.pv"),
        ]


@dataclass(frozen=True)
class ModelConfig:
    """A decoder-only transformer: matmuls in ``dtype`` (weights), the rest in ``act_dtype``."""

    layers: int = 2
    hidden: int = 1024
    heads: int = 16
    ffn: int = 4096
    seq_len: int = 512
    batch: int = 1
    dtype: str | None = None
    act_dtype: str | None = None
    kv_heads: int | None = None  # grouped-query attention: K/V heads (None: one per query head)

    @property
    def head_dim(self) -> int:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        return self.hidden // self.heads

    @classmethod
    def llama7b(cls, **kw: Any) -> ModelConfig:
        """The 7B-class shape: 32 layers, hidden 4096, 32 heads, FFN 11008, 2048 tokens of context."""
        base: dict[str, Any] = dict(layers=32, hidden=4096, heads=32, ffn=11008, seq_len=2048, batch=1)
        base.update(kw)
        return cls(**base)


@dataclass(frozen=True)
class TransformerBlock:
    """One pre-norm block.  ``prefill`` processes seq_len tokens; ``decode`` one token per sequence
    against a KV cache of seq_len.  ``parallel``: ``auto`` lets the mapper split each projection
    over the cores (a GPU deals output tiles to its SMs); ``tensor`` is tensor parallelism over
    cores: QKV and FFN-up split columns, the output and FFN-down projections split the reduction
    and exchange partial sums."""

    config: ModelConfig = field(default_factory=ModelConfig)
    mode: str = "prefill"
    layer: int = 0
    buffering: int = 2
    parallel: str = "auto"  # auto | tensor

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        c = self.config
        if self.mode not in ("prefill", "decode"):
            raise ValueError(f"mode must be prefill or decode, got {self.mode!r}")
        if self.parallel not in ("auto", "tensor"):
            raise ValueError(f"parallel must be auto or tensor, got {self.parallel!r}")
        tokens = c.batch * (c.seq_len if self.mode == "prefill" else 1)
        h, b, p = c.hidden, self.buffering, f"layer{self.layer}."
        cols, red = ("n", "k") if self.parallel == "tensor" else ("auto", "auto")
        return [
            LayerNorm(rows=tokens, cols=h, dtype=act_dtype, buffering=b, label=p + "ln1"),
            Gemm(M=tokens, N=(c.heads + 2 * (c.kv_heads or c.heads)) * c.head_dim, K=h, dtype=dtype, buffering=b,
                 split=cols, label=p + "qkv"),
            Attention(batch=c.batch, heads=c.heads, seq_len=c.seq_len if self.mode == "prefill" else 1,
                      kv_len=c.seq_len, head_dim=c.head_dim, dtype=act_dtype, buffering=b, label=p + "attn",
                      kv_heads=c.kv_heads),
            Gemm(M=tokens, N=h, K=h, dtype=dtype, buffering=b, split=red, label=p + "o_proj"),
            Elementwise(rows=tokens, cols=h, dtype=act_dtype, buffering=b, label=p + "residual1"),
            LayerNorm(rows=tokens, cols=h, dtype=act_dtype, buffering=b, label=p + "ln2"),
            Gemm(M=tokens, N=2 * c.ffn, K=h, dtype=dtype, buffering=b, split=cols, label=p + "ffn_up_gate"),
            Elementwise(rows=tokens, cols=c.ffn, dtype=act_dtype, buffering=b, flops_per_element=5.0,
                        label=p + "silu_mul"),
            Gemm(M=tokens, N=h, K=c.ffn, dtype=dtype, buffering=b, split=red, label=p + "ffn_down"),
            Elementwise(rows=tokens, cols=h, dtype=act_dtype, buffering=b, label=p + "residual2"),
        ]


@dataclass(frozen=True)
class LlmDecodeStep:
    """One generated token: every layer in decode mode, then the final norm."""

    config: ModelConfig = field(default_factory=ModelConfig)
    buffering: int = 2
    parallel: str = "auto"  # auto | tensor (see TransformerBlock)

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        out: list[Any] = []
        for i in range(self.config.layers):
            out += TransformerBlock(self.config, "decode", i, self.buffering, self.parallel).expand(dtype, act_dtype)
        out.append(LayerNorm(rows=self.config.batch, cols=self.config.hidden, dtype=act_dtype,
                             buffering=self.buffering, label="final_norm"))
        return out


@dataclass(frozen=True)
class CnnEncoder:
    """A small CNN: conv (im2col GEMM) + ReLU per stage, each stage halving the resolution."""

    batch: int = 1
    image: int = 64
    in_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256)
    kernel: int = 3
    stride: int = 2
    dtype: str | None = None
    buffering: int = 2

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        out: list[Any] = []
        hw, cin = self.image, self.in_channels
        for i, cout in enumerate(self.channels):
            conv = Conv2d(batch=self.batch, height=hw, width=hw, in_channels=cin, out_channels=cout,
                          kernel=self.kernel, stride=self.stride, padding=self.kernel // 2, dtype=dtype,
                          buffering=self.buffering, label=f"stage{i}.conv")
            ho, wo = conv.out_hw
            out.append(conv.as_gemm())
            out.append(Elementwise(rows=self.batch * ho * wo, cols=cout, inputs=1, dtype=act_dtype,
                                   buffering=self.buffering, label=f"stage{i}.relu"))
            hw, cin = ho, cout
        return out


Workload = Union[Gemm, Conv2d, VectorOp, Attention, TransformerBlock, LlmDecodeStep, CnnEncoder]  # noqa: UP007


def expand(workload: Any, dtype: str, act_dtype: str) -> list[Any]:
    """The primitive ops (Gemm, VectorOp, flash Attention) of ``workload``, dtypes filled in."""
    if isinstance(workload, Conv2d):
        workload = workload.as_gemm()
    if isinstance(workload, Gemm | VectorOp):
        d = dtype if isinstance(workload, Gemm) else act_dtype
        return [workload if workload.dtype else dataclasses.replace(workload, dtype=d)]
    if isinstance(workload, Attention):
        a = workload if workload.dtype else dataclasses.replace(workload, dtype=act_dtype)
        return a.expand(a.dtype or act_dtype, a.dtype or act_dtype)
    if hasattr(workload, "expand"):
        ops: list[Any] = []
        for op in workload.expand(dtype, act_dtype):
            ops += expand(op, dtype, act_dtype)
        return ops
    raise TypeError(f"not a workload: {type(workload).__name__}")


# ------------------------------------------------------------------ by name
WORKLOADS: dict[str, Any] = {
    "gemm": Gemm,
    "conv2d": Conv2d,
    "elementwise": Elementwise,
    "gelu": Gelu,
    "layernorm": LayerNorm,
    "softmax": Softmax,
    "attention": lambda: Attention(flash=False),
    "flash-attention": lambda: Attention(flash=True),
    "transformer-prefill": lambda: TransformerBlock(mode="prefill"),
    "transformer-decode": lambda: TransformerBlock(mode="decode"),
    "cnn-encoder": CnnEncoder,
    "llm-decode": LlmDecodeStep,
    "llm-decode-7b": lambda: LlmDecodeStep(ModelConfig.llama7b()),
}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a CLI string into the field's type (int, float, bool, str, tuple of ints, optional)."""
    if not isinstance(value, str):
        return value
    ann = str(annotation)
    if value.lower() in ("none", "null") and "None" in ann:
        return None
    try:
        if ann.startswith("tuple"):
            return tuple(int(v) for v in value.replace("x", ",").split(",") if v.strip())
        if "bool" in ann:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if "int" in ann:
            f = float(value)
            if f != int(f):
                raise ValueError(value)
            return int(f)
        if "float" in ann:
            return float(value)
    except ValueError:
        raise ValueError(f"{where}: cannot read {value!r} as {ann}") from None
    return value


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - annotations are plain types here
        return {f.name: f.type for f in dataclasses.fields(cls)}


def apply_overrides(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    """``dataclasses.replace`` with type coercion; keys of a nested ``config`` reach the ModelConfig."""
    names = {f.name for f in dataclasses.fields(obj)}
    hints = _hints(type(obj))
    mine: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    cfg = getattr(obj, "config", None)
    cfg_names = {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set()
    for k, v in overrides.items():
        if k in names and k != "config":
            mine[k] = _coerce(v, hints.get(k), f"{where} {k}")
        elif k in cfg_names:
            nested[k] = v
        else:
            known = sorted((names - {"config"}) | cfg_names)
            raise ValueError(f"{where}: unknown field {k!r}; fields are {', '.join(known)}")
    if nested:
        mine["config"] = apply_overrides(cfg, nested, where)
    return dataclasses.replace(obj, **mine) if mine else obj


def workload_from_name(name: str, **overrides: Any) -> Any:
    """A workload by its CLI name (``gemm``, ``llm-decode``, ...) with fields overridden."""
    key = name.strip().lower().replace("_", "-")
    if key not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    w = WORKLOADS[key]()
    return apply_overrides(w, overrides, key) if overrides else w


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "Attention", "CnnEncoder", "Conv2d", "Elementwise", "Gelu", "Gemm", "LayerNorm", "LlmDecodeStep", "ModelConfig",
    "Softmax", "TransformerBlock", "VectorOp", "WORKLOADS", "Workload", "apply_overrides", "expand",
    "workload_from_name", "ceil_div",
]

from collectors.simulator.families import FAMILIES  # noqa: E402 (the model families build on the ops above)

WORKLOADS.update(FAMILIES)
