"""Fit a spec's ``[timing]`` efficiency and overhead keys to kernel times measured on real silicon.

The measured CSV (``profiler calibrate MEASURED.csv``) has a header row and one kernel per row:

=============  ==================================================================================
``op``         gemm, softmax, layernorm, gelu or elementwise
``dtype``      fp16, bf16, fp32, int8, ... (a dtype the spec has a peak for)
shape fields   gemm: ``M``, ``N``, ``K`` (and optional ``batch``); softmax / layernorm: ``rows``,
               ``cols`` (``M``, ``N`` accepted); gelu / elementwise: ``elements``, or ``rows``
               and ``cols``.  Cells a row's op does not use may be empty.
latency        ``latency_us`` or ``latency_ms``: wall time of one call
=============  ==================================================================================

How the fit works: every row is simulated (event simulation, the mapper's choice of mapping)
with the spec's fixed costs set to zero and the efficiencies at their current values, then again
with each efficiency lowered by a small step.  That gives each row's device time and how it
scales with each efficiency (its elasticity: 1 for a purely compute-bound GEMM and matmul
efficiency, 1 for a purely DRAM-bound row and DRAM efficiency).  A row's predicted time is then
``max(host[kind], launch[kind] + device(efficiencies))`` -- the simulator's own composition
(:meth:`collectors.simulator.compiler.Compiler.begin_op`) -- and a coordinate search over the keys
minimises the mean absolute relative error.  A second round re-simulates at the result and
searches again from there (the linearization holds only near where it was taken).  The fitted spec is simulated again for the "after"
column, so the reported errors are the simulator's, not the surrogate's.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.simulator.machine import Machine, SimOptions, SimulatorError
from collectors.simulator.workloads import Elementwise, Gelu, Gemm, LayerNorm, Softmax
from profiler.hardware import HardwareSpec, TimingSpec, canonical_dtype

OPS = ("gemm", "softmax", "layernorm", "gelu", "elementwise")
#: relative step used to measure each row's elasticity to an efficiency
_STEP = 0.2
_GELU_COLS = 4096


class CalibrationError(SimulatorError):
    """A measured CSV the calibration cannot use; the message names the file and line."""


@dataclass(frozen=True)
class MeasuredRow:
    op: str
    shape: tuple[tuple[str, int], ...]
    dtype: str
    latency_ns: float
    line: int = 0

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    def label(self) -> str:
        return f"{self.op} " + "x".join(str(v) for _, v in self.shape) + f" {self.dtype}"


# ------------------------------------------------------------------ reading
def _int(value: str, what: str, where: str) -> int:
    try:
        f = float(value)
    except ValueError:
        raise CalibrationError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(f) or f < 1 or f != int(f):
        raise CalibrationError(f"{where}: {what} must be a positive integer, got {value!r}")
    return int(f)


def _shape(op: str, cells: dict[str, str], where: str) -> tuple[tuple[str, int], ...]:
    def get(*names: str) -> str | None:
        for n in names:
            v = (cells.get(n) or "").strip()
            if v:
                return v
        return None

    if op == "gemm":
        out = []
        for n in ("M", "N", "K"):
            v = get(n, n.lower())
            if v is None:
                raise CalibrationError(f"{where}: gemm needs {n}")
            out.append((n, _int(v, n, where)))
        b = get("batch")
        if b is not None:
            out.append(("batch", _int(b, "batch", where)))
        return tuple(out)
    rows, cols = get("rows", "M"), get("cols", "N")
    if op in ("gelu", "elementwise") and rows is None:
        e = get("elements")
        if e is None:
            raise CalibrationError(f"{where}: {op} needs elements, or rows and cols")
        return (("elements", _int(e, "elements", where)),)
    if rows is None or cols is None:
        raise CalibrationError(f"{where}: {op} needs rows and cols")
    return (("rows", _int(rows, "rows", where)), ("cols", _int(cols, "cols", where)))


def read_measured(path: str | Path) -> list[MeasuredRow]:
    """Rows of a measured CSV (module docstring); a bad row raises naming ``path:line``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{p}: unreadable: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "op" not in fields or "dtype" not in fields or not ({"latency_us", "latency_ms"} & set(fields)):
        raise CalibrationError(f"{p}:1: header must name op, dtype and latency_us or latency_ms; got {fields}")
    rows = []
    for n, raw in enumerate(reader, start=2):
        cells = {(k or "").strip(): (v or "") for k, v in raw.items() if k is not None}
        if None in raw:
            raise CalibrationError(f"{p}:{n}: more cells than header fields")
        where = f"{p}:{n}"
        op = cells.get("op", "").strip().lower()
        if op not in OPS:
            raise CalibrationError(f"{where}: op {op!r} is not one of {', '.join(OPS)}")
        dtype = canonical_dtype(cells.get("dtype", "").strip() or "?")
        lat_s, unit = (cells.get("latency_us", "").strip(), 1e3)
        if not lat_s:
            lat_s, unit = (cells.get("latency_ms", "").strip(), 1e6)
        try:
            lat = float(lat_s) * unit
        except ValueError:
            raise CalibrationError(f"{where}: latency {lat_s!r} is not a number") from None
        if not (math.isfinite(lat) and lat > 0):
            raise CalibrationError(f"{where}: latency must be positive, got {lat_s!r}")
        rows.append(MeasuredRow(op, _shape(op, cells, where), dtype, lat, n))
    if not rows:
        raise CalibrationError(f"{p}: no measured rows")
    return rows


