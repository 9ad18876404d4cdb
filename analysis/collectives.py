"""Collectives of one rank: which device slices are communication, what kind, how many bytes.

A communication kernel (NCCL/RCCL: the ``comm`` slice class of :mod:`analysis.context.classes`)
says little by itself: Kineto names every NCCL collective of a ring ``ncclKernel_SendRecv_...``
or ``ncclDevKernel_AllReduce_...``.  What the collective was and how many bytes it moved live on
the host, on the ``nccl:all_reduce`` annotation (``Input Dims``/``Input type``) or, in newer
PyTorch, on ``record_param_comms`` (``Collective name``, ``In msg nelems``, ``dtype``,
``Group size``).  The kernel reaches them through its launch flow (correlation id) and the launch's
enclosing host slices, so each collective here carries:

``row`` (slice row), ``track``, ``stream`` (track name), ``name``, ``kind`` (all_reduce,
all_gather, reduce_scatter, all_to_all, broadcast, reduce, send_recv or unknown), ``ts``,
``end``, ``dur``, ``bytes`` (the per-rank message size as NCCL's own tests count it, NaN when
unknown) and ``group_size`` (ranks in the communicator when the trace says, else 0).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from analysis.context import COMM, AnalysisContext

#: Collective kinds, tried in order on the host annotation's name, then on the kernel's name.
KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("all_reduce", re.compile(r"all_?reduce", re.I)),
    ("reduce_scatter", re.compile(r"reduce_?scatter", re.I)),
    ("all_gather", re.compile(r"all_?gather", re.I)),
    ("all_to_all", re.compile(r"all_?to_?all", re.I)),
    ("broadcast", re.compile(r"broadcast|bcast", re.I)),
    ("reduce", re.compile(r"reduce", re.I)),
    ("send_recv", re.compile(r"send_?recv|\bsend\b|\brecv\b", re.I)),
)

#: Bus-bandwidth factor per kind for a communicator of n ranks: bus bandwidth = algorithm bandwidth
#: x factor, so a collective's speed compares with one link's peak whatever the rank count.
#: Source: NCCL tests, doc/PERFORMANCE.md ("Bus bandwidth"): all-reduce 2(n-1)/n, reduce-scatter,
#: all-gather and all-to-all (n-1)/n, broadcast, reduce and send/recv 1.
def bus_factor(kind: str, n: int) -> float:
    if n <= 1:
        return 1.0
    if kind == "all_reduce":
        return 2.0 * (n - 1) / n
    if kind in ("reduce_scatter", "all_gather", "all_to_all"):
        return (n - 1) / n
    return 1.0


_HOST_COMM = re.compile(r"^nccl:|^rccl:|^record_param_comms$|^c10d::", re.I)
_DTYPE_BYTES = {
    "float": 4, "float32": 4, "c10::float": 4, "double": 8, "float64": 8, "c10::half": 2, "half": 2, "float16": 2,
    "c10::bfloat16": 2, "bfloat16": 2, "bf16": 2, "fp16": 2, "fp32": 4, "int": 4, "int32": 4, "long int": 8,
    "int64": 8, "long": 8, "short": 2, "int16": 2, "signed char": 1, "unsigned char": 1, "char": 1, "int8": 1,
    "uint8": 1, "bool": 1, "c10::float8_e4m3fn": 1, "c10::float8_e5m2": 1,
}

COLUMNS = ["row", "track", "stream", "name", "kind", "ts", "end", "dur", "bytes", "group_size"]


def kind_of(*names: str | None) -> str:
    """The collective kind named by the first of ``names`` that names one ("unknown" otherwise)."""
    for n in names:
        if not n:
            continue
        for kind, pat in KIND_PATTERNS:
            if pat.search(n):
                return kind
    return "unknown"


def _numel(dims: object) -> int | None:
    if not isinstance(dims, list):
        return None
    n = 1
    for d in dims:
        if not isinstance(d, int | float):
            return None
        n *= int(d)
    return n


def message_bytes(host_name: str, args: dict[str, object], kind: str) -> tuple[float, int]:
    """(bytes, group size) of a collective from its host slice's args; (NaN, 0) when not recorded.

    Bytes follow NCCL tests' "size": the send buffer for all-reduce, reduce-scatter, all-to-all,
    broadcast and send/recv, the receive buffer for all-gather (its input times the group size).
    """
    group = args.get("Group size")
    gsize = int(group) if isinstance(group, int | float) else 0
    if "In msg nelems" in args:  # record_param_comms (PyTorch >= 2.1)
        dt = str(args.get("dtype", "")).lower()
        width = _DTYPE_BYTES.get(dt, _DTYPE_BYTES.get(dt.replace("c10::", ""), 0))
        n_in = args.get("In msg nelems")
        n_out = args.get("Out msg nelems", n_in)
        nel = n_out if kind == "all_gather" else n_in
        if isinstance(nel, int | float) and width:
            return float(nel) * width, gsize
        return float("nan"), gsize
    dims = args.get("Input Dims")
    types = args.get("Input type")
    if isinstance(dims, list) and dims and isinstance(types, list) and types:
        # nccl:* annotations record the first tensor the collective was called with (the buffer
        # it sends; for _all_gather_base the one tensor recorded is taken as the message).
        n = _numel(dims[0])
        width = _DTYPE_BYTES.get(str(types[0]).lower(), 0)
        if n is not None and width:
            return float(n) * width, gsize
    return float("nan"), gsize


def _host_slice_for(ctx: AnalysisContext, kernel_rows: np.ndarray) -> np.ndarray:
    """For each kernel, the row of the host slice that describes its collective (-1 when none).

    Follows the incoming flow (launch -> kernel) to the launching host slice, then walks up its
    enclosing slices to the nearest one named like a collective (``nccl:*``, ``record_param_comms``,
    ``c10d::*``).
    """
    out = np.full(kernel_rows.size, -1, dtype=np.int64)
    flows = ctx.trace.flows
    if flows.num_rows == 0 or kernel_rows.size == 0:
        return out
    src = flows["from_slice"].to_numpy()
    dst = flows["to_slice"].to_numpy()
    launch_of = dict(zip(dst.tolist(), src.tolist(), strict=True))
    names_code, words = ctx.cols.names
    host_like = np.array([bool(w) and bool(_HOST_COMM.search(w)) for w in words] + [False], dtype=bool)
    parent = ctx.parent
    for i, r in enumerate(kernel_rows.tolist()):
        cur = launch_of.get(r, -1)
        steps = 0
        while cur >= 0 and steps < 64:
            if host_like[names_code[cur]]:
                out[i] = cur  # the innermost one: it carries the sizes
                break
            cur = int(parent[cur])
            steps += 1
    return out


def collectives(ctx: AnalysisContext) -> pd.DataFrame:
    """One row per communication slice on a device engine (see the module docstring for columns)."""
    cls = ctx.slice_class
    rows = np.flatnonzero((cls == COMM) & (ctx.depth == 0))
    if rows.size == 0:
        return pd.DataFrame(columns=COLUMNS)
    names = ctx.names_of(ctx.name_code[rows])
    host = _host_slice_for(ctx, rows)
    host_names = np.array([None] * rows.size, dtype=object)
    has = host >= 0
    if has.any():
        host_names[has] = ctx.names_of(ctx.name_code[host[has]])
    kinds = [kind_of(h, n) for h, n in zip(host_names, names, strict=True)]
    nbytes = np.full(rows.size, np.nan)
    group = np.zeros(rows.size, dtype=np.int64)
    if has.any():
        raw = ctx.trace.slices["args"].take(host[has]).to_pylist()
        for i, text in zip(np.flatnonzero(has), raw, strict=True):
            try:
                args = json.loads(text) if text else {}
            except ValueError:
                args = {}
            if not isinstance(args, dict):
                args = {}
            nbytes[i], group[i] = message_bytes(str(host_names[i]), args, kinds[i])
    tracks = ctx.track[rows]
    return pd.DataFrame({
        "row": rows, "track": tracks, "stream": [ctx.track_names.get(int(t), str(t)) for t in tracks],
        "name": names, "kind": kinds, "ts": ctx.ts[rows], "end": ctx.end[rows], "dur": ctx.dur[rows],
        "bytes": nbytes, "group_size": group,
    }, columns=COLUMNS)
