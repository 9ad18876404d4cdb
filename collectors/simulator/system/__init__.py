"""Many devices: a system spec (topology, links), collectives, tensor/pipeline/expert parallelism.

    from collectors.simulator.system import simulate_system, Collective, ParallelLlm
    res = simulate_system(Collective("all_reduce", bytes=1 << 30, devices=8), load_spec("a100-sxm"))
    res = simulate_system(ParallelLlm(tp=4, pp=2), load_spec("a100-sxm"))
    res.trace, res.total_ns, res.stats["per_device"]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from collectors.simulator.machine import SimulatorError
from collectors.simulator.system.parallel import (
    Collective,
    MoeLlm,
    ParallelLlm,
    build_collective,
    build_moe,
    build_parallel_llm,
)
from collectors.simulator.workloads import ModelConfig
from profiler.hardware import HardwareSpec
from profiler.model import Trace
from profiler.system import SystemSpec, TopologyError, system_from_dict

#: ``--set`` keys that reconfigure the system rather than the workload.
SYSTEM_KEYS = ("topology", "link_bandwidth", "link_latency_ns", "rows", "cols")
#: ``--set`` keys that make a single-device workload name a multi-device one.
PARALLEL_KEYS = ("tp", "pp", "ep", "microbatches")

#: Multi-device workloads by CLI name.
SYSTEM_WORKLOADS: dict[str, Any] = {
    "allreduce": lambda: Collective("all_reduce", label="allreduce"),
    "allgather": lambda: Collective("all_gather", label="allgather"),
    "reducescatter": lambda: Collective("reduce_scatter", label="reducescatter"),
    "alltoall": lambda: Collective("all_to_all", label="alltoall"),
    "llm-decode": lambda: ParallelLlm(ModelConfig(), label="llm-decode"),
    "llm-decode-7b": lambda: ParallelLlm(ModelConfig.llama7b(), label="llm-decode-7b"),
    "llm-prefill-7b": lambda: ParallelLlm(ModelConfig.llama7b(), mode="prefill", label="llm-prefill-7b"),
    "moe-decode": lambda: MoeLlm(),
}


def is_system_workload(name: str, keys: set[str]) -> bool:
    """Whether ``profiler simulate NAME --set ...`` asks for the multi-device simulator."""
    key = name.strip().lower().replace("_", "-")
    if key not in SYSTEM_WORKLOADS:
        return False
    return key not in ("llm-decode", "llm-decode-7b") or bool(keys & set(PARALLEL_KEYS))


def system_workload_from_name(name: str, **overrides: Any) -> Any:
    """A multi-device workload by its CLI name with fields overridden (nested model fields too)."""
    from collectors.simulator.workloads import apply_overrides

    key = name.strip().lower().replace("_", "-")
    if key not in SYSTEM_WORKLOADS:
        raise ValueError(f"unknown multi-device workload {name!r}; choose from {', '.join(SYSTEM_WORKLOADS)}")
    w = SYSTEM_WORKLOADS[key]()
    return apply_overrides(w, overrides, key) if overrides else w


@dataclass
class SystemResult:
    trace: Trace
    total_ns: int
    stats: dict[str, Any]


def system_of(spec: HardwareSpec, devices: int, overrides: dict[str, Any] | None = None) -> SystemSpec:
    """The spec's ``[system]`` sized to ``devices``, with ``overrides`` (``--set link_bandwidth=...``)."""
    base = getattr(spec, "system", None)
    raw = dict(base.to_dict()) if base is not None else {}
    raw.update(overrides or {})
    raw["devices"] = devices
    if devices > 1 and not raw.get("link_bandwidth"):
        raise SimulatorError(f"{spec.name} describes no interconnect ([system] in its spec); "
                             "give --set link_bandwidth=BYTES_PER_S (and topology, link_latency_ns)")
    try:
        sys_spec = system_from_dict(raw, f"{spec.name} [system]")
        return sys_spec.with_devices(devices) if base is not None and "rows" not in (overrides or {}) else sys_spec
    except TopologyError as exc:
        raise SimulatorError(str(exc)) from None


def simulate_system(workload: Any, spec: HardwareSpec, dtype: str | None = None,
                    system: dict[str, Any] | None = None) -> SystemResult:
    """Simulate a multi-device workload; ``system`` overrides keys of the spec's ``[system]``."""
    from collectors.simulator.system.program import SystemProgram
    from collectors.simulator.system.trace import build_trace

    n = int(getattr(workload, "devices", 1))
    if isinstance(workload, Collective) and n == 0:  # as many devices as the system has
        n = int((system or {}).get("devices") or (spec.system.devices if spec.system is not None else 2))
        workload = replace(workload, devices=n)
    sys_spec = system_of(spec, n, system)
    try:
        prog: SystemProgram
        if isinstance(workload, Collective):
            prog = build_collective(workload, sys_spec)
        elif isinstance(workload, ParallelLlm):
            prog = build_parallel_llm(workload, spec, sys_spec, dtype)
        elif isinstance(workload, MoeLlm):
            prog = build_moe(workload, spec, sys_spec, dtype)
        else:
            raise SimulatorError(f"not a multi-device workload: {type(workload).__name__}")
    except ValueError as exc:
        raise SimulatorError(str(exc)) from None
    start, end = prog.schedule()
    trace, stats = build_trace(prog, start, end, spec.name, getattr(workload, "label", type(workload).__name__))
    return SystemResult(trace, int(stats["total_ns"]), stats)


__all__ = ["PARALLEL_KEYS", "SYSTEM_KEYS", "SYSTEM_WORKLOADS", "Collective", "MoeLlm", "ParallelLlm", "SystemResult",
           "SystemSpec", "is_system_workload", "simulate_system", "system_of", "system_workload_from_name"]