def llmcompass_rows(folder: str | Path) -> list[MeasuredRow]:
    """The measured A100 tables of the LLMCompass artifact (``tests/data/measured_a100``) as rows.

    Units (their README): matmul ``latency_ms``; softmax / layernorm / gelu in 10^9 elements per
    second, so latency = elements / rate.
    """
    d = Path(folder)
    out: list[MeasuredRow] = []
    with open(d / "matmul_fp16.csv", newline="") as f:
        for n, r in enumerate(csv.DictReader(f), start=2):
            out.append(MeasuredRow("gemm", (("M", int(r["M"])), ("N", int(r["N"])), ("K", int(r["K"]))), "fp16",
                                   float(r["latency_ms"]) * 1e6, n))
    for op in ("softmax", "layernorm"):
        with open(d / f"{op}_fp16.csv", newline="") as f:
            for n, r in enumerate(csv.DictReader(f), start=2):
                m, c = int(r["M"]), int(r["N"])
                out.append(MeasuredRow(op, (("rows", m), ("cols", c)), "fp16", m * c / float(r["gelem_per_s"]), n))
    with open(d / "gelu_fp16.csv", newline="") as f:
        for n, r in enumerate(csv.DictReader(f), start=2):
            e = int(r["elements"])
            out.append(MeasuredRow("gelu", (("elements", e),), "fp16", e / float(r["gelem_per_s"]), n))
    return out


