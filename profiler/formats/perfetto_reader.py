"""Perfetto protobuf import: TrackEvent traces (ours and other producers') into the trace model.

Packets are decoded with the official generated protos of the ``perfetto`` package.  What is read:

* TrackDescriptors (uuid / parent_uuid, name, process and thread descriptors, counter tracks,
  ``sibling_order_rank``), and the legacy ProcessDescriptor/ThreadDescriptor packets;
* per-sequence incremental state: interned event names, categories, debug-annotation names and
  string values, cleared by ``SEQ_INCREMENTAL_STATE_CLEARED``; packets that need state the
  sequence lost are dropped and counted; ``trace_packet_defaults`` give default track uuids;
* TrackEvents: SLICE_BEGIN/SLICE_END paired per track in timestamp order (unmatched ones are
  dropped and counted), INSTANT, COUNTER (and extra counter values), flows (``flow_ids`` /
  ``terminating_flow_ids``), debug annotations -> flops / bytes / dtype, the rest -> args.

Files written by :mod:`profiler.formats.perfetto_writer` carry a metadata packet (track kinds,
devices, attrs, trace metadata, the timestamp shift); with it the round trip is lossless.  Their
events are decoded column-wise by :mod:`profiler.formats.perfetto_fast` (about 10x faster); any
file that path does not fully understand goes packet by packet instead.

Damage: a file cut short keeps every complete packet before the cut and counts the rest as
``truncated_packet``; a packet that does not decode is dropped (``corrupt_packet``).  Only when
nothing at all is usable does reading fail, with the byte offset of the damage.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profiler.builder import TraceBuilder
from profiler.errors import TraceFormatError
from profiler.formats.perfetto_fast import FastEvents
from profiler.formats.source import read_bytes
from profiler.model import ImportStats, Trace, TraceMetadata, args_json
from profiler.schema import TRACK_KINDS

TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT, TYPE_COUNTER = 1, 2, 3, 4
SEQ_INCREMENTAL_STATE_CLEARED, SEQ_NEEDS_INCREMENTAL_STATE = 1, 2
METADATA_NAME = "accel_profiler"


# ------------------------------------------------------------ packet split
def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    result = shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            return None
    return None


def split_packets(data: bytes) -> tuple[list[tuple[int, int]], int | None, str | None]:
    """(start, end) of every complete ``Trace.packet`` field, and where/why the rest is unusable.

    Fields other than ``packet`` at the top level are skipped as the protobuf rules allow.
    """
    out: list[tuple[int, int]] = []
    pos, n = 0, len(data)
    while pos < n:
        key = _read_varint(data, pos, n)
        if key is None:
            return out, pos, "cut inside a field key"
        k, p = key
        wire = k & 7
        if wire == 2:
            ln = _read_varint(data, p, n)
            if ln is None:
                return out, pos, "cut inside a packet length"
            length, p = ln
            if p + length > n:
                return out, pos, f"packet of {length} bytes runs past the end of the file"
            if k >> 3 == 1:
                out.append((p, p + length))
            pos = p + length
        elif wire == 0:
            v = _read_varint(data, p, n)
            if v is None:
                return out, pos, "cut inside a varint"
            pos = v[1]
        elif wire == 1:
            pos = p + 8
        elif wire == 5:
            pos = p + 4
        else:
            return out, pos, f"invalid wire type {wire}"
        if pos > n:
            return out, pos, "cut inside a fixed-size field"
    return out, None, None


# ------------------------------------------------------------------ state
@dataclass
class _SeqState:
    valid: bool = False
    names: dict[int, str] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)
    ann_names: dict[int, str] = field(default_factory=dict)
    ann_strings: dict[int, str] = field(default_factory=dict)
    default_track: int | None = None

    def clear(self) -> None:
        self.valid = True
        self.names.clear()
        self.categories.clear()
        self.ann_names.clear()
        self.ann_strings.clear()
        self.default_track = None


@dataclass
class _TrackDesc:
    uuid: int
    parent: int | None = None
    name: str | None = None
    rank: int | None = None
    counter: bool = False
    unit: str | None = None
    pid: int | None = None
    tid: int | None = None
    is_process: bool = False
    is_thread: bool = False
    order: int = 0


class _Events:
    """Column lists of the events read, before pairing and track creation."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.track: list[int] = []
        self.ts: list[int] = []
        self.name: list[str | None] = []
        self.category: list[str | None] = []
        self.flops: list[float | None] = []
        self.bytes: list[float | None] = []
        self.dtype: list[str | None] = []
        self.args: list[str | None] = []
        self.flows_out: dict[int, list[int]] = {}
        self.flows_in: dict[int, list[int]] = {}
        self.value: list[float] = []

    def add(self, kind: int, track: int, ts: int, name: str | None = None, category: str | None = None,
            ann: tuple[float | None, float | None, str | None, str | None] = (None, None, None, None),
            value: float = 0.0) -> int:
        i = len(self.kind)
        self.kind.append(kind)
        self.track.append(track)
        self.ts.append(ts)
        self.name.append(name)
        self.category.append(category)
        self.flops.append(ann[0])
        self.bytes.append(ann[1])
        self.dtype.append(ann[2])
        self.args.append(ann[3])
        self.value.append(value)
        return i


