"""Turning decoded trace events into a Trace: phases, tracks, slices, counters, instants, flows.

Shared by the Chrome JSON and the Kineto readers; they differ only in how events map to tracks
and which args are lifted into columns (:class:`JsonImporter` hooks).  Everything that touches all
events is columnar: one list comprehension per field, numpy for the arithmetic, Arrow dictionary
encoding for names.  Per-event Python loops run only over the rare phases (B/E, counters,
instants, metadata, flow v2).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from profiler.builder import TraceBuilder
from profiler.formats.json_events import Decoded, Event, gc_paused, raw_numbers_to_ns, raw_to_string_array
from profiler.formats.json_flows import Binder
from profiler.model import Trace

# Phase classes.
UNKNOWN, SLICE, BEGIN, END, INSTANT, COUNTER, FLOW_S, FLOW_T, FLOW_F, META = range(10)
_PHASES = {"X": SLICE, "B": BEGIN, "E": END, "i": INSTANT, "I": INSTANT, "n": INSTANT, "R": INSTANT,
           "C": COUNTER, "s": FLOW_S, "t": FLOW_T, "f": FLOW_F, "M": META}

#: Key under ``otherData`` where our writer stores the exact track tree and the time base.
OWN_KEY = "accel_profiler"


class LiftArgs(msgspec.Struct, gc=False):
    """The args lifted into slice columns (other args stay in the JSON text of the args column)."""

    flops: float | None = None
    bytes: float | None = None
    dtype: str | None = None


@dataclass
class Meta:
    """What the M (metadata) events say about processes and threads."""

    process_name: dict[Any, str] = field(default_factory=dict)
    process_sort: dict[Any, int] = field(default_factory=dict)
    process_labels: dict[Any, str] = field(default_factory=dict)
    thread_name: dict[tuple[Any, Any], str] = field(default_factory=dict)
    thread_sort: dict[tuple[Any, Any], int] = field(default_factory=dict)


def _args_dict(raw: msgspec.Raw | bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        v = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError:
        return {}
    return v if isinstance(v, dict) else {}


def _order_key(v: Any) -> tuple[int, Any]:
    """Numbers before strings, each in natural order (Chrome's default process/thread order)."""
    return (0, v) if isinstance(v, int) else (1, str(v))


class JsonImporter:
    """Builds a Trace from :class:`Decoded` events.  Subclasses change the track layout and lifts."""

    source_format = "chrome_json"
    lift_struct: type[msgspec.Struct] = LiftArgs

    def __init__(self, dec: Decoded) -> None:
        self.dec = dec
        self.b = TraceBuilder(source_format=self.source_format, source=dec.path, stats=dec.stats)
        self.meta = Meta()
        self._group: dict[Any, int] = {}
        self._global: int | None = None
        self._own = (dec.header.get("otherData") or {}).get(OWN_KEY) if isinstance(dec.header.get("otherData"), dict) else None

    @property
    def stats(self) -> Any:
        return self.b.stats

    # ------------------------------------------------------------- hooks
    def event_classes(self, cats: list[str | None], pt_code: np.ndarray) -> np.ndarray:
        """Per-event class used with (pid, tid) to pick a track; the generic layout has one class."""
        return np.zeros(len(cats), dtype=np.int64)

    def make_track(self, pid: Any, tid: Any, cls: int) -> int:
        """Track for slices/instants/flows of (pid, tid, class)."""
        parent = self.group_track(pid)
        name = self.meta.thread_name.get((pid, tid)) or f"Thread {tid}"
        sort = self._thread_rank.get((pid, tid), 0)
        return self.b.add_track(name, "other", parent, attrs={"pid": pid, "tid": tid}, sort_index=sort)

    def group_track(self, pid: Any) -> int:
        t = self._group.get(pid)
        if t is None:
            name = self.meta.process_name.get(pid) or f"Process {pid}"
            attrs: dict[str, Any] = {"pid": pid}
            if pid in self.meta.process_labels:
                attrs["labels"] = self.meta.process_labels[pid]
            t = self.b.add_track(name, "group", None, attrs=attrs, sort_index=self._process_rank.get(pid, 0))
            self._group[pid] = t
        return t

    def global_track(self) -> int:
        if self._global is None:
            self._global = self.b.add_track("Global", "other", None, sort_index=-1)
        return self._global

    def counter_track(self, pid: Any, tid: Any, name: str, key: str, single: bool) -> int:
        k = ("counter", pid, name, key)
        t = self._counter_tracks.get(k)
        if t is None:
            label = name if single else f"{name} {key}"
            t = self.b.add_track(label, "counter", self.group_track(pid), attrs={"pid": pid, "series": key},
                                 sort_index=1_000_000 + len(self._counter_tracks))
            self._counter_tracks[k] = t
        return t

    def lift(self, rows: np.ndarray, args: pa.Array, cats: pa.Array) -> dict[str, Any]:
        """flops / bytes / dtype columns for the slice rows (event indices ``rows``)."""
        n = rows.size
        if n == 0 or args.null_count == len(args):
            return {}
        hit = pc.match_substring_regex(args, '"(?:flops|bytes|dtype)"')
        sel = np.flatnonzero(hit.fill_null(False).to_numpy(zero_copy_only=False))
        if sel.size == 0:
            return {}
        parsed = self._decode_args(rows[sel], self.lift_struct)
        flops = np.full(n, np.nan)
        nbytes = np.full(n, np.nan)
        dtype: list[str | None] = [None] * n
        for j, a in zip(sel.tolist(), parsed, strict=True):
            if a is None:
                continue
            if a.flops is not None:
                flops[j] = a.flops
            if a.bytes is not None:
                nbytes[j] = a.bytes
            if a.dtype is not None:
                dtype[j] = a.dtype
        return {"flops": flops, "bytes": nbytes, "dtype": dtype}

    def extra_flows(self, slice_rows: np.ndarray, slice_ids: np.ndarray, flow_cats: set[str]) -> None:
        """Subclasses add flows not written as flow events (Kineto: correlation ids)."""

    def finish(self) -> None:
        """Metadata from the file header."""
        extra = {k: v for k, v in self.dec.header.items() if k != "otherData"}
        other = self.dec.header.get("otherData")
        if isinstance(other, dict):
            rest = {k: v for k, v in other.items() if k != OWN_KEY}
            if rest:
                extra["otherData"] = rest
            if self._own and isinstance(self._own.get("metadata"), dict):
                md = self._own["metadata"]
                self.b.metadata.clock = str(md.get("clock", self.b.metadata.clock))
                self.b.metadata.hardware = md.get("hardware")
                extra.update(md.get("extra") or {})
        self.b.metadata.extra.update(extra)

    # ------------------------------------------------------------ helpers
    def _decode_args(self, event_rows: np.ndarray, struct: type[msgspec.Struct]) -> list[Any]:
        """Decode the args of some events in one msgspec call; per-event fallback when types do not fit."""
        evs = self.dec.events
        raws = [evs[i].args for i in event_rows.tolist()]
        body = b"[" + b",".join(r if r else b"null" for r in raws) + b"]"
        dec = msgspec.json.Decoder(list[struct | None])  # type: ignore[valid-type]
        try:
            return list(dec.decode(body))
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        one = msgspec.json.Decoder(struct)
        out: list[Any] = []
        bad = 0
        for r in raws:
            try:
                out.append(one.decode(r) if r else None)
            except (msgspec.ValidationError, msgspec.DecodeError):
                try:  # keep the fields that do fit
                    d = _args_dict(r)
                    out.append(msgspec.convert({k: v for k, v in d.items() if k in struct.__struct_encode_fields__ and
                                                _fits(struct, k, v)}, struct))
                except msgspec.ValidationError:
                    out.append(None)
                bad += 1
        self.stats.repair("arg_wrong_type_ignored", bad)
        return out

    # --------------------------------------------------------------- main
    def run(self) -> Trace:
        with gc_paused():
            self._run()
        return self.b.build()

    def _run(self) -> None:
        evs = self.dec.events
        stats = self.stats
        n = len(evs)
        ph_arr = pa.array([e.ph for e in evs], type=pa.string()).dictionary_encode()
        ph_map = np.array([_PHASES.get(p, UNKNOWN) for p in ph_arr.dictionary.to_pylist()] + [UNKNOWN], dtype=np.int8)
        code = ph_map[ph_arr.indices.to_numpy(zero_copy_only=False)] if n else np.zeros(0, dtype=np.int8)
        stats.drop("unknown_phase", int((code == UNKNOWN).sum()))
        ts, ts_ok = raw_numbers_to_ns([e.ts for e in evs])
        base = self._time_base()
        if base:
            ts = ts + np.int64(base)
        needs_ts = (code != META) & (code != UNKNOWN)
        missing = needs_ts & ~ts_ok
        if missing.any():
            empty = np.fromiter((len(evs[i].ts) == 0 for i in np.flatnonzero(missing).tolist()), dtype=bool)
            stats.drop("missing_ts", int(empty.sum()))
            stats.drop("ts_not_a_number", int((~empty).sum()))
        code = np.where(needs_ts & ~ts_ok, UNKNOWN - 1, code)  # -1: dropped, counted above

        self._read_meta(np.flatnonzero(code == META))
        self._own_tracks()

        pids = [e.pid for e in evs]
        tids = [e.tid for e in evs]
        pt_keys = list(zip(pids, tids, strict=True))
        pt_index = {k: i for i, k in enumerate(dict.fromkeys(pt_keys))}
        pt_code = np.fromiter(map(pt_index.__getitem__, pt_keys), dtype=np.int64, count=n)
        del pt_keys
        live = np.unique(pt_code[(code != META) & (code != COUNTER) & (code >= SLICE)])
        pt_list = list(pt_index)
        self._rank_processes_threads([pt_list[i] for i in live.tolist()])
        cats_list = [e.cat for e in evs]
        self._pt_all = pt_list
        self.ts_max = int(ts[ts_ok].max()) if ts_ok.any() else 0
        cls = self.event_classes(cats_list, pt_code)
        self._pt_list = list(pt_index)
        self._track_of: dict[tuple[int, int], int] = {}
        self._counter_tracks: dict[tuple[Any, ...], int] = {}

        # ---- slices: X events and matched B/E pairs
        is_x = code == SLICE
        rows_x = np.flatnonzero(is_x)
        dur_us = np.array([e.dur for e in evs], dtype=np.float64) if n else np.zeros(0)
        dur_x = dur_us[rows_x]
        nodur = np.isnan(dur_x)
        stats.drop("missing_dur", int(nodur.sum()))
        rows_x = rows_x[~nodur]
        ts_x = ts[rows_x]
        dur_ns = np.rint(dur_us[rows_x] * 1000.0).astype(np.int64)
        b_rows, b_ts, b_dur = self._match_begin_end(code, ts, pt_code, cls)
        rows = np.concatenate([rows_x, b_rows]) if b_rows.size else rows_x
        s_ts = np.concatenate([ts_x, b_ts]) if b_rows.size else ts_x
        s_dur = np.concatenate([dur_ns, b_dur]) if b_rows.size else dur_ns
        s_pt = pt_code[rows]
        s_track = self._tracks_for(s_pt, cls[rows])
        names_all = pa.array([e.name for e in evs], type=pa.string()).dictionary_encode()
        cats_all = pa.array(cats_list, type=pa.string()).dictionary_encode()
        del cats_list
        take = pa.array(rows)
        s_args = raw_to_string_array([evs[i].args for i in rows.tolist()])
        s_cats = cats_all.take(take)
        lifted = self.lift(rows, s_args, s_cats)
        ids = self.b.add_slices(s_track, s_ts, s_dur, names_all.take(take), category=s_cats,
                                flops=lifted.get("flops"), bytes=lifted.get("bytes"), dtype=lifted.get("dtype"),
                                args=s_args)

        # ---- instants, counters
        self._instants(np.flatnonzero(code == INSTANT), ts, pt_code, cls, names_all, cats_all)
        self._counters(np.flatnonzero(code == COUNTER), ts)

        # ---- flows
        flow_rows = np.flatnonzero((code == FLOW_S) | (code == FLOW_T) | (code == FLOW_F))
        flow_cats = {c or "" for c in cats_all.take(pa.array(flow_rows)).unique().to_pylist()}
        self._flows_v1(flow_rows, code, ts, pt_code, rows, s_pt, s_ts, s_dur, ids)
        if self.dec.has_bind_id:
            self._flows_v2(rows, ids)
        self.extra_flows(rows, ids, flow_cats)
        self.finish()

    # ---------------------------------------------------------- pieces
    def _time_base(self) -> int:
        if self._own and isinstance(self._own.get("ts_base_ns"), int):
            return int(self._own["ts_base_ns"])
        return 0

    def _read_meta(self, rows: np.ndarray) -> None:
        m = self.meta
        evs = self.dec.events
        for i in rows.tolist():
            e = evs[i]
            a = _args_dict(e.args)
            if e.name == "process_name" and isinstance(a.get("name"), str):
                m.process_name[e.pid] = a["name"]
            elif e.name == "process_labels" and isinstance(a.get("labels"), str):
                m.process_labels[e.pid] = a["labels"]
            elif e.name == "process_sort_index" and isinstance(a.get("sort_index"), int):
                m.process_sort[e.pid] = a["sort_index"]
            elif e.name == "thread_name" and isinstance(a.get("name"), str):
                m.thread_name[(e.pid, e.tid)] = a["name"]
            elif e.name == "thread_sort_index" and isinstance(a.get("sort_index"), int):
                m.thread_sort[(e.pid, e.tid)] = a["sort_index"]

    def _own_tracks(self) -> None:
        """Files we wrote carry the exact track tree; recreate it so ids, kinds and nesting survive."""
        self._own_map: dict[Any, int] = {}
        if not self._own or not isinstance(self._own.get("tracks"), list):
            return
        for row in self._own["tracks"]:
            tid_, parent, name, kind, device, sort_index, attrs = row
            attrs_d = orjson.loads(attrs) if isinstance(attrs, str) and attrs else None
            t = self.b.add_track(name, kind, parent, device, attrs_d, sort_index=sort_index)
            self._own_map[tid_ + 1] = t  # tid in the file is track id + 1

    def _rank_processes_threads(self, pt_index: list[tuple[Any, Any]]) -> None:
        m = self.meta
        pids = list(dict.fromkeys([p for p, _ in pt_index] + list(m.process_name)))
        pids.sort(key=lambda p: (m.process_sort.get(p, 0), _order_key(p)) if p in m.process_sort
                  else (1 << 62, _order_key(p)))
        self._process_rank = {p: i for i, p in enumerate(pids)}
        by_pid: dict[Any, list[Any]] = defaultdict(list)
        for p, t in pt_index:
            by_pid[p].append(t)
        self._thread_rank: dict[tuple[Any, Any], int] = {}
        for p, ts_ in by_pid.items():
            def key(t: Any, p: Any = p) -> tuple[int, tuple[int, Any]]:
                return (m.thread_sort[(p, t)], _order_key(t)) if (p, t) in m.thread_sort else (1 << 62, _order_key(t))

            ts_.sort(key=key)
            for i, t in enumerate(ts_):
                self._thread_rank[(p, t)] = i

    def _track(self, pt: int, c: int) -> int:
        t = self._track_of.get((pt, c))
        if t is None:
            pid, tid = self._pt_list[pt]
            if self._own_map:
                own = self._own_map.get(tid) if isinstance(tid, int) else None
                t = own if own is not None else self.make_track(pid, tid, c)
            else:
                t = self.make_track(pid, tid, c)
            self._track_of[(pt, c)] = t
        return t

    def _tracks_for(self, pt: np.ndarray, cls: np.ndarray) -> np.ndarray:
        if pt.size == 0:
            return np.zeros(0, dtype=np.int64)
        key = pt * 64 + cls
        uniq, inv = np.unique(key, return_inverse=True)
        # Create tracks in a stable order: by (pid, tid) first appearance rank, then class.
        lut = np.array([self._track(int(k) // 64, int(k) % 64) for k in uniq.tolist()], dtype=np.int64)
        return lut[inv.reshape(-1)]

    def _match_begin_end(self, code: np.ndarray, ts: np.ndarray, pt_code: np.ndarray,
                         cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pair B and E events per (pid, tid) as stacks, in time order (file order breaks ties)."""
        be = np.flatnonzero((code == BEGIN) | (code == END))
        if be.size == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        be = be[np.lexsort((be, ts[be]))]
        stacks: dict[int, list[int]] = defaultdict(list)
        out_rows: list[int] = []
        out_end: list[int] = []
        unmatched = 0
        evs = self.dec.events
        for i, c, p in zip(be.tolist(), code[be].tolist(), pt_code[be].tolist(), strict=True):
            if c == BEGIN:
                stacks[p].append(i)
            else:
                st = stacks[p]
                if not st:
                    unmatched += 1
                    continue
                b = st.pop()
                if not evs[b].name and evs[i].name:
                    evs[b].name = evs[i].name
                out_rows.append(b)
                out_end.append(i)
        self.stats.drop("unmatched_end", unmatched)
        self.stats.drop("unclosed_begin", sum(len(s) for s in stacks.values()))
        rows = np.asarray(out_rows, dtype=np.int64)
        ends = np.asarray(out_end, dtype=np.int64)
        return rows, ts[rows], ts[ends] - ts[rows]

    def _instants(self, rows: np.ndarray, ts: np.ndarray, pt_code: np.ndarray, cls: np.ndarray,
                  names: pa.Array, cats: pa.Array) -> None:
        if rows.size == 0:
            return
        evs = self.dec.events
        name_l = names.take(pa.array(rows)).to_pylist()
        cat_l = cats.take(pa.array(rows)).to_pylist()
        arg_l = [bytes(evs[i].args).decode() or None for i in rows.tolist()]
        for k, i in enumerate(rows.tolist()):
            e = evs[i]
            scope = e.s or "t"
            if self._own_map and isinstance(e.tid, int) and e.tid in self._own_map:
                track = self._own_map[e.tid]
            elif scope == "g":
                track = self.global_track()
            elif scope == "p":
                track = self.group_track(e.pid)
            else:
                track = self._track(int(pt_code[i]), int(cls[i]))
            self.b.add_instant(track, int(ts[i]), name_l[k], cat_l[k], arg_l[k])  # type: ignore[arg-type]

    def _counters(self, rows: np.ndarray, ts: np.ndarray) -> None:
        if rows.size == 0:
            return
        evs = self.dec.events
        parsed = [(i, _args_dict(evs[i].args)) for i in rows.tolist()]
        keys: dict[tuple[Any, str], set[str]] = defaultdict(set)
        for i, a in parsed:
            keys[(evs[i].pid, evs[i].name)].update(a)
        tr: list[int] = []
        tss: list[int] = []
        vals: list[float] = []
        bad = 0
        for i, a in parsed:
            e = evs[i]
            single = len(keys[(e.pid, e.name)]) == 1
            for k, v in a.items():
                if isinstance(v, bool) or not isinstance(v, int | float):
                    bad += 1
                    continue
                if self._own_map and isinstance(e.tid, int) and e.tid in self._own_map:
                    t = self._own_map[e.tid]
                else:
                    t = self.counter_track(e.pid, e.tid, e.name, k, single)
                tr.append(t)
                tss.append(int(ts[i]))
                vals.append(float(v))
        self.stats.drop("counter_value_not_a_number", bad)
        empty = sum(1 for _, a in parsed if not a)
        self.stats.drop("counter_without_values", empty)
        if tr:
            self.b.add_counters(np.asarray(tr), np.asarray(tss, dtype=np.int64), np.asarray(vals))

    def _flows_v1(self, frows: np.ndarray, code: np.ndarray, ts: np.ndarray, pt_code: np.ndarray,
                  s_rows: np.ndarray, s_pt: np.ndarray, s_ts: np.ndarray, s_dur: np.ndarray,
                  ids: np.ndarray) -> None:
        """Chain s -> t* -> f events of one (id, cat, name) and bind each to a slice of its thread."""
        if frows.size == 0:
            return
        evs = self.dec.events
        keys = [(evs[i].id, evs[i].cat, evs[i].name) for i in frows.tolist()]
        kidx = {k: j for j, k in enumerate(dict.fromkeys(keys))}
        kc = np.fromiter(map(kidx.__getitem__, keys), dtype=np.int64, count=frows.size)
        ph = code[frows]
        # Phase before time: Kineto's GPU clock can put a kernel's "f" a little before its launch's "s".
        order = np.lexsort((frows, ts[frows], ph, kc))
        frows, kc, ph = frows[order], kc[order], ph[order]
        nxt_same = np.zeros(frows.size, dtype=bool)
        nxt_same[:-1] = kc[1:] == kc[:-1]
        pair = nxt_same.copy()
        pair[:-1] &= (ph[:-1] != FLOW_F) & (ph[1:] != FLOW_S)
        pair[-1] = False
        src = np.flatnonzero(pair)
        dst = src + 1
        used = np.zeros(frows.size, dtype=bool)
        used[src] = True
        used[dst] = True
        lone = ~used
        self.stats.drop("flow_start_without_end", int((lone & (ph != FLOW_F)).sum()))
        self.stats.drop("flow_end_without_start", int((lone & (ph == FLOW_F)).sum()))
        # Binding: s always to the enclosing slice; t/f to the enclosing one with bp="e", else the next.
        q_pt = pt_code[frows]
        q_ts = ts[frows]
        enclosing = np.array([ph_ == FLOW_S or evs[i].bp == "e" for ph_, i in zip(ph.tolist(), frows.tolist(), strict=True)],
                             dtype=bool)
        bound = np.full(frows.size, -1, dtype=np.int64)
        # Only threads that flows touch need sorting and nesting.
        on = np.isin(s_pt, np.unique(q_pt[used]))
        sub = np.flatnonzero(on)
        binder = Binder(s_pt[sub], s_ts[sub], np.maximum(s_dur[sub], 0))
        need = used & enclosing
        if need.any():
            got = binder.enclosing(q_pt[need], q_ts[need])
            bound[need] = np.where(got >= 0, sub[np.maximum(got, 0)], -1)
        need = used & ~enclosing
        if need.any():
            got = binder.next(q_pt[need], q_ts[need])
            bound[need] = np.where(got >= 0, sub[np.maximum(got, 0)], -1)
        ok = (bound[src] >= 0) & (bound[dst] >= 0)
        self.stats.drop("flow_endpoint_not_on_a_slice", int((~ok).sum()))
        src, dst = src[ok], dst[ok]
        names = [evs[i].name or None for i in frows[src].tolist()]
        self.b.add_flows(ids[bound[src]], ids[bound[dst]], name=names)

    def _flows_v2(self, s_rows: np.ndarray, ids: np.ndarray) -> None:
        evs = self.dec.events
        outs: dict[Any, list[int]] = defaultdict(list)
        ins: dict[Any, list[int]] = defaultdict(list)
        for k, i in enumerate(s_rows.tolist()):
            e = evs[i]
            if e.bind_id is None:
                continue
            if e.flow_out:
                outs[e.bind_id].append(k)
            if e.flow_in:
                ins[e.bind_id].append(k)
        fr: list[int] = []
        to: list[int] = []
        for bid, srcs in outs.items():
            dsts = ins.get(bid, [])
            for a in srcs:
                for d in dsts:
                    fr.append(int(ids[a]))
                    to.append(int(ids[d]))
        self.stats.drop("flow_unmatched", sum(len(v) for b, v in outs.items() if b not in ins)
                        + sum(len(v) for b, v in ins.items() if b not in outs))
        if fr:
            self.b.add_flows(np.asarray(fr), np.asarray(to))


def _fits(struct: type[msgspec.Struct], key: str, value: Any) -> bool:
    try:
        msgspec.convert({key: value}, struct)
    except msgspec.ValidationError:
        return False
    return True


__all__ = ["JsonImporter", "LiftArgs", "Meta", "Event"]
