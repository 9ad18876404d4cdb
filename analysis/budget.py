"""CI budgets: limits on the run summary that decide a job's exit status.

A budget file is TOML with one key per limit (top level, or under a ``[budgets]`` table)::

    mfu_min = 0.5                    # model FLOPs utilization at least 50%
    dma_bubble_pct_max = 10          # compute starved on DMA at most 10% of the run
    op_regression_pct_max = 5        # no op more than 5% slower than --baseline
    max_findings_severity = "high"   # no "critical" finding

Every key is listed in :data:`BUDGETS`.  An unknown key, a value of the wrong type, or a budget
the run cannot evaluate (MFU without a hardware spec, a regression limit without a baseline) is
bad input (:class:`BudgetError`, exit status 2), never a silent pass.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis.findings import SEVERITIES
from profiler.errors import ProfilerError


class BudgetError(ProfilerError):
    """A budget file is invalid or asks for a number this run cannot provide."""


@dataclass(frozen=True)
class BudgetDef:
    key: str  # summary key the limit applies to
    op: str  # "min" or "max"
    unit: str
    needs: str | None = None  # what must be supplied for the number to exist
    scale: float = 1.0  # budget value * scale is compared with the summary value


BUDGETS: dict[str, BudgetDef] = {
    "mfu_min": BudgetDef("mfu", "min", "fraction", "a hardware spec (--hw) and FLOP counts in the trace"),
    "hfu_min": BudgetDef("hfu", "min", "fraction", "a hardware spec (--hw) and FLOP counts in the trace"),
    "mbu_min": BudgetDef("mbu", "min", "fraction", "a hardware spec (--hw)"),
    "compute_active_pct_min": BudgetDef("compute_active_pct", "min", "%"),
    "stall_pct_max": BudgetDef("stall_pct", "max", "%"),
    "dma_bubble_pct_max": BudgetDef("dma_bubble_pct", "max", "%"),
    "idle_pct_max": BudgetDef("idle_pct", "max", "%"),
    "total_ms_max": BudgetDef("total_ns", "max", "ms", scale=1e6),
    "op_regression_pct_max": BudgetDef("op_regression_pct_max", "max", "%", "a baseline trace (--baseline)"),
    "engine_regression_pct_max": BudgetDef("engine_regression_pct_max", "max", "%", "a baseline trace (--baseline)"),
    "total_regression_pct_max": BudgetDef("total_delta_pct", "max", "%", "a baseline trace (--baseline)"),
    "max_findings": BudgetDef("findings", "max", "findings"),
}
SEVERITY_KEY = "max_findings_severity"


@dataclass
class BudgetResult:
    """One budget's verdict (one JUnit testcase)."""

    name: str
    passed: bool
    value: float | str | None
    limit: float | str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_budgets(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise BudgetError(f"{p}: no such budget file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BudgetError(f"{p}: unreadable budget file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BudgetError(f"{p}: invalid TOML: {exc}") from None
    if isinstance(doc.get("budgets"), dict):
        doc = doc["budgets"]
    known = set(BUDGETS) | {SEVERITY_KEY}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise BudgetError(f"{p}: unknown budget key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for k, v in doc.items():
        if k == SEVERITY_KEY:
            if not isinstance(v, str) or v not in SEVERITIES:
                raise BudgetError(f"{p}: {k} must be one of {', '.join(SEVERITIES)}, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise BudgetError(f"{p}: {k} must be a number (finite), got {v!r}")
        else:
            _check_range(p, k, float(v))
    return dict(doc)


def _check_range(p: Path, key: str, v: float) -> None:
    """Reject limits that can never pass or never fail: most often a percent written as a fraction
    (``mfu_min = 80``) or the reverse.  Regression limits may be negative (demand a speed-up)."""
    d = BUDGETS[key]
    if d.unit == "fraction" and not 0.0 <= v <= 1.0:
        hint = f"; for {v:g}% write {v / 100:g}" if 1.0 < v <= 100.0 else ""
        raise BudgetError(f"{p}: {key} is a fraction between 0 and 1, got {v:g}{hint}")
    if d.unit == "%" and "regression" not in key and not 0.0 <= v <= 100.0:
        raise BudgetError(f"{p}: {key} is a percentage between 0 and 100, got {v:g}")
    if d.unit in ("ms", "findings") and v < 0:
        raise BudgetError(f"{p}: {key} cannot be negative, got {v:g}")


def evaluate(budgets: dict[str, Any], summary: dict[str, Any], origin: str = "budgets") -> list[BudgetResult]:
    """Check each budget against a run summary (see :mod:`analysis.summary`)."""
    out: list[BudgetResult] = []
    for name, limit in budgets.items():
        if name == SEVERITY_KEY:
            worst = summary.get("max_severity")
            ok = worst is None or SEVERITIES.index(worst) <= SEVERITIES.index(limit)
            msg = (f"worst finding is {worst or 'none'}, allowed up to {limit}" if ok else
                   f"a {worst} finding exceeds the allowed severity {limit}")
            out.append(BudgetResult(name, ok, worst, limit, msg))
            continue
        d = BUDGETS[name]
        value = summary.get(d.key)
        if value is None:
            raise BudgetError(f"{origin}: {name} needs {d.needs or 'a number the trace does not provide'}")
        value_u = float(value) / d.scale
        ok = value_u >= limit if d.op == "min" else value_u <= limit
        rel = ">=" if d.op == "min" else "<="
        msg = f"{d.key} = {value_u:.4g} {d.unit}, budget {rel} {limit:g} {d.unit}: {'ok' if ok else 'FAILED'}"
        out.append(BudgetResult(name, ok, round(value_u, 6), float(limit), msg))
    return out
