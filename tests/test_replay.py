"""Simulated beside measured: the ops of real PyTorch traces replayed on a hardware spec.

Ground truth: shapes and FLOPs worked by hand from the module, and measured device times summed
from the raw Kineto JSON with plain ``json`` (launch -> kernel by correlation id).
"""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.modelimport.replay import error_summary, replay
from profiler.formats import read_trace
from profiler.hardware import load_spec

KINETO = Path(__file__).parent / "data" / "kineto" / "a100_rank3_of8.json.gz"


def test_a_real_cpu_run_replays_its_linear_layers(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 128)).eval()
    x = torch.randn(64, 256)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            model(x)
    path = tmp_path / "cpu.pt.trace.json"
    prof.export_chrome_trace(str(path))
    rows = replay(read_trace(path), load_spec("a100-sxm"))
    lin = rows[rows["op"] == "aten::linear"].set_index("shapes")
    # by hand: 2 x M x N x K for [64,256] @ [512,256]^T and [64,512] @ [128,512]^T
    assert lin.loc["[64,256] x [512,256] x [512]", "flops"] == 2 * 64 * 512 * 256
    assert lin.loc["[64,512] x [128,512] x [128]", "flops"] == 2 * 64 * 128 * 512
    assert (lin["count"] == 3).all()
    assert (lin["simulated_ns"] > 0).all() and (lin["measured_ns"] > 0).all()
    assert not (rows["op"] == "aten::addmm").any()  # inside aten::linear: counted once, as linear


def _raw_device_ns(op: str, dims: list) -> float:
    """Median over the op's calls of the kernels its launches started (plain JSON, by hand)."""
    ev = json.load(gzip.open(KINETO))["traceEvents"]
    kernels: dict[int, float] = {}
    for e in ev:
        if e.get("cat") == "kernel":
            kernels[e["args"]["correlation"]] = kernels.get(e["args"]["correlation"], 0.0) + e["dur"]
    launches = [e for e in ev if e.get("cat") == "cuda_runtime"]
    out = []
    for e in ev:
        if e.get("cat") == "cpu_op" and e.get("name") == op and e["args"].get("Input Dims") == dims:
            t0, t1 = e["ts"], e["ts"] + e["dur"]
            corr = {x["args"].get("correlation") for x in launches
                    if x["tid"] == e["tid"] and t0 <= x["ts"] <= t1}
            out.append(sum(kernels.get(c, 0.0) for c in corr))
    return statistics.median(out) * 1000


def test_gpu_trace_measures_the_kernels_each_op_launched():
    rows = replay(read_trace(KINETO), load_spec("a100-sxm"), limit=6)
    top = rows.iloc[0]
    assert top["op"] == "aten::bmm" and top["shapes"] == "[1024,647,96] x [1024,96,30]"
    assert top["measured_ns"] == pytest.approx(_raw_device_ns("aten::bmm", [[1024, 647, 96], [1024, 96, 30]]))
    # FLOPs by hand: 1024 batches of 647 x 30 x 96
    assert top["flops"] == 2 * 1024 * 647 * 30 * 96
    s = error_summary(rows)
    assert s["rows"] == 6 and 0 <= s["median_abs_error_pct"] < 1000


def test_cli_replay(tmp_path):
    r = subprocess.run([sys.executable, "-m", "profiler", "replay", str(KINETO), "--hw", "a100-sxm", "--limit", "3",
                        "--format", "json", "--chart", str(tmp_path / "s.html")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 3 and doc["summary"]["rows"] == 3
    assert "simulated = measured" in (tmp_path / "s.html").read_text()
    r = subprocess.run([sys.executable, "-m", "profiler", "replay", str(Path(__file__).parent / "data" / "kineto" /
                        "a100_alexnet.json.gz")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "record_shapes" in r.stderr


def test_fp32_matmuls_measured_above_the_fp32_peak_replay_as_tf32():
    """The A100 trace's fp32 GEMMs ran faster than the A100's 19.5 TFLOP/s fp32 peak allows (by hand:
    [1024,2048] x [2048,4864] is 20.4 GFLOP in a median 216 us of kernels, 94 TFLOP/s), so they ran
    on TF32 tensor cores; replay simulates them in tf32 and says so, and lands within 2x of measured."""
    spec = load_spec("a100-sxm")
    rows = replay(read_trace(KINETO), spec, limit=40).set_index(["op", "shapes"])
    row = rows.loc[("aten::mm", "[1024,2048] x [2048,4864]")]
    measured = _raw_device_ns("aten::mm", [[1024, 2048], [2048, 4864]])
    assert row["measured_ns"] == pytest.approx(measured)
    flops = 2 * 1024 * 2048 * 4864
    assert row["flops"] == flops
    assert flops / (measured * 1e-9) > spec.peak("fp32")  # the hand check the replay makes
    assert row["dtype"] == "fp32" and row["sim_dtype"] == "tf32"
    assert abs(row["error_pct"]) < 50
    # an fp32 op that did not beat the fp32 peak keeps fp32 (elementwise ops are never switched)
    add = rows.loc[("aten::add", "[1024,647,96] x [1024,647,96]")]
    assert add["sim_dtype"] == "fp32"
    # an explicit dtype is used as given
    forced = replay(read_trace(KINETO), spec, dtype="fp32", limit=40).set_index(["op", "shapes"])
    assert forced.loc[("aten::mm", "[1024,2048] x [2048,4864]"), "sim_dtype"] == "fp32"
    assert forced.loc[("aten::mm", "[1024,2048] x [2048,4864]"), "error_pct"] > 200
