"""Turning decoded trace events into a Trace: phases, tracks, slices, counters, instants, flows.

Shared by the Chrome JSON and the Kineto readers; they differ only in how events map to tracks
and which args are lifted into columns (:class:`JsonImporter` hooks).

Speed budget: a million events must load in at most 1.5x the time of ``orjson.loads`` alone
(bench/bench_json_load.py).  Decoding takes about a third of that, so everything after it is
columnar and touches each event as few times as possible: one pass numbers the distinct
(ph, cat, pid, tid, name) combinations (phases, categories, threads and names then come from
small tables), ``ts``/``dur`` go straight into numpy, the args of the slices are joined once into
the Arrow column, flows are matched by one sort and bound by sorted searches, and the slices are
handed to the builder already in canonical order so it does not copy the columns again.
Per-event Python loops run only over the rare phases (B/E, counters, instants, metadata,
flow v2) and over the args that hold lifted keys.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, cast

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from profiler.builder import TraceBuilder
from profiler.formats.json_events import (
    EXACT_FLOAT_US,
    TS_OUT_OF_RANGE,
    Decoded,
    Event,
    EventExactTs,
    exact_ts_ns,
    gc_paused,
    raw_numbers_to_ns_present,
    raw_to_string_array,
    us_to_ns,
)
from profiler.formats.json_flows import Binder, flow_kinds, link_points
from profiler.model import Trace
from profiler.nesting import canonical_order

# Phase classes.
UNKNOWN, SLICE, BEGIN, END, INSTANT, COUNTER, FLOW_S, FLOW_T, FLOW_F, META = range(10)
_PHASES = {"X": SLICE, "B": BEGIN, "E": END, "i": INSTANT, "I": INSTANT, "n": INSTANT, "R": INSTANT,
           "C": COUNTER, "s": FLOW_S, "t": FLOW_T, "f": FLOW_F, "M": META}

#: Key under ``otherData`` where our writer stores the exact track tree and the time base.
OWN_KEY = "accel_profiler"
#: Args decoded per batch when the events are streamed (bounds the copied-out text).
_ARGS_BATCH = 65536
#: Largest |ts| in microseconds whose nanoseconds fit int64.
_MAX_US = 9.2e15


def pick(seq: Sequence[Any], rows: np.ndarray) -> Sequence[Any]:
    """``[seq[i] for i in rows]`` in one C call (itemgetter), for row subsets of the event list."""
    if rows.size == 0:
        return []
    if rows.size == 1:
        return [seq[int(rows[0])]]
    return itemgetter(*rows.tolist())(seq)


def float_column(objs: Sequence[Any], attr: str) -> np.ndarray:
    """One float attribute of every object as float64, None -> NaN (no intermediate list when none is None)."""
    get = attrgetter(attr)
    try:
        return np.fromiter(map(get, objs), dtype=np.float64, count=len(objs))
    except TypeError:  # some are None
        return np.array([get(o) for o in objs], dtype=np.float64)


def encode_strings(values: Sequence[str | None]) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes (int32, -1 for None) and the dictionary of a column of strings.

    One Arrow conversion and hash pass in C; names repeat a lot (a few thousand distinct in a
    million events), so everything after this works on small integers.
    """
    arr = pa.array(values, type=pa.string()).dictionary_encode()
    codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return codes, arr.dictionary


def dict_column(codes: np.ndarray, dictionary: pa.Array) -> pa.Array:
    """A dictionary array from codes made by :func:`encode_strings` (negative codes are nulls)."""
    codes = np.asarray(codes, dtype=np.int32)
    neg = codes < 0
    idx = pa.array(np.where(neg, 0, codes), mask=neg) if neg.any() else pa.array(codes)
    return pa.DictionaryArray.from_arrays(idx, dictionary)


