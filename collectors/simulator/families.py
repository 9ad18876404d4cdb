"""Model families as built-in workloads: CNN encoders, a vision transformer, LLMs from a
HuggingFace ``config.json``, a Mamba-style selective-scan layer and a diffusion UNet step.

Every family expands into the simulator's primitive ops (:class:`Gemm`, vector ops, flash
:class:`Attention`), so the compiler needs nothing new.  The op vocabulary the families need is
built here from those primitives:

* grouped / depthwise convolution: one im2col GEMM per group (``batch`` = groups) of
  M = N*Ho*Wo, N = Cout/groups, K = Cin/groups*k*k; dilation only widens the kernel's reach
  (effective kernel ``dilation*(k-1)+1`` sets the output size), not its MACs;
* pooling: a vector op per output element that reads the input once (``stride**2`` input
  elements per output) and does ``k*k`` comparisons or adds;
* grouped-query attention and causal masking: fields of the simulator's flash :class:`Attention`
  (``kv_heads``: the query heads sharing a K/V head are packed into one unit's query rows, so K/V
  are read once per K/V head -- K/V bytes and the KV cache shrink by ``heads/kv_heads``, FLOPs do
  not; ``causal``: each query tile stops at its last row's key, so prefill does about half the
  FLOPs, ``(n+1)/(2n)`` of the unmasked count for n query tiles);
* MoE routing: a router GEMM, a softmax/top-k vector op, then per-expert GEMMs whose token
  counts follow :func:`expert_loads` (load imbalance = busiest expert's tokens / mean);
* embedding lookup (a gather: memory traffic of the rows read) and the LM head GEMM;
* non-gated MLPs (up, GELU, down) next to gated ones (up+gate, SiLU*mul, down).

BatchNorm at inference is taken as folded into the preceding convolution (ASSUMPTION: the usual
deployment graph), so CNN blocks are conv + activation (+ residual add).

Limits: the flash attention lowering deals (K/V head, query tile) items to the cores and does not
split the keys of one item over several cores (FlashDecoding does), so a decode step with fewer
K/V heads x sequences than cores (an A100's 108 SMs) uses only that many cores: grouped-query
decode reads ``heads/kv_heads`` times fewer K/V bytes but gains less time than that there.
Depthwise convolutions run as matrix-engine GEMMs with N = 1 (no vector-engine path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.simulator.workloads import (
    Attention,
    Elementwise,
    Gelu,
    Gemm,
    LayerNorm,
    Softmax,
    VectorOp,
    apply_overrides,
)

# ------------------------------------------------------------------ op vocabulary


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output size of a convolution or pooling window (PyTorch's formula, effective kernel for dilation)."""
    eff = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - eff) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) does not fit an input of {size}")
    return out


def conv(label: str, batch: int, hw: tuple[int, int], cin: int, cout: int, kernel: int, stride: int = 1,
         padding: int | None = None, dilation: int = 1, groups: int = 1,
         dtype: str | None = None) -> tuple[Gemm, tuple[int, int]]:
    """A (grouped, depthwise, dilated) 2-D convolution as im2col GEMMs, and its output (H, W).

    ``padding=None`` keeps the resolution at stride 1 ("same": ``dilation*(kernel-1)//2``)."""
    if cin % groups or cout % groups:
        raise ValueError(f"{label}: channels {cin}->{cout} are not divisible by groups {groups}")
    pad = dilation * (kernel - 1) // 2 if padding is None else padding
    ho = conv_out(hw[0], kernel, stride, pad, dilation)
    wo = conv_out(hw[1], kernel, stride, pad, dilation)
    g = Gemm(M=batch * ho * wo, N=cout // groups, K=(cin // groups) * kernel * kernel, batch=groups, dtype=dtype,
             label=label)
    return g, (ho, wo)


