"""Many traces at once: every rank of every run, analyzed in parallel, gathered into one table.

The work per trace is :func:`analyze_one`, a plain function of a path that returns plain data
(picklable, small): it imports the trace once into the content-keyed Parquet cache
(:mod:`profiler.cache`), runs :func:`analysis.run_all` on it, and keeps the summary row, the
budget verdicts and the top device kernels.  :func:`run_fleet` maps it over the traces with any
``map``-like executor (a Dask client in production, the built-in ``map`` in tests and for small
sets) and :func:`gather` turns the rows into the fleet tables:

* ``traces``: one row per trace (run, rank, total, idle/compute/communication %, MFU, findings,
  budget failures);
* ``kernels``: per run and kernel name, the kernel's total time across ranks (median, max and the
  rank with the max, spread = max / median - 1);
* ``outliers``: ranks whose total time or kernel time lies far from their run's median (robust z
  score = 0.6745 (x - median) / MAD > :data:`OUTLIER_Z`, the Iglewicz-Hoaglin rule);
* ``regressions``: kernels whose median total across ranks grew by more than the threshold from one
  run to the next (runs in name order).

Findings (outlier ranks, regressions, failed budgets) use the same :class:`analysis.findings.Finding`
as ``analyze``; the exit status of ``profiler fleet`` follows the budgets as ``analyze``'s does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.findings import Finding, rank
from profiler.tracesets import rank_of, run_of, world_size_of

#: |robust z| above this marks an outlier (Iglewicz and Hoaglin, 1993: 3.5).
OUTLIER_Z = 3.5
#: Kernels kept per trace (by total time): enough for the distributions, small to ship between workers.
TOP_KERNELS = 50

TRACE_COLUMNS = ["run", "rank", "path", "world_size", "total_ns", "idle_pct", "compute_pct", "comm_pct", "mfu",
                 "findings", "max_severity", "top_finding", "budgets_failed", "cached", "error"]


def analyze_one(path: str, root: str | None = None, cache_dir: str | None = None, hw: str | None = None,
                budgets: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analyze one trace; a plain dict (see the module docstring).  Bad input is a row with ``error``."""
    from analysis import run_all
    from analysis.breakdown import headline
    from analysis.budget import evaluate
    from analysis.context import COMM, COMPUTE, AnalysisContext
    from profiler.cache import cached_trace
    from profiler.errors import ProfilerError
    from profiler.formats import read_trace
    from profiler.hardware import load_spec

    row: dict[str, Any] = {"run": run_of(path, root), "rank": None, "path": str(path), "kernels": {}}
    try:
        if cache_dir:
            trace, hit = cached_trace(path, cache_dir)
        else:
            trace, hit = read_trace(path), False
        spec = load_spec(hw) if hw else None
        rep = run_all(trace, spec, options=options)
        results = evaluate(budgets, rep.summary, "budgets") if budgets else []
    except ProfilerError as exc:
        return {**row, "error": str(exc), "cached": False}
    head = headline(rep)
    ctx = AnalysisContext(trace)
    rows = np.flatnonzero(((ctx.slice_class == COMPUTE) | (ctx.slice_class == COMM)) & (ctx.depth == 0))
    kernels: dict[str, list[float]] = {}
    if rows.size:
        df = pd.DataFrame({"name": ctx.names_of(ctx.name_code[rows]), "dur": ctx.dur[rows]})
        g = df.groupby("name", sort=False)["dur"].agg(["count", "sum"]).nlargest(TOP_KERNELS, "sum")
        kernels = {str(k): [int(v["count"]), int(v["sum"])] for k, v in g.iterrows()}
    s = rep.summary
    return {
        **row, "rank": rank_of(trace, path), "world_size": world_size_of(trace), "total_ns": int(s["total_ns"]),
        "idle_pct": head.get("idle_pct"), "compute_pct": head.get("compute_pct"), "comm_pct": head.get("comm_pct"),
        "mfu": s.get("mfu"), "findings": int(s["findings"]), "max_severity": s.get("max_severity"),
        "top_finding": rep.findings[0].title if rep.findings else None,
        "budgets_failed": [f"{r.name}: {r.message}" for r in results if not r.passed],
        "cached": bool(hit), "error": None, "kernels": kernels,
    }


@dataclass
class FleetReport:
    """The gathered tables (see the module docstring) and the findings over them."""

    traces: pd.DataFrame
    kernels: pd.DataFrame
    outliers: pd.DataFrame
    regressions: pd.DataFrame
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def budgets_failed(self) -> int:
        return int(sum(len(b) for b in self.traces["budgets_failed"])) if len(self.traces) else 0


def run_fleet(paths: Iterable[str], root: str | None = None, cache_dir: str | None = None, hw: str | None = None,
              budgets: dict[str, Any] | None = None, threshold_pct: float = 5.0,
              mapper: Callable[..., Iterable[dict[str, Any]]] | None = None) -> FleetReport:
    """Analyze every trace (through ``mapper(func, paths)``, serial by default) and gather."""
    paths = [str(p) for p in paths]
    task = _Task(root, cache_dir, hw, budgets)
    rows = list((mapper or map)(task, paths))
    return gather(rows, threshold_pct)


