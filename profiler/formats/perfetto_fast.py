"""Vectorized decoding of the TrackEvent packets our writer produces (the reader's fast path).

Decoding millions of packets one by one through generated protobuf classes costs microseconds
each.  Here the packets are split by upb in one call (a two-field schema: ``repeated bytes
packet = 1``), then the fields of *all* packets are walked together: step k decodes the k-th field
of every packet still holding bytes, with numpy varint decoding.  The result is a long table
(message, field number, value / byte range) from which timestamps, tracks, names, annotations and
flow ids are picked by field number; nested TrackEvents and debug annotations are walked the same
way.  Begin/end pairing is vectorized too: on a well-nested track the begin at stack level d is
closed by the next end back at level d.

The fast path only accepts what it fully understands: our metadata packet, one sequence, interned
data only in the header, and only the TrackEvent fields our writer uses.  Anything else returns
None and the general reader (official protos, packet by packet) takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from profiler.builder import TraceBuilder
from profiler.formats.perfetto_fields import (
    ANN_ARGS,
    ANN_BYTES,
    ANN_DTYPE,
    ANN_FLOPS,
    F_DA_DOUBLE,
    F_DA_JSON,
    F_DA_NAME_IID,
    F_DA_STRING_IID,
    F_PKT_CHROME_EVENTS,
    F_PKT_FIRST_PACKET_ON_SEQUENCE,
    F_PKT_INCREMENTAL_STATE_CLEARED,
    F_PKT_INTERNED_DATA,
    F_PKT_SEQ_FLAGS,
    F_PKT_SEQ_ID,
    F_PKT_TIMESTAMP,
    F_PKT_TRACK_DESCRIPTOR,
    F_PKT_TRACK_EVENT,
    F_TE_CATEGORY_IIDS,
    F_TE_DEBUG_ANNOTATIONS,
    F_TE_DOUBLE_COUNTER,
    F_TE_FLOW_IDS,
    F_TE_NAME_IID,
    F_TE_TERMINATING_FLOW_IDS,
    F_TE_TRACK_UUID,
    F_TE_TYPE,
    TYPE_COUNTER,
    TYPE_INSTANT,
    TYPE_SLICE_BEGIN,
    TYPE_SLICE_END,
)
from profiler.formats.perfetto_proto import I64, LEN, VARINT
from profiler.model import ImportStats

_TE_FIELDS = {F_TE_CATEGORY_IIDS, F_TE_DEBUG_ANNOTATIONS, F_TE_TYPE, F_TE_NAME_IID, F_TE_TRACK_UUID,
              F_TE_DOUBLE_COUNTER, F_TE_FLOW_IDS, F_TE_TERMINATING_FLOW_IDS}
_PKT_FIELDS = {F_PKT_TIMESTAMP, F_PKT_SEQ_ID, F_PKT_TRACK_EVENT, F_PKT_SEQ_FLAGS}
_DA_FIELDS = {F_DA_NAME_IID, F_DA_DOUBLE, F_DA_JSON, F_DA_STRING_IID}
_SPLIT_CLASS: Any = None
_EMPTY_U64 = np.zeros(0, dtype=np.uint64)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)


def _split_class() -> Any:
    """A message class with just ``repeated bytes packet = 1``: upb splits a trace into packets."""
    global _SPLIT_CLASS
    if _SPLIT_CLASS is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        fdp = descriptor_pb2.FileDescriptorProto(name="accel_profiler_packet_split.proto", package="accel_profiler_split")
        m = fdp.message_type.add(name="PacketSplit")
        m.field.add(name="packet", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        _SPLIT_CLASS = message_factory.GetMessageClass(pool.FindMessageTypeByName("accel_profiler_split.PacketSplit"))
    return _SPLIT_CLASS


def _varints(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, byte lengths) of the varints starting at ``pos`` (``buf`` padded with 10 zeros)."""
    b = buf[pos]
    val = (b & 0x7F).astype(np.uint64)
    ln = np.ones(pos.size, dtype=np.int64)
    idx = np.flatnonzero(b & 0x80)
    j = 1
    while idx.size and j < 10:
        bj = buf[pos[idx] + j]
        val[idx] |= (bj & 0x7F).astype(np.uint64) << np.uint64(7 * j)
        ln[idx] += 1
        idx = idx[(bj & 0x80) != 0]
        j += 1
    return val, ln


