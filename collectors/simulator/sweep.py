"""What-if sweeps: a grid of machine options, workload fields and dtypes, simulated in parallel.

Each point is one :func:`collectors.simulator.simulate` call at summary detail (one slice per op
per engine: the same totals as full detail, much faster), run in a pool of processes.  A point
that cannot run (a dtype the chip lacks, a tile that does not fit) is a row with its error, never
a failed sweep.  Every row carries three cost proxies of the machine it ran on, to put latency
against in a Pareto chart:

* ``sram_bytes``: on-chip SRAM of all cores (the option, or the spec's SRAM level);
* ``dram_bandwidth``: off-chip bytes/s (the option, or the spec's DRAM level);
* ``peak_flops``: the dtype's peak FLOP/s, scaled by the cores in use.

:func:`pareto_front` keeps the points no other point beats on both latency and the cost;
:func:`precision_gains` says which ops gain most from a lower precision (per-op times of the
workload at each dtype: ops run one after another, so an op's gain is its own time difference).
:class:`LayerDtypes` runs a workload with a per-layer dtype map (glob patterns on op labels).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from collectors.simulator.optimes import per_op
from profiler.errors import ProfilerError
from profiler.hardware import HardwareSpec
from profiler.pareto import pareto_front

COST_PROXIES = ("sram_bytes", "dram_bandwidth", "peak_flops")
__all__ = ["COST_PROXIES", "LayerDtypes", "grid", "op_times", "pareto_front", "precision_gains", "run_point",
           "run_sweep"]


@dataclass(frozen=True)
class LayerDtypes:
    """``base`` with the matrix ops whose label matches a pattern computed in that pattern's dtype."""

    base: Any
    mapping: tuple[tuple[str, str], ...]  # (glob on the op label, dtype), first match wins
    dtype: str | None = None
    label: str = "mixed"

    def expand(self, dtype: str, act_dtype: str) -> list[Any]:
        from collectors.simulator.workloads import Gemm, expand

        out = []
        for op in expand(self.base, dtype, act_dtype):
            if isinstance(op, Gemm):
                hit = next((d for pat, d in self.mapping if fnmatch.fnmatchcase(op.label, pat)), None)
                if hit is not None:
                    op = dataclasses.replace(op, dtype=hit)
            out.append(op)
        return out


def grid(vary: dict[str, list[str]], dtypes: list[str | None]) -> list[tuple[dict[str, str], str | None]]:
    """Every combination of the varied values (in the order given) and dtypes."""
    keys = list(vary)
    combos = itertools.product(*(vary[k] for k in keys)) if keys else [()]
    return [(dict(zip(keys, c, strict=True)), d) for c in combos for d in dtypes]


def _cost(spec: HardwareSpec, opts: Any, dtype: str | None, machine_dtype: str) -> dict[str, float | None]:
    cores = opts.cores or spec.cores
    sram = spec.sram
    sram_bytes = opts.sram_bytes * cores if opts.sram_bytes else (sram.capacity if sram else 0.0)
    dram = opts.dram_bandwidth or spec.dram.bandwidth
    try:
        peak = spec.peak(dtype or machine_dtype) * cores / spec.cores
    except ProfilerError:
        peak = None
    return {"sram_bytes": float(sram_bytes), "dram_bandwidth": float(dram), "peak_flops": peak}


def run_point(workload: Any, spec: HardwareSpec, params: dict[str, str], dtype: str | None,
              base_sets: dict[str, str] | None = None) -> dict[str, Any]:
    """Simulate one point; a row (see the module docstring)."""
    from collectors.simulator import SimOptions, simulate
    from collectors.simulator.machine import Machine
    from collectors.simulator.workloads import apply_overrides

    row: dict[str, Any] = {**params, "dtype": dtype}
    sets = {**(base_sets or {}), **params}
    opt_names = SimOptions.field_names()
    try:
        opts = apply_overrides(SimOptions(), {k: v for k, v in sets.items() if k in opt_names}, "option")
        wl = {k: v for k, v in sets.items() if k not in opt_names}
        if wl and isinstance(workload, LayerDtypes):  # the fields are the wrapped workload's
            w = dataclasses.replace(workload, base=apply_overrides(workload.base, wl, "workload"))
        else:
            w = apply_overrides(workload, wl, "workload") if wl else workload
        res = simulate(w, spec, dtype=dtype, options=opts, detail="summary")
    except (ProfilerError, ValueError, TypeError) as exc:
        return {**row, "error": str(exc).splitlines()[0]}
    s = res.stats
    secs = res.total_ns * 1e-9
    row.update({
        "latency_ns": int(res.total_ns), "flops": float(s["flops"]), "dram_bytes": float(s["dram_bytes"]),
        "tflops": s["flops"] / secs / 1e12 if secs else 0.0,
        **_cost(spec, opts, dtype, Machine(spec, opts).default_dtype()), "error": None,
    })
    return row


def _run_star(args: tuple[Any, ...]) -> dict[str, Any]:
    return run_point(*args)


def run_sweep(workload: Any, spec: HardwareSpec, vary: dict[str, list[str]], dtypes: list[str | None],
              base_sets: dict[str, str] | None = None, jobs: int | None = None) -> list[dict[str, Any]]:
    """Every point of the grid, simulated in ``jobs`` processes (1: in this process), in grid order."""
    points = grid(vary, dtypes)
    args = [(workload, spec, p, d, base_sets) for p, d in points]
    jobs = jobs or min(len(points), os.cpu_count() or 1)
    if jobs <= 1 or len(points) <= 1:
        return [run_point(*a) for a in args]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_star, args, chunksize=max(1, len(args) // (4 * jobs))))


def op_times(workload: Any, spec: HardwareSpec, dtype: str | None) -> dict[str, float]:
    """Each op's time (label -> ns) at summary detail (see :mod:`collectors.simulator.optimes`)."""
    from collectors.simulator import simulate

    return {o.name: o.dur_ns for o in per_op(simulate(workload, spec, dtype=dtype, detail="summary").trace)}


def precision_gains(workload: Any, spec: HardwareSpec, high: str, low: str, top: int = 20) -> list[dict[str, Any]]:
    """Ops ranked by the time a lower precision saves them (``high`` -> ``low`` dtype)."""
    a = op_times(workload, spec, high)
    b = op_times(workload, spec, low)
    rows = [{"op": k, f"{high}_ns": a[k], f"{low}_ns": b.get(k), "gain_ns": a[k] - b.get(k, a[k]),
             "gain_pct": 100 * (a[k] - b.get(k, a[k])) / a[k] if a[k] else 0.0} for k in a]
    rows.sort(key=lambda r: -r["gain_ns"])
    return rows[:top]