def pair_codes(pids: list[Any], tids: list[Any]) -> tuple[np.ndarray, list[tuple[Any, Any]]]:
    """Code of each (pid, tid) pair, numbered by first appearance, and the pairs in that order.

    Integer ids (the usual case) go through numpy; string ids (some Chrome JSON writers use
    names) through a dict.
    """
    n = len(pids)
    try:
        p = np.fromiter(pids, dtype=np.int64, count=n)
        t = np.fromiter(tids, dtype=np.int64, count=n)
    except (TypeError, ValueError, OverflowError):
        keys = list(zip(pids, tids, strict=True))
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        return np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=n), list(index)
    if n == 0:
        return np.zeros(0, dtype=np.int64), []
    p0, t0 = int(p.min()), int(t.min())
    span = int(t.max()) - t0 + 1
    if (int(p.max()) - p0 + 1) * span < 2**62:
        _, first, inv = np.unique((p - p0) * span + (t - t0), return_index=True, return_inverse=True)
    else:
        _, first, inv = np.unique(np.stack([p, t], axis=1), axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # number pairs by first appearance, like a dict would
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    first = first[order]
    return rank[inv.reshape(-1)], list(zip(p[first].tolist(), t[first].tolist(), strict=True))


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
        try:  # numbers beyond float64 (1e999): Python reads them as inf, the callers count them
            v = json.loads(bytes(raw))
        except (ValueError, RecursionError):
            return {}
    return v if isinstance(v, dict) else {}


def binary_to_string_array(arr: pa.Array, stats: Any) -> pa.Array:
    """Binary args text as a string array; invalid UTF-8 is replaced and counted like the list path."""
    try:
        return arr.cast(pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())
    except pa.ArrowInvalid:
        return raw_to_string_array(cast(list[msgspec.Raw], [b or b"" for b in arr.to_pylist()]), stats)


def out_of_order(file_rows: np.ndarray, track: np.ndarray, ts: np.ndarray) -> int:
    """How many slices the file had out of time order on their track (sorting moved them back).

    The slices are given in canonical order (track, then time): wherever, within one track, the
    file position goes backwards between two slices of different start times, the file had the
    later one first.  Equal starts are only tie-breaking (parents before children), not counted.
    """
    if file_rows.size < 2:
        return 0
    back = (np.diff(file_rows) < 0) & (track[1:] == track[:-1]) & (ts[1:] != ts[:-1])
    return int(back.sum())


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
    def event_classes(self, cat_codes: np.ndarray, cat_dict: pa.Array, pt_code: np.ndarray) -> np.ndarray:
        """Per-event class used with (pid, tid) to pick a track; the generic layout has one class."""
        return np.zeros(cat_codes.size, dtype=np.int64)

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
        """Decode the args of some events in one msgspec call; per-event fallback when types do not fit.

        Streamed events are decoded in batches, so the args text is not copied out whole at once.
        """
        evs: Any = self.dec.events
        if getattr(evs, "columnar", False):
            out: list[Any] = []
            for lo in range(0, event_rows.size, _ARGS_BATCH):
                out += self._decode_raws(evs.args_rows(event_rows[lo : lo + _ARGS_BATCH]), struct)
            return out
        return self._decode_raws([e.args for e in pick(evs, event_rows)], struct)

    def _decode_raws(self, raws: Sequence[Any], struct: type[msgspec.Struct]) -> list[Any]:
        body = b"[" + b",".join([r if r else b"null" for r in raws] if not all(raws) else raws) + b"]"
        dec = msgspec.json.Decoder(list[struct | None])  # type: ignore[valid-type]
        try:
            return list(dec.decode(body))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            pass
        one = msgspec.json.Decoder(struct)
        out: list[Any] = []
        bad = 0
        for r in raws:
            try:
                out.append(one.decode(r) if r else None)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
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
            # Everything is in the builder's columns now: free the decoded events (about 400 MB
            # per million) before building, which lowers the peak memory.
            self.dec.events = []
            self.dec.source = None
        return self.b.build()

    def _run(self) -> None:
        evs: Any = self.dec.events
        stats = self.stats
        # One pass numbers the distinct (ph, cat, pid, tid, name) combinations (a few thousand in
        # a million events); phase codes, categories, threads and names then come from small tables.
        # Streamed events arrive as columns already (profiler.formats.json_stream.StreamEvents).
        columnar = getattr(evs, "columnar", False)
        if columnar:
            combo, keys = evs.combo, list(evs.combos)
        else:
            combos: dict[tuple[Any, Any, Any, Any, Any], int] = {}
            sd = combos.setdefault
            combo = np.array([sd((e.ph, e.cat, e.pid, e.tid, e.name), len(combos)) for e in evs], dtype=np.int64)
            keys = list(combos)
        code = np.array([_PHASES.get(k[0], UNKNOWN) for k in keys], dtype=np.int8)[combo]
        stats.drop("unknown_phase", int((code == UNKNOWN).sum()))
        ts, ts_ok, ts_present = self._timestamps()
        needs_ts = (code != META) & (code != UNKNOWN)
        beyond = needs_ts & ts_present & ~ts_ok & (ts == TS_OUT_OF_RANGE)  # numbers past int64 ns
        base = self._time_base()
        if base:
            ts = ts + np.int64(base)
        stats.drop("missing_ts", int((needs_ts & ~ts_present).sum()))
        stats.drop("ts_out_of_range", int(beyond.sum()))
        stats.drop("ts_not_a_number", int((needs_ts & ts_present & ~ts_ok & ~beyond).sum()))
        code = np.where(needs_ts & ~ts_ok, UNKNOWN - 1, code)  # -1: dropped, counted above

        self._read_meta(np.flatnonzero(code == META))
        self._own_tracks()

        pt_of_combo, pt_list = pair_codes([k[2] for k in keys], [k[3] for k in keys])
        pt_code = pt_of_combo[combo]
        live = np.unique(pt_code[(code != META) & (code != COUNTER) & (code >= SLICE)])
        self._rank_processes_threads([pt_list[i] for i in live.tolist()])
        self._pt_all = pt_list
        self._pt_list = pt_list
        self.ts_max = int(ts[ts_ok].max()) if ts_ok.any() else 0
        cat_of_combo, cat_dict = encode_strings([k[1] for k in keys])
        cat_codes = cat_of_combo[combo]
        self.combo_names = (combo, [k[4] for k in keys], code)  # event_classes may look at names and phases too
        cls = self.event_classes(cat_codes, cat_dict, pt_code)
        self._track_of: dict[tuple[int, int], int] = {}
        self._counter_tracks: dict[tuple[Any, ...], int] = {}

        # ---- slices: X events and matched B/E pairs
        rows_x = np.flatnonzero(code == SLICE)
        s_raw_args: list[Any] | None
        if columnar:
            dur_us, s_raw_args, has_bind_id = evs.dur_us[rows_x], None, bool(evs.bind_rows)
        else:
            x_evs = pick(evs, rows_x)
            dur_us = float_column(x_evs, "dur")
            s_raw_args = [e.args for e in x_evs]
            has_bind_id = any([e.bind_id is not None for e in x_evs])
            del x_evs
        nodur = np.isnan(dur_us)
        stats.drop("missing_dur", int(nodur.sum()))
        huge = ~nodur & ~(np.abs(np.where(nodur, 0.0, dur_us)) < _MAX_US)  # inf, or beyond int64 ns
        stats.drop("dur_out_of_range", int(huge.sum()))
        nodur |= huge
        if nodur.any():
            rows_x, dur_us = rows_x[~nodur], dur_us[~nodur]
            if s_raw_args is not None:
                s_raw_args = [a for a, bad in zip(s_raw_args, nodur.tolist(), strict=True) if not bad]
        ts_x = ts[rows_x]
        dur_ns = us_to_ns(dur_us)
        b_rows, b_ts, b_dur = self._match_begin_end(code, ts, pt_code, cls)  # may fill B names from E
        rows = np.concatenate([rows_x, b_rows]) if b_rows.size else rows_x
        s_ts = np.concatenate([ts_x, b_ts]) if b_rows.size else ts_x
        s_dur = np.concatenate([dur_ns, b_dur]) if b_rows.size else dur_ns
        if b_rows.size:
            b_evs = pick(evs, b_rows)
            if s_raw_args is not None:
                s_raw_args += [e.args for e in b_evs]
            has_bind_id = has_bind_id or any(e.bind_id is not None for e in b_evs)
        s_track = self._tracks_for(pt_code[rows], cls[rows])
        # Hand the slices over in the builder's canonical order: it then keeps the columns as they
        # are instead of copying them (the args text alone is ~100 MB per million slices).
        o = canonical_order(s_track, s_ts, s_dur) if rows.size else np.zeros(0, dtype=np.int64)
        rows, s_ts, s_dur, s_track = rows[o], s_ts[o], s_dur[o], s_track[o]
        stats.repair("events_out_of_order_sorted", out_of_order(rows, s_track, s_ts))
        sorted_args = pick(s_raw_args, o) if s_raw_args is not None else None
        del s_raw_args
        s_pt = pt_code[rows]
        seen: dict[str, int] = {}
        sd_name = seen.setdefault
        self.name_codes = np.array([sd_name(k[4], len(seen)) for k in keys], dtype=np.int32)[combo]
        if b_rows.size:  # B events may have taken their name from the matching E
            self.name_codes[b_rows] = [sd_name(e.name, len(seen)) for e in pick(evs, b_rows)]
        self.name_dict = pa.array(list(seen), type=pa.string())
        self.cat_codes, self.cat_dict = cat_codes, cat_dict
        if sorted_args is not None:
            s_args = raw_to_string_array(sorted_args, stats)
        else:
            s_args = binary_to_string_array(evs.args_array(rows), stats)
            evs.adopt_slice_args(rows, s_args)
        del sorted_args
        s_cats = dict_column(cat_codes[rows], cat_dict)
        lifted = self.lift(rows, s_args, s_cats)
        ids = self.b.add_slices(s_track, s_ts, s_dur, dict_column(self.name_codes[rows], self.name_dict),
                                category=s_cats, flops=lifted.get("flops"), bytes=lifted.get("bytes"),
                                dtype=lifted.get("dtype"), args=s_args)

        # ---- instants, counters
        names_all = dict_column(self.name_codes, self.name_dict)
        cats_all = dict_column(cat_codes, cat_dict)
        self._instants(np.flatnonzero(code == INSTANT), ts, pt_code, cls, names_all, cats_all)
        self._counters(np.flatnonzero(code == COUNTER), ts)

        # ---- flows
        flow_rows = np.flatnonzero((code == FLOW_S) | (code == FLOW_T) | (code == FLOW_F))
        used_cats = np.unique(cat_codes[flow_rows])
        flow_cats = {c or "" for c in cat_dict.take(pa.array(used_cats[used_cats >= 0])).to_pylist()}
        if (used_cats < 0).any():
            flow_cats.add("")
        self._flows_v1(flow_rows, code, ts, pt_code, s_pt, s_ts, s_dur, ids)
        if has_bind_id:
            self._flows_v2(rows, ids)
        self.extra_flows(rows, ids, flow_cats)
        self.finish()

    def _timestamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ns, valid, present) for every event's ts: floats when exact, the text otherwise."""
        evs = self.dec.events
        if evs and isinstance(evs[0], EventExactTs):  # decoded with ts as text (epoch microseconds)
            ns, ok, present = raw_numbers_to_ns_present([e.ts for e in cast(list[EventExactTs], evs)])
            return ns, ok, present
        us = float_column(evs, "ts")
        present = ~np.isnan(us)
        small = np.abs(us) < EXACT_FLOAT_US
        if bool((small | ~present).all()):
            return us_to_ns(us), present, present
        exact = exact_ts_ns(self.dec)
        if exact is not None:
            ns, ok = exact
            return ns, ok & present, present
        ok = present & (np.abs(us) < _MAX_US)  # the tolerant path had floats only: best effort
        ns = us_to_ns(np.where(ok, us, 0.0))
        ns[present & ~ok] = TS_OUT_OF_RANGE
        return ns, ok, present

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
        arg_l = [bytes(evs[i].args).decode(errors="replace") or None for i in rows.tolist()]
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
                  s_pt: np.ndarray, s_ts: np.ndarray, s_dur: np.ndarray, ids: np.ndarray) -> None:
        """Chain s -> t* -> f events of one (id, cat, name) and bind each to a slice of its thread.

        Columnar: the chains come from one sort by (id, cat, name, phase, ts), the binding from
        sorted searches (:class:`Binder`); no Python object per flow beyond reading id and bp.
        """
        if frows.size == 0:
            return
        evs: Any = self.dec.events
        if getattr(evs, "columnar", False):  # streamed flow events are columns: id and bp="e"
            fids, fbp_e = evs.flow_columns(frows)
        else:
            fev = pick(evs, frows)
            fids, fbp_e = [e.id for e in fev], None
            del fev
        id_code = _id_codes(list(fids) if isinstance(fids, np.ndarray) and fids.dtype == object else fids)
        ph = code[frows]
        # Chains in time order; at equal times a start comes before a step before an end.
        order = np.lexsort((frows, ph, ts[frows], self.name_codes[frows], self.cat_codes[frows], id_code))
        frows, ph = frows[order], ph[order]
        kc, kcat, kname = id_code[order], self.cat_codes[frows], self.name_codes[frows]
        same = (kc[1:] == kc[:-1]) & (kcat[1:] == kcat[:-1]) & (kname[1:] == kname[:-1])
        new_chain = np.concatenate([[True], ~same])
        src, dst = link_points(new_chain, ph != FLOW_F, ph != FLOW_S)
        used = np.zeros(frows.size, dtype=bool)
        used[src] = True
        used[dst] = True
        self.stats.drop("flow_start_without_end", int((~used & (ph == FLOW_S)).sum()))
        self.stats.drop("flow_end_without_start", int((~used & (ph != FLOW_S)).sum()))
        # Binding: s always to the enclosing slice; t/f to the enclosing one with bp="e", else the next.
        q_pt = pt_code[frows]
        q_ts = ts[frows]
        enclosing = ph == FLOW_S
        not_s = np.flatnonzero(~enclosing)
        if not_s.size:
            if fbp_e is not None:
                enclosing[not_s] = fbp_e[order][not_s]
            else:
                enclosing[not_s] = np.array([e.bp == "e" for e in pick(evs, frows[not_s])], dtype=bool)
        bound = np.full(frows.size, -1, dtype=np.int64)
        # Only threads that flows touch need sorting.
        on = np.isin(s_pt, np.unique(q_pt[used]))
        sub = np.flatnonzero(on)
        binder = Binder(s_pt[sub], s_ts[sub], np.maximum(s_dur[sub], 0))
        for rule, need in (("enclosing", used & enclosing), ("next", used & ~enclosing)):
            if need.any() and sub.size:  # no slice on the threads the flows touch: nothing binds
                got = binder.enclosing(q_pt[need], q_ts[need]) if rule == "enclosing" else binder.next(q_pt[need], q_ts[need])
                bound[need] = np.where(got >= 0, sub[np.maximum(got, 0)], -1)
        ok = (bound[src] >= 0) & (bound[dst] >= 0)
        self.stats.drop("flow_endpoint_not_on_a_slice", int((~ok).sum()))
        src, dst = src[ok], dst[ok]
        # Flows in the order their chains first appear in the file (what a per-event reader gives).
        group = np.cumsum(new_chain)  # chain number of each sorted flow event
        first_row = np.minimum.reduceat(frows, np.flatnonzero(new_chain))
        keep_order = np.argsort(first_row[group[src] - 1], kind="stable")
        src, dst = src[keep_order], dst[keep_order]
        kinds = self.b.metadata.extra.setdefault("flow_kinds", {})
        for k, v in flow_kinds(src, ids[bound[dst]]).items():
            kinds[k] = kinds.get(k, 0) + v
        names = dict_column(self.name_codes[frows[src]], self.name_dict).cast(pa.string())
        names = pc.if_else(pc.equal(names, ""), pa.scalar(None, pa.string()), names)
        a, b = ids[bound[src]], ids[bound[dst]]
        rev = self._own.get("reversed_flows") if isinstance(self._own, dict) else None
        back = {v for v in rev if isinstance(v, int)} if isinstance(rev, list) else set()
        if back:  # our writer wrote these destination -> source (see chrome_json_writer)
            flip = np.array([fids[j] in back for j in order[src].tolist()], dtype=bool)
            a, b = np.where(flip, b, a), np.where(flip, a, b)
        self.b.add_flows(a, b, name=names)

    def _flows_v2(self, s_rows: np.ndarray, ids: np.ndarray) -> None:
        evs: Any = self.dec.events
        outs: dict[Any, list[int]] = defaultdict(list)
        ins: dict[Any, list[int]] = defaultdict(list)
        if getattr(evs, "columnar", False):  # only the kept events can carry a bind_id
            ks = np.flatnonzero(np.isin(s_rows, np.asarray(evs.bind_rows, dtype=np.int64)))
            pairs: Any = zip(ks.tolist(), s_rows[ks].tolist(), strict=True)
        else:
            pairs = enumerate(s_rows.tolist())
        for k, i in pairs:
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


def _id_codes(ids: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Flow ids as sortable int64 codes: the ids themselves when all are integers, else dict codes."""
    if isinstance(ids, np.ndarray) and ids.dtype == np.int64:
        return ids
    try:
        return np.fromiter(ids, dtype=np.int64, count=len(ids))
    except (TypeError, ValueError, OverflowError):
        index = {k: i for i, k in enumerate(dict.fromkeys((type(v).__name__, v) for v in ids))}
        return np.fromiter((index[(type(v).__name__, v)] for v in ids), dtype=np.int64, count=len(ids))


def _fits(struct: type[msgspec.Struct], key: str, value: Any) -> bool:
    try:
        msgspec.convert({key: value}, struct)
    except msgspec.ValidationError:
        return False
    return True


__all__ = ["JsonImporter", "LiftArgs", "Meta", "Event"]