@dataclass
class _Fields:
    """Decoded fields of many messages, by field number: owner message, value, payload range."""

    rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]

    def msg(self, f: int) -> np.ndarray:
        return self.rows[f][0] if f in self.rows else np.zeros(0, dtype=np.int64)

    def value(self, f: int) -> np.ndarray:
        return self.rows[f][1] if f in self.rows else np.zeros(0, dtype=np.uint64)

    def off(self, f: int) -> np.ndarray:
        return self.rows[f][2] if f in self.rows else np.zeros(0, dtype=np.int64)

    def length(self, f: int) -> np.ndarray:
        return self.rows[f][3] if f in self.rows else np.zeros(0, dtype=np.int64)


def walk(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, allowed: set[int]) -> _Fields | None:
    """Decode every field of many messages at once.

    None on malformed input or on a field number outside ``allowed`` (the caller then leaves the
    file to the general reader).  Only the wanted columns are kept, per field number.
    """
    parts: dict[int, list[tuple[np.ndarray, ...]]] = {f: [] for f in allowed}
    allowed_arr = np.asarray(sorted(allowed), dtype=np.int64)
    msg = np.arange(starts.size, dtype=np.int64)
    cur = starts.astype(np.int64).copy()
    end = ends.astype(np.int64)
    live = cur < end
    msg, cur, end = msg[live], cur[live], end[live]
    while msg.size:
        key, kl = _varints(buf, cur)
        wire = (key & np.uint64(7)).astype(np.int64)
        fno = (key >> np.uint64(3)).astype(np.int64)
        if not np.isin(fno, allowed_arr).all():
            return None
        p = cur + kl
        value = np.zeros(msg.size, dtype=np.uint64)
        off = p
        length = np.zeros(msg.size, dtype=np.int64)
        nxt = np.empty(msg.size, dtype=np.int64)
        w0 = wire == VARINT
        if w0.any():
            v, vl = _varints(buf, p[w0])
            value[w0] = v
            nxt[w0] = p[w0] + vl
        w1 = wire == I64
        if w1.any():
            q = p[w1]
            raw = np.zeros(q.size, dtype=np.uint64)
            for k in range(8):
                raw |= buf[q + k].astype(np.uint64) << np.uint64(8 * k)
            value[w1] = raw
            nxt[w1] = q + 8
        w2 = wire == LEN
        if w2.any():
            v, vl = _varints(buf, p[w2])
            off = p.copy()
            off[w2] = p[w2] + vl
            length[w2] = v.astype(np.int64)
            nxt[w2] = off[w2] + length[w2]
        # A length varint of 2^63 or more wraps negative: the field would end before it starts.
        if not (w0 | w1 | w2).all() or (nxt > end).any() or (nxt <= cur).any():
            return None
        present = np.flatnonzero(np.bincount(fno))
        single = present.size == 1
        for f in present.tolist():
            m = slice(None) if single else fno == f
            if bool(w2[m].all()) if not single else bool(w2.all()):
                parts[f].append((msg[m], _EMPTY_U64, off[m], length[m]))
            else:
                parts[f].append((msg[m], value[m], _EMPTY_I64, _EMPTY_I64))
        live = nxt < end
        msg, cur, end = msg[live], nxt[live], end[live]
    rows = {}
    for f, chunks in parts.items():
        if chunks:
            if len({c[1].size == 0 for c in chunks}) > 1:
                return None  # one field number with two wire types
            rows[f] = tuple(np.concatenate([c[i] for c in chunks]) if len(chunks) > 1 else chunks[0][i] for i in range(4))
    return _Fields(rows)  # type: ignore[arg-type]


def _first_value(f: _Fields, field_no: int, n: int, default: int = 0) -> np.ndarray:
    out = np.full(n, default, dtype=np.uint64)
    out[f.msg(field_no)] = f.value(field_no)
    return out