def _annotation_value(a: Any, st: _SeqState, stats: ImportStats | None = None) -> Any:
    which = a.WhichOneof("value")
    if which is None:
        if len(a.dict_entries):
            return {(e.name or st.ann_names.get(e.name_iid, str(e.name_iid))): _annotation_value(e, st, stats)
                    for e in a.dict_entries}
        if len(a.array_values):
            return [_annotation_value(e, st, stats) for e in a.array_values]
        return None
    if which == "string_value_iid":
        v = st.ann_strings.get(a.string_value_iid)
        if v is None and stats is not None:  # kept as null, and counted
            stats.repair("annotation_string_not_interned")
        return v
    if which == "legacy_json_value":
        try:
            return json.loads(a.legacy_json_value)
        except ValueError:
            return a.legacy_json_value
    if which == "nested_value":
        return str(a.nested_value)
    if which == "proto_value":
        return a.proto_value.hex()
    return getattr(a, which)


def _annotations(te: Any, st: _SeqState, stats: ImportStats | None = None) -> tuple[float | None, float | None, str | None, str | None]:
    """(flops, bytes, dtype, args JSON) from a TrackEvent's debug annotations."""
    flops = nbytes = None
    dtype = None
    args: dict[str, Any] = {}
    raw_args: str | None = None
    for a in te.debug_annotations:
        name = a.name if a.HasField("name") else st.ann_names.get(a.name_iid)
        if name is None:  # the interned name is missing: kept under a made-up name, and counted
            name = f"arg{a.name_iid}"
            if stats is not None:
                stats.repair("annotation_name_not_interned")
        if name == "args" and a.HasField("legacy_json_value"):
            raw_args = a.legacy_json_value
            try:
                parsed = json.loads(raw_args)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                args.update(parsed)
                continue
        v = _annotation_value(a, st, stats)
        if name in ("flops", "bytes") and isinstance(v, (int, float)) and not isinstance(v, bool):
            if name == "flops":
                flops = float(v)
            else:
                nbytes = float(v)
        elif name == "dtype" and isinstance(v, str):
            dtype = v
        else:
            args[name] = v
            raw_args = None
    if raw_args is not None and len(args):
        # Keep the writer's JSON verbatim when it is the only source of args.
        try:
            if json.loads(raw_args) == args:
                return flops, nbytes, dtype, raw_args
        except ValueError:
            pass
    return flops, nbytes, dtype, args_json(args) if args else None


