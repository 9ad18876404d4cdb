"""A synthetic accelerator trace for the dashboard's demo mode, its tests and its benchmark.

The dashboard must open something when no sample trace is bundled, and its level-of-detail code
must be exercised at a million slices; both need a trace whose shape is that of a real NPU run:
a device with cores, each with a matrix engine, a vector engine and DMA queues, a host thread
with nested ops, counters, stalls waiting on DMA, and flows from each load to the kernel that
consumed it.  Everything is generated column-wise (numpy) so a million slices build in about a second.
"""

from __future__ import annotations

import numpy as np

from profiler.builder import TraceBuilder
from profiler.model import Trace

MXU_KERNELS = ("matmul_qkv", "matmul_attn_out", "matmul_ffn_up", "matmul_ffn_down")
VEC_KERNELS = ("softmax", "layernorm", "gelu")


def _lay_out(rng: np.random.Generator, n: int, mean_dur: float, mean_gap: float, t0: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back slices with random durations and gaps: (ts, dur)."""
    dur = np.maximum(rng.exponential(mean_dur, n), 50).astype(np.int64)
    gap = rng.exponential(mean_gap, n).astype(np.int64)
    ts = t0 + np.concatenate([[0], np.cumsum(dur + gap)[:-1]])
    return ts, dur


def demo_trace(n_slices: int = 20_000, cores: int = 2, seed: int = 0) -> Trace:
    """A device with ``cores`` cores plus a host thread, about ``n_slices`` slices in all."""
    rng = np.random.default_rng(seed)
    b = TraceBuilder(source_format="demo", source="demo", clock="simulated", hardware="edge-npu")
    dev = b.add_track("npu0", kind="group", device="npu0")
    per_core = max(int(n_slices / (0.8 * cores + 0.55)), 20)
    t0 = 1_000_000
    for c in range(cores):
        core = b.add_track(f"core{c}", kind="group", parent=dev)
        mxu = b.add_track("mxu", kind="compute", parent=core, attrs={"engine": "matrix"})
        vec = b.add_track("vector", kind="compute", parent=core, attrs={"engine": "vector"})
        dmas = [b.add_track(f"dma{q}", kind="dma", parent=core, attrs={"queue": q}) for q in range(2)]
        n_mxu = per_core * 2 // 5
        n_vec = per_core // 5
        n_dma = per_core // 5
        ts, dur = _lay_out(rng, n_mxu, 4_000, 800, t0)
        names = np.array(MXU_KERNELS)[rng.integers(0, len(MXU_KERNELS), n_mxu)]
        # Every 7th kernel waits on its DMA: a stall slice in the gap before it.
        stall = np.zeros(n_mxu, dtype=bool)
        stall[::7] = True
        names = np.where(stall, "wait_dma", names)
        cats = np.where(stall, "stall", "kernel")
        flops = np.where(stall, np.nan, dur * rng.uniform(2e2, 9e2, n_mxu))
        nbytes = np.where(stall, np.nan, flops / rng.uniform(8, 400, n_mxu))
        mxu_ids = b.add_slices(mxu, ts, dur, names, category=cats, flops=flops, bytes=nbytes,
                               dtype=[None if s else "fp16" for s in stall.tolist()])
        vts, vdur = _lay_out(rng, n_vec, 3_000, 9_000, t0 + 2_000)
        vnames = np.array(VEC_KERNELS)[rng.integers(0, len(VEC_KERNELS), n_vec)]
        vflops = vdur * rng.uniform(5, 40, n_vec)
        b.add_slices(vec, vts, vdur, vnames, category="kernel", flops=vflops, bytes=vflops / rng.uniform(0.3, 2, n_vec),
                     dtype="fp32")
        dma_ids = []
        for q, dq in enumerate(dmas):
            dts, ddur = _lay_out(rng, n_dma // 2, 6_000, 14_000, t0 + 500 * q)
            dma_ids.append(b.add_slices(dq, dts, ddur, "dma_load_weights" if q == 0 else "dma_load_activations",
                                        category="dma", bytes=ddur * rng.uniform(20, 60, ddur.size)))
        # Each stall waited on a load: flow from a DMA slice to the stalled kernel's stall slice.
        src = dma_ids[0][: int(stall.sum())]
        b.add_flows(src, mxu_ids[stall][: src.size], name=["dma_done"] * src.size)
        # Utilisation counter sampled every ~50 us.
        span = int(ts[-1] + dur[-1] - t0)
        cts = t0 + np.arange(0, span, 50_000, dtype=np.int64)
        util = np.clip(0.6 + 0.3 * np.sin(np.arange(cts.size) / 9) + rng.normal(0, 0.05, cts.size), 0, 1)
        ctr = b.add_track("mxu_utilization", kind="counter", parent=core, attrs={"unit": "fraction"})
        b.add_counters(ctr, cts, util)
    host = b.add_track("host", kind="group", device="host")
    thread = b.add_track("python", kind="host", parent=host, attrs={"tid": 1})
    n_steps = max(per_core // 20, 1)
    sts, sdur = _lay_out(rng, n_steps, 34_000, 2_000, t0)
    b.add_slices(thread, sts, sdur, "train_step", category="step")
    # Ten ops nested inside each step.
    k = 10
    width = sdur // (k + 1)
    ots = (sts[:, None] + (np.arange(k)[None, :] * width[:, None]) + width[:, None] // 4).ravel()
    odur = np.repeat(width // 2, k)
    onames = np.array(["aten::linear", "aten::softmax", "aten::layer_norm", "aten::to"])[np.arange(ots.size) % 4]
    b.add_slices(thread, ots, odur, onames, category="cpu_op")
    return b.build()
