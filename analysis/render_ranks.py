"""Render a :class:`analysis.ranks.MultiRankReport`: text (terminal), Markdown, JSON."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analysis.common import fmt_ns, fmt_rate
from analysis.ranks import MultiRankReport
from analysis.render import clean, md_table, text_table


def _p(v: Any) -> str:
    return "–" if v is None or v != v else f"{v:.1f}%"


def _rate(v: Any) -> str:
    return "–" if v is None or v != v else fmt_rate(float(v), "B/s")


def _bytes(v: Any) -> str:
    return "–" if v is None or v != v else fmt_rate(float(v), "B").replace(".00 B", " B")


def tables(rep: MultiRankReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of each section, shared by the text and Markdown renderers."""
    per_rank = [[str(r.rank), str(r.device), fmt_ns(r.span_ns), _p(r.idle_pct), _p(r.compute_pct), _p(r.comm_pct),
                 _p(r.comm_exposed_pct)] for r in rep.per_rank.itertuples()]
    colls = [[str(c.group), c.kind, c.algorithm or "–", c.stream, str(c.ranks), _bytes(c.bytes), fmt_ns(c.duration_ns),
              fmt_ns(c.skew_ns), str(c.last_rank), fmt_ns(c.transfer_ns), _rate(c.algbw), _rate(c.busbw),
              _p(c.busbw_pct_of_link)]
             for c in rep.collectives.itertuples()]
    strag = [[str(s.rank), str(s.times_last), fmt_ns(s.caused_wait_ns),
              "–" if pd.isna(s.worst_group) else str(int(s.worst_group)), fmt_ns(s.worst_skew_ns)]
             for s in rep.stragglers.itertuples()]
    return [
        ("Per rank (device time over each rank's span)",
         ["rank", "device", "span", "idle", "compute", "communication", "exposed comm."], per_rank),
        ("Collectives matched across ranks (times on rank "
         f"{rep.ranks[0]}'s clock)" if rep.ranks else "Collectives",
         ["#", "kind", "algorithm", "stream", "ranks", "bytes", "longest", "arrival skew", "last", "transfer",
          "alg. bw", "bus bw", "of link peak"], colls),
        ("Stragglers", ["rank", "last in", "others waited", "worst #", "worst skew"], strag),
    ]


def _head(rep: MultiRankReport) -> list[str]:
    s = rep.summary
    offs = ", ".join(f"rank {r}: {fmt_ns(o)}" for r, o in rep.offsets_ns.items())
    return [f"{s['ranks']} ranks" + (f" of {s['world_size']}" if s.get("world_size") else "")
            + f"; {s['collectives_matched']} collectives matched; clock offsets {offs}"]


def to_text(rep: MultiRankReport, title: str, top: int = 10) -> str:
    out = [title, *_head(rep), ""]
    for name, headers, rows in tables(rep):
        out += [name, text_table(headers, rows), ""]
    out.append("Findings" if rep.findings else "No cross-rank findings.")
    out.extend(f"  [{f.severity}] {f.title}\n      -> {f.suggestion}" for f in rep.findings[:top])
    return "\n".join(out) + "\n"


def to_markdown(rep: MultiRankReport, title: str, top: int = 10) -> str:
    out = [f"## {title}", "", *_head(rep), ""]
    for name, headers, rows in tables(rep):
        out += [f"### {name}", "", md_table(headers, rows), ""]
    out.append("### Findings")
    out += [f"- **{f.severity}** {f.title} — {f.suggestion}" for f in rep.findings[:top]] or ["None."]
    return "\n".join(out) + "\n"


def to_dict(rep: MultiRankReport) -> dict[str, Any]:
    return clean({
        "schema": "accel-profiler/multi-rank-report", "version": 1, "summary": rep.summary,
        "ranks": [{"rank": r, "source": rep.sources[r], "summary": rep.reports[r].summary} for r in rep.ranks],
        "per_rank": rep.per_rank.to_dict("records"), "collectives": rep.collectives.to_dict("records"),
        "stragglers": rep.stragglers.to_dict("records"), "findings": [f.to_dict() for f in rep.findings],
    })


def render(rep: MultiRankReport, fmt: str, title: str, top: int = 10) -> str:
    if fmt == "md":
        return to_markdown(rep, title, top)
    if fmt == "json":
        return json.dumps(to_dict(rep), indent=2) + "\n"
    return to_text(rep, title, top)