# ----------------------------------------------------------------- reader
def read_perfetto(path: str | Path) -> Trace:
    """Read a Perfetto protobuf trace (TrackEvent packets) into a :class:`Trace`."""
    from google.protobuf.message import DecodeError
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace as PbTrace
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TracePacket

    p = str(path)
    data, gz_problem = read_bytes(path)
    stats = ImportStats()
    if gz_problem:
        stats.drop("gzip_stream_damaged")
    if not data:
        raise TraceFormatError(p, "empty file", where="byte 0")

    from profiler.formats.perfetto_fast import decode_ours

    # Our own files: column-wise decoding; anything else (or anything odd): packet by packet.
    fast = decode_ours(data)
    if fast is None and b"accel_profiler" in data[: 1 << 20]:
        # One of ours cut short: decode the complete packets column-wise all the same.
        spans, bad_at, _why = split_packets(data)
        if bad_at is not None and spans:
            fast = decode_ours(data[: spans[-1][1]])
            if fast is not None:
                stats.drop("truncated_packet")
    if fast is not None:
        saved = ImportStats.from_dict(stats.to_dict())
        try:
            return _decode_packets([TracePacket.FromString(h) for h in fast.header], p, stats, fast)
        except (_FastPathDeclined, DecodeError):
            stats = saved
            stats.dropped.pop("truncated_packet", None)

    packets: Any
    try:
        packets = PbTrace.FromString(data).packet
    except DecodeError:
        spans, bad_at, why = split_packets(data)
        if bad_at is not None:
            stats.drop("truncated_packet")
        if not spans:
            raise TraceFormatError(p, "not a readable Perfetto trace", why or "no complete packet", where=f"byte {bad_at or 0}") from None
        packets = []
        for a, b in spans:
            try:
                packets.append(TracePacket.FromString(data[a:b]))
            except DecodeError:
                stats.drop("corrupt_packet")
        if not packets:
            raise TraceFormatError(p, "no packet decodes", where=f"byte {spans[0][0]}") from None

    return _decode_packets(packets, p, stats)


def _text(v: str | bytes) -> str:
    """protobuf hands back bytes for a string field that is not valid UTF-8 (a damaged file)."""
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")


class _FastPathDeclined(Exception):
    """The column-wise decoder met something only the general reader handles."""


def _decode_packets(packets: Any, path: str, stats: ImportStats, fast: FastEvents | None = None) -> Trace:
    seqs: dict[int, _SeqState] = defaultdict(_SeqState)
    tracks: dict[int, _TrackDesc] = {}
    pid_tracks: dict[int, int] = {}
    tid_tracks: dict[tuple[int, int], int] = {}
    seq_thread_track: dict[int, int] = {}
    ev = _Events()
    meta: dict[str, Any] | None = None
    n_packets = 0

    def track(uuid: int) -> _TrackDesc:
        t = tracks.get(uuid)
        if t is None:
            t = tracks[uuid] = _TrackDesc(uuid=uuid, order=len(tracks))
        return t

    for pkt in packets:
        n_packets += 1
        seq_id = pkt.trusted_packet_sequence_id
        st = seqs[seq_id]
        flags = pkt.sequence_flags
        if pkt.incremental_state_cleared or flags & SEQ_INCREMENTAL_STATE_CLEARED:
            st.clear()
        if pkt.HasField("interned_data"):
            idata = pkt.interned_data
            for e in idata.event_names:
                st.names[e.iid] = _text(e.name)
            for c in idata.event_categories:
                st.categories[c.iid] = _text(c.name)
            for a in idata.debug_annotation_names:
                st.ann_names[a.iid] = _text(a.name)
            for s in idata.debug_annotation_string_values:
                st.ann_strings[s.iid] = s.str.decode("utf-8", "replace")
        if pkt.HasField("trace_packet_defaults"):
            d = pkt.trace_packet_defaults
            if d.HasField("track_event_defaults") and d.track_event_defaults.HasField("track_uuid"):
                st.default_track = d.track_event_defaults.track_uuid
        which = pkt.WhichOneof("data")
        if which == "track_event":
            if flags & SEQ_NEEDS_INCREMENTAL_STATE and not st.valid:
                stats.drop("incremental_state_missing")
                continue
            _track_event(pkt, st, seq_id, ev, stats, track, seq_thread_track)
        elif which == "track_descriptor":
            _descriptor(pkt.track_descriptor, track, pid_tracks, tid_tracks)
        elif which == "process_descriptor":
            pd = pkt.process_descriptor
            uuid = pid_tracks.get(pd.pid) or _synthetic_uuid("process", pd.pid)
            t = track(uuid)
            t.is_process, t.pid = True, pd.pid
            t.name = t.name or (pd.process_name or None)
            pid_tracks[pd.pid] = uuid
        elif which == "thread_descriptor":
            td = pkt.thread_descriptor
            uuid = tid_tracks.get((td.pid, td.tid)) or _synthetic_uuid("thread", td.pid, td.tid)
            t = track(uuid)
            t.is_thread, t.pid, t.tid = True, td.pid, td.tid
            t.name = t.name or (td.thread_name or None)
            tid_tracks[(td.pid, td.tid)] = uuid
            seq_thread_track[seq_id] = uuid
        elif which == "chrome_events":
            for m in pkt.chrome_events.metadata:
                if m.name == METADATA_NAME and m.HasField("string_value"):
                    try:
                        meta = json.loads(m.string_value)
                    except ValueError:
                        stats.drop("metadata_not_json")
    stats.events_read = len(ev.kind) + (fast.events_read if fast is not None else 0)
    del n_packets
    if fast is not None:
        if len(seqs) != 1 or ev.kind or meta is None:
            raise _FastPathDeclined
        st = next(iter(seqs.values()))
        interned = (st.names, st.categories, st.ann_strings)
        return _build(path, stats, tracks, pid_tracks, ev, meta, fast, interned)
    return _build(path, stats, tracks, pid_tracks, ev, meta)


