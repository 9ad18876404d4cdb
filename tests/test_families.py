"""Model families as built-in workloads: per-op FLOPs against hand counts and published figures,
grouped-query attention's K/V bytes, causal masking, MoE routing, the Mamba scan, a UNet step,
every family simulated on edge-npu and a100-sxm, and a HuggingFace config.json through the CLI.

Ground truth is outside the code: MAC counts written out here from the published architectures,
and published totals (torchvision's model cards: ResNet-50 4.09 GMACs, MobileNetV2 300.8 MMACs
(ASSUMPTION: torchvision's "GFLOPS" column counts multiply-adds), ViT-B/16 17.56 GMACs; Meta's
Llama-2-7B: 6,738,415,616 parameters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from collectors.simulator import Attention, VectorOp, simulate
from collectors.simulator.families import (
    EdgeCameraEncoder,
    LlmConfig,
    LlmDecode,
    LlmPrefill,
    MambaLayer,
    ResNet50,
    UNetStep,
    VisionTransformer,
    attention,
    conv_out,
    expert_loads,
    gemm_flops,
    hf_workload,
    load_hf_config,
)
from collectors.simulator.workloads import expand, workload_from_name
from profiler.cli import cli
from profiler.hardware import load_spec

LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "hidden_act": "silu", "rms_norm_eps": 1e-05}
MIXTRAL_8X7B = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000, "hidden_act": "silu",
                "num_local_experts": 8, "num_experts_per_tok": 2}


@dataclass(frozen=True)
class Ops:
    """A list of primitive ops as one workload."""

    ops: tuple[Any, ...]
    label: str = "ops"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        return list(self.ops)


def _ops(w: Any) -> list[Any]:
    return expand(w, "fp16", "fp16")


def _by_label(w: Any) -> dict[str, Any]:
    return {o.label: o for o in _ops(w)}


# ------------------------------------------------------------------ CNNs


def _resnet50_macs(image: int = 224) -> int:
    """ResNet-50 (v1.5) multiply-adds written out from the paper's table (He et al. 2016, table 1)."""
    r = image // 2  # 7x7/2 stem
    macs = r * r * 64 * 3 * 49
    r //= 2  # 3x3/2 max pool
    cin = 64
    for s, (n, w) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512))):
        for i in range(n):
            r_out = r // 2 if (i == 0 and s > 0) else r
            macs += r * r * cin * w  # 1x1 reduce at the input resolution
            macs += r_out * r_out * w * w * 9  # 3x3 (carries the stride)
            macs += r_out * r_out * w * 4 * w  # 1x1 expand
            if i == 0:
                macs += r_out * r_out * cin * 4 * w  # projection shortcut
            cin, r = 4 * w, r_out
    return macs + 2048 * 1000  # fc


def test_resnet50_flops_equal_the_hand_count_and_the_published_figure() -> None:
    ops = _ops(ResNet50())
    assert gemm_flops(ops) == 2 * _resnet50_macs()
    assert gemm_flops(ops) == pytest.approx(2 * 4.09e9, rel=0.02)  # torchvision: 4.09 GMACs
    g = _by_label(ResNet50())
    # stage 2's first 3x3 carries the stride: 56 -> 28, K = 128 channels x 3 x 3
    assert (g["stage1.block0.conv2"].M, g["stage1.block0.conv2"].N, g["stage1.block0.conv2"].K) == (28 * 28, 128, 1152)
    assert g["stem.maxpool"].rows == 56 * 56  # 112 -> 56 with a 3x3/2 window, padding 1
    assert g["fc"].K == 2048


