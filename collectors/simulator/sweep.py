"""What-if sweeps: a grid of machine options, workload fields and dtypes, simulated in parallel.

Each point is one :func:`collectors.simulator.simulate` call at summary detail (one slice per op
per engine: the same totals as full detail, much faster; large regular GEMMs sampled, see
:mod:`collectors.simulator.sampling`), run in a pool of processes.  A point
that cannot run (a dtype the chip lacks, a tile that does not fit) is a row with its error, never
a failed sweep.  Every row carries three cost proxies of the machine it ran on, to put latency
against in a Pareto chart:

* ``sram_bytes``: on-chip SRAM of all cores (the option, or the spec's SRAM level);
* ``dram_bandwidth``: off-chip bytes/s (the option, or the spec's DRAM level);
* ``peak_flops``: the dtype's peak FLOP/s, scaled by the cores in use.

With the mapper on (the default), the GEMMs of every point are re-planned for that point's
machine, and the mapper's estimate is not exact: alone, a point with more DRAM bandwidth can get a
plan that simulates slower than the plan a slower point got (0.08 % for a decode step on edge-npu,
66 % for a 256x4096x1024 GEMM on h100-sxm).  So a sweep runs in two passes: the first collects the
plan each GEMM shape got at every point; the second gives every point the union of those plans
(:func:`collectors.simulator.mapper.shared_plans`), simulates the ones that fit there and keeps
the fastest.  A plan's time falls as DRAM bandwidth grows and with a precision of fewer bytes and
a peak at least as high, and does not change with more SRAM, so the best over one common set is
monotone along those axes.  A point re-runs only when a plan from another point beats its own.
Each row says how many GEMM shapes took a plan found at another point (``shared_plans``) and lists
every GEMM shape's plan (``mappings``: its first op, the plan, whether it was found at another
point).  A dimension split is shared pinned to the tiles its planner picked where it ran
(:func:`common_plans`), so every point picks from one set of fixed plans.  Limits: DMA bandwidth
(``dma_bandwidth``) is not monotone even under one fixed plan (the event simulation's queueing);
on GPUs the flash-attention tiles follow the SRAM size, so attention is not monotone in SRAM.

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

from collectors.simulator import mapper
from collectors.simulator.optimes import per_op
from profiler.errors import ProfilerError
from profiler.hardware import HardwareSpec
from profiler.pareto import pareto_front

COST_PROXIES = ("sram_bytes", "dram_bandwidth", "peak_flops")
__all__ = ["COST_PROXIES", "LayerDtypes", "common_plans", "grid", "op_times", "pareto_front", "precision_gains", "run_point",
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
              base_sets: dict[str, str] | None = None,
              plans: dict[tuple[Any, ...], tuple[mapper.Mapping, ...]] | None = None,
              first: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate one point; a row (see the module docstring).

    ``plans``: GEMM plans found at other points, tried here too (by the GEMM's
    :func:`~collectors.simulator.mapper.plan_key`).  ``first``: this point's row without them; it
    stands when no shared plan beats the point's own (checked GEMM by GEMM, without re-running).
    """
    from collectors.simulator import SimOptions, simulate
    from collectors.simulator.machine import Machine
    from collectors.simulator.workloads import apply_overrides

    row: dict[str, Any] = {**params, "dtype": dtype}
    sets = {**(base_sets or {}), **params}
    opt_names = SimOptions.field_names()
    try:
        opts = apply_overrides(SimOptions(), {k: v for k, v in sets.items() if k in opt_names}, "option")
        machine = Machine(spec, opts)
        wl = {k: v for k, v in sets.items() if k not in opt_names}
        if wl and isinstance(workload, LayerDtypes):  # the fields are the wrapped workload's
            w = dataclasses.replace(workload, base=apply_overrides(workload.base, wl, "workload"))
        else:
            w = apply_overrides(workload, wl, "workload") if wl else workload
        with mapper.shared_plans(plans, sampled=opts.sample) as log:  # points run at summary detail
            if first is not None and _own_plans_stand(machine, first["_gemms"]):
                return first
            res = simulate(w, spec, dtype=dtype, options=opts, detail="summary")
    except (ProfilerError, ValueError, TypeError) as exc:
        return {**row, "error": str(exc).splitlines()[0]}
    s = res.stats
    secs = res.total_ns * 1e-9
    gemms = _with_times(list(log.values()), res.program, machine)
    row.update({
        "latency_ns": int(res.total_ns), "flops": float(s["flops"]), "dram_bytes": float(s["dram_bytes"]),
        "tflops": s["flops"] / secs / 1e12 if secs else 0.0,
        **_cost(spec, opts, dtype, machine.default_dtype()), "error": None,
        "shared_plans": sum(mp.how == "shared" for _, mp, _ in gemms),
        "mappings": [{"op": g.label, "plan": mp.describe(), "found": "another point" if mp.how == "shared"
                      else "this point"} for g, mp, _ in gemms],
        "_gemms": gemms,
    })
    return row


