"""The roofline beside the timeline: ceilings from the hardware spec, one dot per op in the window.

The per-slice points come from :func:`analysis.roofline.points` once per trace; each view then
only filters them to its time window and aggregates by op name with ``bincount`` (milliseconds at
a million slices), so the roofline follows every zoom of the timeline.  Bound and headroom use the
same rule as the analyzer: attainable = min(peak[dtype], AI x off-chip bandwidth).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from profiler.hardware import HardwareSpec
from ui.state import LoadedTrace

BOUND_COLORS = {"memory": "#4C78A8", "compute": "#F58518", "unknown": "#999999"}
#: Points above their roof: drawn apart, in this colour and marker, under this legend entry.
ABOVE_COLOR, ABOVE_SYMBOL, ABOVE_LEGEND = "#D62728", "triangle-up", "above the roof: spec below measured"
#: Achieved over roof beyond this ratio counts as above the roof (not float noise of an op at its roof).
ABOVE_TOL = 1 + 1e-6
TABLE_COLUMNS = ["name", "dtype", "count", "time_ms", "share_pct", "ai", "achieved_tflops", "roof_tflops", "bound",
                 "headroom"]


def _points(lt: LoadedTrace, spec: HardwareSpec | None) -> dict[str, Any]:
    """Every roofline point of the trace as arrays (computed once, cached on the trace)."""

    def make() -> dict[str, Any]:
        from analysis import roofline, spec_for

        p = roofline.points(lt.trace, spec_for(lt.trace, spec), None, None)
        name_codes, name_words = pd.factorize(p["name"].astype(str), sort=False)
        dt_codes, dt_words = pd.factorize(p["dtype"].astype(str), sort=False)
        return {
            "id": p["id"].to_numpy(), "ts": p["ts"].to_numpy(), "end": (p["ts"] + p["dur"]).to_numpy(),
            "dur": p["dur"].to_numpy().astype(np.float64), "flops": p["flops"].to_numpy(), "bytes": p["bytes"].to_numpy(),
            "name": name_codes, "names": list(name_words), "dtype": dt_codes, "dtypes": list(dt_words),
        }

    pts: dict[str, Any] = lt.cached(f"roofline_points:{spec.name if spec else None}", make)
    return pts


def esc(text: str) -> str:
    """Plotly renders hover and legend text as pseudo-HTML: escape trace-supplied names."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def judged_by(lt: LoadedTrace, spec: HardwareSpec | None) -> HardwareSpec | None:
    """The spec the trace is judged by (``spec``, else its own hardware preset), read once per
    trace rather than from its TOML file on every zoom."""
    from analysis import spec_for

    judged: HardwareSpec | None = lt.cached(f"spec:{spec.name if spec else None}", lambda: spec_for(lt.trace, spec))
    return judged


