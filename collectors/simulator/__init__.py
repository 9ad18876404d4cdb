"""Accelerator performance simulator: workload -> tiling compiler -> discrete-event run -> Trace.

    from collectors.simulator import simulate, Gemm
    from profiler.hardware import load_spec
    result = simulate(Gemm(M=4096, N=4096, K=4096, dtype="int8"), load_spec("edge-npu"))
    result.trace, result.total_ns, result.stats["busy_ns"]
"""

from __future__ import annotations

from collectors.simulator.api import SimResult, compile_workload, simulate
from collectors.simulator.machine import Machine, SimOptions, SimulatorError
from collectors.simulator.workloads import (
    WORKLOADS,
    Attention,
    CnnEncoder,
    Conv2d,
    Elementwise,
    Gemm,
    LayerNorm,
    LlmDecodeStep,
    ModelConfig,
    Softmax,
    TransformerBlock,
    VectorOp,
    workload_from_name,
)

__all__ = [
    "WORKLOADS", "Attention", "CnnEncoder", "Conv2d", "Elementwise", "Gemm", "LayerNorm", "LlmDecodeStep",
    "Machine", "ModelConfig", "SimOptions", "SimResult", "SimulatorError", "Softmax", "TransformerBlock",
    "VectorOp", "compile_workload", "simulate", "workload_from_name",
]
