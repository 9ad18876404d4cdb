"""Fill FLOPs and bytes into an imported Kineto trace from the recorded shapes.

The Kineto reader already applies torch's own formulas to the ops torch counts (mm, addmm, bmm,
conv2d, add, mul) and estimates the bytes an op *reads*.  Here every other op the table in
:mod:`collectors.pytorch.flops` knows gets FLOPs, and bytes become reads + writes.  FLOPs go to
one level of each op stack only: an op gets an estimate when neither an enclosing op nor an op
inside it has FLOPs already (``aten::linear`` is left alone when its ``aten::addmm`` child has
them; ``aten::layer_norm`` takes them and ``aten::native_layer_norm`` below it does not), so a
sum over all slices counts each piece of arithmetic once.  GPU kernels, copies, runtime calls and
the flows between them are not touched.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

from collectors.pytorch.flops import TABLE, estimate, op_key
from profiler.model import Trace


def _parents(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(parent row, depth) of every slice, as the trace model stores them."""
    return trace.slice_parents(), trace.slices["depth"].to_numpy().astype(np.int64)


def enrich(trace: Trace) -> Trace:
    """A copy of ``trace`` with estimated FLOPs/bytes for known aten ops (see the module docstring)."""
    s = trace.slices
    if not s.num_rows:
        return trace
    names = s["name"].combine_chunks() if isinstance(s["name"], pa.ChunkedArray) else s["name"]
    dictionary = names.dictionary.to_pylist()
    known = np.array([op_key(str(n)) in TABLE and "::" in str(n) for n in dictionary], dtype=bool)
    idx = names.indices.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(known[idx]) if known.any() else np.zeros(0, dtype=np.int64)
    if not rows.size:
        return trace
    flops = s["flops"].to_numpy(zero_copy_only=False).astype(np.float64)
    nbytes = s["bytes"].to_numpy(zero_copy_only=False).astype(np.float64)
    args = s["args"].to_pylist()
    est_f = np.full(s.num_rows, np.nan)
    for r in rows.tolist():
        a = args[r]
        if not a:
            continue
        try:
            d = json.loads(a)
        except ValueError:
            continue
        f, b = estimate(dictionary[idx[r]], d.get("Input Dims"), d.get("Input type"), d.get("Concrete Inputs"))
        if f is not None:
            est_f[r] = f
        if b is not None and not math.isnan(b):
            nbytes[r] = b

    parent, depth = _parents(trace)
    has = ~np.isnan(flops)
    # Does any op inside a slice already have FLOPs?  Propagate from the deepest level up.
    inside = np.zeros(s.num_rows, dtype=bool)
    for lvl in range(int(depth.max()), 0, -1):
        at = np.flatnonzero((depth == lvl) & (parent >= 0))
        np.logical_or.at(inside, parent[at], has[at] | inside[at])
    # Walk down: a slice takes its estimate when no enclosing slice has FLOPs (given or taken).
    taken = has.copy()
    above = np.zeros(s.num_rows, dtype=bool)
    filled = 0
    for lvl in range(int(depth.max()) + 1):
        at = np.flatnonzero(depth == lvl)
        p = parent[at]
        ok = p >= 0
        above[at[ok]] = above[p[ok]] | taken[p[ok]]
        want = at[~has[at] & ~np.isnan(est_f[at]) & ~above[at] & ~inside[at]]
        flops[want] = est_f[want]
        taken[want] = True
        filled += int(want.size)

    out = s.set_column(s.schema.get_field_index("flops"), "flops", pa.array(flops, mask=np.isnan(flops)))
    out = out.set_column(out.schema.get_field_index("bytes"), "bytes", pa.array(nbytes, mask=np.isnan(nbytes)))
    t = Trace(trace.tracks, out, trace.counters, trace.instants, trace.flows, trace.metadata)
    t.metadata.extra["flops_estimated_by_collector"] = filled
    t.metadata.extra["bytes_reads_plus_writes"] = True
    return t
