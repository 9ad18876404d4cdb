"""Workloads over many devices: collectives alone, tensor/pipeline-parallel LLM steps, expert-parallel MoE.

Every op's time on one device comes from the single-device simulator (summary detail, one run per
distinct op list, cached); the system program then places the ops on each device's compute lane
and the communication the parallel split implies on the link lanes:

* **tensor parallel** (Megatron-LM, Shoeybi et al. 2019): QKV and FFN-up/gate split their output
  columns over the ``tp`` devices of a stage, attention splits its heads, the output and FFN-down
  projections split their reduction, and an all-reduce of the layer's activations follows each of
  those two (2 per layer);
* **pipeline parallel** (GPipe, Huang et al. 2019): the layers split into ``pp`` stages; the batch
  into ``microbatches``; stage s runs micro-batch m after stage s-1 sent it (point-to-point,
  activations only) and after its own micro-batch m-1, so the first and last stages idle
  (pp - 1) / (microbatches + pp - 1) of the time: the pipeline bubble;
* **expert parallel** (GShard, Lepikhin et al. 2020): ``experts`` FFNs spread over ``ep`` devices,
  attention data-parallel (each device its share of the batch), an all-to-all sends each token to
  the devices of its ``top_k`` experts and a second one brings the results back; ``imbalance`` is
  the busiest device's share of routed tokens over the mean (1 = perfectly balanced), so the
  others wait for it at the combining all-to-all.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors.simulator.optimes import OpTime, per_op
from collectors.simulator.system.program import SystemProgram
from collectors.simulator.workloads import Attention, Elementwise, Gemm, LayerNorm, ModelConfig
from profiler.hardware import DTYPE_BYTES, HardwareSpec
from profiler.system import SystemSpec


@dataclass(frozen=True)
class OpList:
    """A fixed list of primitive ops, as a workload the single-device simulator runs."""

    ops: tuple[Any, ...]
    dtype: str | None = None
    label: str = "ops"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        return list(self.ops)


def op_times(ops: tuple[Any, ...], spec: HardwareSpec, dtype: str | None) -> list[OpTime]:
    """Each op's time on one device: ends of consecutive ops (ops run one after another there).

    Cached by (ops, spec, dtype): the layers of a model, the micro-batches of a pipeline and the
    devices of a tensor-parallel group repeat the same op lists.
    """
    key = (ops, json.dumps(spec.to_dict(), sort_keys=True, default=str), dtype)
    hit = _OP_TIMES.get(key)
    if hit is None:
        hit = _OP_TIMES[key] = _simulate_ops(ops, spec, dtype)
    return list(hit)


_OP_TIMES: dict[tuple[Any, ...], tuple[OpTime, ...]] = {}


def _simulate_ops(ops: tuple[Any, ...], spec: HardwareSpec, dtype: str | None) -> tuple[OpTime, ...]:
    from collectors.simulator import simulate

    times = {o.name: o for o in per_op(simulate(OpList(ops), spec, dtype=dtype, detail="summary").trace)}
    missing = [op.label for op in ops if op.label not in times]
    if missing:
        raise ValueError(f"op {missing[0]} left no slice in the simulated trace")
    return tuple(times[op.label] for op in ops)


# ------------------------------------------------------------------ workloads
@dataclass(frozen=True)
class Collective:
    """One collective alone: ``kind`` of ``bytes`` over ``devices`` (``algorithm`` ring or tree;
    ``devices`` 0: as many as the spec's ``[system]`` has)."""

    kind: str = "all_reduce"
    bytes: float = 1 << 30
    devices: int = 0
    algorithm: str = "ring"
    label: str = "collective"


@dataclass(frozen=True)
class ParallelLlm:
    """LLM decode step (or prefill) with tensor and pipeline parallelism (see the module docstring)."""

    config: ModelConfig = field(default_factory=ModelConfig.llama7b)
    mode: str = "decode"
    tp: int = 1
    pp: int = 1
    microbatches: int = 1
    algorithm: str = "ring"
    label: str = "llm-decode"

    @property
    def devices(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True)
class MoeLlm:
    """MoE decode step with expert parallelism (see the module docstring)."""

    config: ModelConfig = field(default_factory=lambda: ModelConfig(layers=4, hidden=4096, heads=32, ffn=14336,
                                                                     seq_len=2048, batch=64))
    experts: int = 8
    top_k: int = 2
    ep: int = 8
    imbalance: float = 1.0
    label: str = "moe-decode"

    @property
    def devices(self) -> int:
        return self.ep


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _layer_ops(c: ModelConfig, tokens: int, batch: int, mode: str, tp: int) -> tuple[Any, ...]:
    """One transformer layer's ops on one of ``tp`` devices (Megatron split)."""
    h, hd = c.hidden, c.head_dim
    q_len = c.seq_len if mode == "prefill" else 1
    return (
        LayerNorm(rows=tokens, cols=h, label="ln1"),
        Gemm(M=tokens, N=(c.heads + 2 * (c.kv_heads or c.heads)) * hd // tp, K=h, label="qkv"),
        Attention(batch=batch, heads=c.heads // tp, seq_len=q_len, kv_len=c.seq_len, head_dim=hd, label="attn",
                  kv_heads=c.kv_heads // tp if c.kv_heads else None),
        Gemm(M=tokens, N=h, K=h // tp, label="o_proj"),
        Elementwise(rows=tokens, cols=h, label="residual1"),
        LayerNorm(rows=tokens, cols=h, label="ln2"),
        Gemm(M=tokens, N=2 * c.ffn // tp, K=h, label="ffn_up_gate"),
        Elementwise(rows=tokens, cols=c.ffn // tp, flops_per_element=5.0, label="silu_mul"),
        Gemm(M=tokens, N=h, K=c.ffn // tp, label="ffn_down"),
        Elementwise(rows=tokens, cols=h, label="residual2"),
    )


_ALLREDUCE_AFTER = ("o_proj", "ffn_down")


def _dtypes(c: ModelConfig, spec: HardwareSpec, dtype: str | None) -> tuple[str | None, int]:
    mm = dtype or c.dtype
    act = c.act_dtype or (mm if mm in ("fp16", "bf16", "fp32") else ("fp16" if spec.supports("fp16") else "bf16"))
    return mm, int(DTYPE_BYTES.get(act, 2))


def build_parallel_llm(w: ParallelLlm, spec: HardwareSpec, system: SystemSpec, dtype: str | None) -> SystemProgram:
    c = w.config
    _check(w.mode in ("decode", "prefill"), f"mode must be decode or prefill, got {w.mode!r}")
    _check(w.tp >= 1 and w.pp >= 1 and w.microbatches >= 1, "tp, pp and microbatches must be at least 1")
    _check(c.heads % w.tp == 0 and c.ffn % w.tp == 0 and c.hidden % w.tp == 0,
           f"tp={w.tp} must divide heads ({c.heads}), ffn ({c.ffn}) and hidden ({c.hidden})")
    _check((c.kv_heads or c.heads) % w.tp == 0, f"tp={w.tp} must divide kv_heads ({c.kv_heads})")
    _check(c.layers >= w.pp, f"pp={w.pp} stages need at least as many layers (have {c.layers})")
    _check(c.batch % w.microbatches == 0, f"microbatches={w.microbatches} must divide batch ({c.batch})")
    mm, act_bytes = _dtypes(c, spec, dtype)
    mb = c.batch // w.microbatches
    tokens = mb * (c.seq_len if w.mode == "prefill" else 1)
    times = op_times(_layer_ops(c, tokens, mb, w.mode, w.tp), spec, mm)
    act = tokens * c.hidden * act_bytes
    bounds = np.linspace(0, c.layers, w.pp + 1).round().astype(int)
    prog = SystemProgram(system)
    dev = [[s * w.tp + t for t in range(w.tp)] for s in range(w.pp)]
    handoff: dict[tuple[int, int], tuple[int, ...]] = {}  # (stage, microbatch) -> what its input waits for
    for m in range(w.microbatches):
        for s in range(w.pp):
            ready = {d: handoff.get((s, m), ()) for d in dev[s]}
            for layer in range(bounds[s], bounds[s + 1]):
                for ot in times:
                    ids = {d: prog.op(d, f"mb{m}.layer{layer}.{ot.name}" if w.microbatches > 1 else
                                      f"layer{layer}.{ot.name}", ot.dur_ns, ready[d], flops=ot.flops,
                                      nbytes=ot.nbytes, dtype=ot.dtype, args={"layer": layer, "microbatch": m})
                           for d in dev[s]}
                    ready = {d: (i,) for d, i in ids.items()}
                    if w.tp > 1 and ot.name in _ALLREDUCE_AFTER:
                        ready = prog.collective("all_reduce", dev[s], act, ready, w.algorithm,
                                                label=f"layer{layer}.{ot.name}.all_reduce")
            if s + 1 < w.pp:
                nxt = {}
                for t in range(w.tp):
                    done = prog.collective("send_recv", [dev[s][t], dev[s + 1][t]], act, {dev[s][t]: ready[dev[s][t]]},
                                           label=f"mb{m}.stage{s}->{s + 1}")
                    nxt[t] = done[dev[s + 1][t]]
                handoff[(s + 1, m)] = tuple(i for v in nxt.values() for i in v)
    return prog


def build_moe(w: MoeLlm, spec: HardwareSpec, system: SystemSpec, dtype: str | None) -> SystemProgram:
    c = w.config
    _check(w.ep >= 1 and w.experts % w.ep == 0, f"ep={w.ep} must divide experts ({w.experts})")
    _check(1 <= w.top_k <= w.experts, f"top_k must be between 1 and experts ({w.experts})")
    _check(c.batch % w.ep == 0, f"ep={w.ep} must divide batch ({c.batch}): attention is data parallel")
    _check(1.0 <= w.imbalance <= w.ep, f"imbalance is the busiest device's load over the mean: 1..{w.ep}")
    mm, act_bytes = _dtypes(c, spec, dtype)
    n, local = w.ep, c.batch // w.ep
    # routed token shares per device: the busiest gets imbalance x the mean, the rest share the remainder
    share = np.full(n, (n - w.imbalance) / (n - 1) / n) if n > 1 else np.ones(1)
    share[0] = w.imbalance / n
    routed = np.maximum(np.rint(c.batch * w.top_k * share).astype(int), 1)
    h = c.hidden
    attn_ops = _layer_ops(dataclasses.replace(c, ffn=c.hidden), local, local, "decode", 1)[:6]
    attn = op_times(attn_ops, spec, mm)
    experts_per_dev = w.experts // n
    expert_times = {}
    for d in range(n):
        tok = int(routed[d])
        ops = (Gemm(M=max(tok // experts_per_dev, 1), N=2 * c.ffn, K=h, batch=experts_per_dev, label="expert_up_gate"),
               Elementwise(rows=tok, cols=c.ffn, flops_per_element=5.0, label="expert_silu_mul"),
               Gemm(M=max(tok // experts_per_dev, 1), N=h, K=c.ffn, batch=experts_per_dev, label="expert_down"),
               Elementwise(rows=local, cols=h, inputs=w.top_k + 1, label="combine"))
        expert_times[d] = op_times(ops, spec, mm)
    prog = SystemProgram(system)
    group = list(range(n))
    ready: dict[int, tuple[int, ...]] = {d: () for d in group}
    # bytes device i sends device j: its local tokens' copies routed to j's experts
    send = np.outer(np.full(n, local * w.top_k * h * act_bytes), share)
    for layer in range(c.layers):
        for ot in attn:
            ready = {d: (prog.op(d, f"layer{layer}.{ot.name}", ot.dur_ns, ready[d], flops=ot.flops, nbytes=ot.nbytes,
                                 dtype=ot.dtype, args={"layer": layer}),) for d in group}
        ready = prog.collective("all_to_all", group, 0.0, ready, label=f"layer{layer}.dispatch",
                                steps=_a2a_steps(send))
        for d in group:
            for ot in expert_times[d][:3]:
                ready[d] = (prog.op(d, f"layer{layer}.{ot.name}", ot.dur_ns, ready[d], flops=ot.flops,
                                    nbytes=ot.nbytes, dtype=ot.dtype,
                                    args={"layer": layer, "routed_tokens": int(routed[d])}),)
        ready = prog.collective("all_to_all", group, 0.0, ready, label=f"layer{layer}.combine",
                                steps=_a2a_steps(send.T))
        for d in group:
            ot = expert_times[d][3]
            ready[d] = (prog.op(d, f"layer{layer}.{ot.name}", ot.dur_ns, ready[d], flops=ot.flops, nbytes=ot.nbytes,
                                dtype=ot.dtype, args={"layer": layer}),)
    return prog


def _a2a_steps(matrix: np.ndarray) -> list[list[tuple[int, int, float]]]:
    """Pairwise all-to-all with per-pair sizes: in step k, i sends matrix[i, i+k] to i+k."""
    n = matrix.shape[0]
    return [[(i, (i + k) % n, float(matrix[i, (i + k) % n])) for i in range(n)] for k in range(1, n)]


def build_collective(w: Collective, system: SystemSpec) -> SystemProgram:
    _check(w.devices >= 2, "a collective needs at least 2 devices")
    prog = SystemProgram(system)
    prog.collective(w.kind, list(range(w.devices)), float(w.bytes), {}, w.algorithm, label=w.kind)
    return prog