def _synthetic_uuid(kind: str, *ids: int) -> int:
    """Uuids for tracks that have none in the file (legacy descriptors, default tracks)."""
    h = hash((kind, *ids)) & ((1 << 62) - 1)
    return (1 << 62) | h


def _descriptor(d: Any, track: Any, pid_tracks: dict[int, int], tid_tracks: dict[tuple[int, int], int]) -> None:
    t = track(d.uuid)
    if d.HasField("parent_uuid"):
        t.parent = d.parent_uuid
    if d.HasField("name"):
        t.name = _text(d.name)
    elif d.HasField("static_name"):
        t.name = _text(d.static_name)
    elif d.HasField("atrace_name"):
        t.name = _text(d.atrace_name)
    if d.HasField("sibling_order_rank"):
        t.rank = d.sibling_order_rank
    if d.HasField("counter"):
        t.counter = True
        if d.counter.unit_name:
            t.unit = _text(d.counter.unit_name)
    if d.HasField("process"):
        t.is_process, t.pid = True, d.process.pid
        if t.name is None:
            t.name = _text(d.process.process_name) or f"Process {d.process.pid}"
        pid_tracks.setdefault(d.process.pid, d.uuid)
    if d.HasField("thread"):
        th = d.thread
        t.is_thread, t.pid, t.tid = True, th.pid, th.tid
        if t.name is None:
            t.name = _text(th.thread_name) or f"Thread {th.tid}"
        tid_tracks.setdefault((th.pid, th.tid), d.uuid)


