"""Many ranks of one job: per-rank breakdown, clocks aligned on collectives, stragglers.

Each rank's trace is analyzed on its own by :func:`analysis.run_all` (so a rank's row here is
exactly what ``profiler analyze`` says of that file alone); across ranks this module adds what no
single file shows:

* **Clock alignment.**  Ranks record on their own host clocks.  A collective ends on every rank of
  its communicator at (nearly) the same moment, since none can finish before the last one's data
  arrived, so the offset of a rank against the reference rank (the lowest) is the most common
  difference between the end times of same-kind collectives on same-named streams: the densest
  cluster of pairwise end differences.  Pairs inside that cluster, one-to-one and nearest first,
  are the matched collectives; collectives of communicators the reference rank is not in stay
  unmatched (counted).
* **Per collective** (one row per matched group): kind, bytes, arrival skew (last start minus
  first start, aligned), the rank that arrived last, the time after the last arrival
  (the transfer itself), algorithm bandwidth = bytes / transfer time and bus bandwidth = algorithm
  bandwidth x :func:`analysis.collectives.bus_factor`, against the link peak when one is known.
* **Stragglers**: per rank, how often it arrived last and how long the others waited for it
  (summed over the collectives it was last in: last start minus each other rank's start, averaged
  over the other ranks), and its worst collective.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.collectives import bus_factor, collectives
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import AnalysisContext
from analysis.findings import Finding, rank
from profiler.errors import ProfilerError
from profiler.hardware import HardwareSpec
from profiler.model import Trace
from profiler.tracesets import rank_of, world_size_of

#: A rank whose lateness costs the others more than this share of the run is a straggler finding.
STRAGGLER_PCT = 2.0

PER_RANK_COLUMNS = ["rank", "source", "device", "span_ns", "idle_ns", "compute_ns", "comm_ns", "comm_exposed_ns",
                    "idle_pct", "compute_pct", "comm_pct", "comm_exposed_pct"]
COLLECTIVE_COLUMNS = ["group", "kind", "algorithm", "stream", "ranks", "bytes", "start_ns", "end_ns", "duration_ns",
                      "skew_ns", "last_rank", "transfer_ns", "algbw", "busbw", "busbw_pct_of_link"]
_ALGORITHM = re.compile(r"_(RING|TREE|COLLNET\w*|NVLS\w*|PAT)_", re.I)
STRAGGLER_COLUMNS = ["rank", "times_last", "caused_wait_ns", "worst_group", "worst_skew_ns"]


class RankError(ProfilerError):
    """Several traces that cannot be told apart as ranks (two files claim one rank)."""


def assign_ranks(traces: list[Trace], sources: list[str]) -> list[int]:
    """Rank of each trace: what it says, else its file name, else its position; duplicates fail."""
    found = [rank_of(t, s) for t, s in zip(traces, sources, strict=True)]
    if any(r is None for r in found):
        if all(r is None for r in found):
            return list(range(len(traces)))
        missing = next(s for s, r in zip(sources, found, strict=True) if r is None)
        raise RankError(f"{missing}: no rank in distributedInfo or in the file name, while other traces have one")
    ranks = [int(r) for r in found if r is not None]
    seen: dict[int, str] = {}
    for r, s in zip(ranks, sources, strict=True):
        if r in seen:
            raise RankError(f"{s}: rank {r} is also {seen[r]}")
        seen[r] = s
    return ranks


def _local_stream(name: str) -> str:
    """A stream's own name without its device ("GPU 3 / stream 7" -> "stream 7")."""
    return name.rsplit(" / ", 1)[-1]


def _densest_offset(diffs: np.ndarray, tol: int) -> int | None:
    """Centre (median) of the window of width 2*tol holding the most ``diffs``."""
    if diffs.size == 0:
        return None
    d = np.sort(diffs)
    hi = np.searchsorted(d, d + 2 * tol, side="right")
    best = int(np.argmax(hi - np.arange(d.size)))
    return int(np.median(d[best:hi[best]]))


