"""Turn the per-thread int streams of a session into a :class:`profiler.Trace`.

Runs once, at session stop, and does no per-region Python work: begins and ends are paired in
bulk.  In a stream of properly nested brackets, the brackets that open and close one nesting
level alternate (begin, end, begin, end, ...) in program order, so a stable sort of the bracket
positions by level lines every begin up right before its end.  A begin with ``METRICS_FLAG`` is
followed by two number words (flops, bytes), set aside first.  Damage is repaired first: an end
with no begin (the session started inside a region) is dropped, regions still open at stop are
closed at the stop time, and a time earlier than the event before it in the same stream (a pure
Python begin whose clock read was interrupted by a signal handler that recorded) is raised to
that event's time; all are counted in the import statistics.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from collectors.runtime._recorder import FLOW_IN, FLOW_OUT, INSTANT, ThreadBuffer
from collectors.runtime._sites import MAX_SESSION_NS, METRICS_FLAG, POINT_SITE, TIME_BITS, SiteTable
from profiler.builder import TraceBuilder
from profiler.engine_names import is_dma_engine_name
from profiler.model import Trace


@dataclass
class DecodedStream:
    """One thread's regions (paired) and point events (with their enclosing region)."""

    site: np.ndarray  # per region
    ts: np.ndarray
    dur: np.ndarray
    flops: np.ndarray  # per region, NaN where not given
    nbytes: np.ndarray
    point_region: np.ndarray  # per point: index into the regions above, -1 outside any region
    point_ts: np.ndarray
    point_raw_ts: np.ndarray  # the time each point marker holds (pairs it with its payload)
    events: int  # begin, end and point events read (number words not counted)


def decode_stream(values: np.ndarray, t0: int, t1: int, n_sites: int, stats: Any) -> DecodedStream:
    """Pair begins with ends in one thread's stream (see the module docstring)."""
    v = values.astype(np.int64, copy=False)
    n = v.size
    begin_like = v < 0
    ts = v.copy()
    site = np.full(n, -1, dtype=np.int64)
    if begin_like.any():
        u = -v[begin_like]
        q = (u - t0) >> TIME_BITS
        site[begin_like] = q - 1
        ts[begin_like] = u - (q << TIME_BITS)
    # Number words follow a begin with the flag; they are not events.
    with_numbers = np.flatnonzero(begin_like & (site >= METRICS_FLAG) & (site < 2 * METRICS_FLAG))
    with_numbers = with_numbers[with_numbers + 2 < n]
    payload = np.zeros(n, dtype=bool)
    payload[with_numbers + 1] = True
    payload[with_numbers + 2] = True
    site[with_numbers] -= METRICS_FLAG
    bad = begin_like & ((site < 0) | (site >= n_sites))
    if bad.any():
        stats.drop("sdk_event_undecodable", int(bad.sum()))
    is_point = begin_like & (site == POINT_SITE)
    raw_ts = ts[is_point]
    event = ~payload & ~bad
    if event.any():  # times never go back within one stream (see the module docstring)
        et = ts[event]
        mono = np.maximum.accumulate(et)
        moved = int(np.count_nonzero(mono != et))
        if moved:
            stats.repair("sdk_event_time_raised_to_previous", moved)
            ts[event] = mono
    e = np.zeros(n, dtype=np.int64)
    e[begin_like & ~is_point & ~bad] = 1
    e[~begin_like & ~payload] = -1

    # Ends without a begin: where the running depth goes below its previous minimum.
    s = np.cumsum(e)
    prev_min = np.minimum.accumulate(np.concatenate(([0], s[:-1]))) if n else s
    orphan = (e == -1) & (s < np.minimum(prev_min, 0))
    if orphan.any():
        stats.drop("sdk_region_end_without_begin", int(orphan.sum()))
        e[orphan] = 0
        s = np.cumsum(e)
    still_open = int(s[-1]) if n else 0
    if still_open:
        stats.repair("sdk_region_closed_at_stop", still_open)
        e = np.concatenate((e, np.full(still_open, -1, dtype=np.int64)))
        ts = np.concatenate((ts, np.full(still_open, t1, dtype=np.int64)))
        site = np.concatenate((site, np.full(still_open, -1, dtype=np.int64)))
        s = np.cumsum(e)

    idx = np.flatnonzero(e != 0)
    level = np.where(e == 1, s - 1, s)[idx]
    order = idx[np.argsort(level, kind="stable")]
    begins, ends = order[0::2], order[1::2]
    reg_ts = ts[begins]
    dur = ts[ends] - reg_ts
    flops = np.full(begins.size, np.nan)
    nbytes = np.full(begins.size, np.nan)
    if with_numbers.size:
        region_at = np.full(e.size, -1, dtype=np.int64)
        region_at[begins] = np.arange(begins.size)
        r = region_at[with_numbers]
        ok = r >= 0
        words = v.view(np.float64)
        flops[r[ok]] = words[with_numbers[ok] + 1]
        nbytes[r[ok]] = words[with_numbers[ok] + 2]

    # The region enclosing a point: the last begin before it on the level just below its depth.
    pts = np.flatnonzero(is_point)
    point_region = np.full(pts.size, -1, dtype=np.int64)
    if pts.size and begins.size:
        span = np.int64(e.size + 1)
        blevel = s[begins] - 1
        key = blevel * span + begins
        korder = np.argsort(key, kind="stable")
        skey = key[korder]
        depth = s[pts]
        inside = depth > 0
        q = (depth - 1) * span + pts
        pos = np.searchsorted(skey, q, side="right") - 1
        ok = inside & (pos >= 0)
        cand = korder[np.clip(pos, 0, None)]
        ok &= blevel[cand] == depth - 1
        point_region[ok] = cand[ok]
    return DecodedStream(site[begins], reg_ts, dur, flops, nbytes, point_region, ts[pts], raw_ts,
                         n - 2 * int(with_numbers.size))


