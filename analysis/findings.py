"""The finding: what every analyzer reports, what CI gates on and what the dashboard lists.

A finding has a stable id (kind + track + name of what it is about, hashed) so that CI can say
"this bottleneck is new" or "this one got worse" across runs, whatever order analyzers ran in.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass
class Finding:
    kind: str  # e.g. "dma_bubble", "stall", "low_utilization", "memory_bound_kernel", "regression"
    severity: str  # one of SEVERITIES
    title: str  # one line a person reads first
    track: int | None  # track id the finding is about (None: whole run)
    track_name: str | None
    start_ns: int  # time window of the evidence
    end_ns: int
    metric: str  # name of the measured number, e.g. "stall_fraction"
    value: float  # the measured number
    threshold: float  # the threshold it crossed
    unit: str  # unit of value/threshold: "%", "ns", "FLOP/s", "B", ...
    gain_ns: int  # estimated time to gain if fixed
    suggestion: str  # one line: what to try
    subject: str = ""  # what the finding is about beyond the track (op name, queue, ...)
    details: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITIES}")
        if not self.id:
            key = f"{self.kind}|{self.track_name or ''}|{self.subject}"
            self.id = f"{self.kind}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnalyzerResult:
    """What one analyzer returns: findings plus a metrics table (one row per engine/op/...)."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict[str, Any] = field(default_factory=dict)


def rank(findings: list[Finding]) -> list[Finding]:
    """Most costly first: by estimated gain, then severity.

    Every ``gain_ns`` is derived from the trace (and the spec's figures), with no tuning factor:
    run time above the busiest engine's work for an underused unit
    (:func:`analysis.utilization.low_utilization_gain`), the latencies coalescing would remove for
    small transfers (:func:`analysis.dma_efficiency.coalescing_gain`), ``time * (1 - 1/headroom)``
    for a kernel below its roof, and the measured waiting, exposed or repeated time for stalls,
    DMA bubbles, exposed communication, gaps and redundant loads.
    """
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: (-f.gain_ns, -sev[f.severity], f.id))