@dataclass
class FastEvents:
    """TrackEvents of one of our files, decoded column-wise; added to a builder by :meth:`add_to`."""

    header: list[bytes]
    kind: np.ndarray
    uuid: np.ndarray
    ts: np.ndarray
    name_iid: np.ndarray
    cat_iid: np.ndarray
    flops: np.ndarray
    nbytes: np.ndarray
    dtype_iid: np.ndarray
    args: dict[int, str]
    value: np.ndarray
    flow_event: np.ndarray
    flow_id: np.ndarray
    flow_term: np.ndarray

    @property
    def events_read(self) -> int:
        return int(self.kind.size)

    def add_to(self, b: TraceBuilder, uuid_to_id: dict[int, int], names: dict[int, str], cats: dict[int, str],
               dtypes: dict[int, str], ts_offset: int, flow_offset: int, flow_names: dict[int, str],
               reversed_flows: set[int], stats: ImportStats) -> bool:
        """Add every event; False (nothing added) when begin/end pairing needs the general reader."""
        n = self.kind.size
        if n == 0:
            return True
        uu = np.asarray(sorted(uuid_to_id), dtype=np.uint64)
        ids = np.asarray([uuid_to_id[int(u)] for u in uu], dtype=np.int64)
        k = np.searchsorted(uu, self.uuid)
        k = np.minimum(k, max(uu.size - 1, 0))
        known = uu.size > 0 and (uu[k] == self.uuid) if uu.size else np.zeros(n, dtype=bool)
        if not np.all(known):
            return False
        track = ids[k]
        ts = self.ts.astype(np.int64) - ts_offset
        kind = self.kind

        # Pair begins and ends: on each track the begin at level d closes at the next end at level d.
        sl = np.flatnonzero((kind == TYPE_SLICE_BEGIN) | (kind == TYPE_SLICE_END))
        step = np.where(kind[sl] == TYPE_SLICE_BEGIN, 1, -1)
        tr = track[sl]
        order = np.argsort(tr, kind="stable")
        sl, step, tr = sl[order], step[order], tr[order]
        first = np.ones(sl.size, dtype=bool)
        first[1:] = tr[1:] != tr[:-1]
        run = np.cumsum(step)
        base = np.maximum.accumulate(np.where(first, np.arange(sl.size), 0))
        before = run - step - (run[base] - step[base])
        level = np.where(step > 0, before, before - 1)
        if (level < 0).any():
            return False
        grp = np.lexsort((np.arange(sl.size), level, tr))
        gk, gl, gs = tr[grp], level[grp], step[grp]
        same = (gk[1:] == gk[:-1]) & (gl[1:] == gl[:-1])
        pair = same & (gs[:-1] == 1) & (gs[1:] == -1)
        # Each (track, level) run must read B E B E ...; only a file cut short may leave its
        # last begins open (each then ends its run).
        matched = np.zeros(gs.size, dtype=bool)
        matched[:-1] |= pair
        matched[1:] |= pair
        if (~matched & (gs == -1)).any():
            return False
        open_b = np.flatnonzero(~matched)
        last_of_run = np.ones(gs.size, dtype=bool)
        last_of_run[:-1] = ~same
        if not last_of_run[open_b].all():
            return False
        stats.drop("unmatched_slice_begin", int(open_b.size))
        first_of_pair = np.flatnonzero(pair)
        bi = sl[grp[first_of_pair]]
        ei = sl[grp[first_of_pair + 1]]
        srt = np.argsort(bi, kind="stable")
        bi, ei = bi[srt], ei[srt]

        name_dict = _dictionary(names)
        cat_dict = _dictionary(cats)
        dtype_dict = _dictionary(dtypes)
        if bi.size:
            args = [self.args.get(int(i)) for i in bi] if self.args else None
            sid = b.add_slices(
                track[bi], ts[bi], ts[ei] - ts[bi],
                _dict_array_from_iids(self.name_iid[bi], name_dict),
                category=_dict_array_from_iids(self.cat_iid[bi], cat_dict),
                flops=self.flops[bi], bytes=self.nbytes[bi],
                dtype=_dict_array_from_iids(self.dtype_iid[bi], dtype_dict),
                args=args,
            )
        else:
            sid = np.zeros(0, dtype=np.int64)
        cm = np.flatnonzero(kind == TYPE_COUNTER)
        if cm.size:
            b.add_counters(track[cm], ts[cm], self.value[cm])
        for i in np.flatnonzero(kind == TYPE_INSTANT).tolist():
            b.add_instant(int(track[i]), int(ts[i]), names.get(int(self.name_iid[i]), ""),
                          cats.get(int(self.cat_iid[i])), self.args.get(i))  # type: ignore[arg-type]

        if self.flow_event.size:
            slice_of = np.full(n, -1, dtype=np.int64)
            slice_of[bi] = sid
            s = slice_of[self.flow_event]
            ok = s >= 0
            stats.drop("flow_on_instant", int((kind[self.flow_event] == TYPE_INSTANT).sum()))  # as the general reader
            fid, term, s = self.flow_id[ok], self.flow_term[ok], s[ok]
            o = np.lexsort((term, fid))
            fid, term, s = fid[o], term[o], s[o]
            pair = (fid[:-1] == fid[1:]) & ~term[:-1] & term[1:]
            a = np.flatnonzero(pair)
            paired = np.zeros(fid.size, dtype=bool)
            paired[a] = paired[a + 1] = True
            stats.drop("flow_without_partner", int((~paired).sum()))
            model_id = fid[a].astype(np.int64) - flow_offset
            src, dst = s[a], s[a + 1]
            if reversed_flows:
                rev = np.isin(model_id, np.asarray(sorted(reversed_flows), dtype=np.int64))
                src, dst = np.where(rev, dst, src), np.where(rev, src, dst)
            fnames = [flow_names.get(int(m)) for m in model_id] if flow_names else None
            b.add_flows(src, dst, name=fnames, flow_id=model_id)
        return True