def stream_values(stream: Any) -> np.ndarray:
    """A thread's events as int64: a view of a C stream (no copy), a copy of an ``array('q')``.

    The copy of the Python path's array fixes its length: a late append from a thread that
    checked the session flag just before the stop would otherwise move the memory under the view.
    A C stream keeps the memory a view reads alive by itself.
    """
    if isinstance(stream, array):
        stream = stream[:]
    if not len(stream):
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(stream, dtype=np.int64)


def site_dict_column(values: Sequence[str | None], site: np.ndarray) -> pa.Array:
    """A dictionary column for per-site strings: unique dictionary, None -> null slot."""
    uniq: dict[str, int] = {}
    codes = np.empty(len(values), dtype=np.int32)
    for i, v in enumerate(values):
        codes[i] = -1 if v is None else uniq.setdefault(v, len(uniq))
    c = codes[site] if site.size else np.zeros(0, dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(c, mask=c < 0), pa.array(list(uniq), type=pa.string()))


def engine_kind(engine: str) -> str:
    """Track kind for an engine name: copy/DMA queues are ``dma``, everything else ``compute``."""
    return "dma" if is_dma_engine_name(engine) else "compute"


def build_trace(
    buffers: list[ThreadBuffer],
    sites: SiteTable,
    counter_names: list[str],
    t0: int,
    t1: int,
    name: str,
    device: str,
    extra: dict[str, Any],
) -> Trace:
    """Assemble the trace: a process group with thread tracks, engine tracks, counter tracks."""
    b = TraceBuilder(source_format="sdk", source=name, clock="perf_counter_ns")
    stats = b.stats
    if t1 - t0 >= MAX_SESSION_NS:
        stats.drop("sdk_session_longer_than_limit", 1)
    names, engines_by_site, dtypes, categories, site_args = sites.columns()
    n_sites = len(names)
    proc = b.add_track(f"{name} (pid {os.getpid()})", kind="group", device="host", attrs={"pid": os.getpid()})

    # Threads: one track per (ident, name); a thread seen by several contexts merges into one.
    thread_track: dict[tuple[int, str], int] = {}
    decoded: list[tuple[ThreadBuffer, DecodedStream, int]] = []
    snapshot = [(buf, stream_values(buf.stream), list(buf.points)) for buf in buffers]
    for buf, vals, _ in snapshot:
        key = (buf.ident, buf.thread_name)
        if key not in thread_track:
            thread_track[key] = b.add_track(buf.thread_name, kind="host", parent=proc,
                                            attrs={"tid": buf.native_id, "thread_ident": buf.ident})
        d = decode_stream(vals, t0, t1, n_sites, stats)
        stats.events_read += d.events
        decoded.append((buf, d, thread_track[key]))

    engines = sorted({e for e in engines_by_site if e is not None})
    engine_track: dict[str, int] = {}
    site_track_override = np.full(n_sites, -1, dtype=np.int64)
    if engines:
        used = set()
        for _, d, _ in decoded:
            used.update(np.unique(d.site).tolist())
        used_engines = sorted({engines_by_site[s] for s in used if engines_by_site[s] is not None})
        if used_engines:
            grp = b.add_track(device, kind="group", device=device)
            for eng in used_engines:
                engine_track[eng] = b.add_track(eng, kind=engine_kind(eng), parent=grp, attrs={"engine": eng})
            for s, eng in enumerate(engines_by_site):
                if eng in engine_track:
                    site_track_override[s] = engine_track[eng]

    # Regions of every thread in one columnar add.
    site_all = np.concatenate([d.site for _, d, _ in decoded]) if decoded else np.zeros(0, np.int64)
    ts_all = np.concatenate([d.ts for _, d, _ in decoded]) if decoded else np.zeros(0, np.int64)
    dur_all = np.concatenate([d.dur for _, d, _ in decoded]) if decoded else np.zeros(0, np.int64)
    thr_all = np.concatenate([np.full(d.site.size, tr, dtype=np.int64) for _, d, tr in decoded]) \
        if decoded else np.zeros(0, np.int64)
    over = site_track_override[site_all] if site_all.size else site_all
    track_all = np.where(over >= 0, over, thr_all)
    idx32 = pa.array(site_all.astype(np.int32))
    flops = np.concatenate([d.flops for _, d, _ in decoded]) if decoded else np.zeros(0)
    nbytes = np.concatenate([d.nbytes for _, d, _ in decoded]) if decoded else np.zeros(0)
    args = pa.array(site_args, type=pa.string()).take(idx32) if site_all.size else pa.nulls(0, pa.string())
    ids = b.add_slices(track_all, ts_all, dur_all, site_dict_column(names, site_all),
                       category=site_dict_column(categories, site_all), flops=flops, bytes=nbytes,
                       dtype=site_dict_column(dtypes, site_all), args=args)

    # Points: instants and flow ends, in the order each thread recorded them.
    outs: dict[int, tuple[int, str | None]] = {}
    ins: list[tuple[int, int]] = []
    base = 0
    for (_buf, d, tr), (_, _, points) in zip(decoded, snapshot, strict=True):
        for k, (kind, a, c, extra_args) in enumerate(pair_points(points, d.point_raw_ts, stats)):
            if kind < 0:
                continue
            reg = int(d.point_region[k])
            if kind == INSTANT:
                t = engine_track.get(c, tr) if c is not None else tr
                b.add_instant(t, int(d.point_ts[k]), a, category="sdk", args=extra_args)
            elif reg < 0:
                stats.drop("sdk_flow_outside_region", 1)
            elif kind == FLOW_OUT:
                outs[int(a)] = (int(ids[base + reg]), c)
            elif kind == FLOW_IN:
                ins.append((int(a), int(ids[base + reg])))
        base += d.site.size
    for fid, target in ins:
        src = outs.get(fid)
        if src is None:
            stats.drop("sdk_flow_without_source", 1)
            continue
        b.add_flow(src[0], target, name=src[1], flow_id=fid)

    # Counters: (id, time, value bits) triples, each written by one call.
    parts = []
    for buf in buffers:
        c = buf.counters[:]
        n = len(c) // 3
        if n:
            tri = np.frombuffer(c, dtype=np.int64)[: 3 * n].reshape(n, 3)
            parts.append((tri[:, 0], tri[:, 1], tri[:, 2].view(np.float64)))
    if parts:
        cid = np.concatenate([p[0] for p in parts])
        cts = np.concatenate([p[1] for p in parts])
        cval = np.concatenate([p[2] for p in parts])
        stats.events_read += int(cid.size)
        ctrack = np.zeros(max(len(counter_names), 1), dtype=np.int64)
        for c in np.unique(cid).tolist():
            ctrack[c] = b.add_track(counter_names[c], kind="counter", parent=proc, attrs={"counter": counter_names[c]})
        b.add_counters(ctrack[cid], cts, cval)

    dropped = sum(buf.total_dropped() for buf in buffers)
    if dropped:
        stats.drop("sdk_memory_limit", dropped)
    b.metadata.extra.update(extra)
    return b.build()


def pair_points(points: list[tuple[Any, ...]], marker_ts: np.ndarray, stats: Any) -> list[tuple[Any, Any, Any, Any]]:
    """Each point marker's payload, in marker order: matched by the time both hold.

    Payloads are appended before their markers, so a signal handler that records a point between
    the two puts the pairs in different orders; the time (read once for both) matches them again.
    A marker without a payload (cannot happen unless a buffer was damaged) gets kind -1, counted.
    """
    by_time: dict[int, list[int]] = {}
    for i, p in enumerate(points):
        by_time.setdefault(int(p[4]), []).append(i)
    out: list[tuple[Any, Any, Any, Any]] = []
    missing = 0
    for t in marker_ts.tolist():
        cands = by_time.get(int(t))
        if cands:
            p = points[cands.pop(0)]
            out.append((p[0], p[1], p[2], p[3]))
        else:
            missing += 1
            out.append((-1, None, None, None))
    if missing:
        stats.drop("sdk_point_without_payload", missing)
    return out
