"""Models brought by the user: a small CNN and a small GPT-style model exported on the CPU in the test,
through ONNX (torch.onnx.export) and torch.export, simulated with FLOPs equal to PyTorch's own count.

Ground truth: ``torch.utils.flop_counter.FlopCounterMode`` on the real module (a peer count, not
our code), and the node names of the exported graphs themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from collectors.modelimport import ImportedModel, from_exported, load_model  # noqa: E402
from collectors.simulator import Gemm, simulate  # noqa: E402
from profiler.hardware import load_spec  # noqa: E402


class SmallCnn(torch.nn.Module):
    """Conv + BN + ReLU, a dilated depthwise conv, a pointwise conv, pooling, a grouped conv, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(16)
        self.dw = torch.nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.pw = torch.nn.Conv2d(16, 32, 1)
        self.grouped = torch.nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.pool = torch.nn.MaxPool2d(2)
        self.head = torch.nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.pw(self.dw(x)))
        x = self.pool(torch.relu(self.grouped(x)))
        return self.head(torch.flatten(x, 1))


class SmallGpt(torch.nn.Module):
    """Embedding, one pre-norm block (causal attention written out, GELU MLP), LM head, and a
    cumulative sum the simulator has no model of."""

    def __init__(self, vocab: int = 256, d: int = 64, heads: int = 4, seq: int = 16) -> None:
        super().__init__()
        self.heads, self.d = heads, d
        self.emb = torch.nn.Embedding(vocab, d)
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.up = torch.nn.Linear(d, 4 * d)
        self.down = torch.nn.Linear(4 * d, d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids)
        q, k, v = self.qkv(self.ln1(x)).split(self.d, dim=-1)
        hd = self.d // self.heads
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / hd**0.5
        att = torch.softmax(att.masked_fill(self.mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, self.d)
        x = x + self.proj(y)
        x = x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))
        return torch.cumsum(self.lm_head(x), dim=1)


def _torch_flops(module, args) -> int:
    with FlopCounterMode(display=False) as fc:
        module(*args)
    return int(fc.get_total_flops())


def _gemm_flops(model: ImportedModel) -> int:
    return sum(2 * o.M * o.N * o.K * o.batch for o in model.ops if isinstance(o, Gemm))


def _onnx(module, args, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False)
    return load_model(path)


CASES = {
    "cnn": (SmallCnn, lambda: (torch.randn(2, 3, 32, 32),)),
    "gpt": (SmallGpt, lambda: (torch.randint(0, 256, (2, 16)),)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_and_torch_export_flops_equal_pytorchs_count(name, tmp_path):
    cls, make = CASES[name]
    module = cls().eval()
    args = make()
    expected = _torch_flops(module, args)
    via_onnx = _onnx(module, args, tmp_path / f"{name}.onnx")
    via_export = from_exported(torch.export.export(module, args))
    assert _gemm_flops(via_onnx) == expected
    assert _gemm_flops(via_export) == expected
    # the simulator runs the imported graph and counts the same matrix FLOPs
    res = simulate(via_onnx, load_spec("a100-sxm"), detail="summary")
    assert res.stats["matrix_flops"] == pytest.approx(expected)


def test_grouped_and_depthwise_convs_become_one_gemm_per_group(tmp_path):
    module = SmallCnn().eval()
    m = _onnx(module, (torch.randn(2, 3, 32, 32),), tmp_path / "cnn.onnx")
    g = {o.label: o for o in m.ops if isinstance(o, Gemm)}
    dw = next(o for k, o in g.items() if "dw" in k)
    # depthwise: 16 groups of M = 2*16*16 outputs, N = 1 channel, K = 1 channel x 3 x 3
    assert (dw.M, dw.N, dw.K, dw.batch) == (2 * 16 * 16, 1, 9, 16)
    grouped = next(o for k, o in g.items() if "grouped" in k)
    assert (grouped.N, grouped.K, grouped.batch) == (8, 8 * 9, 4)


def test_unknown_ops_are_listed_and_node_names_reach_the_trace(tmp_path):
    module = SmallGpt().eval()
    args = (torch.randint(0, 256, (2, 16)),)
    m = _onnx(module, args, tmp_path / "gpt.onnx")
    assert any("CumSum" in u for u in m.unmodeled)
    ex = from_exported(torch.export.export(module, args))
    assert any("cumsum" in u for u in ex.unmodeled)
    res = simulate(m, load_spec("edge-npu"), dtype="int8")
    ops_in_trace = {json.loads(a).get("op") for a in res.trace.slices["args"].to_pylist() if a}
    assert {o.label for o in m.ops} <= ops_in_trace
    import onnx

    graph_names = {n.name for n in onnx.load(str(tmp_path / "gpt.onnx")).graph.node}
    assert {o.label for o in m.ops} <= graph_names  # every simulated op is a node of the model


def test_cli_simulates_a_model_file(tmp_path):
    module = SmallCnn().eval()
    args = (torch.randn(1, 3, 32, 32),)
    _onnx(module, args, tmp_path / "cnn.onnx")
    torch.export.save(torch.export.export(module, args), str(tmp_path / "cnn.pt2"))
    for f in ("cnn.onnx", "cnn.pt2"):
        r = subprocess.run([sys.executable, "-m", "profiler", "simulate", str(tmp_path / f), "--hw", "edge-npu",
                            "--dtype", "int8", "-o", str(tmp_path / f"{f}.pftrace")], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        assert f"{f} on edge-npu" in r.stdout
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    r = subprocess.run([sys.executable, "-m", "profiler", "simulate", str(tmp_path / "bad.onnx"), "-o",
                        str(tmp_path / "x.pftrace")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "bad.onnx" in r.stderr and "Traceback" not in r.stderr
