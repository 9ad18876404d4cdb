"""Regenerate every bundled sample trace: ``python -m sample_traces.regenerate [NAME ...]``.

Each sample is a small, real output of one of our sources, so what the README and the dashboard
show is what users get.  Sizes are kept small (the samples ship in the package); the shapes are
chosen so that each sample shows one thing clearly (see ``sample_traces/README.md``).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sample_traces import HERE

SIMULATOR_HW = "edge-npu"


def simulator_workloads() -> dict[str, Any]:
    """The simulator samples' workloads (all on the edge-npu preset), by sample name."""
    from collectors.simulator import CnnEncoder, Gemm, LlmDecodeStep, ModelConfig

    gemm = dict(M=2048, N=2048, K=2048, dtype="int8", tile_m=1024, tile_n=1024, tile_k=256)
    return {
        # Tiles loaded one at a time: the matrix engine waits on every DMA.
        "gemm_single_buffered": Gemm(**gemm, buffering=1, label="gemm_1buf"),  # type: ignore[arg-type]
        # The same GEMM double-buffered: loads overlap compute.
        "gemm_double_buffered": Gemm(**gemm, buffering=2, label="gemm_2buf"),  # type: ignore[arg-type]
        # Two decode layers of a 1B-class model: weight streaming, memory bound.
        "transformer_decode_edge": LlmDecodeStep(ModelConfig(layers=2, hidden=2048, heads=16, ffn=5632, seq_len=1024,
                                                             batch=1, dtype="int8", act_dtype="fp16")),
        # A small CNN encoder (im2col GEMMs + ReLU).
        "cnn_encoder_edge": CnnEncoder(image=64, channels=(32, 64, 128, 256), dtype="int8"),
    }


def simulate_sample(name: str) -> Any:
    """Run one simulator sample's workload and return its trace."""
    from collectors.simulator import simulate
    from profiler.hardware import load_spec

    return simulate(simulator_workloads()[name], load_spec(SIMULATOR_HW)).trace


def _simulator_sample(name: str, doc: str) -> Callable[[Path], Path]:
    def make(out: Path = HERE) -> Path:
        from profiler.formats import write_trace

        path = out / f"{name}.pftrace"
        write_trace(simulate_sample(name), path)
        return path

    make.__name__ = name
    make.__doc__ = doc
    return make


def torch_cpu_mlp(out: Path = HERE) -> Path:
    """A real PyTorch profiler (Kineto) trace of a small MLP + conv model on the CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten(),
        torch.nn.Linear(16 * 64, 256), torch.nn.LayerNorm(256), torch.nn.GELU(), torch.nn.Linear(256, 10),
    )
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        model(x)  # warm up outside the profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
            for _ in range(3):
                with record_function("step"):
                    model(x)
    path = out / "torch_cpu_mlp.pt.trace.json.gz"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as src, open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    return path


def onnxruntime_cnn(out: Path = HERE) -> Path:
    """A real ONNX Runtime profile (3 runs) of a small CNN encoder built with the onnx package."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from collectors.onnxrt import profile
    from profiler.formats import write_trace

    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn_encoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 128, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [init("w1", 32, 3, 3, 3), init("b1", 32), init("w2", 64, 32, 3, 3), init("b2", 64),
         init("w3", 128, 64, 3, 3), init("b3", 128), init("wg", 64, 128), init("bg", 64)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
    trace = profile(model, {"x": x}, runs=3, optimize=False, warmup=1)
    path = out / "onnxruntime_cnn.pftrace"
    write_trace(trace, path)
    return path


def scalesim_gemm(out: Path = HERE) -> Path:
    """A real SCALE-Sim v3 run (32x32 output-stationary array, three GEMM layers) as a trace."""
    from collectors.scalesim import ScaleSimConfig, gemm_layers, run_scalesim
    from profiler.formats import write_trace

    cfg = ScaleSimConfig(rows=32, cols=32, dataflow="os", ifmap_sram_kb=64, filter_sram_kb=64, ofmap_sram_kb=32,
                         bandwidth=10, run_name="sample")
    trace = run_scalesim(cfg, gemm_layers([(256, 256, 256), (512, 64, 256), (64, 64, 1024)]))
    path = out / "scalesim_gemm.pftrace"
    write_trace(trace, path)
    return path


#: sample name -> file it is stored in (under ``sample_traces/``).
FILES: dict[str, str] = {
    "gemm_single_buffered": "gemm_single_buffered.pftrace",
    "gemm_double_buffered": "gemm_double_buffered.pftrace",
    "transformer_decode_edge": "transformer_decode_edge.pftrace",
    "cnn_encoder_edge": "cnn_encoder_edge.pftrace",
    "torch_cpu_mlp": "torch_cpu_mlp.pt.trace.json.gz",
    "onnxruntime_cnn": "onnxruntime_cnn.pftrace",
    "scalesim_gemm": "scalesim_gemm.pftrace",
}

#: sample name -> the function that makes it in a folder (``HERE`` by default) and returns its path.
SAMPLES: dict[str, Callable[[Path], Path]] = {
    "gemm_single_buffered": _simulator_sample(
        "gemm_single_buffered", "Simulator, edge-npu: an int8 GEMM whose tiles load one at a time (DMA bubbles)."),
    "gemm_double_buffered": _simulator_sample(
        "gemm_double_buffered", "Simulator, edge-npu: the same GEMM double-buffered (loads overlap compute)."),
    "transformer_decode_edge": _simulator_sample(
        "transformer_decode_edge", "Simulator, edge-npu: two decode layers of a 1B-class model (memory bound)."),
    "cnn_encoder_edge": _simulator_sample(
        "cnn_encoder_edge", "Simulator, edge-npu: a small CNN encoder (im2col GEMMs + ReLU, small transfers)."),
    "torch_cpu_mlp": torch_cpu_mlp,
    "onnxruntime_cnn": onnxruntime_cnn,
    "scalesim_gemm": scalesim_gemm,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_traces.regenerate", description=__doc__)
    ap.add_argument("names", nargs="*", help=f"only these samples (default: all of {', '.join(SAMPLES)})")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in SAMPLES]
    if unknown:
        ap.error(f"unknown sample(s) {', '.join(unknown)}")
    for name in args.names or list(SAMPLES):
        path = SAMPLES[name](HERE)
        print(f"{name:26s} -> {path.relative_to(HERE.parent)} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