def test_edge_encoder_depthwise_and_dilated_convs() -> None:
    ops = _ops(EdgeCameraEncoder(classes=1000))
    assert gemm_flops(ops) == pytest.approx(2 * 300.8e6, rel=0.01)  # torchvision MobileNetV2: 300.8 MMACs
    g = _by_label(EdgeCameraEncoder())
    dw = g["block1.depthwise"]  # 96 channels (16 x 6), stride 2: 112 -> 56, one 3x3 filter per channel
    assert (dw.batch, dw.M, dw.N, dw.K) == (96, 56 * 56, 1, 9)
    # output stride 16: the last stride-2 stage dilates instead, the head runs at 14x14, not 7x7
    os16, os32 = _by_label(EdgeCameraEncoder(output_stride=16)), g
    assert os32["head.conv"].M == 7 * 7 and os16["head.conv"].M == 14 * 14
    assert os16["block16.depthwise"].K == 9  # dilation widens the reach, not the taps
    # PyTorch's output size with dilation: (in + 2p - d(k-1) - 1) / s + 1
    assert conv_out(14, 3, 1, 2, 2) == 14 and conv_out(14, 3, 1, 0, 2) == 10 and conv_out(15, 3, 2, 2, 2) == 8


def test_vit_b16_flops_equal_the_hand_count_and_the_published_figure() -> None:
    d, t, layers = 768, 197, 12  # 14 x 14 patches + the class token
    macs = 196 * d * 3 * 16 * 16 + layers * (t * 12 * d * d + 2 * t * t * d) + d * 1000
    flops = gemm_flops(_ops(VisionTransformer()))
    assert flops == 2 * macs
    assert flops == pytest.approx(2 * 17.56e9, rel=0.01)  # torchvision ViT-B/16: 17.56 GMACs
    g = _by_label(VisionTransformer())
    assert type(g["layer0.gelu"]).__name__ == "Gelu" and g["layer0.fc1"].N == 3072  # non-gated MLP


# ------------------------------------------------------------------ LLMs


def _llama_decode_flops(ctx: int) -> int:
    h, f, v, layers = 4096, 11008, 32000, 32
    per_layer = 2 * (3 * h * h + h * h + 3 * h * f) + 4 * h * (ctx + 1)  # projections; QK and PV
    return layers * per_layer + 2 * h * v  # + LM head


def test_llama2_7b_config_decode_flops_are_about_two_per_parameter(tmp_path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(LLAMA2_7B))
    cfg = load_hf_config(p)
    assert cfg.params() == 6_738_415_616  # Meta's published count for Llama-2-7B
    w = hf_workload(p, seq_len=128)
    flops = gemm_flops(_ops(w))
    assert flops == _llama_decode_flops(128)
    assert flops == pytest.approx(2 * cfg.params(), rel=0.03)  # the embedding lookup does no FLOPs
    labels = [o.label for o in _ops(w)]
    assert labels[0] == "embed" and labels[-1] == "lm_head"


def test_gqa_decode_reads_fewer_kv_bytes_in_the_ratio_of_heads() -> None:
    spec = load_spec("edge-npu")
    heads, d, ctx, dtb = 32, 128, 1024, 2
    kv = {}
    for kvh in (32, 8, 4):
        ops = attention("attn", 1, heads, 1, ctx, d, kvh)
        res = simulate(Ops(tuple(ops)), spec, dtype="fp16", detail="summary")
        q_and_o = 2 * heads * d * dtb
        kv[kvh] = res.stats["dram_bytes"] - q_and_o
        assert kv[kvh] == 2 * kvh * ctx * d * dtb  # K and V of each K/V head, read once
        assert res.stats["matrix_flops"] == 4 * heads * ctx * d  # the same work as MHA
    assert kv[32] / kv[8] == 4 and kv[32] / kv[4] == 8
    # whole decode steps: the KV reads shrink, the projections' weights shrink with the K/V heads
    mha = LlmDecode(LlmConfig(layers=1, hidden=512, heads=8, ffn=1024, vocab=512, seq_len=512))
    gqa = LlmDecode(LlmConfig(layers=1, hidden=512, heads=8, kv_heads=2, ffn=1024, vocab=512, seq_len=512))
    b_mha = simulate(mha, spec, dtype="fp16", detail="summary").stats["dram_bytes"]
    b_gqa = simulate(gqa, spec, dtype="fp16", detail="summary").stats["dram_bytes"]
    kv_saved = 2 * (8 - 2) * 513 * 64 * dtb  # K/V heads 8 -> 2 over 513 positions
    qkv_weights_saved = 512 * (2 * (8 - 2) * 64) * dtb
    # (plus the narrower qkv output the mapper's tiles write and read: well under 1 %)
    assert b_mha - b_gqa == pytest.approx(kv_saved + qkv_weights_saved, rel=0.01)