def align(colls: dict[int, pd.DataFrame], tol_ns: int | None = None) -> tuple[dict[int, int], pd.DataFrame]:
    """(offset per rank, matches) for per-rank collective tables (see :func:`collectives`).

    ``offset[r]`` is what to subtract from rank r's times to put them on the reference rank's
    clock.  ``matches`` has one row per (group, rank): ``group`` (the reference collective's
    index), ``rank``, and that rank's collective columns with ``ts``/``end`` aligned.
    ``tol_ns``: how far apart matched ends may be (default 2 % of the median collective duration,
    at least 50 us).
    """
    ranks = sorted(colls)
    if not ranks:
        return {}, pd.DataFrame()
    ref = ranks[0]
    base = colls[ref].reset_index(drop=True).copy()
    base["local"] = base["stream"].map(_local_stream)
    durs = np.concatenate([c["dur"].to_numpy() for c in colls.values()]) if colls else np.zeros(0)
    tol = int(tol_ns if tol_ns is not None else max(50_000, 0.02 * float(np.median(durs)) if durs.size else 0))
    offsets = {ref: 0}
    parts = [base.assign(group=np.arange(len(base)), rank=ref)]
    for r in ranks[1:]:
        other = colls[r].reset_index(drop=True).copy()
        other["local"] = other["stream"].map(_local_stream)
        pairs = base[["local", "kind", "end"]].reset_index().merge(
            other[["local", "kind", "end"]].reset_index(), on=["local", "kind"], suffixes=("_ref", "_r"))
        diffs = (pairs["end_r"] - pairs["end_ref"]).to_numpy(dtype=np.int64)
        off = _densest_offset(diffs, tol)
        if off is None:
            offsets[r] = 0
            continue
        offsets[r] = off
        pairs["err"] = np.abs(diffs - off)
        pairs = pairs[pairs["err"] <= tol].sort_values("err", kind="stable")
        used_ref: set[int] = set()
        used_r: set[int] = set()
        keep = []
        for i_ref, i_r in zip(pairs["index_ref"].tolist(), pairs["index_r"].tolist(), strict=True):
            if i_ref in used_ref or i_r in used_r:
                continue
            used_ref.add(i_ref)
            used_r.add(i_r)
            keep.append((i_ref, i_r))
        if keep:
            g, rows = zip(*keep, strict=True)
            m = other.loc[list(rows)].copy()
            m["group"] = list(g)
            m["rank"] = r
            m["ts"] = m["ts"] - off
            m["end"] = m["end"] - off
            parts.append(m)
    matches = pd.concat(parts, ignore_index=True)
    sizes = matches.groupby("group")["rank"].transform("size")
    matches = matches[sizes > 1].sort_values(["group", "rank"]).reset_index(drop=True)
    return offsets, matches.drop(columns=["local"])


def collective_table(matches: pd.DataFrame, group_size: int | None, link_bandwidth: float | None) -> pd.DataFrame:
    """One row per matched collective (see the module docstring)."""
    if matches.empty:
        return pd.DataFrame(columns=COLLECTIVE_COLUMNS)
    rows = []
    for g, m in matches.groupby("group", sort=True):
        starts = m["ts"].to_numpy()
        ends = m["end"].to_numpy()
        last = int(np.argmax(starts))
        transfer = max(int(np.median(ends)) - int(starts[last]), 1)
        kind = str(m["kind"].iloc[0])
        nbytes = float(np.nanmax(m["bytes"].to_numpy())) if m["bytes"].notna().any() else float("nan")
        n = int(m["group_size"].max()) or (group_size or len(m))
        algbw = nbytes / (transfer / 1e9) if nbytes == nbytes else float("nan")
        busbw = algbw * bus_factor(kind, n)
        algo = _ALGORITHM.search(str(m["name"].iloc[0]))
        rows.append({
            "group": int(g), "kind": kind, "algorithm": algo.group(1).lower() if algo else None,
            "stream": _local_stream(str(m["stream"].iloc[0])), "ranks": len(m),
            "bytes": nbytes, "start_ns": int(starts.min()), "end_ns": int(ends.max()),
            "duration_ns": int(m["dur"].max()),
            "skew_ns": int(starts.max() - starts.min()), "last_rank": int(m["rank"].iloc[last]),
            "transfer_ns": transfer, "algbw": algbw, "busbw": busbw,
            "busbw_pct_of_link": pct(busbw, link_bandwidth) if link_bandwidth and busbw == busbw else None,
        })
    return pd.DataFrame(rows, columns=COLLECTIVE_COLUMNS)


def straggler_table(matches: pd.DataFrame, ranks: list[int]) -> pd.DataFrame:
    """Per rank: collectives it arrived last in and the wait it caused the others."""
    stats = {r: {"rank": r, "times_last": 0, "caused_wait_ns": 0, "worst_group": None, "worst_skew_ns": 0}
             for r in ranks}
    for g, m in matches.groupby("group", sort=True):
        starts = m["ts"].to_numpy()
        last = int(np.argmax(starts))
        r = int(m["rank"].iloc[last])
        waits = starts[last] - np.delete(starts, last)
        s = stats[r]
        s["times_last"] += 1
        s["caused_wait_ns"] += int(waits.mean()) if waits.size else 0
        skew = int(starts.max() - starts.min())
        if skew > s["worst_skew_ns"]:
            s["worst_skew_ns"], s["worst_group"] = skew, int(g)
    return pd.DataFrame(list(stats.values()), columns=STRAGGLER_COLUMNS)