def _track_event(pkt: Any, st: _SeqState, seq_id: int, ev: _Events, stats: ImportStats, track: Any,
                 seq_thread_track: dict[int, int]) -> None:
    te = pkt.track_event
    kind = te.type
    if te.HasField("track_uuid"):
        uuid = te.track_uuid
    elif st.default_track is not None:
        uuid = st.default_track
    elif seq_id in seq_thread_track:
        uuid = seq_thread_track[seq_id]
    else:
        uuid = _synthetic_uuid("sequence", seq_id)
        t = track(uuid)
        t.name = t.name or f"sequence {seq_id}"
    track(uuid)
    ts = pkt.timestamp
    if kind == TYPE_COUNTER:
        if te.HasField("double_counter_value"):
            v = te.double_counter_value
        else:
            v = float(te.counter_value)
        ev.add(TYPE_COUNTER, uuid, ts, value=v)
    elif kind in (TYPE_SLICE_BEGIN, TYPE_INSTANT, TYPE_SLICE_END):
        if kind == TYPE_SLICE_END:
            ev.add(TYPE_SLICE_END, uuid, ts)
        else:
            if te.HasField("name_iid"):
                name = st.names.get(te.name_iid)
                if name is None:
                    stats.repair("event_name_not_interned")
                    name = f"name#{te.name_iid}"
            else:
                name = _text(te.name) or "(unnamed)"
            cats = [st.categories.get(c, str(c)) for c in te.category_iids] + [_text(c) for c in te.categories]
            missing = sum(1 for c in te.category_iids if c not in st.categories)
            if missing:
                stats.repair("event_category_not_interned", missing)
            i = ev.add(kind, uuid, ts, name, ",".join(cats) if cats else None, _annotations(te, st, stats))
            out = list(te.flow_ids) + list(te.flow_ids_old)
            inn = list(te.terminating_flow_ids) + list(te.terminating_flow_ids_old)
            if out:
                ev.flows_out[i] = out
            if inn:
                ev.flows_in[i] = inn
    else:
        stats.drop(f"track_event_type_{kind}_unsupported")
    # Extra counter values ride on any event type.
    if len(te.extra_double_counter_values):
        for u, v in zip(te.extra_double_counter_track_uuids, te.extra_double_counter_values, strict=False):
            track(u)
            ev.add(TYPE_COUNTER, u, ts, value=float(v))
    if len(te.extra_counter_values):
        for u, v in zip(te.extra_counter_track_uuids, te.extra_counter_values, strict=False):
            track(u)
            ev.add(TYPE_COUNTER, u, ts, value=float(v))