def pool(label: str, batch: int, hw: tuple[int, int], channels: int, kernel: int, stride: int,
         padding: int = 0) -> tuple[VectorOp, tuple[int, int]]:
    """Max/average pooling: per output element ``kernel**2`` comparisons or adds, the input read once."""
    ho = conv_out(hw[0], kernel, stride, padding)
    wo = conv_out(hw[1], kernel, stride, padding)
    return VectorOp(rows=batch * ho * wo, cols=channels, inputs=max(1, stride * stride),
                    flops_per_element=float(kernel * kernel), label=label), (ho, wo)


def global_pool(label: str, batch: int, hw: tuple[int, int], channels: int) -> VectorOp:
    """Global average pooling: one add per input element (the input read once, rows = pixels)."""
    return VectorOp(rows=batch * hw[0] * hw[1], cols=channels, inputs=1, flops_per_element=1.0, label=label)


def act(label: str, rows: int, cols: int, gelu: bool = False) -> VectorOp:
    if gelu:
        return Gelu(rows=rows, cols=cols, label=label)
    return Elementwise(rows=rows, cols=cols, inputs=1, flops_per_element=1.0, label=label)


def add(label: str, rows: int, cols: int) -> Elementwise:
    return Elementwise(rows=rows, cols=cols, inputs=2, flops_per_element=1.0, label=label)


def attention(label: str, batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, kv_heads: int | None = None,
              causal: bool = False) -> list[Attention]:
    """Flash attention with grouped-query K/V sharing and causal masking (the simulator's
    :class:`Attention` fields ``kv_heads`` and ``causal``)."""
    a = Attention(batch=batch, heads=heads, seq_len=q_len, kv_len=kv_len, head_dim=head_dim, flash=True,
                  label=label, kv_heads=kv_heads, causal=causal and q_len > 1)
    a.group  # noqa: B018 - raises for heads not a multiple of kv_heads
    return [a]