def test_causal_prefill_attention_does_about_half_the_flops() -> None:
    # a chip whose cores are few next to the (head, query tile) items, so the work sets the time (on
    # an A100 the 64 items here run side by side and the full last tile is the critical path)
    spec = load_spec("edge-npu")
    heads, d, seq = 8, 64, 1024
    full = simulate(Attention(heads=heads, seq_len=seq, head_dim=d, dtype="fp16"), spec, detail="summary")
    assert full.stats["matrix_flops"] == 4 * heads * seq * seq * d
    for tq, n in ((128, 8), (64, 16)):
        causal = simulate(Attention(heads=heads, seq_len=seq, head_dim=d, dtype="fp16", causal=True, tile_q=tq,
                                    tile_kv=128),
                          spec, detail="summary")
        ratio = causal.stats["matrix_flops"] / full.stats["matrix_flops"]
        assert ratio == pytest.approx((n + 1) / (2 * n))  # query tile i multiplies i+1 of n key blocks
        same_tiles = simulate(Attention(heads=heads, seq_len=seq, head_dim=d, dtype="fp16", tile_q=tq, tile_kv=128),
                              spec, detail="summary")
        assert causal.total_ns < 0.75 * same_tiles.total_ns
    # grouped and causal: 4 query heads per K/V head packed token-major, 128-row tiles hold 32 tokens
    ga = Attention(heads=8, kv_heads=2, seq_len=64, head_dim=32, dtype="fp16", causal=True)
    res = simulate(ga, load_spec("edge-npu"), detail="summary")
    assert res.stats["matrix_flops"] == 4 * 2 * (128 * 32 + 128 * 64) * 32
    with pytest.raises(Exception, match="multiple of kv_heads"):
        simulate(Attention(heads=8, kv_heads=3), spec, detail="summary")


def test_moe_routing_with_load_imbalance() -> None:
    loads = expert_loads(64, 8, 2, imbalance=2.0)
    assert sum(loads) == 128 and max(loads) == 32 and max(loads) / (128 / 8) == 2.0
    assert sorted(loads[1:]) == [13, 13, 14, 14, 14, 14, 14]
    assert expert_loads(64, 8, 2) == [16] * 8
    assert expert_loads(1, 8, 2, imbalance=3.0) == [1, 1, 0, 0, 0, 0, 0, 0]  # decode: two experts busy
    assert max(expert_loads(10, 4, 2, imbalance=10.0)) == 10  # a token picks an expert at most once
    with pytest.raises(ValueError):
        expert_loads(8, 4, 5)
    cfg = LlmConfig.from_hf(MIXTRAL_8X7B, seq_len=16, batch=32, imbalance=2.0)
    assert (cfg.experts, cfg.top_k, cfg.kvh) == (8, 2, 8)
    ops = _ops(LlmDecode(cfg))
    up = [o for o in ops if o.label.startswith("layer0.expert") and o.label.endswith("up_gate")]
    assert [o.M for o in up] == expert_loads(32, 8, 2, 2.0) and up[0].M == 16
    h, f = 4096, 14336
    router = 2 * 32 * h * 8
    experts = 2 * 32 * 2 * 3 * h * f  # 64 token-expert pairs, gated MLP of 3 matrices each
    attn = 2 * 32 * (h * (32 + 16) * 128 + 32 * 128 * h) + 4 * 32 * 32 * 17 * 128
    assert gemm_flops(ops) == 32 * (router + experts + attn) + 2 * 32 * h * 32000


