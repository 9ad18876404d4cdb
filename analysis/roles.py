"""Track roles: what each track *is* (a compute engine, a DMA queue, a host thread, ...).

Analyzers reason about engines, not track names.  A track's attrs ``role`` wins when an importer
set it; our own collectors set ``kind`` precisely, but
foreign traces (Kineto, Chrome JSON) arrive with generic tracks, so the role is inferred from the
kind first, then the track's attrs and name, then what it holds:

* a Kineto GPU stream (attrs ``stream`` or a name like "stream 7") is ``compute``; a stream that
  only copies or sets memory (memcpy/memset) is ``dma``;
* a thread of a process named like a device (Kineto's "GPU 0", "MTIA 17", TPU-style
  "/device:TPU:0", see :data:`profiler.formats.kineto.DEVICE_PROCESS`) is device work: ``dma`` when
  it only copies, else ``compute``, never ``host``;
* a CPU thread (attrs ``tid``/``thread``, names like "thread 12" or "python") is ``host``;
* a track with counter samples and no slices is ``counter``; one with only child tracks is ``group``.

A lane track the builder split off for overlapping slices (attrs ``lane_of``) belongs to the same
engine as its origin: :func:`engine_of` maps it back.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.compute as pc

from profiler.engine_names import is_dma_engine_name
from profiler.formats.kineto import DEVICE_PROCESS
from profiler.model import Trace

ROLES = ("compute", "dma", "host", "memory", "counter", "group", "other")

_COMPUTE_NAME = re.compile(r"stream|\bgpu\b|kernel|\bsm\b|mxu|tensor core|\bnpu\b|\bcore\b|vector|matrix", re.I)
_HOST_NAME = re.compile(r"thread|\bcpu\b|python|\btid\b|main|host|worker|pt_", re.I)
_NOT_WORK = re.compile(r"sync|annotation|^trace$|^overhead$|marker|^event", re.I)
_DMA_SLICE = re.compile(r"^(memcpy|memset)|gpu_memcpy|gpu_memset|\bdma\b", re.I)


def _attrs(raw: str | None) -> dict[str, object]:
    if not raw:
        return {}
    try:
        v = json.loads(raw)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def infer_roles(trace: Trace) -> np.ndarray:
    """Role of every track, as an object array indexed by track id (ids are dense from 0)."""
    tracks = trace.tracks
    n = tracks.num_rows
    ids = tracks["id"].to_numpy()
    size = int(ids.max()) + 1 if n else 0
    roles = np.full(size, "other", dtype=object)
    if n == 0:
        return roles
    kinds = tracks["kind"].to_pylist()
    names = tracks["name"].to_pylist()
    attrs = [_attrs(a) for a in tracks["attrs"].to_pylist()]
    parents = tracks["parent"].to_pylist()

    slice_count = np.bincount(trace.slices["track"].to_numpy(), minlength=size) if trace.slices.num_rows else np.zeros(size, int)
    counter_count = np.bincount(trace.counters["track"].to_numpy(), minlength=size) if trace.counters.num_rows else np.zeros(size, int)
    has_child = np.zeros(size, dtype=bool)
    for p in parents:
        if p is not None and 0 <= p < size:
            has_child[p] = True
    on_device = _under_device_process(ids, names, parents, attrs, size)
    dma_share = _slice_share(trace, size, _DMA_SLICE)
    not_work = _slice_share(trace, size, _NOT_WORK, columns=("category",))

    for k in range(n):
        tid = int(ids[k])
        kind, name, at = kinds[k], names[k] or "", attrs[k]
        if at.get("role") in ROLES:
            role = str(at["role"])  # the importer knew (Kineto: a device's markers and annotations)
        elif kind in ROLES and kind != "other":
            role = kind
            # A GPU stream that only ever copies memory is a copy queue, whatever the importer said.
            if role == "compute" and slice_count[tid] and dma_share[tid] >= 0.999:
                role = "dma"
        elif slice_count[tid] and not_work[tid] >= 0.999:
            role = "other"  # sync markers and annotations: labels over the work, not work
        elif slice_count[tid] == 0 and counter_count[tid] > 0:
            role = "counter"
        elif slice_count[tid] == 0 and has_child[tid]:
            role = "group"
        elif "stream" in at or _COMPUTE_NAME.search(name) and not _HOST_NAME.search(name):
            role = "dma" if (slice_count[tid] and dma_share[tid] >= 0.999) or is_dma_engine_name(name) else "compute"
        elif is_dma_engine_name(name) or at.get("engine") == "dma":
            role = "dma"
        elif on_device[tid]:
            role = "dma" if slice_count[tid] and dma_share[tid] >= 0.999 else "compute"
        elif "tid" in at or "thread" in at or _HOST_NAME.search(name):
            role = "host"
        elif slice_count[tid] and dma_share[tid] >= 0.999:
            role = "dma"
        else:
            role = "host" if slice_count[tid] else "other"
        roles[tid] = role
    return roles


def _under_device_process(ids: np.ndarray, names: list[str | None], parents: list[int | None],
                          attrs: list[dict[str, object]], size: int) -> np.ndarray:
    """Which tracks sit under a root group named (or labelled) like a device."""
    parent = np.full(size, -1, dtype=np.int64)
    is_dev = np.zeros(size, dtype=bool)
    for k, tid in enumerate(ids.tolist()):
        p = parents[k]
        parent[tid] = p if p is not None and 0 <= p < size else -1
        if p is None:
            labels = attrs[k].get("labels")
            is_dev[tid] = bool(DEVICE_PROCESS.search(names[k] or "") or
                               (isinstance(labels, str) and DEVICE_PROCESS.search(labels)))
    root = np.where(parent >= 0, parent, np.arange(size))
    for _ in range(8):
        up = parent[root]
        root = np.where(up >= 0, up, root)
    return is_dev[root] & (parent >= 0)


def _slice_share(trace: Trace, size: int, pattern: re.Pattern[str], columns: tuple[str, ...] = ("name", "category")
                 ) -> np.ndarray:
    """Fraction of each track's slices whose name or category matches ``pattern``."""
    s = trace.slices
    if s.num_rows == 0:
        return np.zeros(size)
    is_dma = np.zeros(s.num_rows, dtype=bool)
    for col in columns:
        arr = s[col].unify_dictionaries().combine_chunks() if s[col].num_chunks != 1 else s[col].chunk(0)
        words = arr.dictionary.to_pylist()
        hit = np.array([bool(w and pattern.search(w)) for w in words] + [False], dtype=bool)
        idx = pc.fill_null(arr.indices, len(words)).to_numpy()
        is_dma |= hit[idx]
    tr = s["track"].to_numpy()
    tot = np.bincount(tr, minlength=size).astype(float)
    dma = np.bincount(tr, weights=is_dma, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, dma / np.maximum(tot, 1), 0.0)


def engine_of(trace: Trace) -> np.ndarray:
    """Track id -> engine id: a lane track maps to the track it was split from, others to themselves."""
    n = trace.tracks.num_rows
    ids = trace.tracks["id"].to_numpy()
    size = int(ids.max()) + 1 if n else 0
    out = np.arange(size, dtype=np.int64)
    for k, raw in enumerate(trace.tracks["attrs"].to_pylist()):
        if raw and "lane_of" in raw:
            lane_of = _attrs(raw).get("lane_of")
            if isinstance(lane_of, int) and 0 <= lane_of < size:
                out[int(ids[k])] = lane_of
    # Lanes of lanes resolve to the root.
    for _ in range(4):
        out = out[out]
    return out


def is_dma_slice_name(words: list[str | None]) -> np.ndarray:
    """Which dictionary words (slice names or categories) denote a memory copy or set."""
    return np.array([bool(w and _DMA_SLICE.search(w)) for w in words], dtype=bool)