def expert_loads(tokens: int, experts: int, top_k: int, imbalance: float = 1.0) -> list[int]:
    """Tokens routed to each expert: ``tokens*top_k`` assignments, the busiest expert getting
    ``imbalance`` times the mean (capped: a token picks an expert at most once), the rest spread
    evenly.  With fewer assignments than experts (decode), only that many experts get a token."""
    if experts < 1 or not 1 <= top_k <= experts:
        raise ValueError(f"top_k {top_k} must be between 1 and the number of experts {experts}")
    if imbalance < 1.0:
        raise ValueError(f"imbalance is busiest/mean load and must be >= 1, got {imbalance}")
    total = tokens * top_k
    hot = min(tokens, max(-(-total // experts), round(imbalance * total / experts)))
    rest, others = total - hot, experts - 1
    loads = [hot] + [rest // others + (1 if i < rest % others else 0) for i in range(others)] if others else [total]
    return loads


# ------------------------------------------------------------------ CNN encoders


@dataclass(frozen=True)
class ResNet50:
    """A ResNet-50-class encoder (torchvision v1.5 layout: stride on the 3x3 of each bottleneck).

    Stem 7x7/2 conv and 3x3/2 max pool, bottleneck stages (1x1 reduce, 3x3, 1x1 expand x4, a 1x1
    projection on each stage's first block), global average pool and an FC head (``classes=0``
    drops the head: the encoder alone).  ``blocks=(3,4,6,3)`` is ResNet-50; (3,4,23,3) ResNet-101."""

    batch: int = 1
    image: int = 224
    in_channels: int = 3
    width: int = 64
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    classes: int = 1000
    dtype: str | None = None
    label: str = "resnet50"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        b = self.batch
        ops: list[Any] = []
        g, hw = conv("stem.conv", b, (self.image, self.image), self.in_channels, self.width, 7, 2, 3)
        ops += [g, act("stem.relu", b * hw[0] * hw[1], self.width)]
        p, hw = pool("stem.maxpool", b, hw, self.width, 3, 2, 1)
        ops.append(p)
        cin = self.width
        for s, n in enumerate(self.blocks):
            w = self.width * 2**s
            cout = 4 * w
            for i in range(n):
                stride = 2 if (i == 0 and s > 0) else 1
                pre = f"stage{s}.block{i}."
                g1, _ = conv(pre + "conv1", b, hw, cin, w, 1)
                g2, hw2 = conv(pre + "conv2", b, hw, w, w, 3, stride)
                rows = b * hw2[0] * hw2[1]
                g3, _ = conv(pre + "conv3", b, hw2, w, cout, 1)
                ops += [g1, act(pre + "relu1", b * hw[0] * hw[1], w), g2, act(pre + "relu2", rows, w), g3]
                if i == 0:
                    ops.append(conv(pre + "downsample", b, hw, cin, cout, 1, stride)[0])
                ops += [add(pre + "residual", rows, cout), act(pre + "relu3", rows, cout)]
                hw, cin = hw2, cout
        ops.append(global_pool("avgpool", b, hw, cin))
        if self.classes:
            ops.append(Gemm(M=b, N=self.classes, K=cin, label="fc"))
        return ops


#: MobileNetV2's inverted-residual stages: (expansion t, channels c, repeats n, stride s)
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


@dataclass(frozen=True)
class EdgeCameraEncoder:
    """An edge camera encoder: MobileNetV2-style depthwise-separable inverted residuals.

    Stem 3x3/2 conv, then per block a 1x1 expand (skipped at t=1), a 3x3 depthwise conv (stride
    or dilation) and a 1x1 linear projection, residual add where shapes allow; a 1x1 conv to
    ``last_channels``.  ``output_stride`` 16 or 8 turns the last stride-2 stages into dilated
    stride-1 ones (DeepLab-style dense features).  ``classes>0`` adds pooling and a classifier."""

    batch: int = 1
    image: int = 224
    in_channels: int = 3
    stem_channels: int = 32
    last_channels: int = 1280
    output_stride: int = 32
    classes: int = 0
    dtype: str | None = None
    label: str = "edge-encoder"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        b = self.batch
        g, hw = conv("stem.conv", b, (self.image, self.image), self.in_channels, self.stem_channels, 3, 2)
        ops: list[Any] = [g, act("stem.relu6", b * hw[0] * hw[1], self.stem_channels)]
        cin, reduction, dilation, k = self.stem_channels, 2, 1, 0
        for t, c, n, s in MOBILENET_V2:
            for i in range(n):
                stride = s if i == 0 else 1
                d = dilation
                if stride == 2 and reduction * 2 > self.output_stride:
                    stride, dilation = 1, dilation * 2  # dilate instead of downsampling (from the next block on)
                elif stride == 2:
                    reduction *= 2
                pre = f"block{k}."
                k += 1
                hidden = cin * t
                rows_in = b * hw[0] * hw[1]
                if t != 1:
                    ops += [conv(pre + "expand", b, hw, cin, hidden, 1)[0], act(pre + "expand_relu6", rows_in, hidden)]
                gd, hw2 = conv(pre + "depthwise", b, hw, hidden, hidden, 3, stride, dilation=d, groups=hidden)
                rows = b * hw2[0] * hw2[1]
                ops += [gd, act(pre + "dw_relu6", rows, hidden), conv(pre + "project", b, hw2, hidden, c, 1)[0]]
                if stride == 1 and cin == c:
                    ops.append(add(pre + "residual", rows, c))
                hw, cin = hw2, c
        rows = b * hw[0] * hw[1]
        ops += [conv("head.conv", b, hw, cin, self.last_channels, 1)[0], act("head.relu6", rows, self.last_channels)]
        if self.classes:
            ops += [global_pool("avgpool", b, hw, self.last_channels),
                    Gemm(M=b, N=self.classes, K=self.last_channels, label="classifier")]
        return ops


# ------------------------------------------------------------------ vision transformer


@dataclass(frozen=True)
class VisionTransformer:
    """ViT (defaults: ViT-B/16 at 224): patch-embedding conv, a class token, pre-norm blocks with
    non-causal attention and a non-gated GELU MLP, final norm, a linear head on the class token."""

    batch: int = 1
    image: int = 224
    patch: int = 16
    in_channels: int = 3
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    mlp: int = 3072
    classes: int = 1000
    dtype: str | None = None
    label: str = "vit"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        b, h = self.batch, self.hidden
        g, hw = conv("patch_embed", b, (self.image, self.image), self.in_channels, h, self.patch, self.patch, 0)
        tokens = hw[0] * hw[1] + 1  # + the class token
        rows = b * tokens
        ops: list[Any] = [g, add("pos_embed", rows, h)]
        for i in range(self.layers):
            p = f"layer{i}."
            ops += [LayerNorm(rows=rows, cols=h, label=p + "ln1"),
                    Gemm(M=rows, N=3 * h, K=h, label=p + "qkv"),
                    *attention(p + "attn", b, self.heads, tokens, tokens, h // self.heads),
                    Gemm(M=rows, N=h, K=h, label=p + "proj"),
                    add(p + "residual1", rows, h),
                    LayerNorm(rows=rows, cols=h, label=p + "ln2"),
                    Gemm(M=rows, N=self.mlp, K=h, label=p + "fc1"),
                    Gelu(rows=rows, cols=self.mlp, label=p + "gelu"),
                    Gemm(M=rows, N=h, K=self.mlp, label=p + "fc2"),
                    add(p + "residual2", rows, h)]
        ops.append(LayerNorm(rows=rows, cols=h, label="final_norm"))
        if self.classes:
            ops.append(Gemm(M=b, N=self.classes, K=h, label="head"))
        return ops


# ------------------------------------------------------------------ LLMs from a HuggingFace config

#: model types whose MLP is gated (up and gate projections, SiLU/GELU times the gate)
GATED_MODEL_TYPES = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
                     "gemma3_text", "phi3", "olmo", "olmo2", "deepseek_v2", "cohere", "granite", "internlm2"}
#: model types whose MLP is not gated (up, activation, down)
PLAIN_MODEL_TYPES = {"gpt2", "gpt_neox", "gptj", "phi", "falcon", "opt", "bloom", "starcoder2", "bert", "gpt_bigcode"}


@dataclass(frozen=True)
class LlmConfig:
    """A decoder-only LLM's shape, read from a HuggingFace ``config.json`` by :meth:`from_hf`.

    ``experts``/``top_k`` > 0 make every MLP a mixture of experts (``expert_ffn`` wide, default
    ``ffn``); ``imbalance`` is the busiest expert's load over the mean (1 = perfectly balanced)."""

    layers: int = 2
    hidden: int = 1024
    heads: int = 16
    kv_heads: int | None = None
    ffn: int = 4096
    vocab: int = 32000
    gated_mlp: bool = True
    gelu: bool = False
    experts: int = 0
    top_k: int = 0
    expert_ffn: int | None = None
    imbalance: float = 1.0
    head_dim: int | None = None
    seq_len: int = 512
    batch: int = 1
    dtype: str | None = None
    act_dtype: str | None = None

    @property
    def hd(self) -> int:
        if self.head_dim:
            return self.head_dim
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        return self.hidden // self.heads

    @property
    def kvh(self) -> int:
        return self.kv_heads or self.heads

    def params(self) -> int:
        """Weights (embedding and LM head counted separately even when tied; norms included)."""
        h, hd = self.hidden, self.hd
        attn = h * (self.heads + 2 * self.kvh) * hd + self.heads * hd * h
        per_ffn = (3 if self.gated_mlp else 2) * h
        mlp = per_ffn * (self.expert_ffn or self.ffn) * self.experts + h * self.experts if self.experts else \
            per_ffn * self.ffn
        return self.layers * (attn + mlp + 2 * h) + 2 * self.vocab * h + h

    @classmethod
    def from_hf(cls, cfg: dict[str, Any], where: str = "config.json", **overrides: Any) -> LlmConfig:
        """Keys: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads,
        intermediate_size, vocab_size, hidden_act, head_dim, num_local_experts / num_experts,
        num_experts_per_tok, moe_intermediate_size, model_type (gated MLP or not)."""
        def need(*keys: str) -> Any:
            for k in keys:
                if k in cfg and cfg[k] is not None:
                    return cfg[k]
            raise ValueError(f"{where}: missing {keys[0]}")

        try:
            act_name = str(cfg.get("hidden_act") or cfg.get("hidden_activation") or "silu").lower()
            mtype = str(cfg.get("model_type", "")).lower()
            gated = mtype in GATED_MODEL_TYPES or (mtype not in PLAIN_MODEL_TYPES and act_name in ("silu", "swish"))
            experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
            hidden = int(need("hidden_size", "n_embd", "d_model"))
            base: dict[str, Any] = dict(
                layers=int(need("num_hidden_layers", "n_layer", "num_layers")),
                hidden=hidden,
                heads=int(need("num_attention_heads", "n_head")),
                kv_heads=int(cfg["num_key_value_heads"]) if cfg.get("num_key_value_heads") else None,
                ffn=int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden),
                vocab=int(need("vocab_size")),
                gated_mlp=gated,
                gelu=act_name.startswith("gelu"),
                experts=experts,
                top_k=int(cfg.get("num_experts_per_tok") or (1 if experts else 0)),
                expert_ffn=int(cfg["moe_intermediate_size"]) if experts and cfg.get("moe_intermediate_size") else None,
                head_dim=int(cfg["head_dim"]) if cfg.get("head_dim") else None,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        base.update(overrides)
        return cls(**base)


def load_hf_config(path: str | Path, **overrides: Any) -> LlmConfig:
    p = Path(path)
    try:
        cfg = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: not a readable JSON config ({exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{p}: not a JSON object")
    return LlmConfig.from_hf(cfg, str(p), **overrides)


def is_hf_config(name: str) -> bool:
    """A path to a HuggingFace-style config: ``config.json`` or any ``*.json`` with num_hidden_layers."""
    p = Path(name)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    if p.name == "config.json":
        return True
    try:
        head = p.read_text(errors="replace")[:65536]
    except OSError:
        return False
    return '"num_hidden_layers"' in head and '"hidden_size"' in head


def _mlp(c: LlmConfig, p: str, tokens: int) -> list[Any]:
    h = c.hidden
    if not c.experts:
        return _dense_mlp(c, p, tokens, c.ffn)
    ops: list[Any] = [Gemm(M=tokens, N=c.experts, K=h, label=p + "router"),
                      Softmax(rows=tokens, cols=c.experts, label=p + "router_topk")]
    for e, n in enumerate(expert_loads(tokens, c.experts, c.top_k, c.imbalance)):
        if n:
            ops += _dense_mlp(c, f"{p}expert{e}.", n, c.expert_ffn or c.ffn)
    ops.append(Elementwise(rows=tokens, cols=h, inputs=c.top_k, flops_per_element=2.0 * c.top_k,
                           label=p + "combine"))
    return ops


def _dense_mlp(c: LlmConfig, p: str, tokens: int, ffn: int) -> list[Any]:
    h = c.hidden
    if c.gated_mlp:
        return [Gemm(M=tokens, N=2 * ffn, K=h, label=p + "up_gate"),
                Elementwise(rows=tokens, cols=ffn, flops_per_element=5.0 if not c.gelu else 9.0,
                            label=p + ("gelu_mul" if c.gelu else "silu_mul")),
                Gemm(M=tokens, N=h, K=ffn, label=p + "down")]
    return [Gemm(M=tokens, N=ffn, K=h, label=p + "up"),
            (Gelu(rows=tokens, cols=ffn, label=p + "gelu") if c.gelu
             else Elementwise(rows=tokens, cols=ffn, inputs=1, flops_per_element=4.0, label=p + "act")),
            Gemm(M=tokens, N=h, K=ffn, label=p + "down")]


def _llm_ops(c: LlmConfig, decode: bool, all_logits: bool) -> list[Any]:
    q_len = 1 if decode else c.seq_len
    kv_len = c.seq_len + 1 if decode else c.seq_len  # decode: the cache plus the new token
    tokens = c.batch * q_len
    h, hd = c.hidden, c.hd
    ops: list[Any] = [Elementwise(rows=tokens, cols=h, inputs=1, flops_per_element=0.0, label="embed")]
    for i in range(c.layers):
        p = f"layer{i}."
        ops += [LayerNorm(rows=tokens, cols=h, label=p + "norm1"),
                Gemm(M=tokens, N=(c.heads + 2 * c.kvh) * hd, K=h, label=p + "qkv"),
                *attention(p + "attn", c.batch, c.heads, q_len, kv_len, hd, c.kvh, causal=True),
                Gemm(M=tokens, N=h, K=c.heads * hd, label=p + "o_proj"),
                add(p + "residual1", tokens, h),
                LayerNorm(rows=tokens, cols=h, label=p + "norm2"),
                *_mlp(c, p, tokens),
                add(p + "residual2", tokens, h)]
    out_rows = tokens if (all_logits or decode) else c.batch
    ops += [LayerNorm(rows=out_rows, cols=h, label="final_norm"), Gemm(M=out_rows, N=c.vocab, K=h, label="lm_head")]
    return ops


@dataclass(frozen=True)
class LlmPrefill:
    """A prompt of ``config.seq_len`` tokens: embedding, every layer with causal (grouped-query)
    attention, the final norm and the LM head on each sequence's last token (``all_logits``: on
    every token)."""

    config: LlmConfig = field(default_factory=LlmConfig)
    all_logits: bool = False

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        return _llm_ops(self.config, False, self.all_logits)


@dataclass(frozen=True)
class LlmDecode:
    """One generated token per sequence against a KV cache of ``config.seq_len`` tokens."""

    config: LlmConfig = field(default_factory=LlmConfig)

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        return _llm_ops(self.config, True, False)


def hf_workload(path: str | Path, mode: str = "decode", **overrides: Any) -> LlmPrefill | LlmDecode:
    """``config.json`` as a prefill or decode workload; ``overrides`` (strings from the CLI too) set
    LlmConfig fields (seq_len, batch, imbalance...) or the workload's own (all_logits)."""
    cfg = load_hf_config(path)
    w: LlmPrefill | LlmDecode
    if mode == "prefill":
        w = LlmPrefill(cfg)
    elif mode == "decode":
        w = LlmDecode(cfg)
    else:
        raise ValueError(f"{path}: mode must be prefill or decode, got {mode!r}")
    return apply_overrides(w, overrides, str(path)) if overrides else w


# ------------------------------------------------------------------ state-space model


@dataclass(frozen=True)
class MambaLayer:
    """One Mamba block (Gu & Dao 2023): in-projection to x and z, a causal depthwise conv1d, the
    x-projection to (dt, B, C), dt projection, the selective scan, the SiLU(z) gate, out-projection.

    The scan is sequential over the sequence and memory-bound: ``seq_len // scan_chunk`` vector
    ops one after the other, each advancing the state h (``batch x d_inner x d_state``) by
    ``scan_chunk`` tokens; per token it reads h and writes it back (the unfused scan of the paper's
    section 3.3, state materialised in DRAM) and does 8 FLOPs per (d_inner, d_state) element
    (ASSUMPTION from the recurrence: exp(dt*A) 2, dt*B*x 2, A*h + Bx 2, C.h 2).  ``mode=decode``
    is one token against the carried state."""

    batch: int = 1
    seq_len: int = 256
    hidden: int = 768
    expand_factor: int = 2
    d_state: int = 16
    d_conv: int = 4
    dt_rank: int | None = None
    scan_chunk: int = 1
    mode: str = "prefill"
    dtype: str | None = None
    label: str = "mamba"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        if self.mode not in ("prefill", "decode"):
            raise ValueError(f"mode must be prefill or decode, got {self.mode!r}")
        L = 1 if self.mode == "decode" else self.seq_len
        b, h, di, n = self.batch, self.hidden, self.expand_factor * self.hidden, self.d_state
        r = self.dt_rank or -(-h // 16)
        t = b * L
        ops: list[Any] = [
            Gemm(M=t, N=2 * di, K=h, label="in_proj"),
            Gemm(M=b * L, N=1, K=self.d_conv, batch=di, label="conv1d"),  # depthwise, causal: d_conv taps
            act("conv_silu", t, di),
            Gemm(M=t, N=r + 2 * n, K=di, label="x_proj"),
            Gemm(M=t, N=di, K=r, label="dt_proj"),
        ]
        step = max(1, min(self.scan_chunk, L))
        for i, t0 in enumerate(range(0, L, step)):
            k = min(step, L - t0)
            ops.append(VectorOp(rows=b * di * k, cols=n, inputs=1, flops_per_element=8.0, label=f"t{i}.scan"))
        ops += [Elementwise(rows=t, cols=di, inputs=2, flops_per_element=5.0, label="gate_silu_mul"),
                Gemm(M=t, N=h, K=di, label="out_proj")]
        return ops


# ------------------------------------------------------------------ diffusion UNet


@dataclass(frozen=True)
class UNetStep:
    """One denoising step of a latent-diffusion UNet (Stable-Diffusion-like, scaled by fields).

    conv_in; per level ``res_blocks`` ResNet blocks (GroupNorm+SiLU, 3x3 conv, twice; a 1x1 skip
    conv where channels change) with self-attention at resolutions <= ``attn_resolution``, then a
    stride-2 3x3 conv; a middle block (res, attention, res); the up path mirrors it with skip
    concatenations (channel concat, then a res block of the wider input) and nearest 2x upsampling
    + 3x3 conv; GroupNorm, SiLU, conv_out.  The timestep embedding is an MLP of two GEMMs."""

    batch: int = 1
    latent: int = 64
    in_channels: int = 4
    channels: tuple[int, ...] = (320, 640, 1280)
    res_blocks: int = 2
    attn_resolution: int = 16
    heads: int = 8
    dtype: str | None = None
    label: str = "unet"

    def _norm_act(self, p: str, hw: tuple[int, int], c: int) -> list[Any]:
        rows = self.batch * hw[0] * hw[1]
        return [LayerNorm(rows=rows, cols=c, label=p + "norm"), act(p + "silu", rows, c)]

    def _res(self, p: str, hw: tuple[int, int], cin: int, cout: int) -> list[Any]:
        b = self.batch
        rows = b * hw[0] * hw[1]
        ops = [*self._norm_act(p + "a.", hw, cin), conv(p + "conv1", b, hw, cin, cout, 3)[0],
               add(p + "temb", rows, cout),
               *self._norm_act(p + "b.", hw, cout), conv(p + "conv2", b, hw, cout, cout, 3)[0]]
        if cin != cout:
            ops.append(conv(p + "skip", b, hw, cin, cout, 1)[0])
        ops.append(add(p + "residual", rows, cout))
        return ops

    def _attn(self, p: str, hw: tuple[int, int], c: int) -> list[Any]:
        tokens = hw[0] * hw[1]
        rows = self.batch * tokens
        if c % self.heads:
            raise ValueError(f"{p}: channels {c} not a multiple of heads {self.heads}")
        return [LayerNorm(rows=rows, cols=c, label=p + "norm"), Gemm(M=rows, N=3 * c, K=c, label=p + "qkv"),
                *attention(p + "attn", self.batch, self.heads, tokens, tokens, c // self.heads),
                Gemm(M=rows, N=c, K=c, label=p + "proj"), add(p + "residual", rows, c)]

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        b, chs = self.batch, self.channels
        temb = 4 * chs[0]
        ops: list[Any] = [Gemm(M=b, N=temb, K=chs[0], label="time_embed.fc1"), act("time_embed.silu", b, temb),
                          Gemm(M=b, N=temb, K=temb, label="time_embed.fc2")]
        hw = (self.latent, self.latent)
        g, hw = conv("conv_in", b, hw, self.in_channels, chs[0], 3)
        ops.append(g)
        skips: list[int] = [chs[0]]
        c = chs[0]
        for lvl, cout in enumerate(chs):
            for i in range(self.res_blocks):
                p = f"down{lvl}.res{i}."
                ops += self._res(p, hw, c, cout)
                c = cout
                if hw[0] <= self.attn_resolution:
                    ops += self._attn(f"down{lvl}.attn{i}.", hw, c)
                skips.append(c)
            if lvl < len(chs) - 1:
                g, hw = conv(f"down{lvl}.downsample", b, hw, c, c, 3, 2, 1)
                ops.append(g)
                skips.append(c)
        ops += self._res("mid.res0.", hw, c, c) + self._attn("mid.attn.", hw, c) + self._res("mid.res1.", hw, c, c)
        for lvl in reversed(range(len(chs))):
            cout = chs[lvl]
            for i in range(self.res_blocks + 1):
                sc = skips.pop()
                rows = b * hw[0] * hw[1]
                p = f"up{lvl}.res{i}."
                ops.append(Elementwise(rows=rows, cols=c + sc, inputs=1, flops_per_element=0.0, label=p + "concat"))
                ops += self._res(p, hw, c + sc, cout)
                c = cout
                if hw[0] <= self.attn_resolution:
                    ops += self._attn(f"up{lvl}.attn{i}.", hw, c)
            if lvl > 0:
                hw = (hw[0] * 2, hw[1] * 2)
                rows = b * hw[0] * hw[1]
                ops.append(Elementwise(rows=rows, cols=c, inputs=1, flops_per_element=0.0, label=f"up{lvl}.upsample"))
                ops.append(conv(f"up{lvl}.upconv", b, hw, c, c, 3)[0])
        ops += self._norm_act("out.", hw, c)
        ops.append(conv("conv_out", b, hw, c, self.in_channels, 3)[0])
        return ops


#: the families by CLI name (collectors.simulator.workloads.WORKLOADS registers them)
FAMILIES: dict[str, Any] = {
    "resnet50": ResNet50,
    "edge-encoder": EdgeCameraEncoder,
    "vit": VisionTransformer,
    "llm-prefill": lambda: LlmPrefill(),
    "llm-decode-gqa": lambda: LlmDecode(LlmConfig(kv_heads=4)),
    "llm-moe-decode": lambda: LlmDecode(LlmConfig(experts=8, top_k=2)),
    "mamba": MambaLayer,
    "unet-step": UNetStep,
}


def attention_flops(a: Attention, tile_q: int = 128) -> float:
    """Q.K^T and P.V FLOPs of a flash attention with query tiles of ``tile_q`` rows (causal: each
    tile multiplies the keys up to its last row's)."""
    if not a.causal:
        return 4.0 * a.batch * a.heads * a.seq_len * a.kv * a.head_dim
    grp, past = a.group, a.kv - a.seq_len
    rows, tq = a.seq_len * grp, min(a.seq_len * a.group, a.tile_q or tile_q)
    keys = sum(min(a.kv, past + (q0 + min(tq, rows - q0) - 1) // grp + 1) * min(tq, rows - q0)
               for q0 in range(0, rows, tq))
    return 4.0 * a.batch * (a.heads // grp) * keys * a.head_dim


def gemm_flops(ops: list[Any]) -> float:
    """Matrix FLOPs of expanded ops (2 per multiply-add; attention: Q.K^T and P.V)."""
    total = 0.0
    for o in ops:
        if isinstance(o, Gemm):
            total += 2.0 * o.M * o.N * o.K * o.batch
        elif isinstance(o, Attention):
            total += attention_flops(o)
    return total


__all__ = ["FAMILIES", "EdgeCameraEncoder", "LlmConfig", "LlmDecode", "LlmPrefill", "MambaLayer", "ResNet50",
           "UNetStep", "VisionTransformer", "attention", "attention_flops", "conv", "conv_out", "expert_loads", "gemm_flops",
           "global_pool", "hf_workload", "is_hf_config", "load_hf_config", "pool"]