def test_non_gated_mlp_from_a_gpt_neox_config() -> None:
    cfg = LlmConfig.from_hf({"model_type": "gpt_neox", "hidden_size": 512, "num_attention_heads": 8,
                             "num_hidden_layers": 1, "intermediate_size": 2048, "vocab_size": 1000,
                             "hidden_act": "gelu"}, seq_len=64)
    g = _by_label(LlmPrefill(cfg))
    assert g["layer0.up"].N == 2048 and type(g["layer0.gelu"]).__name__ == "Gelu" and g["layer0.down"].K == 2048
    assert g["lm_head"].M == 1  # prefill: logits of the last token
    assert _by_label(LlmPrefill(cfg, all_logits=True))["lm_head"].M == 64
    with pytest.raises(ValueError, match="missing num_hidden_layers"):
        LlmConfig.from_hf({"hidden_size": 8})


# ------------------------------------------------------------------ Mamba, UNet


def test_mamba_scan_is_sequential_memory_bound_and_sized_by_d_inner_x_d_state() -> None:
    m = MambaLayer(seq_len=16, hidden=64, d_state=16, batch=2)
    ops = _ops(m)
    scan = [o for o in ops if o.label.endswith(".scan")]
    di, n = 128, 16
    assert len(scan) == 16  # one step per token
    assert all(isinstance(o, VectorOp) and o.rows * o.cols == 2 * di * n for o in scan)
    r = 4  # dt_rank = ceil(64 / 16)
    macs = 16 * 2 * (64 * 2 * di + di * 4 + di * (r + 2 * n) + r * di + di * 64)
    assert gemm_flops(ops) == 2 * macs
    spec = load_spec("edge-npu")
    step = simulate(Ops((scan[0],)), spec, dtype="fp16", detail="summary").stats
    assert step["dram_bytes"] == 2 * 2 * di * n * 2  # the state read and written back
    assert step["vector_flops"] == 8 * 2 * di * n
    assert step["busy_ns_by_kind"]["dma"] > step["busy_ns_by_kind"]["vector"]  # memory-bound
    assert len([o for o in _ops(MambaLayer(mode="decode")) if o.label.endswith(".scan")]) == 1


def test_unet_step_flops_equal_the_hand_count() -> None:
    u = UNetStep(latent=8, channels=(8, 16), res_blocks=1, attn_resolution=4, heads=2)
    ops = _ops(u)
    c4 = 4 * 4  # pixels at the low resolution
    attn16 = c4 * 16 * 48 + c4 * 16 * 16  # qkv and proj at 16 channels (MACs)
    macs = (8 * 32 + 32 * 32  # time embedding
            + 64 * 8 * 4 * 9  # conv_in
            + 2 * 64 * 8 * 8 * 9  # down0.res0
            + c4 * 8 * 8 * 9  # down0.downsample (8x8 -> 4x4)
            + c4 * 16 * 8 * 9 + c4 * 16 * 16 * 9 + c4 * 16 * 8 + attn16  # down1.res0 (8 -> 16) + attention
            + 2 * (2 * c4 * 16 * 16 * 9) + attn16  # mid: two res blocks, attention
            + c4 * 16 * 32 * 9 + c4 * 16 * 16 * 9 + c4 * 16 * 32 + attn16  # up1.res0: concat 16 + 16
            + c4 * 16 * 24 * 9 + c4 * 16 * 16 * 9 + c4 * 16 * 24 + attn16  # up1.res1: concat 16 + 8
            + 64 * 16 * 16 * 9  # up1.upconv at 8x8
            + 64 * 8 * 24 * 9 + 64 * 8 * 8 * 9 + 64 * 8 * 24  # up0.res0: concat 16 + 8
            + 64 * 8 * 16 * 9 + 64 * 8 * 8 * 9 + 64 * 8 * 16  # up0.res1: concat 8 + 8
            + 64 * 4 * 8 * 9)  # conv_out
    attn_scores = 4 * 4 * 2 * c4 * c4 * 8  # four attentions (down1, mid, up1 x2), QK and PV, 2 heads of 8
    assert gemm_flops(ops) == 2 * macs + attn_scores
    labels = {o.label for o in ops}
    assert "up1.res0.concat" in labels and "down0.attn0.attn" not in labels  # attention only at 4x4


# ------------------------------------------------------------------ every family on two chips

