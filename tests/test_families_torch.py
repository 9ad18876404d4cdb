"""The built-in model families against the same architectures written in PyTorch.

Ground truth is PyTorch's own ``FlopCounterMode`` on real modules run on the CPU here (a peer
count: 2 FLOPs per multiply-add of convolutions and matrix products, bias adds, norms and pooling
not counted, as the families' GEMM count does), and the same modules through ``torch.export``
and the model importer: a family gives the same matrix FLOPs as a built-in and through import.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from collectors.modelimport import from_exported  # noqa: E402
from collectors.simulator.families import (  # noqa: E402
    MOBILENET_V2,
    EdgeCameraEncoder,
    LlmConfig,
    LlmDecode,
    ResNet50,
    VisionTransformer,
    gemm_flops,
)
from collectors.simulator.workloads import expand  # noqa: E402


def _torch_flops(module: nn.Module, *args) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(*args)
    return int(fc.get_total_flops())


def _family_flops(w) -> float:
    return gemm_flops(expand(w, "fp16", "fp16"))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, w: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, w, 1, bias=False)
        self.c2 = nn.Conv2d(w, w, 3, stride, 1, bias=False)
        self.c3 = nn.Conv2d(w, 4 * w, 1, bias=False)
        self.down = nn.Conv2d(cin, 4 * w, 1, stride, bias=False) if stride != 1 or cin != 4 * w else None

    def forward(self, x):
        y = self.c3(torch.relu(self.c2(torch.relu(self.c1(x)))))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class TorchResNet(nn.Module):
    def __init__(self, width: int, blocks: tuple[int, ...], classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        layers, cin = [], width
        for s, n in enumerate(blocks):
            for i in range(n):
                layers.append(Bottleneck(cin, width * 2**s, 2 if (i == 0 and s > 0) else 1))
                cin = 4 * width * 2**s
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.stem(x)), 3, 2, 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, t: int, stride: int, dilation: int) -> None:
        super().__init__()
        hid = cin * t
        self.expand = nn.Conv2d(cin, hid, 1, bias=False) if t != 1 else None
        self.dw = nn.Conv2d(hid, hid, 3, stride, dilation, dilation=dilation, groups=hid, bias=False)
        self.project = nn.Conv2d(hid, cout, 1, bias=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = nn.functional.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(nn.functional.relu6(self.dw(y)))
        return x + y if self.residual else y


class TorchMobileNetV2(nn.Module):
    """torchvision's MobileNetV2 layout; output stride 16 dilates the last stride-2 stage."""

    def __init__(self, output_stride: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        blocks, cin, reduction, dilation = [], 32, 2, 1
        for t, c, n, s in MOBILENET_V2:
            for i in range(n):
                stride, d = (s if i == 0 else 1), dilation
                if stride == 2 and reduction * 2 > output_stride:
                    stride, dilation = 1, dilation * 2
                elif stride == 2:
                    reduction *= 2
                blocks.append(InvertedResidual(cin, c, t, stride, d))
                cin = c
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv2d(cin, 1280, 1, bias=False)

    def forward(self, x):
        return nn.functional.relu6(self.head(self.body(nn.functional.relu6(self.stem(x)))))


class TorchVit(nn.Module):
    def __init__(self, image: int, patch: int, d: int, layers: int, heads: int, mlp: int, classes: int) -> None:
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "proj": nn.Linear(d, d),
                           "ln2": nn.LayerNorm(d), "fc1": nn.Linear(d, mlp), "fc2": nn.Linear(mlp, d)})
            for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        b, t, d = x.shape
        hd = d // self.heads
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["ln1"](x)).split(d, -1)
            q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
            y = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1) @ v
            x = x + blk["proj"](y.transpose(1, 2).reshape(b, t, d))
            x = x + blk["fc2"](nn.functional.gelu(blk["fc1"](blk["ln2"](x))))
        return self.head(self.norm(x)[:, 0])


class TorchLlamaDecode(nn.Module):
    """One decode step of a Llama-style model with grouped-query attention against a KV cache."""

    def __init__(self, c: LlmConfig) -> None:
        super().__init__()
        self.c = c
        h, hd = c.hidden, c.hd
        self.emb = nn.Embedding(c.vocab, h)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"q": nn.Linear(h, c.heads * hd, bias=False), "k": nn.Linear(h, c.kvh * hd, bias=False),
                           "v": nn.Linear(h, c.kvh * hd, bias=False), "o": nn.Linear(c.heads * hd, h, bias=False),
                           "gate": nn.Linear(h, c.ffn, bias=False), "up": nn.Linear(h, c.ffn, bias=False),
                           "down": nn.Linear(c.ffn, h, bias=False)})
            for _ in range(c.layers))
        self.lm_head = nn.Linear(h, c.vocab, bias=False)

    def forward(self, ids, caches):
        c, hd = self.c, self.c.hd
        x = self.emb(ids)  # (batch, 1, hidden)
        b = x.shape[0]
        for layer, (kc, vc) in zip(self.layers, caches, strict=True):
            q = layer["q"](x).reshape(b, 1, c.heads, hd).transpose(1, 2)
            k = torch.cat([kc, layer["k"](x).reshape(b, 1, c.kvh, hd).transpose(1, 2)], 2)
            v = torch.cat([vc, layer["v"](x).reshape(b, 1, c.kvh, hd).transpose(1, 2)], 2)
            rep = c.heads // c.kvh
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            y = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1) @ v
            x = x + layer["o"](y.transpose(1, 2).reshape(b, 1, c.heads * hd))
            x = x + layer["down"](nn.functional.silu(layer["gate"](x)) * layer["up"](x))
        return self.lm_head(x)


def test_resnet_family_equals_pytorchs_count_built_in_and_imported() -> None:
    module = TorchResNet(16, (2, 1, 2, 1), 10).eval()
    x = torch.randn(2, 3, 64, 64)
    expected = _torch_flops(module, x)
    built_in = ResNet50(batch=2, image=64, width=16, blocks=(2, 1, 2, 1), classes=10)
    assert _family_flops(built_in) == expected
    imported = from_exported(torch.export.export(module, (x,)))
    assert gemm_flops(list(imported.ops)) == expected


@pytest.mark.parametrize("output_stride", [32, 16])
def test_edge_encoder_equals_pytorchs_count_built_in_and_imported(output_stride: int) -> None:
    module = TorchMobileNetV2(output_stride).eval()
    x = torch.randn(1, 3, 64, 64)
    expected = _torch_flops(module, x)
    assert _family_flops(EdgeCameraEncoder(image=64, output_stride=output_stride)) == expected
    imported = from_exported(torch.export.export(module, (x,)))
    assert gemm_flops(list(imported.ops)) == expected


def test_vit_family_equals_pytorchs_count() -> None:
    module = TorchVit(64, 16, 96, 2, 4, 192, 10).eval()
    expected = _torch_flops(module, torch.randn(2, 3, 64, 64))
    assert _family_flops(VisionTransformer(batch=2, image=64, hidden=96, layers=2, heads=4, mlp=192,
                                           classes=10)) == expected


def test_gqa_llama_decode_equals_pytorchs_count() -> None:
    c = LlmConfig(layers=2, hidden=128, heads=8, kv_heads=2, ffn=256, vocab=500, seq_len=40, batch=3)
    module = TorchLlamaDecode(c).eval()
    caches = [(torch.randn(3, 2, 40, 16), torch.randn(3, 2, 40, 16)) for _ in range(2)]
    expected = _torch_flops(module, torch.randint(0, 500, (3, 1)), caches)
    assert _family_flops(LlmDecode(c)) == expected
