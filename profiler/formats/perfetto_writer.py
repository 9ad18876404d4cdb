"""Perfetto protobuf export: the trace model as TrackEvent packets, encoded column-wise.

Layout of the file (one ``trusted_packet_sequence_id``, :data:`SEQUENCE_ID`):

1. A packet with ``first_packet_on_sequence``, ``SEQ_INCREMENTAL_STATE_CLEARED`` and all interned
   strings: event names, categories, debug-annotation names and dtype strings.  Every later packet
   says ``SEQ_NEEDS_INCREMENTAL_STATE`` so a reader drops it if that state were lost.
2. One metadata packet (``chrome_events.metadata``, name :data:`METADATA_NAME`) whose string value is
   JSON with what TrackDescriptors cannot hold: each track's kind, device and attrs, the trace's
   metadata, and the timestamp offset.  Trace processor files it in its ``metadata`` table; our
   reader uses it for a lossless round trip.
3. A TrackDescriptor per track (uuid = track id + 1; parent by ``parent_uuid``).  Parents say
   ``child_ordering = EXPLICIT`` and children carry ``sibling_order_rank = sort_index`` so the UI
   keeps our order (device -> core -> engine) instead of sorting names.  Tracks holding only
   counters get a CounterDescriptor; a track holding both slices and counters gets an extra
   counter child track (uuid :data:`COUNTER_CHILD_UUID_BASE` + id).
4. Events in timestamp order: SLICE_BEGIN/SLICE_END pairs, INSTANT, COUNTER.  At equal timestamps
   ends come before begins, inner ends before outer ends, and a zero-duration slice ends right
   after it begins, so a stack-based reader rebuilds the exact nesting.  Flows ride on the begin
   events (``flow_ids`` on the source, ``terminating_flow_ids`` on the destination; ids are ours
   + 1 because Perfetto ignores 0; a flow whose destination begins first is written the other way
   round, since Perfetto binds flows in event order, and listed in the metadata).  flops, bytes
   and dtype are debug annotations; other args one ``args`` annotation holding JSON
   (``legacy_json_value``, which trace processor expands into arguments).

Timestamps are our int64 nanoseconds written as ``TracePacket.timestamp`` in the default trace
clock (BOOTTIME); no clock snapshot is needed because there is only one clock.  Should a trace hold
negative times they are shifted to start at 0 and the shift is recorded in the metadata.

Speed: event packets are built by :mod:`profiler.formats.perfetto_proto` a group of equally
shaped packets at a time, never a Python loop per event.  Varints inside a packet may be padded
(non-minimal, which protobuf allows) so a group shares one layout; the top-level packet length is
always minimal so that readers can split the file without decoding packets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from profiler.columns import dict_codes
from profiler.formats import perfetto_proto as pp
from profiler.formats.perfetto_fields import (
    ANN_ARGS,
    ANN_BYTES,
    ANN_DTYPE,
    ANN_FLOPS,
    F_DA_DOUBLE,
    F_DA_JSON,
    F_DA_NAME_IID,
    F_DA_STRING_IID,
    F_PKT_SEQ_FLAGS,
    F_PKT_SEQ_ID,
    F_PKT_TIMESTAMP,
    F_PKT_TRACK_EVENT,
    F_TE_CATEGORY_IIDS,
    F_TE_DEBUG_ANNOTATIONS,
    F_TE_DOUBLE_COUNTER,
    F_TE_FLOW_IDS,
    F_TE_NAME_IID,
    F_TE_TERMINATING_FLOW_IDS,
    F_TE_TRACK_UUID,
    F_TE_TYPE,
    F_TRACE_PACKET,
    SEQ_INCREMENTAL_STATE_CLEARED,
    SEQ_NEEDS_INCREMENTAL_STATE,
    TYPE_COUNTER,
    TYPE_INSTANT,
    TYPE_SLICE_BEGIN,
    TYPE_SLICE_END,
)
from profiler.model import Trace

SEQUENCE_ID = 1
METADATA_NAME = "accel_profiler"
FORMAT_VERSION = 1
COUNTER_CHILD_UUID_BASE = 1 << 40
FLOW_ID_OFFSET = 1

def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """int64 dictionary codes (-1 for null) and words: interned ids are computed from them."""
    return dict_codes(col, np.int64)


ANNOTATION_NAMES = {ANN_FLOPS: "flops", ANN_BYTES: "bytes", ANN_DTYPE: "dtype", ANN_ARGS: "args"}


def _np(col: pa.ChunkedArray | pa.Array, dtype: Any = np.int64) -> np.ndarray:
    return np.asarray(col.to_numpy(), dtype=dtype) if len(col) else np.zeros(0, dtype=dtype)


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False).astype(np.float64) if len(col) else np.zeros(0)


def _strings(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid mask, utf-8 bytes, offsets) of a string column; nulls and "" count as absent."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = arr.cast(pa.large_string())
    n = len(arr)
    valid = np.zeros(n, dtype=bool)
    if n == 0:
        return valid, np.zeros(0, np.uint8), np.zeros(1, np.int64)
    lengths = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    valid = lengths > 0
    if not valid.any():
        return valid, np.zeros(0, np.uint8), np.zeros(n + 1, np.int64)
    filled = arr.fill_null("")
    bufs = filled.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int64)[filled.offset : filled.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8)
    base = int(offs[0])
    return valid, data[base : int(offs[-1])], offs - base


# ------------------------------------------------------------- event order
def _slice_event_order(track: np.ndarray, ts: np.ndarray, dur: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions of every begin and end in a per-track, depth-first event sequence.

    Slices are in canonical order (track, ts, longest first), which is a preorder of each track's
    nesting tree.  Before begin k come the ends of the slices that close there: the stack entries
    deeper than or as deep as slice k, deepest first.  Returns (begin_pos, end_pos) into a
    sequence of 2n events, or None when the slices do not nest (the caller then sorts).
    """
    n = ts.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = depth.astype(np.int64)
    first = np.empty(n, dtype=bool)
    first[0] = True
    first[1:] = track[1:] != track[:-1]
    # e[k]: ends emitted just before begin k (k == n: after the last slice).
    e = np.empty(n + 1, dtype=np.int64)
    e[0] = 0
    e[1:n] = np.where(first[1:], d[:-1] + 1, d[:-1] - d[1:] + 1)
    e[n] = d[-1] + 1
    if (e < 0).any():
        return None
    cum = np.cumsum(e)
    slot_end = np.arange(n + 1, dtype=np.int64) + cum  # position just after the ends of slot k
    begin_pos = slot_end[:n]
    # The slot where slice i ends: the first later slice of its track starting at or after its end.
    end = ts + dur
    slot = np.empty(n, dtype=np.int64)
    starts = np.flatnonzero(first)
    bounds = np.append(starts, n)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        slot[a:b] = a + np.searchsorted(ts[a:b], end[a:b], side="left")
    zero = dur == 0
    slot[zero] = np.arange(n, dtype=np.int64)[zero] + 1
    prev_depth = d[slot - 1]
    end_pos = slot_end[slot] - e[slot] + (prev_depth - d)
    order_ok = (slot > np.arange(n)) & (prev_depth >= d)
    if not order_ok.all():
        return None
    # Check the result: a permutation whose times never go back within a track.
    seq_ts = np.full(2 * n, -1, dtype=np.int64)
    seq_ts[begin_pos] = ts
    seq_ts[end_pos] = end
    seq_tr = np.empty(2 * n, dtype=np.int64)
    seq_tr[begin_pos] = track
    seq_tr[end_pos] = track
    if np.bincount(np.concatenate([begin_pos, end_pos]), minlength=2 * n).max() != 1:
        return None
    same = seq_tr[1:] == seq_tr[:-1]
    if (same & (seq_ts[1:] < seq_ts[:-1])).any():
        return None
    return begin_pos, end_pos