SMALL = {
    "resnet50": ResNet50(image=64, width=16, blocks=(1, 1, 1, 1), classes=10),
    "edge-encoder": EdgeCameraEncoder(image=64, output_stride=16),
    "vit": VisionTransformer(image=64, hidden=128, layers=2, heads=4, mlp=256, classes=10),
    "llm-prefill": LlmPrefill(LlmConfig(layers=2, hidden=256, heads=8, kv_heads=2, ffn=512, vocab=1000, seq_len=256)),
    "llm-moe-decode": LlmDecode(LlmConfig(layers=2, hidden=256, heads=8, kv_heads=2, ffn=512, vocab=1000,
                                          seq_len=256, experts=4, top_k=2, batch=4, imbalance=1.5)),
    "mamba": MambaLayer(seq_len=32, hidden=128),
    "unet-step": UNetStep(latent=16, channels=(32, 64), heads=4, attn_resolution=8),
}


@pytest.mark.parametrize("hw", ["edge-npu", "a100-sxm"])
@pytest.mark.parametrize("name", list(SMALL))
def test_every_family_simulates(name: str, hw: str) -> None:
    w = SMALL[name]
    res = simulate(w, load_spec(hw), detail="summary")
    assert res.total_ns > 0
    assert res.stats["matrix_flops"] == pytest.approx(gemm_flops(_ops(w)))
    assert workload_from_name(name) is not None  # registered by name


def test_hf_config_through_the_cli(tmp_path) -> None:
    p = tmp_path / "config.json"
    cfg = dict(LLAMA2_7B, num_hidden_layers=2, hidden_size=256, num_attention_heads=8, num_key_value_heads=2,
               intermediate_size=512, vocab_size=1000)
    p.write_text(json.dumps(cfg))
    out = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["simulate", str(p), "--hw", "edge-npu", "--set", "mode=prefill", "--set",
                                 "seq_len=64", "--detail", "summary", "-o", str(out)])
    assert r.exit_code == 0, r.output
    from profiler.formats import read_trace

    stats = read_trace(out).metadata.extra["simulator"]
    hd = 32
    causal = 4 * 2 * (128 * 32 + 128 * 64) * hd  # 2 K/V heads; tiles of 32 tokens x 4 heads see 32, 64 keys
    per_layer = 2 * 64 * (256 * (8 + 4) * hd + 256 * 256 + 2 * 256 * 512 + 512 * 256) + causal
    assert stats["matrix_flops"] == 2 * per_layer + 2 * 256 * 1000  # + the LM head on the last token
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"hidden_size": 8}))
    r = CliRunner().invoke(cli, ["simulate", str(bad), "-o", str(out)])
    assert r.exit_code == 2 and "missing num_hidden_layers" in r.output and "Traceback" not in r.output


def test_attention_rejects_heads_not_a_multiple_of_kv_heads() -> None:
    with pytest.raises(ValueError, match="multiple of kv_heads"):
        attention("a", 1, 8, 1, 16, 64, kv_heads=3)
    a = attention("a", 1, 8, 4, 16, 64, kv_heads=2, causal=True)[0]
    assert (a.heads, a.kv_heads, a.causal, a.kv) == (8, 2, True, 16)


def test_unfused_gqa_attention_packs_query_heads_and_keeps_the_flops() -> None:
    qk, _softmax, pv = Attention(heads=8, kv_heads=2, seq_len=16, kv_len=64, head_dim=32, flash=False).expand(
        "fp16", "fp16")
    assert (qk.M, qk.N, qk.K, qk.batch) == (16 * 4, 64, 32, 2)  # 4 query heads per K/V head, one K per group
    assert (pv.M, pv.N, pv.K, pv.batch) == (16 * 4, 32, 64, 2)
    assert 2 * (qk.M * qk.N * qk.K * qk.batch + pv.M * pv.N * pv.K * pv.batch) == 4 * 8 * 16 * 64 * 32