def _dictionary(table: dict[int, str]) -> tuple[np.ndarray, list[str]]:
    """iid -> dictionary index lookup array, and the dictionary."""
    if not table:
        return np.full(1, -1, dtype=np.int64), []
    size = max(table) + 1
    lut = np.full(size + 1, -1, dtype=np.int64)
    values = []
    for k, (iid, s) in enumerate(sorted(table.items())):
        lut[iid] = k
        # protobuf hands back bytes for a string field that is not valid UTF-8 (a damaged file)
        values.append(s if isinstance(s, str) else bytes(s).decode("utf-8", "replace"))
    return lut, values


def _dict_array_from_iids(iids: np.ndarray, d: tuple[np.ndarray, list[str]]) -> pa.Array:
    lut, values = d
    i = iids.astype(np.int64)
    i = np.where((i >= 0) & (i < lut.size), i, lut.size - 1)
    idx = lut[i]
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0, type=pa.int32()), pa.array(values, type=pa.string()))


def decode_ours(data: bytes, n_header: int = 64) -> FastEvents | None:
    """Decode a file written by our writer column-wise, or None if it is not one (or is damaged)."""
    from google.protobuf.message import DecodeError

    if b"accel_profiler" not in data:
        return None
    try:
        packets = _split_class().FromString(data).packet
    except DecodeError:
        return None
    lengths = np.fromiter(map(len, packets), dtype=np.int64, count=len(packets))
    if lengths.size == 0:
        return None
    from profiler.formats.perfetto_proto import varint_sizes

    sizes = 1 + varint_sizes(lengths) + lengths
    if int(sizes.sum()) != len(data):
        return None  # other top-level fields: not ours
    starts = np.cumsum(sizes) - lengths
    buf = np.zeros(len(data) + 16, dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)

    pf = walk(buf, starts, starts + lengths, _PKT_FIELDS | {F_PKT_INTERNED_DATA, F_PKT_TRACK_DESCRIPTOR, F_PKT_CHROME_EVENTS,
                                                           F_PKT_FIRST_PACKET_ON_SEQUENCE, F_PKT_INCREMENTAL_STATE_CLEARED})
    if pf is None:
        return None
    is_te = np.zeros(lengths.size, dtype=bool)
    is_te[pf.msg(F_PKT_TRACK_EVENT)] = True
    header_end = int(np.argmax(is_te)) if is_te.any() else lengths.size
    if is_te[header_end:].sum() != lengths.size - header_end:
        return None  # a non-event packet after the events
    seq = pf.value(F_PKT_SEQ_ID)
    if seq.size != lengths.size or (seq != seq[0]).any():
        return None
    if (pf.msg(F_PKT_INTERNED_DATA) >= header_end).any():
        return None  # interned data mid-stream: the general reader handles it
    header = [bytes(packets[i]) for i in range(header_end)]

    ev_pkt = pf.msg(F_PKT_TRACK_EVENT)  # packet index of every event, in file order
    n = ev_pkt.size
    ts = _first_value(pf, F_PKT_TIMESTAMP, lengths.size)[ev_pkt]
    te_off, te_len = pf.off(F_PKT_TRACK_EVENT), pf.length(F_PKT_TRACK_EVENT)
    tf = walk(buf, te_off, te_off + te_len, _TE_FIELDS)
    if tf is None:
        return None
    kind = _first_value(tf, F_TE_TYPE, n).astype(np.int64)
    if not np.isin(kind, (TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT, TYPE_COUNTER)).all():
        return None
    uuid = _first_value(tf, F_TE_TRACK_UUID, n)
    name_iid = _first_value(tf, F_TE_NAME_IID, n).astype(np.int64)
    cat_msg = tf.msg(F_TE_CATEGORY_IIDS)
    if np.bincount(cat_msg, minlength=1).max(initial=0) > 1:
        return None  # several categories on one event
    cat_iid = np.full(n, -1, dtype=np.int64)
    cat_iid[cat_msg] = tf.value(F_TE_CATEGORY_IIDS).astype(np.int64)
    value = np.zeros(n, dtype=np.float64)
    value[tf.msg(F_TE_DOUBLE_COUNTER)] = tf.value(F_TE_DOUBLE_COUNTER).view(np.float64)
    flow_event = np.concatenate([tf.msg(F_TE_FLOW_IDS), tf.msg(F_TE_TERMINATING_FLOW_IDS)])
    flow_id = np.concatenate([tf.value(F_TE_FLOW_IDS), tf.value(F_TE_TERMINATING_FLOW_IDS)])
    flow_term = np.concatenate([np.zeros(tf.msg(F_TE_FLOW_IDS).size, bool), np.ones(tf.msg(F_TE_TERMINATING_FLOW_IDS).size, bool)])

    flops = np.full(n, np.nan)
    nbytes = np.full(n, np.nan)
    dtype_iid = np.full(n, -1, dtype=np.int64)
    args: dict[int, str] = {}
    if tf.msg(F_TE_DEBUG_ANNOTATIONS).size:
        owner = tf.msg(F_TE_DEBUG_ANNOTATIONS)  # annotation -> event
        da_off, da_len = tf.off(F_TE_DEBUG_ANNOTATIONS), tf.length(F_TE_DEBUG_ANNOTATIONS)
        df = walk(buf, da_off, da_off + da_len, _DA_FIELDS)
        if df is None:
            return None
        ann_name = _first_value(df, F_DA_NAME_IID, owner.size).astype(np.int64)
        if not np.isin(ann_name, (ANN_FLOPS, ANN_BYTES, ANN_DTYPE, ANN_ARGS)).all():
            return None
        dm, dv = df.msg(F_DA_DOUBLE), df.value(F_DA_DOUBLE)
        for iid, target in ((ANN_FLOPS, flops), (ANN_BYTES, nbytes)):
            sel = ann_name[dm] == iid
            target[owner[dm[sel]]] = dv[sel].view(np.float64)
        sm, sv = df.msg(F_DA_STRING_IID), df.value(F_DA_STRING_IID)
        sel = ann_name[sm] == ANN_DTYPE
        dtype_iid[owner[sm[sel]]] = sv[sel].astype(np.int64)
        jm = df.msg(F_DA_JSON)
        sel = ann_name[jm] == ANN_ARGS
        for e, o, ln in zip(owner[jm[sel]].tolist(), df.off(F_DA_JSON)[sel].tolist(), df.length(F_DA_JSON)[sel].tolist(),
                            strict=True):
            args[e] = data[o : o + ln].decode("utf-8", "replace")
    return FastEvents(header, kind, uuid, ts, name_iid, cat_iid, flops, nbytes, dtype_iid, args, value,
                      flow_event, flow_id, flow_term)