def _with_times(gemms: list[tuple[Any, mapper.Mapping]], prog: Any, m: Any) -> list[tuple[Any, mapper.Mapping, Any]]:
    """Each GEMM with its plan, the plan carrying its op's time in this run (ops run one after
    another, so an op's time is its segment's span: what the plan simulates to alone), and, for a
    dimension split whose planner picks the tiles per machine, the plan pinned to the tiles it
    picked here (:func:`collectors.simulator.mapper.pin`)."""
    spans: dict[str, float] = {}
    for info, seg in zip(getattr(prog, "ops", ()), getattr(prog, "segments", ()), strict=False):
        tm = getattr(seg, "timing", None)
        if tm is not None:
            spans.setdefault(info.get("op"), tm.span)
    out = []
    for g, mp in gemms:
        if mp.sim_ns is None and g.label in spans:
            mp = dataclasses.replace(mp, sim_ns=spans[g.label])
        out.append((g, mp, mapper.pin(m, g, mp)))
    return out


def _own_plans_stand(m: Any, gemms: list[tuple[Any, mapper.Mapping, Any]]) -> bool:
    """Whether every GEMM keeps the plan it got alone when the shared plans are tried too (the
    first pass's plans and their simulated times are taken, not searched again)."""
    for g, mp, _ in gemms:
        mapper.remember(m, g, mp)
    return all(mapper.choose_gemm(m, g).plan == mp.plan for g, mp, _ in gemms)


def _run_star(args: tuple[Any, ...]) -> dict[str, Any]:
    return run_point(*args)


def _run_all(args: list[tuple[Any, ...]], pool: ProcessPoolExecutor | None, jobs: int) -> list[dict[str, Any]]:
    if pool is None or len(args) <= 1:
        return [run_point(*a) for a in args]
    return list(pool.map(_run_star, args, chunksize=max(1, len(args) // (4 * jobs))))


def common_plans(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[mapper.Mapping, ...]]:
    """Every plan any point gave a GEMM shape, for the shapes whose points did not all run the same.

    A dimension split whose tiles the planner picked is shared pinned to the tiles (and A strip) it
    ran with: re-planned on another machine it may pick other tiles, and only a plan fixed down to
    its tiles is sure to get no slower on a faster machine.  So every point picks from one set of
    fixed plans (its own plan is the pinned one it ran, or one of them)."""
    found: dict[tuple[Any, ...], dict[tuple[Any, ...], mapper.Mapping]] = {}
    ran: dict[tuple[Any, ...], set[Any]] = {}
    for r in rows:
        for g, mp, pinned in r.get("_gemms", ()):
            k = mapper.plan_key(g)
            ran.setdefault(k, set()).add((mp.plan, pinned.plan if pinned else None))
            plan = pinned or mp.bare()
            found.setdefault(k, {}).setdefault(plan.plan, plan)
    return {k: tuple(v.values()) for k, v in found.items() if len(ran[k]) > 1}


def run_sweep(workload: Any, spec: HardwareSpec, vary: dict[str, list[str]], dtypes: list[str | None],
              base_sets: dict[str, str] | None = None, jobs: int | None = None,
              share_plans: bool = True) -> list[dict[str, Any]]:
    """Every point of the grid, simulated in ``jobs`` processes (1: in this process), in grid order;
    GEMM plans shared across the points (see the module docstring; ``share_plans=False``: every
    point keeps its own plans, one pass, not monotone)."""
    points = grid(vary, dtypes)
    args = [(workload, spec, p, d, base_sets) for p, d in points]
    jobs = jobs or min(len(points), os.cpu_count() or 1)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(args))) if jobs > 1 and len(args) > 1 else None
    try:  # one pool for both passes: its processes start (imports, compiled loop) once
        rows = _run_all(args, pool, jobs)
        plans = common_plans(rows) if share_plans else {}
        again = [i for i, r in enumerate(rows)
                 if any(mapper.plan_key(g) in plans for g, _, _ in r.get("_gemms", ()))]
        if again:
            redo = _run_all([(*args[i], plans, rows[i]) for i in again], pool, jobs)
            for i, r in zip(again, redo, strict=True):
                rows[i] = r
    finally:
        if pool is not None:
            pool.shutdown()
    for r in rows:
        r.pop("_gemms", None)
    return rows


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