def _fallback_event_order(track: np.ndarray, ts: np.ndarray, dur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort-based event order for slices that do not nest cleanly (not produced by TraceBuilder)."""
    n = ts.size
    idx = np.arange(n, dtype=np.int64)
    ev_track = np.concatenate([track, track])
    ev_ts = np.concatenate([ts, ts + dur])
    # phase: ends of positive slices (0) before begins (1); a zero slice's end right after its begin.
    phase = np.concatenate([np.ones(n, np.int64), np.where(dur == 0, 1, 0)])
    sub = np.concatenate([2 * idx, np.where(dur == 0, 2 * idx + 1, -2 * idx)])
    order = np.lexsort((sub, phase, ev_ts, ev_track))
    pos = np.empty(2 * n, dtype=np.int64)
    pos[order] = np.arange(2 * n, dtype=np.int64)
    return pos[:n], pos[n:]


# --------------------------------------------------------------- packets
def _pkt_header(ts: np.ndarray | None) -> list[pp._Part]:
    parts: list[pp._Part] = []
    if ts is not None:
        parts += pp.varint(F_PKT_TIMESTAMP, ts)
    parts += pp.varint(F_PKT_SEQ_ID, SEQUENCE_ID)
    parts += pp.varint(F_PKT_SEQ_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE)
    return parts


def _packet(ts: np.ndarray, te_parts: list[pp._Part], tail: np.ndarray | None = None) -> list[pp._Part]:
    """A whole ``Trace.packet`` field, or, for packets with a variable tail, only its content.

    The top-level packet length is always written minimally (readers may split the file on it),
    so packets of varying size get their ``0x0a <length>`` prefix separately (:func:`_prefixes`).
    """
    te = pp.message(F_PKT_TRACK_EVENT, te_parts, tail=tail)
    if tail is not None:
        return _pkt_header(ts) + te
    return pp.message(F_TRACE_PACKET, _pkt_header(ts) + te)


def _prefixes(buf: np.ndarray, starts: np.ndarray, content_len: np.ndarray, prefix_len: np.ndarray) -> None:
    """Write ``0x0a`` and the minimal varint of each packet's length at ``starts``."""
    for k in np.unique(prefix_len).tolist():
        sel = prefix_len == k
        rec = np.empty((int(sel.sum()), k), dtype=np.uint8)
        rec[:, 0] = 0x0A
        pp.write_padded_varint(rec[:, 1:], content_len[sel], k - 1)
        pp.scatter_records(buf, starts[sel], rec)


def _flow_names(trace: Trace) -> dict[str, list[Any]] | None:
    """Flow names (Perfetto flows have none) as a small dictionary for the round trip."""
    names = trace.flows["name"]
    if not len(names) or names.null_count == len(names):
        return None
    enc = names.combine_chunks().dictionary_encode()
    valid = np.asarray(enc.is_valid().to_numpy(zero_copy_only=False))
    idx = enc.indices.to_numpy(zero_copy_only=False)
    ids = _np(trace.flows["id"])
    return {"names": enc.dictionary.to_pylist(), "ids": ids[valid].tolist(),
            "index": idx[valid].astype(np.int64).tolist()}


def _args_annotation(lens: np.ndarray) -> list[pp._Part]:
    """The ``args`` debug annotation: its JSON length is in the record, the JSON bytes are the tail."""
    da = pp.varint(F_DA_NAME_IID, ANN_ARGS) + [pp.const(pp.tag(F_DA_JSON, pp.LEN)),
                                               pp._Part("varint", values=lens, width=pp.varint_width(int(lens.max())))]
    return pp.message(F_TE_DEBUG_ANNOTATIONS, da, tail=lens)


def _header_packets(trace: Trace, interned: dict[str, list[tuple[int, str]]], track_info: dict[str, Any],
                    meta_json: str) -> bytes:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackDescriptor

    out = PbTrace()
    first = out.packet.add()
    first.trusted_packet_sequence_id = SEQUENCE_ID
    first.first_packet_on_sequence = True
    first.sequence_flags = SEQ_INCREMENTAL_STATE_CLEARED
    first.incremental_state_cleared = True
    idata = first.interned_data
    for iid, name in interned["event_names"]:
        e = idata.event_names.add()
        e.iid, e.name = iid, name
    for iid, name in interned["event_categories"]:
        c = idata.event_categories.add()
        c.iid, c.name = iid, name
    for iid, name in interned["debug_annotation_names"]:
        a = idata.debug_annotation_names.add()
        a.iid, a.name = iid, name
    for iid, name in interned["debug_annotation_string_values"]:
        s = idata.debug_annotation_string_values.add()
        s.iid, s.str = iid, name.encode()

    meta = out.packet.add()
    meta.trusted_packet_sequence_id = SEQUENCE_ID
    meta.sequence_flags = SEQ_NEEDS_INCREMENTAL_STATE
    md = meta.chrome_events.metadata.add()
    md.name = METADATA_NAME
    md.string_value = meta_json

    t = trace.tracks
    ids = t["id"].to_pylist()
    parents = t["parent"].to_pylist()
    names = t["name"].to_pylist()
    kinds = t["kind"].to_pylist()
    devices = t["device"].to_pylist()
    ranks = t["sort_index"].to_pylist()
    has_children = {p for p in parents if p is not None}
    counter_desc: set[int] = track_info["counter_descriptor"]
    counter_child: set[int] = track_info["counter_child"]
    for tid, parent, name, kind, device, rank in zip(ids, parents, names, kinds, devices, ranks, strict=True):
        p = out.packet.add()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        p.sequence_flags = SEQ_NEEDS_INCREMENTAL_STATE
        d = p.track_descriptor
        d.uuid = tid + 1
        if parent is not None:
            d.parent_uuid = parent + 1
        d.name = name
        d.description = f"{kind} track" + (f" on {device}" if device else "")
        d.sibling_order_rank = int(rank)
        if tid in has_children or tid in counter_child:
            d.child_ordering = TrackDescriptor.ChildTracksOrdering.EXPLICIT
        if tid in counter_desc:
            d.counter.SetInParent()
            unit = track_info["units"].get(tid)
            if unit:
                d.counter.unit_name = unit
    for tid in sorted(counter_child):
        p = out.packet.add()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        p.sequence_flags = SEQ_NEEDS_INCREMENTAL_STATE
        d = p.track_descriptor
        d.uuid = COUNTER_CHILD_UUID_BASE + tid
        d.parent_uuid = tid + 1
        d.name = names[ids.index(tid)] + " (counter)"
        d.sibling_order_rank = -1
        d.counter.SetInParent()
    return bytes(out.SerializeToString())


def encode_perfetto(trace: Trace) -> bytes:
    """The whole trace as Perfetto protobuf bytes (see the module docstring for the layout)."""
    return encode_perfetto_array(trace).tobytes()


def encode_perfetto_array(trace: Trace) -> np.ndarray:
    """Like :func:`encode_perfetto` but returns the uint8 buffer without copying it."""
    sl = trace.slices
    n = sl.num_rows
    s_track = _np(sl["track"])
    s_ts = _np(sl["ts"])
    s_dur = _np(sl["dur"])
    s_depth = _np(sl["depth"], np.int32)
    c_track = _np(trace.counters["track"])
    c_ts = _np(trace.counters["ts"])
    c_val = _floats(trace.counters["value"])
    i_track = _np(trace.instants["track"])
    i_ts = _np(trace.instants["ts"])

    lo = min([int(a.min()) for a in (s_ts, c_ts, i_ts) if a.size] or [0])
    ts_offset = -lo if lo < 0 else 0
    if ts_offset:
        s_ts, c_ts, i_ts = s_ts + ts_offset, c_ts + ts_offset, i_ts + ts_offset

    # ---- interning: iid = dictionary index + 1 (instants' names after the slices')
    s_name, name_dict = _codes(sl["name"])
    i_name, iname_dict = _codes(trace.instants["name"])
    s_cat, cat_dict = _codes(sl["category"])
    i_cat, icat_dict = _codes(trace.instants["category"])
    s_dtype, dtype_dict = _codes(sl["dtype"])
    n_names, n_cats = len(name_dict), len(cat_dict)
    interned = {
        "event_names": [(k + 1, str(v)) for k, v in enumerate(name_dict)]
        + [(n_names + k + 1, str(v)) for k, v in enumerate(iname_dict)],
        "event_categories": [(k + 1, str(v)) for k, v in enumerate(cat_dict) if v is not None]
        + [(n_cats + k + 1, str(v)) for k, v in enumerate(icat_dict) if v is not None],
        "debug_annotation_names": sorted(ANNOTATION_NAMES.items()),
        "debug_annotation_string_values": [(k + 1, str(v)) for k, v in enumerate(dtype_dict) if v is not None],
    }

    # ---- which tracks are counter tracks
    track_ids = _np(trace.tracks["id"])
    has_events = set(np.unique(s_track).tolist()) | set(np.unique(i_track).tolist())
    has_counters = set(np.unique(c_track).tolist())
    kinds = trace.tracks["kind"].to_pylist()
    attrs = trace.tracks["attrs"].to_pylist()
    counter_desc = {int(t) for t, k in zip(track_ids, kinds, strict=True)
                    if (k == "counter" or t in has_counters) and t not in has_events}
    counter_child = has_counters - counter_desc
    units: dict[int, str] = {}
    for t, a in zip(track_ids.tolist(), attrs, strict=True):
        if a:
            try:
                u = json.loads(a).get("unit")
            except (ValueError, AttributeError):
                u = None
            if u:
                units[t] = str(u)
    # ---- event order: per-track depth-first slices, then a stable merge of all runs by time
    order = _slice_event_order(s_track, s_ts, s_dur, s_depth)
    if order is None:
        order = _fallback_event_order(s_track, s_ts, s_dur)
    begin_pos, end_pos = order
    seq_ts = np.empty(2 * n, dtype=np.int64)
    seq_ts[begin_pos] = s_ts
    seq_ts[end_pos] = s_ts + s_dur
    nc, ni = c_ts.size, i_ts.size
    all_ts = np.concatenate([seq_ts, c_ts, i_ts])
    final = np.argsort(all_ts, kind="stable")
    rank = np.empty(final.size, dtype=np.int64)
    rank[final] = np.arange(final.size, dtype=np.int64)
    pos_begin = rank[begin_pos]
    pos_end = rank[end_pos]
    pos_counter = rank[2 * n : 2 * n + nc]
    pos_instant = rank[2 * n + nc :]

    # ---- groups of equally shaped packets: (event indices, final ranks, layout)
    groups: list[tuple[np.ndarray, list[pp._Part], np.ndarray | None, np.ndarray | None]] = []
    uuid = s_track + 1

    flops = _floats(sl["flops"])
    nbytes = _floats(sl["bytes"])
    has_flops = ~np.isnan(flops)
    has_bytes = ~np.isnan(nbytes)
    args_valid, args_data, args_offs = _strings(sl["args"])
    fl = trace.flows
    # Flow ids are written +1: Perfetto treats id 0 as "no flow".
    f_id = (_np(fl["id"]) + FLOW_ID_OFFSET).astype(np.uint64)
    f_from = _np(fl["from_slice"])
    f_to = _np(fl["to_slice"])
    # Perfetto binds a flow in event order: one whose destination begins first would be lost, so
    # it is written destination -> source and listed in the metadata for our reader to turn back.
    reversed_flow = pos_begin[f_to] < pos_begin[f_from] if f_from.size else np.zeros(0, dtype=bool)
    if reversed_flow.any():
        f_from, f_to = np.where(reversed_flow, f_to, f_from), np.where(reversed_flow, f_from, f_to)
    meta = {
        "version": FORMAT_VERSION,
        "ts_offset_ns": ts_offset,
        "flow_id_offset": FLOW_ID_OFFSET,
        "metadata": trace.metadata.to_dict(),
        "tracks": {
            str(t + 1): {"kind": k, "device": dv, "attrs": a}
            for t, k, dv, a in zip(track_ids.tolist(), kinds, trace.tracks["device"].to_pylist(), attrs, strict=True)
        },
        "counter_children": {str(COUNTER_CHILD_UUID_BASE + t): t + 1 for t in sorted(counter_child)},
        "flow_names": _flow_names(trace),
        "reversed_flows": _np(fl["id"])[reversed_flow].tolist(),
    }
    header = _header_packets(trace, interned, {"counter_descriptor": counter_desc, "counter_child": counter_child,
                                               "units": units}, json.dumps(meta, separators=(",", ":")))

    n_out = np.bincount(f_from, minlength=n) if n else np.zeros(0, np.int64)
    n_in = np.bincount(f_to, minlength=n) if n else np.zeros(0, np.int64)
    out_order = np.argsort(f_from, kind="stable")
    in_order = np.argsort(f_to, kind="stable")
    out_start = np.concatenate(([0], np.cumsum(n_out)[:-1])) if n else n_out
    in_start = np.concatenate(([0], np.cumsum(n_in)[:-1])) if n else n_in

    if n:
        # Shape of each begin packet: which optional fields it has.  The common shapes (no
        # flows) have small codes and are grouped with a radix sort; the few slices with flows
        # are grouped by their (out, in) flow counts.
        base = (
            (s_cat >= 0).astype(np.int16)
            | (has_flops.astype(np.int16) << 1)
            | (has_bytes.astype(np.int16) << 2)
            | ((s_dtype >= 0).astype(np.int16) << 3)
            | (args_valid.astype(np.int16) << 4)
        )
        flowing = (n_out > 0) | (n_in > 0)
        base[flowing] |= 1 << 5
        members = np.argsort(base, kind="stable")
        counts = np.bincount(base, minlength=64)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        group_rows: list[tuple[int, np.ndarray]] = []
        for code in np.flatnonzero(counts[:32]).tolist():
            group_rows.append((code, members[bounds[code] : bounds[code + 1]]))
        frows = np.flatnonzero(flowing)
        if frows.size:
            fcode = (base[frows].astype(np.int64) & 31) | (n_out[frows] << 5) | (n_in[frows] << 34)
            fshapes, finv = np.unique(fcode, return_inverse=True)
            forder = np.argsort(finv, kind="stable")
            fb = np.concatenate(([0], np.cumsum(np.bincount(finv, minlength=fshapes.size))))
            for g, code in enumerate(fshapes.tolist()):
                group_rows.append((code, frows[forder[fb[g] : fb[g + 1]]]))
        for code, rows in group_rows:
            te: list[pp._Part] = []
            te += pp.varint(F_TE_TYPE, TYPE_SLICE_BEGIN)
            te += pp.varint(F_TE_TRACK_UUID, uuid[rows])
            te += pp.varint(F_TE_NAME_IID, s_name[rows] + 1)
            if code & 1:
                te += pp.varint(F_TE_CATEGORY_IIDS, s_cat[rows] + 1)
            if code & 2:
                te += pp.message(F_TE_DEBUG_ANNOTATIONS, pp.varint(F_DA_NAME_IID, ANN_FLOPS) + pp.fixed64(F_DA_DOUBLE, flops[rows]))
            if code & 4:
                te += pp.message(F_TE_DEBUG_ANNOTATIONS, pp.varint(F_DA_NAME_IID, ANN_BYTES) + pp.fixed64(F_DA_DOUBLE, nbytes[rows]))
            if code & 8:
                te += pp.message(F_TE_DEBUG_ANNOTATIONS, pp.varint(F_DA_NAME_IID, ANN_DTYPE) + pp.varint(F_DA_STRING_IID, s_dtype[rows] + 1))
            for j in range((code >> 5) & ((1 << 29) - 1)):
                te += pp.fixed64(F_TE_FLOW_IDS, f_id[out_order[out_start[rows] + j]])
            for j in range(code >> 34):
                te += pp.fixed64(F_TE_TERMINATING_FLOW_IDS, f_id[in_order[in_start[rows] + j]])
            tail = None
            if code & 16:
                lens = args_offs[rows + 1] - args_offs[rows]
                te += _args_annotation(lens)
                tail = lens
            groups.append((pos_begin[rows], _packet(s_ts[rows], te, tail=tail), tail, rows if tail is not None else None))
        te_end = pp.varint(F_TE_TYPE, TYPE_SLICE_END) + pp.varint(F_TE_TRACK_UUID, uuid)
        groups.append((pos_end, _packet(s_ts + s_dur, te_end), None, None))

    if nc:
        cu = np.where(np.isin(c_track, list(counter_child)), COUNTER_CHILD_UUID_BASE + c_track, c_track + 1)
        te = pp.varint(F_TE_TYPE, TYPE_COUNTER) + pp.varint(F_TE_TRACK_UUID, cu) + pp.fixed64(F_TE_DOUBLE_COUNTER, c_val)
        groups.append((pos_counter, _packet(c_ts, te), None, None))

    inst_tail_src: tuple[np.ndarray, np.ndarray] | None = None
    if ni:
        ia_valid, ia_data, ia_offs = _strings(trace.instants["args"])
        inst_tail_src = (ia_data, ia_offs)
        ishape = (i_cat >= 0).astype(np.int64) | (ia_valid.astype(np.int64) << 1)
        for code in np.unique(ishape).tolist():
            rows = np.flatnonzero(ishape == code)
            te = pp.varint(F_TE_TYPE, TYPE_INSTANT) + pp.varint(F_TE_TRACK_UUID, i_track[rows] + 1)
            te += pp.varint(F_TE_NAME_IID, n_names + i_name[rows] + 1)
            if code & 1:
                te += pp.varint(F_TE_CATEGORY_IIDS, n_cats + i_cat[rows] + 1)
            tail = None
            if code & 2:
                lens = ia_offs[rows + 1] - ia_offs[rows]
                te += _args_annotation(lens)
                tail = lens
            groups.append((pos_instant[rows], _packet(i_ts[rows], te, tail=tail), tail, -1 - rows if tail is not None else None))

    # ---- sizes, offsets, scatter
    n_events = final.size
    records = []
    sizes = np.zeros(n_events, dtype=np.int64)
    prefix: list[tuple[np.ndarray, np.ndarray] | None] = []
    for positions, parts, tail, _rows in groups:
        rec = pp.build_records(parts, positions.size)
        records.append(rec)
        if tail is None:
            sizes[positions] = rec.shape[1]
            prefix.append(None)
        else:
            content = rec.shape[1] + tail
            plen = 1 + pp.varint_sizes(content)
            sizes[positions] = plen + content
            prefix.append((content, plen))
    offsets = np.empty(n_events + 1, dtype=np.int64)
    offsets[0] = len(header)
    np.cumsum(sizes, out=offsets[1:])
    offsets[1:] += len(header)
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    buf[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    for (positions, _parts, tail, tail_rows), rec, pre in zip(groups, records, prefix, strict=True):
        starts = offsets[positions]
        if pre is not None:
            _prefixes(buf, starts, pre[0], pre[1])
            starts = starts + pre[1]
        pp.scatter_records(buf, starts, rec)
        if tail is not None and tail_rows is not None:
            if tail_rows.size and tail_rows[0] < 0:
                assert inst_tail_src is not None
                data, offs = inst_tail_src
                r = -1 - tail_rows
            else:
                data, offs, r = args_data, args_offs, tail_rows
            pp.copy_ranges(buf, starts + rec.shape[1], data, offs[r], offs[r + 1] - offs[r])
    return buf


def write_perfetto(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` as a Perfetto protobuf file (open it at ui.perfetto.dev)."""
    data = encode_perfetto_array(trace)
    with open(path, "wb") as f:
        data.tofile(f)