@dataclass
class MultiRankReport:
    """What :func:`analyze_ranks` found; ``reports[rank]`` is that rank's single-trace report."""

    ranks: list[int]
    sources: dict[int, str]
    reports: dict[int, Any]
    per_rank: pd.DataFrame
    offsets_ns: dict[int, int]
    collectives: pd.DataFrame
    stragglers: pd.DataFrame
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def per_rank_row(r: int, source: str, report: Any) -> dict[str, Any]:
    """A rank's breakdown: its report's headline (communication apart from compute) plus the
    communication no compute hid, from the same device rows."""
    from analysis.breakdown import headline

    h = headline(report)
    devices = report.results["overlap"].summary.get("devices") or []
    span = int(h["span_ns"])
    exposed = sum(int(d.get("comm_exposed_ns") or 0) for d in devices)
    return {"rank": r, "source": source, "device": ", ".join(str(d.get("device")) for d in devices) or "–",
            "span_ns": span, "idle_ns": int(h["idle_ns"]), "compute_ns": int(h["compute_ns"]),
            "comm_ns": int(h["comm_ns"]), "comm_exposed_ns": exposed, "idle_pct": h["idle_pct"],
            "compute_pct": h["compute_pct"], "comm_pct": h["comm_pct"],
            "comm_exposed_pct": pct(exposed, span) if span else None}


def link_bandwidth_of(spec: HardwareSpec | None) -> float | None:
    """Per-direction bandwidth of one device's links, when the spec describes its interconnect."""
    system = getattr(spec, "system", None)
    bw = getattr(system, "link_bandwidth", None)
    return float(bw) if bw else None


def analyze_ranks(traces: list[Trace], sources: list[str], spec: HardwareSpec | None = None,
                  options: dict[str, Any] | None = None) -> MultiRankReport:
    """Analyze the ranks of one job together (see the module docstring)."""
    from analysis import run_all, spec_for

    ranks = assign_ranks(traces, sources)
    order = np.argsort(ranks, kind="stable")
    ranks = [ranks[i] for i in order]
    traces = [traces[i] for i in order]
    sources = [sources[i] for i in order]
    reports: dict[int, Any] = {}
    colls: dict[int, pd.DataFrame] = {}
    rows = []
    for r, t, s in zip(ranks, traces, sources, strict=True):
        rep = run_all(t, spec, options=options)
        reports[r] = rep
        rows.append(per_rank_row(r, s, rep))
        colls[r] = collectives(AnalysisContext(t, spec_for(t, spec)))
    offsets, matches = align(colls)
    world = next((w for w in (world_size_of(t) for t in traces) if w), None)
    link = link_bandwidth_of(spec or next((rp.spec for rp in reports.values() if rp.spec is not None), None))
    table = collective_table(matches, world, link)
    strag = straggler_table(matches, ranks)
    per_rank = pd.DataFrame(rows, columns=PER_RANK_COLUMNS)
    findings = []
    span = int(per_rank["span_ns"].max()) if len(per_rank) else 0
    for row in strag.itertuples():
        if span and row.caused_wait_ns and pct(row.caused_wait_ns, span) >= STRAGGLER_PCT:
            g = table[table["group"] == row.worst_group].iloc[0] if row.worst_group is not None else None
            findings.append(Finding(
                kind="straggler_rank", severity=severity_for(row.caused_wait_ns, span),
                title=f"rank {row.rank} arrives last in {row.times_last} collective(s); the others wait "
                      f"{fmt_ns(row.caused_wait_ns)} for it" + (f" (worst: {g['kind']} on {g['stream']}, "
                                                               f"{fmt_ns(int(g['skew_ns']))} skew)" if g is not None else ""),
                track=None, track_name=f"rank {row.rank}",
                start_ns=int(g["start_ns"]) if g is not None else 0, end_ns=int(g["end_ns"]) if g is not None else 0,
                metric="caused_wait_pct", value=pct(row.caused_wait_ns, span), threshold=STRAGGLER_PCT, unit="%",
                gain_ns=int(row.caused_wait_ns),
                suggestion="balance the work before this collective (input sizes, data loading, host launch "
                           "delays on this rank) or overlap it with independent compute",
                subject=f"rank {row.rank}"))
    matched = int(matches["group"].nunique()) if len(matches) else 0
    summary = {
        "ranks": len(ranks), "world_size": world, "clock_offsets_ns": {str(k): int(v) for k, v in offsets.items()},
        "collectives_per_rank": {str(r): len(c) for r, c in colls.items()}, "collectives_matched": matched,
        "max_skew_ns": int(table["skew_ns"].max()) if len(table) else 0,
        "link_bandwidth": link,
    }
    return MultiRankReport(ranks, dict(zip(ranks, sources, strict=True)), reports, per_rank, offsets, table, strag,
                           rank(findings), summary)


def merged_job(traces: list[Trace], sources: list[str]) -> Trace:
    """The ranks as one trace: a ``rank N`` group each, clocks aligned on their collectives."""
    from profiler.merge import merge

    ranks = assign_ranks(traces, sources)
    order = [int(i) for i in np.argsort(ranks, kind="stable")]
    colls = {ranks[i]: collectives(AnalysisContext(traces[i])) for i in order}
    offsets, _ = align(colls)
    merged = merge([traces[i] for i in order], [f"rank {ranks[i]}" for i in order],
                   [offsets.get(ranks[i], 0) for i in order])
    merged.metadata.extra["ranks"] = [ranks[i] for i in order]
    merged.metadata.source = f"{len(order)} ranks: " + ", ".join(Path(sources[i]).name for i in order)
    return merged
