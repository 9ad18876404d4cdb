"""Device operations with their stream and their launch: what the HTA-style analyzers share.

HolisticTraceAnalysis reasons about "GPU kernels": device slices with a CUDA stream and the runtime
call that launched them (joined by correlation id).  Here the same facts come from the trace model,
for any accelerator:

* a device op is a top-level compute, communication or copy slice on a device engine;
* its stream is the engine's ``stream`` attr under its device (Kineto puts a stream's kernels and
  its copies on two tracks: one stream), or the engine itself when the importer gave no stream;
* its launch is the host slice its incoming flow comes from (the latest-ending one; -1 if none).

Ops are returned sorted by (stream, start), so per-stream questions are slices of one array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.context import COMM, COMPUTE, DMA, AnalysisContext

_WORK = (COMPUTE, COMM, DMA)


@dataclass
class DeviceOps:
    """Device ops sorted by (stream, ts); every array has one entry per op."""

    rows: np.ndarray  # slice rows
    stream: np.ndarray  # stream code (index into names)
    names: list[str]  # "GPU 0 / stream 7"
    device: np.ndarray  # unit code of the op (index into ctx.devices)
    launch: np.ndarray  # row of the launching host slice, -1 when none

    @property
    def bounds(self) -> np.ndarray:
        """Ops of stream k are rows bounds[k]:bounds[k+1] of the arrays."""
        return np.searchsorted(self.stream, np.arange(len(self.names) + 1))


def stream_labels(codes: np.ndarray, names: list[str]) -> pd.Categorical | np.ndarray:
    """Stream names for stream codes: a categorical (no string object per row) when names are distinct."""
    if len(set(names)) == len(names):
        return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))
    return np.array(names, dtype=object)[codes]


def slices_of_roles(ctx: AnalysisContext, roles: tuple[str, ...], rows: np.ndarray | None = None) -> np.ndarray:
    """Per slice (or per given row): does its engine have one of ``roles``?  A per-track lookup,
    not a string compare per slice."""
    per_track = np.isin(ctx.roles, roles)[ctx.engine] if len(ctx.roles) else np.zeros(0, dtype=bool)
    tr = ctx.track if rows is None else ctx.track[rows]
    return per_track[tr] if tr.size else np.zeros(0, dtype=bool)


def _stream_keys(ctx: AnalysisContext) -> tuple[np.ndarray, list[str]]:
    """Per track id: stream code and stream names (device path + stream)."""
    tr = ctx.trace.tracks
    ids = tr["id"].to_pylist()
    attrs = tr["attrs"].to_pylist()
    size = len(ctx.roles)
    engine = ctx.engine
    unit_code = ctx.units.track_unit[0]
    key_of: dict[tuple[int, object], int] = {}
    names: list[str] = []
    code = np.full(size, -1, dtype=np.int64)
    stream_attr: dict[int, object] = {}
    for tid, a in zip(ids, attrs, strict=True):
        if a and '"stream"' in a:
            try:
                stream_attr[tid] = json.loads(a).get("stream")
            except ValueError:
                pass
    for tid in ids:
        e = int(engine[tid])
        s = stream_attr.get(e)
        u = int(unit_code[tid])
        key = (u, s) if s is not None else (u, f"engine {e}")
        k = key_of.get(key)
        if k is None:
            k = key_of[key] = len(names)
            dev = ctx.devices[u] if u < len(ctx.devices) else ""
            names.append(f"{dev} / stream {s}" if s is not None else ctx.track_names.get(e, str(e)))
        code[tid] = k
    return code, names


def device_ops(ctx: AnalysisContext, keep: np.ndarray | None = None) -> DeviceOps:
    """The trace's device ops (optionally only rows where ``keep`` is True)."""
    cache = ctx.__dict__.setdefault("_device_ops_cache", {})
    key = None if keep is None else id(keep)
    if key in cache and (keep is None or cache[key][0] is keep):
        return cache[key][1]
    on_device = slices_of_roles(ctx, ("compute", "dma"))
    if ctx.host_as_compute:
        on_device &= False  # a CPU-only trace has no device ops
    m = on_device & ctx.class_mask(_WORK) & (ctx.depth == 0)
    if keep is not None:
        m &= keep
    rows = np.flatnonzero(m)
    code, names = _stream_keys(ctx)
    stream = code[ctx.track[rows]]
    order = np.lexsort((ctx.ts[rows], stream))
    rows, stream = rows[order], stream[order]
    src = ctx.gating_source[rows] if rows.size else np.zeros(0, dtype=np.int64)
    ok = src >= 0
    host_src = np.zeros(rows.size, dtype=bool)
    host_src[ok] = slices_of_roles(ctx, ("host",), src[ok])
    launch = np.where(host_src, src, -1)
    ops = DeviceOps(rows=rows, stream=stream, names=names, device=ctx.slice_device[rows], launch=launch)
    cache[key] = (keep, ops)
    return ops