def table(lt: LoadedTrace, spec: HardwareSpec | None, t0: int | None = None, t1: int | None = None) -> pd.DataFrame:
    """One row per op name among slices overlapping [t0, t1): totals, AI, achieved, roof, bound, headroom,
    and ``above``: achieved / roof for an op that ran faster than its roof allows (NaN otherwise).

    Above the roof means the spec's figure is below what was measured: its peak (compute roof), or
    its off-chip bandwidth when the bytes came from on-chip memory (memory roof).  Such a point
    must not pass for an op near its roof, so :func:`figure` and :func:`above_note` show it apart.
    """
    spec = judged_by(lt, spec)
    p = _points(lt, spec)
    m = np.ones(p["id"].size, dtype=bool)
    if t0 is not None:
        m &= p["end"] > t0
    if t1 is not None:
        m &= p["ts"] < t1
    if not m.any():
        return pd.DataFrame(columns=TABLE_COLUMNS)
    nn, nd = len(p["names"]), len(p["dtypes"])
    code = p["name"][m]
    dur = p["dur"][m]
    count = np.bincount(code, minlength=nn)
    tot = np.bincount(code, weights=dur, minlength=nn)
    fl = np.bincount(code, weights=p["flops"][m], minlength=nn)
    by = np.bincount(code, weights=p["bytes"][m], minlength=nn)
    dom = np.bincount(code * nd + p["dtype"][m], weights=dur, minlength=nn * nd).reshape(nn, nd).argmax(axis=1)
    present = np.flatnonzero(count > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ai = np.where(by > 0, fl / np.where(by > 0, by, 1), np.inf)[present]
        ach = np.where(tot > 0, fl / np.where(tot > 0, tot, 1) * 1e9, 0.0)[present]
    dts = [p["dtypes"][dom[i]] for i in present]
    if spec is not None:
        bw = spec.dram.bandwidth
        from analysis.context import AnalysisContext

        ctx = AnalysisContext(lt.trace, spec)
        peak = np.array([ctx.peak_for(d) for d in dts], dtype=np.float64)
        roof = np.fmin(peak, ai * bw)
        bound = np.where(ai * bw < peak, "memory", "compute")
        with np.errstate(divide="ignore", invalid="ignore"):
            head = np.where(ach > 0, roof / ach, np.inf)
            above = np.where((roof > 0) & (ach > roof * ABOVE_TOL), ach / np.where(roof > 0, roof, 1), np.nan)
    else:
        roof = np.full(present.size, np.nan)
        bound = np.full(present.size, "unknown")
        head = np.full(present.size, np.nan)
        above = np.full(present.size, np.nan)
    total = float(tot[present].sum()) or 1.0
    df = pd.DataFrame({
        "name": [p["names"][i] for i in present], "dtype": dts, "count": count[present],
        "time_ms": np.round(tot[present] / 1e6, 4), "share_pct": np.round(100 * tot[present] / total, 1),
        "ai": np.round(ai, 3), "achieved_tflops": np.round(ach / 1e12, 5), "roof_tflops": np.round(roof / 1e12, 5),
        "bound": bound, "headroom": np.round(head, 2), "above": np.round(above, 3),
    })
    return df.sort_values("time_ms", ascending=False, ignore_index=True)


def _above(df: pd.DataFrame) -> np.ndarray:
    """Per row of a :func:`table`: did the op run above its roof?"""
    if "above" not in df:
        return np.zeros(len(df), dtype=bool)
    a = df["above"].astype(float).to_numpy()
    return np.isfinite(a) & (a > 1)


def above_text(row: Any, spec: HardwareSpec | None) -> str:
    """How far above which roof one op of a :func:`table` ran, and what that says of the spec."""
    ratio = f"×{float(row.above):.3g}"
    if row.bound == "compute":
        return (f"{ratio} above its compute roof ({row.dtype} peak {float(row.roof_tflops):.3g} TFLOP/s): "
                "the spec's peak is below what was measured")
    dram = f"{spec.dram.name} {spec.dram.bandwidth / 1e9:.3g} GB/s" if spec is not None else "off-chip bandwidth"
    return (f"{ratio} above its memory roof ({dram} × AI): its bytes came from on-chip memory, "
            "or the spec's bandwidth is below what was measured")


def above_note(df: pd.DataFrame, most: int = 8) -> str:
    """The line under the chart naming the ops above their roof, worst first ("" when none)."""
    over = _above(df)
    if not over.any():
        return ""
    grp = df[over].sort_values("above", ascending=False)
    named = [f"{n} ×{float(a):.3g}" for n, a in zip(grp["name"].head(most), grp["above"].head(most), strict=True)]
    more = f" and {len(grp) - most} more" if len(grp) > most else ""
    return (f"{int(over.sum())} of {len(df)} ops ran above their roof (▲): the spec's peak or bandwidth is below "
            f"what was measured, or their bytes came from on-chip memory. {', '.join(named)}{more}.")


def _dots(grp: pd.DataFrame, size: np.ndarray, selected: str | None, hi: float, name: str, color: str, symbol: str,
          hover: str) -> dict[str, Any]:
    """One scatter trace of op dots (sized by their share of time, the selected op outlined)."""
    return {
        "type": "scatter", "mode": "markers", "name": name, "x": grp["ai"].replace(np.inf, hi), "y": grp["achieved_tflops"],
        "customdata": [[esc(str(r[0])), esc(str(r[1])), *r[2:]]  # every trace-supplied hover field escaped
                       for r in grp[["name", "dtype", "share_pct", "headroom"]].values.tolist()],
        "marker": {"size": size[grp.index.to_numpy()], "color": color, "opacity": 0.8, "symbol": symbol,
                   "line": {"width": [3 if n == selected else 0.5 for n in grp["name"]], "color": "#000"}},
        "hovertemplate": hover,
    }


def figure(df: pd.DataFrame, spec: HardwareSpec | None, selected: str | None = None) -> dict[str, Any]:
    """Log-log roofline: compute roofs per dtype, one memory roof per level, ridge points, op dots
    (those above their roof apart, as red triangles whose hover says how far above)."""
    from analysis.roofline import ceilings

    data: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    finite = df[np.isfinite(df["ai"].astype(float)) & (df["ai"].astype(float) > 0)] if len(df) else df
    lo = float(finite["ai"].min()) / 4 if len(finite) else 0.01
    hi = float(finite["ai"].max()) * 4 if len(finite) else 1e4
    if spec is not None:
        dtypes = sorted(set(df["dtype"]) & set(spec.peak_flops)) if len(df) else []
        compute, memory, ridges = ceilings(spec, dtypes or None)
        top = max(compute.values())
        lo = min(lo, min(min(r.values()) for r in ridges.values()) / 4)
        hi = max(hi, max(max(r.values()) for r in ridges.values()) * 4)
        for level, bw in memory.items():
            x = [lo, top / bw]
            data.append({"type": "scatter", "mode": "lines", "x": x, "y": [lo * bw / 1e12, top / 1e12],
                         "name": f"{level} {bw / 1e9:.0f} GB/s", "line": {"dash": "dot", "width": 1.5},
                         "hoverinfo": "name"})
        ridge_x, ridge_y, ridge_text = [], [], []
        for dt, peak in compute.items():
            data.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [peak / 1e12, peak / 1e12],
                         "name": f"{dt} peak {peak / 1e12:.3g} TFLOP/s", "line": {"width": 1.5}, "hoverinfo": "name"})
            r = ridges[dt][spec.dram.name]
            ridge_x.append(r)
            ridge_y.append(peak / 1e12)
            ridge_text.append(f"{dt} {r:.3g}")
        # Ridge points are markers; their values are listed once, in a corner, so that labels of
        # dtypes with nearby ridges (7 on a GPU) can never overlap one another.
        data.append({"type": "scatter", "mode": "markers", "x": ridge_x, "y": ridge_y, "name": "ridge points",
                     "marker": {"symbol": "diamond", "size": 9, "color": "#333"}, "text": ridge_text,
                     "hovertemplate": "ridge %{text} FLOP/B<extra></extra>", "showlegend": False})
        annotations.append({"xref": "paper", "yref": "paper", "x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                            "showarrow": False, "align": "left", "font": {"size": 10}, "bgcolor": "rgba(255,255,255,0.8)",
                            "text": f"ridge ({spec.dram.name}, FLOP/B): " + ", ".join(ridge_text)})
    if len(df):
        share = df["share_pct"].astype(float).to_numpy()
        size = np.round(8 + 40 * np.sqrt(share / 100), 1)
        over = _above(df)
        hover = ("<b>%{customdata[0]}</b> (%{customdata[1]})<br>AI %{x:.3g} FLOP/B<br>"
                 "%{y:.3g} TFLOP/s<br>%{customdata[2]:.1f}% of time, headroom %{customdata[3]}x")
        for bound, grp in df[~over].groupby("bound"):
            data.append(_dots(grp, size, selected, hi, f"{bound}-bound ops", BOUND_COLORS.get(str(bound), "#999"),
                              "circle", hover + "<extra></extra>"))
        if over.any():
            grp = df[over]
            dot = _dots(grp, size, selected, hi, ABOVE_LEGEND, ABOVE_COLOR, ABOVE_SYMBOL,
                        hover + "<br><b>%{customdata[4]}</b><extra></extra>")
            dot["customdata"] = [[*cd, esc(above_text(r, spec))] for cd, r in zip(dot["customdata"],
                                                                                   grp.itertuples(index=False), strict=True)]
            data.append(dot)
    return {"data": data, "layout": {
        "xaxis": {"type": "log", "title": {"text": "arithmetic intensity (FLOP/byte)"}, "range": [np.log10(lo), np.log10(hi)]},
        "yaxis": {"type": "log", "title": {"text": "TFLOP/s"}}, "annotations": annotations, "hovermode": "closest",
        "margin": {"l": 60, "r": 10, "t": 10, "b": 60}, "height": 440, "clickmode": "event",
        "legend": {"font": {"size": 10}, "orientation": "h", "y": -0.3, "yanchor": "top"},
    }}