# ------------------------------------------------------------------ build
def _build(path: str, stats: ImportStats, tracks: dict[int, _TrackDesc], pid_tracks: dict[int, int],
           ev: _Events, meta: dict[str, Any] | None, fast: FastEvents | None = None,
           interned: tuple[dict[int, str], dict[int, str], dict[int, str]] | None = None) -> Trace:
    own = _own_metadata(meta, stats)
    if fast is not None and own is None:
        raise _FastPathDeclined
    ours = own is not None
    if not ours and not tracks and not ev.kind and fast is None:
        raise TraceFormatError(path, "no TrackEvent data", "the file holds no track descriptors or track events",
                               where="byte 0")
    md_in = own.metadata if own is not None else TraceMetadata()
    b = TraceBuilder(source_format="perfetto", source=Path(path).name, clock=md_in.clock if ours else "boottime",
                     hardware=md_in.hardware, stats=stats)
    if ours and md_in.extra:
        b.metadata.extra.update(md_in.extra)
    track_meta: Any = own.tracks if own is not None else {}
    counter_children = own.counter_children if own is not None else {}
    ts_offset = own.ts_offset if own is not None else 0
    flow_offset = own.flow_offset if own is not None else 0

    # Threads without a parent hang under their process' track.
    for t in tracks.values():
        if t.parent is None and t.is_thread and t.pid is not None and t.pid in pid_tracks:
            t.parent = pid_tracks[t.pid]
    for t in list(tracks.values()):
        if t.parent is not None and t.parent not in tracks:
            stats.repair("track_parent_missing")
            t.parent = None
    _break_cycles(tracks, stats)

    has_events = set(ev.track)
    children: dict[int | None, list[_TrackDesc]] = defaultdict(list)
    for t in tracks.values():
        if t.uuid in counter_children:
            continue
        children[t.parent].append(t)
    uuid_to_id: dict[int, int] = {}

    def order_key(t: _TrackDesc) -> tuple[int, int]:
        return (t.rank if t.rank is not None else 0, t.order)

    def add(t: _TrackDesc) -> None:
        info = track_meta.get(str(t.uuid))
        if isinstance(info, dict) and info:
            kind = info.get("kind", "other")
            if kind not in TRACK_KINDS:
                stats.repair("track_kind_unknown")
                kind = "other"
            try:
                attrs = json.loads(info["attrs"]) if info.get("attrs") else None
            except (TypeError, ValueError):
                stats.repair("track_attrs_not_json")
                attrs = None
            device = info.get("device")
            device = device if isinstance(device, str) else None
        else:
            if t.counter:
                kind = "counter"
            elif t.is_thread:
                kind = "host"
            elif t.uuid not in has_events and children.get(t.uuid):
                kind = "group"
            else:
                kind = "other"
            attrs = {}
            if t.pid is not None:
                attrs["pid"] = t.pid
            if t.tid is not None:
                attrs["tid"] = t.tid
            if t.unit:
                attrs["unit"] = t.unit
            device = None
        name = t.name if t.name is not None else f"track {t.uuid}"
        parent = uuid_to_id.get(t.parent) if t.parent is not None else None
        uuid_to_id[t.uuid] = b.add_track(name, kind=kind, parent=parent, device=device, attrs=attrs or None,
                                         sort_index=t.rank)

    if ours:
        # Same ids as the original: uuid = id + 1, and the builder made parents before children.
        order = sorted((t for t in tracks.values() if t.uuid not in counter_children), key=lambda t: t.uuid)
        pos = {t.uuid: k for k, t in enumerate(order)}
        if any(t.parent is not None and pos.get(t.parent, len(order)) >= pos[t.uuid] for t in order):
            ours = False
    if not ours:
        order = []
        stack = sorted(children[None], key=order_key, reverse=True)
        while stack:
            t = stack.pop()
            order.append(t)
            stack.extend(sorted(children.get(t.uuid, []), key=order_key, reverse=True))
    for t in order:
        add(t)
    for child, parent in counter_children.items():
        if parent in uuid_to_id:
            uuid_to_id[child] = uuid_to_id[parent]

    flow_names = own.flow_names if own is not None else {}
    reversed_flows = own.reversed_flows if own is not None else set()
    if fast is not None and interned is not None:
        if not fast.add_to(b, uuid_to_id, *interned, ts_offset, flow_offset, flow_names, reversed_flows, stats):
            raise _FastPathDeclined
    else:
        _add_events(b, ev, uuid_to_id, ts_offset, flow_offset, flow_names, reversed_flows, stats)
    return b.build()


def _break_cycles(tracks: dict[int, _TrackDesc], stats: ImportStats) -> None:
    """Cut parent cycles (a damaged file could hold one), visiting each track once.

    Each walk up stops at a track already settled, so a 50k-deep chain costs 50k steps, not
    50k walks of up to 50k steps (that took minutes).
    """
    state: dict[int, int] = {}  # 1: on the current walk, 2: settled (its ancestors have no cycle)
    for t in tracks.values():
        path: list[_TrackDesc] = []
        cur: _TrackDesc | None = t
        while cur is not None and state.get(cur.uuid) is None:
            state[cur.uuid] = 1
            path.append(cur)
            nxt = cur.parent
            if nxt is not None and state.get(nxt) == 1:  # back on this walk: a cycle
                cur.parent = None
                stats.repair("track_parent_cycle")
                nxt = None
            cur = tracks[nxt] if nxt is not None else None
        for x in path:
            state[x.uuid] = 2


@dataclass
class _OwnMetadata:
    """The metadata packet our writer adds, checked: any part that is not what the writer writes
    makes the whole packet ignored (``own_metadata_invalid``) and the file is read like any other."""

    metadata: TraceMetadata
    tracks: dict[str, Any]
    counter_children: dict[int, int]
    ts_offset: int
    flow_offset: int
    flow_names: dict[int, str]
    reversed_flows: set[int]