@dataclass(frozen=True)
class _Task:
    """:func:`analyze_one` with the fleet's settings bound (picklable, unlike a lambda)."""

    root: str | None
    cache_dir: str | None
    hw: str | None
    budgets: dict[str, Any] | None

    def __call__(self, path: str) -> dict[str, Any]:
        return analyze_one(path, self.root, self.cache_dir, self.hw, self.budgets)


def _robust_z(x: np.ndarray) -> np.ndarray:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    if mad == 0:
        # all but a few equal: any departure is an outlier only when it is more than 1% of the median
        far = np.abs(x - med) > 0.01 * abs(med)
        return np.where(far, np.copysign(np.inf, x - med), 0.0)
    return 0.6745 * (x - med) / mad


def gather(rows: list[dict[str, Any]], threshold_pct: float = 5.0) -> FleetReport:
    """The fleet tables from :func:`analyze_one` rows (order-independent: rows are sorted)."""
    rows = sorted(rows, key=lambda r: (r["run"], -1 if r.get("rank") is None else r["rank"], r["path"]))
    traces = pd.DataFrame([{k: r.get(k) for k in TRACE_COLUMNS} for r in rows], columns=TRACE_COLUMNS)
    kern_rows = [{"run": r["run"], "rank": r.get("rank"), "path": r["path"], "kernel": k, "count": c, "total_ns": t}
                 for r in rows if not r.get("error") for k, (c, t) in r.get("kernels", {}).items()]
    kdf = pd.DataFrame(kern_rows, columns=["run", "rank", "path", "kernel", "count", "total_ns"])
    kernels = _kernel_table(kdf)
    outliers = _outliers(traces[traces["error"].isna()], kdf)
    regressions = _regressions(kernels, threshold_pct)
    findings = _findings(traces, outliers, regressions, threshold_pct)
    ok = traces[traces["error"].isna()]
    summary = {
        "traces": len(traces), "runs": int(traces["run"].nunique()), "errors": int(traces["error"].notna().sum()),
        "cached": int(traces["cached"].fillna(False).sum()), "outliers": len(outliers),
        "regressions": len(regressions), "budgets_failed": int(sum(len(b or []) for b in traces["budgets_failed"])),
        "total_ns_median": float(ok["total_ns"].median()) if len(ok) else None,
    }
    return FleetReport(traces, kernels, outliers, regressions, rank(findings), summary)


def _kernel_table(kdf: pd.DataFrame) -> pd.DataFrame:
    cols = ["run", "kernel", "ranks", "median_ns", "max_ns", "slowest_rank", "spread_pct"]
    if kdf.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (run, kernel), g in kdf.groupby(["run", "kernel"], sort=True):
        tot = g["total_ns"].to_numpy(dtype=float)
        i = int(np.argmax(tot))
        med = float(np.median(tot))
        out.append({"run": run, "kernel": kernel, "ranks": len(g), "median_ns": med, "max_ns": float(tot[i]),
                    "slowest_rank": g["rank"].iloc[i], "spread_pct": (tot[i] / med - 1) * 100 if med else 0.0})
    return pd.DataFrame(out, columns=cols).sort_values(["run", "median_ns"], ascending=[True, False],
                                                        kind="stable").reset_index(drop=True)


def _outliers(traces: pd.DataFrame, kdf: pd.DataFrame) -> pd.DataFrame:
    cols = ["run", "rank", "path", "metric", "value", "median", "robust_z"]
    out = []
    for run, g in traces.groupby("run", sort=True):
        if len(g) < 3:
            continue  # a median of two says nothing about which one is odd
        x = g["total_ns"].to_numpy(dtype=float)
        z = _robust_z(x)
        for j in np.flatnonzero(np.abs(z) > OUTLIER_Z):
            out.append({"run": run, "rank": g["rank"].iloc[j], "path": g["path"].iloc[j], "metric": "total_ns",
                        "value": x[j], "median": float(np.median(x)), "robust_z": float(z[j])})
    for (run, kernel), g in kdf.groupby(["run", "kernel"], sort=True):
        if len(g) < 3:
            continue
        x = g["total_ns"].to_numpy(dtype=float)
        z = _robust_z(x)
        for j in np.flatnonzero(z > OUTLIER_Z):  # only slow ranks: a fast one is not a problem
            out.append({"run": run, "rank": g["rank"].iloc[j], "path": g["path"].iloc[j], "metric": f"kernel {kernel}",
                        "value": x[j], "median": float(np.median(x)), "robust_z": float(z[j])})
    return pd.DataFrame(out, columns=cols)