def write_measured(rows: Iterable[MeasuredRow], path: str | Path) -> None:
    """Rows in the documented CSV format (what ``profiler calibrate`` reads)."""
    cols = ["op", "M", "N", "K", "batch", "rows", "cols", "elements", "dtype", "latency_us"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            d = r.dims
            w.writerow([r.op] + [d.get(c, "") for c in cols[1:8]] + [r.dtype, f"{r.latency_ns / 1e3:.4f}"])


# ------------------------------------------------------------------ simulating
def workload_for(row: MeasuredRow) -> Any:
    d = row.dims
    if row.op == "gemm":
        return Gemm(M=d["M"], N=d["N"], K=d["K"], batch=d.get("batch", 1), dtype=row.dtype)
    if "elements" in d:
        e = d["elements"]
        cols = min(e, _GELU_COLS)
        rows, cols = (e // cols, cols) if e % cols == 0 else (1, e)
    else:
        rows, cols = d["rows"], d["cols"]
    cls = {"softmax": Softmax, "layernorm": LayerNorm, "gelu": Gelu, "elementwise": Elementwise}[row.op]
    return cls(rows=rows, cols=cols, dtype=row.dtype)


def simulate_ns(spec: HardwareSpec, workload: Any, options: SimOptions | None = None) -> float:
    """Simulated time of ``workload`` (no trace is built: compile and run only)."""
    from collectors.simulator.api import compile_workload
    from collectors.simulator.engine import run

    m = Machine(spec, options or SimOptions(flows=False, counters=False))
    prog = compile_workload(workload, m)
    res = run(prog, m)
    return float(res.end.max()) if res.end.size else 0.0


def row_errors(spec: HardwareSpec, rows: list[MeasuredRow], options: SimOptions | None = None) -> list[float]:
    """Simulated / measured - 1 per row."""
    return [simulate_ns(spec, workload_for(r), options) / r.latency_ns - 1.0 for r in rows]


# ------------------------------------------------------------------ fitting
def with_timing(spec: HardwareSpec, **changes: Any) -> HardwareSpec:
    return dataclasses.replace(spec, timing=dataclasses.replace(spec.timing, **changes))


@dataclass
class _RowModel:
    kind: str
    dtype: str
    device_ns: float
    el_mm: float
    el_dram: float
    el_vec: float


def _row_models(spec: HardwareSpec, rows: list[MeasuredRow], progress: Callable[[int], None] | None) -> list[_RowModel]:
    t = spec.timing
    bare = with_timing(spec, launch_ns={}, host_ns={})
    dtypes = sorted({r.dtype for r in rows})
    out = []
    for n, r in enumerate(rows):
        w = workload_for(r)
        d0 = simulate_ns(bare, w)
        el = []
        for key in ("matmul_efficiency", "dram_efficiency", "vector_efficiency"):
            if (key == "matmul_efficiency") != (r.op == "gemm") and key != "dram_efficiency":
                el.append(0.0)  # a GEMM does not use the vector rate, a vector op not the matrix rate
                continue
            if key == "matmul_efficiency":
                mm = dict(t.matmul_efficiency)
                for d in dtypes:
                    mm[d] = t.matmul(d) * (1 - _STEP)
                s = with_timing(bare, matmul_efficiency=mm)
            else:
                s = with_timing(bare, **{key: getattr(t, key) * (1 - _STEP)})
            d1 = simulate_ns(s, w)
            el.append(min(1.0, max(0.0, (d1 / d0 - 1) / (1 / (1 - _STEP) - 1))) if d0 > 0 else 0.0)
        out.append(_RowModel(w.kind, r.dtype, d0, *el))
        if progress:
            progress(n + 1)
    return out


def _predict(base: TimingSpec, p: dict[str, float], rm: _RowModel) -> float:
    mm0, dr0, ve0 = base.matmul(rm.dtype), base.dram_efficiency, base.vector_efficiency
    f = 1 + rm.el_mm * (mm0 / p[f"mm:{rm.dtype}"] - 1) + rm.el_dram * (dr0 / p["dram"] - 1) + rm.el_vec * (
        ve0 / p["vec"] - 1)
    dev = rm.device_ns * f
    return max(p[f"host:{rm.kind}"], p[f"launch:{rm.kind}"] + dev)


def _params(t: TimingSpec, models: list[_RowModel]) -> dict[str, float]:
    p: dict[str, float] = {"dram": t.dram_efficiency, "vec": t.vector_efficiency}
    for m in models:
        p[f"mm:{m.dtype}"] = t.matmul(m.dtype)
        p[f"launch:{m.kind}"] = t.launch(m.kind)
        p[f"host:{m.kind}"] = t.host(m.kind)
    return p


def _loss(t: TimingSpec, p: dict[str, float], models: list[_RowModel], rows: list[MeasuredRow]) -> float:
    """Mean |predicted / measured - 1|; exact at ``p == _params(t)`` (the rows were simulated at ``t``)."""
    return sum(abs(_predict(t, p, m) / r.latency_ns - 1) for m, r in zip(models, rows, strict=True)) / len(rows)


def _fit_round(t: TimingSpec, models: list[_RowModel], rows: list[MeasuredRow]) -> TimingSpec:
    """One coordinate search on the rows' linearization at ``t``."""
    kinds = sorted({m.kind for m in models})
    dtypes = sorted({m.dtype for m in models})
    p = _params(t, models)
    bounds: dict[str, tuple[float, float]] = {}
    if any(m.el_dram > 0.01 for m in models):
        bounds["dram"] = (0.3, 1.0)
    if any(m.el_vec > 0.01 for m in models):
        bounds["vec"] = (0.05, 1.0)
    for d in dtypes:
        if any(m.el_mm > 0.01 and m.dtype == d for m in models):
            bounds[f"mm:{d}"] = (0.2, 1.0)
    for k in kinds:
        bounds[f"launch:{k}"] = bounds[f"host:{k}"] = (0.0, 2e6)

    def loss(q: dict[str, float]) -> float:
        return _loss(t, q, models, rows)

    best = loss(p)
    for sweep in range(12):
        improved = False
        for key, (lo, hi) in bounds.items():
            # a coarse scan, then a golden-section refinement around the best point
            n = 24 if key.startswith(("launch", "host")) else 40
            xs = [lo + (hi - lo) * i / n for i in range(n + 1)] + [p[key]]
            _, x0 = min((loss({**p, key: x}), x) for x in xs)
            step = (hi - lo) / n
            a, b = max(lo, x0 - step), min(hi, x0 + step)
            g = (math.sqrt(5) - 1) / 2
            for _ in range(30):
                c, d = b - g * (b - a), a + g * (b - a)
                if loss({**p, key: c}) <= loss({**p, key: d}):
                    b = d
                else:
                    a = c
            x = (a + b) / 2
            v = loss({**p, key: x})
            if v < best - 1e-9:
                best, p[key] = v, x
                improved = True
        if not improved and sweep > 0:
            break
    mm = dict(t.matmul_efficiency)
    for d in dtypes:
        mm[d] = round(p[f"mm:{d}"], 4)
    launch, host = dict(t.launch_ns), dict(t.host_ns)
    for k in kinds:
        launch[k] = round(p[f"launch:{k}"], 1)
        host[k] = round(p[f"host:{k}"], 1)
    return dataclasses.replace(t, dram_efficiency=round(p["dram"], 4), vector_efficiency=round(p["vec"], 4),
                               matmul_efficiency=mm, launch_ns=launch, host_ns=host)


def fit_timing(spec: HardwareSpec, rows: list[MeasuredRow], progress: Callable[[int], None] | None = None,
               rounds: int = 2) -> TimingSpec:
    """The spec's [timing] with efficiencies and per-kind fixed costs fitted to ``rows``.

    Each round simulates the rows at the current keys (their linearization) and searches on it;
    the next round re-simulates at the result, so a large move (a row that turns compute-bound
    as an efficiency drops) is corrected.  A round that made the simulated error worse is undone.
    """
    t = spec.timing
    best_t, best_loss = t, math.inf
    for _ in range(max(1, rounds)):
        models = _row_models(dataclasses.replace(spec, timing=t), rows, progress)
        actual = _loss(t, _params(t, models), models, rows)
        if actual >= best_loss - 1e-6:
            return best_t
        best_t, best_loss = t, actual
        t = _fit_round(t, models, rows)
    return t


# ------------------------------------------------------------------ writing
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def timing_toml(t: TimingSpec, note: str) -> str:
    """The [timing] table as TOML text (comment ``note`` on top)."""
    lines = [f"# {note}", "[timing]"]
    tables = []
    for k, v in t.to_dict().items():
        if isinstance(v, dict):
            if v:
                tables.append((k, v))
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    for k, v in tables:
        lines.append("")
        lines.append(f"[timing.{k}]")
        lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


_TIMING_HEADER = re.compile(r"^\s*\[\s*timing(\.[^\]]*)?\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[\[?[^\]]+\]\]?\s*(#.*)?$")


def strip_timing(text: str) -> str:
    """A spec's TOML text without its [timing] tables (and their keys)."""
    out, skipping = [], False
    for line in text.splitlines():
        if _TIMING_HEADER.match(line):
            skipping = True
            continue
        if skipping and _ANY_HEADER.match(line):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def write_spec(source_text: str, timing: TimingSpec, out: str | Path, note: str) -> None:
    """``source_text`` with its [timing] replaced, written atomically (temporary sibling, rename)."""
    text = strip_timing(source_text) + "\n" + timing_toml(timing, note)
    p = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent.resolve()))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
