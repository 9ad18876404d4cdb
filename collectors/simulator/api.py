"""``simulate(workload, spec)``: compile, run, and trace in one call."""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass, field
from typing import Any

from collectors.simulator.compiler import Compiler
from collectors.simulator.engine import run
from collectors.simulator.machine import Machine, SimOptions, SimulatorError
from collectors.simulator.program import Program
from collectors.simulator.workloads import expand
from profiler import Trace
from profiler.hardware import HardwareSpec, canonical_dtype


@dataclass
class SimResult:
    """The trace plus headline numbers; ``stats`` is also in ``trace.metadata.extra["simulator"]``."""

    trace: Trace
    total_ns: int
    total_cycles: int
    stats: dict[str, Any] = field(default_factory=dict)
    program: Program | None = None


def _workload_name(w: Any) -> str:
    return str(getattr(w, "label", None) or type(w).__name__)


def _with_dtype(workload: Any, dtype: str) -> Any:
    if hasattr(workload, "config"):
        return dataclasses.replace(workload, config=dataclasses.replace(workload.config, dtype=dtype))
    if any(f.name == "dtype" for f in dataclasses.fields(workload)):
        return dataclasses.replace(workload, dtype=dtype)
    return workload


def compile_workload(workload: Any, machine: Machine, dtype: str | None = None, sampled: bool = False) -> Program:
    """Lower ``workload`` to a program for ``machine`` (errors for bad tiles or dtypes raise here).

    ``sampled``: large GEMMs and vector ops become one extrapolated segment each (summary detail, see
    :mod:`collectors.simulator.sampling`)."""
    if dtype is not None:
        workload = _with_dtype(workload, canonical_dtype(dtype))
    cfg = getattr(workload, "config", None)
    mm_dtype = getattr(cfg, "dtype", None) or getattr(workload, "dtype", None) or machine.default_dtype()
    mm_dtype = machine.check_dtype(mm_dtype)
    act = getattr(cfg, "act_dtype", None)
    if act is None:
        # activations: fp16/bf16 when the device has them, else the matmul dtype
        act = next((d for d in ("fp16", "bf16") if machine.spec.supports(d)), mm_dtype)
        if mm_dtype in ("fp32", "fp64", "tf32", "bf16", "fp16"):
            act = mm_dtype
    act = machine.check_dtype(act)
    prog = Program(machine)
    comp = Compiler(machine, prog, sampled=sampled)
    try:
        ops = expand(workload, mm_dtype, act)
    except (TypeError, ValueError) as exc:
        raise SimulatorError(str(exc)) from None
    for op in ops:
        comp.lower(op)
    return prog


#: Levels of detail of :func:`simulate`'s trace.
DETAILS = ("full", "summary")


def simulate(workload: Any, spec: HardwareSpec, *, dtype: str | None = None, options: SimOptions | None = None,
             progress: bool = False, detail: str = "full") -> SimResult:
    """Simulate ``workload`` on ``spec`` and return its trace and accounting.

    ``dtype`` overrides the workload's matmul dtype; ``options`` reconfigures the machine
    (systolic mode, SRAM size, bandwidths, DMA queues).  ``progress`` shows a progress bar.
    ``detail="full"`` traces every instruction, stall, SRAM/DRAM counter sample and DMA flow;
    ``detail="summary"`` runs the same event simulation but traces one slice per op per engine
    (for sweeps and mapping searches): same total time, flops, bytes, busy and stall time per
    engine (``stats``) as full detail, a trace a small fraction of the size, built in a fraction
    of the time.  A GEMM or vector op of at least
    :data:`collectors.simulator.sampling.SAMPLE_MIN_INSTRUCTIONS` instructions with a steady state
    is simulated cut down to a few waves and k-steps (row tiles) and
    extrapolated (its slices' args say ``sampled``; flops and bytes exact, time as the steady
    state is periodic); ``options=SimOptions(sample=False)`` simulates every instruction.
    """
    if detail not in DETAILS:
        raise SimulatorError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
    # The compiler and engine allocate many small tuples and lists that form no cycles; collector
    # passes over them would cost a large share of the run, so the collector waits until the end.
    gc_on = gc.isenabled()
    gc.disable()
    try:
        return _simulate(workload, spec, dtype, options, progress, detail)
    finally:
        if gc_on:
            gc.enable()


def _simulate(workload: Any, spec: HardwareSpec, dtype: str | None, options: SimOptions | None,
              progress: bool, detail: str = "full") -> SimResult:
    machine = Machine(spec, options)
    prog = compile_workload(workload, machine, dtype, sampled=detail == "summary" and machine.options.sample)
    bar = None
    cb = None
    if progress and len(prog) >= 20_000:  # short runs finish before a bar is worth drawing
        from tqdm import tqdm

        bar = tqdm(total=len(prog), unit="instr", desc="simulating", leave=False)
        last = [0]

        def cb(k: int) -> None:
            bar.update(k - last[0])
            last[0] = k

    try:
        res = run(prog, machine, cb)
    finally:
        if bar is not None:
            bar.close()
    # from here on only the numpy columns are read: free the row tuples before the trace is built
    for seg in {id(s): s for s in prog.segments}.values():
        seg.release_rows()
    trace, stats = build_trace_for(prog, machine, res, _workload_name(workload), detail)
    # the mapper's choice per GEMM (collectors.simulator.mapper), in the trace metadata too
    meta = trace.metadata.extra.setdefault("simulator", {})
    stats["mappings"] = meta["mappings"] = list(getattr(prog, "mappings", []))
    # ops simulated cut down and extrapolated (summary detail, collectors.simulator.sampling)
    stats["sampled_ops"] = meta["sampled_ops"] = sum(1 for info in prog.ops if "sampled" in info)
    return SimResult(trace, int(stats["total_ns"]), int(stats["total_cycles"]), stats, prog)


def build_trace_for(prog: Program, machine: Machine, res: Any, name: str,
                    detail: str = "full") -> tuple[Trace, dict[str, Any]]:
    from collectors.simulator.tracegen import build_summary, build_trace

    return (build_summary if detail == "summary" else build_trace)(prog, machine, res, name)