def _regressions(kernels: pd.DataFrame, threshold_pct: float) -> pd.DataFrame:
    cols = ["kernel", "base_run", "run", "base_ns", "new_ns", "delta_pct"]
    runs = sorted(kernels["run"].unique()) if len(kernels) else []
    out = []
    for prev, cur in zip(runs, runs[1:], strict=False):
        a = kernels[kernels["run"] == prev].set_index("kernel")["median_ns"]
        b = kernels[kernels["run"] == cur].set_index("kernel")["median_ns"]
        both = a.index.intersection(b.index)
        for k in both:
            if a[k] > 0:
                d = (b[k] / a[k] - 1) * 100
                if d > threshold_pct:
                    out.append({"kernel": k, "base_run": prev, "run": cur, "base_ns": float(a[k]), "new_ns": float(b[k]),
                                "delta_pct": d})
    return pd.DataFrame(out, columns=cols)


def _findings(traces: pd.DataFrame, outliers: pd.DataFrame, regressions: pd.DataFrame,
              threshold_pct: float) -> list[Finding]:
    from analysis.common import fmt_ns

    out = []
    for o in outliers.itertuples():
        gain = max(int(o.value - o.median), 0)
        out.append(Finding(
            kind="outlier_rank", severity="high" if o.metric == "total_ns" else "medium",
            title=f"{o.run}: rank {o.rank} {o.metric.replace('total_ns', 'run time')} {fmt_ns(o.value)} vs "
                  f"median {fmt_ns(o.median)} ("
                  + ("the other ranks all within 1%" if np.isinf(o.robust_z) else f"robust z {o.robust_z:.1f}") + ")",
            track=None, track_name=f"rank {o.rank}", start_ns=0, end_ns=0, metric=o.metric, value=float(o.value),
            threshold=OUTLIER_Z, unit="ns", gain_ns=gain,
            suggestion="look at this rank alone (profiler analyze on its trace): input skew, a slow device, "
                       "host contention", subject=f"{o.run}|{o.rank}|{o.metric}"))
    for r in regressions.itertuples():
        out.append(Finding(
            kind="fleet_regression", severity="high" if r.delta_pct >= 2 * threshold_pct else "medium",
            title=f"{r.kernel}: median {fmt_ns(r.base_ns)} -> {fmt_ns(r.new_ns)} per rank "
                  f"({r.delta_pct:+.1f}%) from {r.base_run} to {r.run}",
            track=None, track_name=None, start_ns=0, end_ns=0, metric="delta_pct", value=float(r.delta_pct),
            threshold=threshold_pct, unit="%", gain_ns=int(r.new_ns - r.base_ns),
            suggestion="diff a rank of both runs (profiler diff) to see which change slowed this kernel",
            subject=f"{r.kernel}|{r.run}"))
    for t in traces.itertuples():
        if t.error:
            out.append(Finding(kind="unreadable_trace", severity="high", title=f"{t.path}: {t.error}", track=None,
                               track_name=None, start_ns=0, end_ns=0, metric="error", value=1.0, threshold=0.0,
                               unit="", gain_ns=0, suggestion="fix or remove this trace", subject=str(t.path)))
    return out


def _fmt(v: Any, kind: str) -> str:
    from analysis.common import fmt_ns

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kind == "ns":
        return fmt_ns(v)
    if kind == "%":
        return f"{v:.1f}%"
    if kind == "frac":
        return f"{100 * v:.1f}%"
    return str(v)


def tables(rep: FleetReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of each section, shared by the text and Markdown renderers."""
    t = [[str(r.run), _fmt(r.rank, ""), _fmt(r.total_ns, "ns"), _fmt(r.idle_pct, "%"), _fmt(r.compute_pct, "%"),
          _fmt(r.comm_pct, "%"), _fmt(r.mfu, "frac"), _fmt(r.findings, ""),
          "; ".join(r.budgets_failed or []) or ("error: " + r.error if r.error else "ok")]
         for r in rep.traces.itertuples()]
    k = [[str(r.run), str(r.kernel)[:60], str(r.ranks), _fmt(r.median_ns, "ns"), _fmt(r.max_ns, "ns"),
          _fmt(r.slowest_rank, ""), _fmt(r.spread_pct, "%")] for r in rep.kernels.groupby("run").head(10).itertuples()]
    o = [[str(r.run), _fmt(r.rank, ""), str(r.metric)[:60], _fmt(r.value, "ns"), _fmt(r.median, "ns"),
          f"{r.robust_z:.1f}"] for r in rep.outliers.itertuples()]
    g = [[str(r.kernel)[:60], f"{r.base_run} -> {r.run}", _fmt(r.base_ns, "ns"), _fmt(r.new_ns, "ns"),
          f"{r.delta_pct:+.1f}%"] for r in rep.regressions.itertuples()]
    return [
        ("Traces", ["run", "rank", "total", "idle", "compute", "comm.", "MFU", "findings", "budgets"], t),
        ("Kernels across ranks (top 10 per run)", ["run", "kernel", "ranks", "median", "max", "slowest rank",
                                                   "spread"], k),
        ("Outlier ranks", ["run", "rank", "metric", "value", "run median", "robust z"], o),
        ("Regressions across runs", ["kernel", "runs", "median before", "median after", "delta"], g),
    ]