def test_hf_config_sweeps_over_context_length(tmp_path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(dict(LLAMA2_7B, num_hidden_layers=1, hidden_size=256, num_attention_heads=8,
                                 num_key_value_heads=2, intermediate_size=512, vocab_size=1000)))
    r = CliRunner().invoke(cli, ["sweep", str(p), "--hw", "edge-npu", "--vary", "seq_len=256,4096", "--dtype", "fp16",
                                 "--format", "json", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    by_len = {int(row["seq_len"]): row for row in json.loads(r.output)["points"]}
    assert set(by_len) == {256, 4096}
    assert by_len[4096]["latency_ns"] > by_len[256]["latency_ns"]  # a longer KV cache to read per token
    # 3,840 more cached positions x 2 K/V heads x head_dim 32 x (K and V) x 2 bytes
    assert by_len[4096]["dram_bytes"] - by_len[256]["dram_bytes"] == 3840 * 2 * 32 * 2 * 2


def test_llm_decode_takes_kv_heads_on_one_device_and_under_tensor_parallelism() -> None:
    spec = load_spec("edge-npu")
    kw = dict(layers=1, hidden=512, heads=8, ffn=1024, seq_len=512)
    mha = simulate(workload_from_name("llm-decode", **kw), spec, dtype="fp16", detail="summary").stats
    gqa_w = workload_from_name("llm-decode", kv_heads="2", **kw)  # a CLI string, as --set kv_heads=2 gives
    gqa = simulate(gqa_w, spec, dtype="fp16", detail="summary").stats
    assert gqa["matrix_flops"] == mha["matrix_flops"] - 2 * 512 * (2 * 6 * 64)  # only the K/V projections shrink
    kv_saved, w_saved = 2 * 6 * 512 * 64 * 2, 512 * 2 * 6 * 64 * 2  # cache rows and K/V weights of 6 heads
    assert mha["dram_bytes"] - gqa["dram_bytes"] == pytest.approx(kv_saved + w_saved, rel=0.01)
    from collectors.simulator.system import system_workload_from_name
    from collectors.simulator.system.parallel import _layer_ops

    tp = system_workload_from_name("llm-decode", tp=2, kv_heads=2, **kw)
    ops = {o.label: o for o in _layer_ops(tp.config, 1, 1, "decode", 2)}
    assert ops["qkv"].N == (8 + 4) * 64 // 2 and (ops["attn"].heads, ops["attn"].kv_heads) == (4, 1)
    with pytest.raises(ValueError, match="kv_heads"):
        from collectors.simulator.system.parallel import build_parallel_llm

        build_parallel_llm(system_workload_from_name("llm-decode", tp=4, kv_heads=2, **kw), load_spec("a100-sxm"),
                           None, None)  # type: ignore[arg-type]


def test_skewed_routing_in_decode_reads_fewer_experts_weights() -> None:
    # 4 sequences x top-2 of 8 experts = 8 assignments: balanced, every expert gets one token (all
    # eight read their weights); with the busiest at 4x the mean, 4 go to one expert, 4 to four others
    base = LlmConfig(layers=1, hidden=256, heads=4, ffn=512, vocab=256, seq_len=64, batch=4, experts=8, top_k=2)
    skewed = LlmConfig(**{**base.__dict__, "imbalance": 4.0})
    assert expert_loads(4, 8, 2, 4.0) == [4, 1, 1, 1, 1, 0, 0, 0]
    spec = load_spec("edge-npu")
    b0 = simulate(LlmDecode(base), spec, dtype="fp16", detail="summary").stats
    b1 = simulate(LlmDecode(skewed), spec, dtype="fp16", detail="summary").stats
    assert b0["matrix_flops"] == b1["matrix_flops"]  # the same token-expert pairs
    three_experts = 3 * 3 * 256 * 512 * 2  # up, gate, down of three idle experts, fp16
    assert b0["dram_bytes"] - b1["dram_bytes"] == pytest.approx(three_experts, rel=0.02)


def test_hf_config_detection(tmp_path) -> None:
    from collectors.simulator.families import is_hf_config

    named = tmp_path / "llama.json"
    named.write_text(json.dumps(LLAMA2_7B))
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"traceEvents": [{"name": "hidden_size", "ph": "X", "ts": 0, "dur": 1}]}))
    assert is_hf_config(str(named)) and not is_hf_config(str(trace))
    assert not is_hf_config(str(tmp_path / "config.json"))  # no such file
    assert load_hf_config(named).kvh == 32