def _own_metadata(meta: Any, stats: ImportStats) -> _OwnMetadata | None:
    if meta is None:
        return None
    if not isinstance(meta, dict) or meta.get("version") != 1:
        stats.repair("own_metadata_invalid")
        return None
    try:
        md = meta.get("metadata") or {}
        tracks = meta.get("tracks") or {}
        if not isinstance(md, dict) or not isinstance(tracks, dict):
            raise TypeError("metadata and tracks must be objects")
        if not isinstance(md.get("extra") or {}, dict):
            raise TypeError("extra must be an object")
        md_in = TraceMetadata.from_dict(md)
        if not isinstance(md_in.hardware, str | None):
            raise TypeError("hardware must be a name")
        cc = meta.get("counter_children") or {}
        counter_children = {_int(k): _int(v) for k, v in cc.items()}
        fn = meta.get("flow_names") or {}
        flow_names = ({_int(i): str(fn["names"][_int(k)]) for i, k in zip(fn["ids"], fn["index"], strict=True)}
                      if fn else {})
        if any(_int(k) < 0 for k in fn.get("index", []) if fn):
            raise IndexError("negative flow name index")
        rev = meta.get("reversed_flows") or []
        if not isinstance(rev, list):
            raise TypeError("reversed_flows must be a list")
        return _OwnMetadata(md_in, tracks, counter_children, _int(meta.get("ts_offset_ns", 0)),
                            _int(meta.get("flow_id_offset", 0)), flow_names, {_int(f) for f in rev})
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
        stats.repair("own_metadata_invalid")
        return None


def _int(v: Any) -> int:
    """An integer, or an integer written as a string (JSON object keys); anything else raises."""
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise TypeError(f"expected an integer, got {type(v).__name__}")
    return int(v)


def _add_events(b: TraceBuilder, ev: _Events, uuid_to_id: dict[int, int], ts_offset: int, flow_offset: int,
                flow_names: dict[int, str], reversed_flows: set[int], stats: ImportStats) -> None:
    n = len(ev.kind)
    if n == 0:
        return
    kind = np.asarray(ev.kind, dtype=np.int64)
    track = np.asarray([uuid_to_id.get(u, -1) for u in ev.track], dtype=np.int64)
    # Timestamps are uint64 on the wire; ours are int64 nanoseconds, so larger ones cannot be kept.
    ts_u = np.asarray(ev.ts, dtype=np.uint64)
    too_big = ts_u > np.uint64(np.iinfo(np.int64).max)
    ts = np.where(too_big, 0, ts_u).astype(np.int64) - ts_offset
    lost = track < 0
    stats.drop("event_on_unknown_track", int(lost.sum()))
    stats.drop("timestamp_out_of_range", int((too_big & ~lost).sum()))
    lost |= too_big

    cm = (kind == TYPE_COUNTER) & ~lost
    if cm.any():
        vals = np.asarray(ev.value, dtype=np.float64)
        b.add_counters(track[cm], ts[cm], vals[cm])
    for i in np.flatnonzero((kind == TYPE_INSTANT) & ~lost).tolist():
        b.add_instant(int(track[i]), int(ts[i]), ev.name[i] or "", ev.category[i], ev.args[i])  # type: ignore[arg-type]

    # Pair begins and ends per track in time order (file order breaks ties).
    sm = np.flatnonzero(((kind == TYPE_SLICE_BEGIN) | (kind == TYPE_SLICE_END)) & ~lost)
    order = sm[np.lexsort((sm, ts[sm], track[sm]))]
    # Begin/end events the file had out of time order on their track (sorting puts them back).
    back = (np.diff(order) < 0) & (track[order][1:] == track[order][:-1]) & (ts[order][1:] != ts[order][:-1])
    stats.repair("events_out_of_order_sorted", int(back.sum()))
    begins: list[int] = []
    ends: list[int] = []
    stacks: dict[int, list[int]] = defaultdict(list)
    unmatched_end = 0
    for i in order.tolist():
        t = int(track[i])
        if ev.kind[i] == TYPE_SLICE_BEGIN:
            stacks[t].append(i)
        else:
            s = stacks[t]
            if not s:
                unmatched_end += 1
                continue
            begins.append(s.pop())
            ends.append(i)
    stats.drop("unmatched_slice_end", unmatched_end)
    stats.drop("unmatched_slice_begin", sum(len(s) for s in stacks.values()))
    if not begins:
        return
    bi = np.asarray(begins, dtype=np.int64)
    ei = np.asarray(ends, dtype=np.int64)
    idx = np.argsort(bi, kind="stable")
    bi, ei = bi[idx], ei[idx]
    fl = [ev.flops[i] for i in bi.tolist()]
    by = [ev.bytes[i] for i in bi.tolist()]
    ids = b.add_slices(
        track[bi], ts[bi], ts[ei] - ts[bi],
        [ev.name[i] for i in bi.tolist()],
        category=[ev.category[i] for i in bi.tolist()],
        flops=np.asarray([np.nan if v is None else v for v in fl], dtype=np.float64),
        bytes=np.asarray([np.nan if v is None else v for v in by], dtype=np.float64),
        dtype=[ev.dtype[i] for i in bi.tolist()],
        args=[ev.args[i] for i in bi.tolist()],
    )
    _add_flows(b, ev, bi, ids, ts, flow_offset, flow_names, reversed_flows, stats)


