"""PyTorch collector on real torch.profiler runs (CPU) and a real GPU Kineto trace."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collectors.pytorch import read_profile_json, record  # noqa: E402
from collectors.pytorch.flops import estimate  # noqa: E402
from profiler.formats import read_trace  # noqa: E402
from profiler.formats.kineto import read_kineto  # noqa: E402
from profiler.nesting import nest  # noqa: E402

KINETO = Path(__file__).parent / "data" / "kineto"


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 8, 32)
        self.norm = torch.nn.LayerNorm(32)

    def forward(self, x, w):
        h = torch.relu(self.conv(x)).flatten(1)
        h = self.norm(self.fc(h))
        h = torch.nn.functional.gelu(h)
        return torch.softmax(torch.mm(h, w), dim=-1)


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    net = Net()
    x, w = torch.randn(4, 3, 8, 8), torch.randn(32, 16)
    with torch.no_grad():
        return record(net, (x, w))


def _slices(trace):
    df = trace.slices_df()
    return df[df["category"] == "cpu_op"]


def test_op_names_counts_and_flops_agree_with_torch(run) -> None:
    df = _slices(run.trace)
    ours_count = df.groupby("name", observed=True).size().to_dict()
    ours_flops = df.groupby("name", observed=True)["flops"].sum(min_count=1).to_dict()
    torch_ops = {e.key: e for e in run.prof.key_averages() if e.key.startswith("aten::")}
    assert {k: e.count for k, e in torch_ops.items()} == ours_count
    for op in ("aten::addmm", "aten::conv2d", "aten::mm"):
        assert torch_ops[op].flops > 0
        assert ours_flops[op] == torch_ops[op].flops, op
    assert isinstance(run.result, torch.Tensor) and run.result.shape == (4, 16)


def test_estimated_flops_for_ops_torch_does_not_count(run) -> None:
    df = _slices(run.trace).set_index("name")
    torch_flops = {e.key: e.flops for e in run.prof.key_averages()}
    n_fc = 4 * 32
    expected = {
        "aten::relu": 4 * 8 * 8 * 8,  # 1 per output element
        "aten::layer_norm": 5 * n_fc,  # mean, variance (2), normalize (2)
        "aten::gelu": n_fc,
        "aten::softmax": 5 * 4 * 16,
    }
    for op, flops in expected.items():
        assert torch_flops[op] == 0  # torch gives none ...
        assert df.loc[op, "flops"] == flops, op  # ... we fill our formula
    # bytes: reads + writes, fp32
    assert df.loc["aten::relu", "bytes"] == 4 * (2 * 4 * 8 * 8 * 8)
    assert df.loc["aten::mm", "bytes"] == 4 * (4 * 32 + 32 * 16 + 4 * 16)
    assert df.loc["aten::conv2d", "bytes"] == 4 * (4 * 3 * 64 + 8 * 27 + 8 + 4 * 8 * 64)


def test_flops_are_counted_once_per_op_stack(run) -> None:
    s = run.trace.slices
    n = nest(s["track"].to_numpy(), s["ts"].to_numpy(), s["dur"].to_numpy())
    flops = s["flops"].to_numpy(zero_copy_only=False)[n.order]
    has = ~np.isnan(flops)
    for i in np.flatnonzero(has):
        p = n.parent[i]
        while p >= 0:
            assert not has[p], "an op and an op enclosing it both carry FLOPs"
            p = n.parent[p]
    df = _slices(run.trace).set_index("name")
    assert math.isnan(df.loc["aten::linear", "flops"])  # its addmm child carries them
    assert math.isnan(df.loc["aten::native_layer_norm", "flops"])  # its layer_norm parent does


def test_formula_table_on_known_shapes() -> None:
    f, b = estimate("aten::scaled_dot_product_attention", [[2, 4, 16, 8], [2, 4, 32, 8], [2, 4, 32, 8]],
                    ["float", "float", "float"], ["", "", ""])
    assert f == 2 * 2 * 4 * 16 * 32 * 8 * 2 and b == 4 * (2 * 4 * 16 * 8 + 2 * 2 * 4 * 32 * 8 + 2 * 4 * 16 * 8)
    f, _ = estimate("aten::conv2d", [[1, 4, 10, 10], [6, 2, 3, 3], [6]], ["float", "float", "float"],
                    ["", "", "", "[2, 2]", "[0, 0]", "[1, 1]", "2"])
    assert f == 2 * (1 * 6 * 4 * 4) * 2 * 9  # grouped, strided
    f, b = estimate("aten::matmul", [[3, 5, 7], [7, 2]], ["c10::BFloat16", "c10::BFloat16"], [])
    assert f == 2 * 3 * 5 * 2 * 7 and b == 2 * (3 * 5 * 7 + 7 * 2 + 3 * 5 * 2)
    f, _ = estimate("aten::sum", [[4, 6], []], ["float", "ScalarList"], ["", "[1]", "False"])
    assert f == 24
    assert estimate("aten::unknown_op", [[2]], ["float"], []) == (None, None)


def test_gpu_trace_keeps_kernels_and_flows() -> None:
    path = KINETO / "amd_mi250_minitoy_train.json.gz"
    plain = read_kineto(path)
    ours = read_profile_json(path)
    assert ours.flows.equals(plain.flows) and ours.flows.num_rows > 0
    df, base = ours.slices_df(), plain.slices_df()
    gpu = df["track_kind"].isin(["compute", "dma"]).to_numpy()
    assert gpu.any()
    np.testing.assert_array_equal(df["flops"].to_numpy()[gpu], base["flops"].to_numpy()[gpu])
    relu = df[df["name"] == "aten::relu"]
    assert len(relu) and (relu["flops"] > 0).all() and base[base["name"] == "aten::relu"]["flops"].isna().all()


def test_record_cli_runs_a_script(tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import sys, torch\n"
        "m = torch.nn.Linear(16, 4)\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    m(torch.randn(8, 16)).relu().sum()\n"
        "sys.exit(5)\n"
    )
    out = tmp_path / "run.trace"
    proc = subprocess.run([sys.executable, "-m", "profiler", "record", "-o", str(out), "--", sys.executable,
                           str(script), "3"], capture_output=True, text=True, timeout=300)
    # A failed run is bad input (2), never "check failed" (1); the one line names the script's status ...
    last = proc.stderr.strip().splitlines()[-1]  # (the script's own stderr, here torch's, comes first)
    assert proc.returncode == 2 and last.startswith("profiler: error: ") and "exited with status 5" in last, proc.stderr
    df = read_trace(out).slices_df()  # ... and the trace is written anyway
    addmm = df[df["name"] == "aten::addmm"]
    assert len(addmm) == 3 and (addmm["flops"] == 2 * 8 * 4 * 16).all()
    assert (df["name"] == "aten::relu").sum() == 3


def test_record_cli_rejects_bad_input(tmp_path) -> None:
    missing = subprocess.run([sys.executable, "-m", "profiler", "record", "-o", str(tmp_path / "x.trace"), "--",
                              sys.executable, str(tmp_path / "nope.py")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such script" in missing.stderr
    bad_ext = subprocess.run([sys.executable, "-m", "profiler", "record", "-o", str(tmp_path / "x.xyz"), "--",
                              sys.executable, "-c", "pass"], capture_output=True, text=True, timeout=120)
    assert bad_ext.returncode == 2 and "x.xyz" in bad_ext.stderr
