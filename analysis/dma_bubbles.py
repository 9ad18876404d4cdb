"""DMA bubbles: DMA queues idle while compute runs, and compute starving for data afterwards.

Per unit (a core, a GPU: the group holding the engines), with C = when any compute engine works
and D = when any DMA transfer is in flight:

* ``exposed`` = D minus C: transfers nobody overlapped; the part between the first and the last
  compute is ``starved`` (the prologue load and the epilogue store cannot be hidden);
* ``dma_idle_while_compute`` = C minus D: the queues sat idle although they could have fetched
  the next tile;
* the *bubble* is ``min(starved, dma_idle_while_compute)``: the time one more buffer would save,
  since each exposed transfer can move under the previous compute, but only as far as that
  compute is long.  A DMA-bound loop (queues never idle) has no bubble, however long compute
  starves: more buffers cannot help it, more bandwidth can (see the stall analyzer).

Single-buffered loops (load, compute, load, compute) show a bubble as large as the shorter of
their load and compute phases; double-buffered ones show almost none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals as iv
from analysis.common import fmt_ns, pct, severity_for
from analysis.context import DMA, AnalysisContext
from analysis.findings import AnalyzerResult, Finding

NAME = "dma_bubbles"
#: Bubble share of the run (percent) above which a finding is raised.
BUBBLE_PCT = 5.0
COLUMNS = ["device", "compute_ns", "dma_ns", "overlap_ns", "exposed_ns", "starved_ns", "bubble_ns", "dma_idle_while_compute_ns",
           "saving_ns", "bubble_pct", "transfers", "unoverlapped_transfers"]


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    rows = []
    dur = ctx.duration
    windows: dict[str, tuple[int, int]] = {}
    for d, dev in enumerate(ctx.devices):
        c = ctx.class_set(ctx.work_classes, d)
        dm = ctx.class_set((DMA,), d)
        if c[0].size == 0 or dm[0].size == 0:
            continue
        first, last = int(c[0][0]), int(c[1][-1])
        exposed = iv.subtract(dm, c)
        mid = iv.intersect(exposed, (np.array([first]), np.array([last])))
        starved = iv.total(mid)
        idle_dma = iv.subtract(c, dm)
        idle_ns = iv.total(idle_dma)
        saving = min(starved, idle_ns)
        bubble = saving
        # Transfers that ran (mostly) without compute under them.
        tr = ctx.transfer_rows
        if len(ctx.devices) > 1:
            tr = tr[ctx.slice_device[tr] == d]
        ov = iv.overlap_each(ctx.ts[tr], ctx.end[tr], c)
        unover = int(((ov < 0.5 * ctx.dur[tr]) & (ctx.dur[tr] > 0)).sum())
        name = dev or "(device)"
        if idle_dma[0].size:
            windows[name] = (int(idle_dma[0][0]), int(idle_dma[1][-1]))
        rows.append({
            "device": name, "compute_ns": iv.total(c), "dma_ns": iv.total(dm), "overlap_ns": iv.overlap_total(c, dm),
            "exposed_ns": iv.total(exposed), "starved_ns": starved, "bubble_ns": bubble, "dma_idle_while_compute_ns": idle_ns,
            "saving_ns": int(saving), "bubble_pct": pct(bubble, dur), "transfers": int(tr.size),
            "unoverlapped_transfers": unover,
        })
    metrics = pd.DataFrame(rows, columns=COLUMNS)
    bubble_total = int(metrics["bubble_ns"].sum()) if len(metrics) else 0
    summary = {
        "bubble_ns": bubble_total,
        "bubble_pct": pct(bubble_total, dur * max(len(metrics), 1)),
        "saving_ns": int(metrics["saving_ns"].sum()) if len(metrics) else 0,
        "exposed_ns": int(metrics["exposed_ns"].sum()) if len(metrics) else 0,
    }
    findings = []
    s, e = ctx.span
    for r in metrics.itertuples(index=False):  # one row per device
        if r.bubble_pct < BUBBLE_PCT:
            continue
        ws, we = windows.get(r.device, (s, e))
        findings.append(Finding(
            kind="dma_bubble", severity=severity_for(r.saving_ns, dur),
            title=f"{r.device}: DMA idle {fmt_ns(r.dma_idle_while_compute_ns)} while compute ran, then compute "
                  f"starved {fmt_ns(r.starved_ns)}; deeper buffering saves ~{fmt_ns(r.saving_ns)} ({r.bubble_pct:.1f}%)",
            track=None, track_name=r.device, start_ns=ws, end_ns=we, metric="bubble_pct", value=float(r.bubble_pct),
            threshold=BUBBLE_PCT, unit="%", gain_ns=int(r.saving_ns),
            suggestion="double-buffer: issue the next tile's DMA while the current tile computes",
            subject="dma_bubble",
            details={"unoverlapped_transfers": int(r.unoverlapped_transfers), "transfers": int(r.transfers),
                     "dma_idle_while_compute_ns": int(r.dma_idle_while_compute_ns)},
        ))
    return AnalyzerResult(NAME, findings, metrics, summary)