def _add_flows(b: TraceBuilder, ev: _Events, bi: np.ndarray, ids: np.ndarray, ts: np.ndarray, flow_offset: int,
               flow_names: dict[int, str], reversed_flows: set[int], stats: ImportStats) -> None:
    if not ev.flows_out and not ev.flows_in:
        return
    slice_of_event = {int(e): int(s) for e, s in zip(bi.tolist(), ids.tolist(), strict=True)}
    # Per flow id: (ts, event, terminating) of every event that names it.
    by_id: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)
    for e, fids in ev.flows_out.items():
        for f in fids:
            by_id[f].append((int(ts[e]), e, False))
    for e, fids in ev.flows_in.items():
        for f in fids:
            by_id[f].append((int(ts[e]), e, True))
    fr: list[int] = []
    to: list[int] = []
    fid_out: list[int] = []
    big = any(f >= 1 << 63 for f in by_id)
    for n_id, (f, hits) in enumerate(by_id.items()):
        # An instant cannot hold a flow end in the model (a begin that never ended is counted already).
        stats.drop("flow_on_instant", sum(1 for h in hits if ev.kind[h[1]] == TYPE_INSTANT))
        hits = [h for h in hits if h[1] in slice_of_event]
        starts = [h for h in hits if not h[2]]
        terms = [h for h in hits if h[2]]
        model_id = n_id if big else f - flow_offset
        if len(starts) == 1 and len(terms) == 1:
            # One source, one destination: keep the direction even if it goes back in time.
            chain = [starts[0], terms[0]]
            pairs = [(chain[0], chain[1])]
        else:
            pairs = []
            prev = None
            for h in sorted(hits):
                if prev is not None:
                    pairs.append((prev, h))
                prev = None if h[2] else h
            if not pairs:
                stats.drop("flow_without_partner", len(hits))
        if model_id in reversed_flows and len(pairs) == 1:
            pairs = [(pairs[0][1], pairs[0][0])]
        for k, (a, c) in enumerate(pairs):
            fr.append(slice_of_event[a[1]])
            to.append(slice_of_event[c[1]])
            fid_out.append(model_id if k == 0 else -1)
    if fr:
        fid = np.asarray(fid_out, dtype=np.int64)
        if (fid < 0).any():
            base = int(fid.max()) + 1
            extra = fid < 0
            fid[extra] = base + np.arange(int(extra.sum()))
        by_fid = np.argsort(fid, kind="stable")
        fid = fid[by_fid]
        fr = [fr[k] for k in by_fid.tolist()]
        to = [to[k] for k in by_fid.tolist()]
        names = [flow_names.get(int(f)) for f in fid.tolist()] if flow_names else None
        b.add_flows(np.asarray(fr), np.asarray(to), name=names, flow_id=fid)
