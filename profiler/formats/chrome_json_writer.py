"""Chrome trace-event JSON writer (opens in Perfetto UI, chrome://tracing, and our own reader).

Layout: each root track is a process (pid = root id + 1) and every track is a thread of its root's
process (tid = track id + 1), so each thread holds exactly one of our tracks, and since our tracks
are stacks no two X events on a thread overlap.  M events carry process/thread names (the path
below the root, "core1 / mxu") and sort indices so viewers keep our track order.

Exactness: timestamps are written relative to a base (``otherData.accel_profiler.ts_base_ns``) as
microseconds with 3 decimals, so nanoseconds survive even for Unix-epoch times that float64
microseconds cannot hold.  ``otherData.accel_profiler`` also holds the exact track tree and the
metadata; our reader uses them to give back the same trace.  Other readers ignore them.

Flows are s/f pairs with ``"bp": "e"`` bound to a point inside the source/target slice that no
child covers (the slice's start unless a child starts there), so enclosing-slice binding picks
the slice itself.  Perfetto drops an "f" met before its "s" in time, so a flow whose destination
point comes before its source point is written the other way round and its id listed in
``otherData.accel_profiler.reversed_flows``; our reader turns those back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from profiler.formats.json_import import OWN_KEY
from profiler.model import Trace


def _us(ns: np.ndarray) -> list[str]:
    """Integer ns -> microsecond strings with exactly 3 decimals ("12.345"), negatives included."""
    neg = ns < 0
    a = np.abs(ns)
    q = (a // 1000).tolist()
    r = (a % 1000).tolist()
    return [f"-{x}.{y:03d}" if n else f"{x}.{y:03d}" for x, y, n in zip(q, r, neg.tolist(), strict=True)]


def _dict_json(col: pa.ChunkedArray | pa.Array) -> list[str]:
    """JSON text (quoted, escaped) for each value of a dictionary column; "null" for nulls."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    words = [orjson.dumps(v).decode() for v in arr.dictionary.to_pylist()] + ["null"]
    idx = arr.indices.fill_null(len(words) - 1).to_numpy(zero_copy_only=False)
    lut = np.array(words, dtype=object)
    return lut[idx].tolist()


def _slice_args(trace: Trace) -> list[str | None]:
    """args JSON of each slice, with flops/bytes/dtype put in when the args do not already have them."""
    s = trace.slices
    args: list[str | None] = s["args"].to_pylist()
    lifted = {c: s[c].to_pylist() for c in ("flops", "bytes", "dtype")}
    has = np.zeros(s.num_rows, dtype=bool)
    for c in ("flops", "bytes", "dtype"):
        has |= s[c].is_valid().to_numpy(zero_copy_only=False) if s.num_rows else has
    for i in np.flatnonzero(has).tolist():
        a = args[i]
        d: dict[str, Any] = {}
        if a:
            try:
                v = orjson.loads(a)
                d = v if isinstance(v, dict) else {"_value": v}
            except orjson.JSONDecodeError:
                d = {"_raw": a}
        changed = False
        for c, vals in lifted.items():
            v = vals[i]
            if v is not None and d.get(c) != v:
                d[c] = v
                changed = True
        if changed:
            args[i] = orjson.dumps(d).decode()
    return args


def _free_points(ts: np.ndarray, dur: np.ndarray, depth: np.ndarray, track: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A time inside each slice of ``rows`` that none of its children covers (see module doc)."""
    out = ts[rows].copy()
    n = ts.size
    nxt = np.minimum(rows + 1, n - 1)
    crowded = (rows + 1 < n) & (track[nxt] == track[rows]) & (depth[nxt] > depth[rows]) & (ts[nxt] == ts[rows])
    for k in np.flatnonzero(crowded).tolist():
        i = int(rows[k])
        p = int(ts[i])
        end = p + int(dur[i])
        j = i + 1
        while j < n and track[j] == track[i] and depth[j] > depth[i]:
            if depth[j] == depth[i] + 1 and ts[j] <= p:
                p = max(p, int(ts[j] + dur[j])) if dur[j] > 0 else p + (1 if ts[j] == p else 0)
            j += 1
        out[k] = p if p < end else ts[i]
    return out


def write_chrome_json(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` as Chrome trace-event JSON (object form) to ``path``."""
    tracks = trace.tracks.to_pylist()
    parent = {t["id"]: t["parent"] for t in tracks}
    by_id = {t["id"]: t for t in tracks}

    def root(i: int) -> int:
        seen = 0
        while parent.get(i) is not None and seen < 1000:
            i = parent[i]
            seen += 1
        return i

    roots = {t["id"]: root(t["id"]) for t in tracks}
    children: dict[Any, list[int]] = {}
    for t in tracks:
        children.setdefault(t["parent"], []).append(t["id"])
    for v in children.values():
        v.sort(key=lambda i: (by_id[i]["sort_index"], i))
    # Preorder: thread sort index and the path label below the root.
    thread_order: dict[int, int] = {}
    label: dict[int, str] = {}

    def walk(i: int, prefix: list[str], counter: list[int]) -> None:
        thread_order[i] = counter[0]
        counter[0] += 1
        label[i] = " / ".join(prefix) if prefix else by_id[i]["name"]
        for c in children.get(i, []):
            walk(c, [*prefix, by_id[c]["name"]], counter)

    lines: list[str] = []
    for rank, r in enumerate(children.get(None, [])):
        walk(r, [], [0])
        pid = r + 1
        lines.append(f'{{"ph":"M","name":"process_name","pid":{pid},"tid":0,"args":{{"name":{orjson.dumps(by_id[r]["name"]).decode()}}}}}')
        lines.append(f'{{"ph":"M","name":"process_sort_index","pid":{pid},"tid":0,"args":{{"sort_index":{rank}}}}}')
    for t in tracks:
        i = t["id"]
        pid, tid = roots[i] + 1, i + 1
        lines.append(f'{{"ph":"M","name":"thread_name","pid":{pid},"tid":{tid},"args":{{"name":{orjson.dumps(label.get(i, t["name"])).decode()}}}}}')
        lines.append(f'{{"ph":"M","name":"thread_sort_index","pid":{pid},"tid":{tid},"args":{{"sort_index":{thread_order.get(i, 0)}}}}}')

    reversed_flows: list[int] = []
    start, _ = trace.time_span()
    base = int(start)
    pid_of = np.zeros(max(len(tracks), 1), dtype=np.int64)
    for i, r in roots.items():
        pid_of[i] = r + 1

    s = trace.slices
    if s.num_rows:
        track = s["track"].to_numpy()
        ts = s["ts"].to_numpy()
        dur = s["dur"].to_numpy()
        names = _dict_json(s["name"])
        cats = _dict_json(s["category"])
        args = _slice_args(trace)
        pids = pid_of[track].tolist()
        tids = (track + 1).tolist()
        for p, t_, a, d, nm, c, ar in zip(pids, tids, _us(ts - base), _us(dur), names, cats, args, strict=True):
            if ar is None:
                lines.append(f'{{"ph":"X","pid":{p},"tid":{t_},"ts":{a},"dur":{d},"name":{nm},"cat":{c}}}')
            else:
                lines.append(f'{{"ph":"X","pid":{p},"tid":{t_},"ts":{a},"dur":{d},"name":{nm},"cat":{c},"args":{ar}}}')
        f = trace.flows
        if f.num_rows:
            fr = f["from_slice"].to_numpy()
            to = f["to_slice"].to_numpy()
            depth = s["depth"].to_numpy()
            p_fr = _free_points(ts, dur, depth, track, fr) - base
            p_to = _free_points(ts, dur, depth, track, to) - base
            # Perfetto binds flow events in time order and drops an "f" seen before its "s": a flow
            # whose destination point comes first is written destination -> source, its id listed
            # in otherData for our reader to turn back.
            back = p_to < p_fr
            reversed_flows = np.flatnonzero(back).tolist()
            fr, to = np.where(back, to, fr), np.where(back, fr, to)
            p_fr, p_to = np.where(back, p_to, p_fr), np.where(back, p_fr, p_to)
            fnames = [orjson.dumps(x or "flow").decode() for x in f["name"].to_pylist()]
            for k, (a, b, sa, sb, nm) in enumerate(zip(fr.tolist(), to.tolist(), _us(p_fr), _us(p_to), fnames, strict=True)):
                ta_, tb_ = int(track[a]), int(track[b])
                lines.append(f'{{"ph":"s","id":{k},"pid":{pid_of[ta_]},"tid":{ta_ + 1},"ts":{sa},"name":{nm},"cat":{nm},"bp":"e"}}')
                lines.append(f'{{"ph":"f","id":{k},"pid":{pid_of[tb_]},"tid":{tb_ + 1},"ts":{sb},"name":{nm},"cat":{nm},"bp":"e"}}')

    c = trace.counters
    if c.num_rows:
        ctrack = c["track"].to_numpy()
        cname = {t["id"]: orjson.dumps(t["name"]).decode() for t in tracks}
        vals = [orjson.dumps(v).decode() for v in c["value"].to_pylist()]
        for tr, a, val in zip(ctrack.tolist(), _us(c["ts"].to_numpy() - base), vals, strict=True):
            lines.append(f'{{"ph":"C","pid":{pid_of[tr]},"tid":{tr + 1},"ts":{a},"name":{cname[tr]},"args":{{"value":{val}}}}}')

    ins = trace.instants
    if ins.num_rows:
        itrack = ins["track"].to_numpy()
        inames = _dict_json(ins["name"])
        icats = _dict_json(ins["category"])
        iargs = ins["args"].to_pylist()
        for tr, a, nm, ct, ar in zip(itrack.tolist(), _us(ins["ts"].to_numpy() - base), inames, icats, iargs, strict=True):
            tail = f',"args":{ar}' if ar else ""
            lines.append(f'{{"ph":"i","s":"t","pid":{pid_of[tr]},"tid":{tr + 1},"ts":{a},"name":{nm},"cat":{ct}{tail}}}')

    md = trace.metadata
    own = {
        "version": 1,
        "ts_base_ns": base,
        "tracks": [[t["id"], t["parent"], t["name"], t["kind"], t["device"], t["sort_index"], t["attrs"]] for t in tracks],
        "reversed_flows": reversed_flows,
        "metadata": {"source_format": md.source_format, "clock": md.clock, "hardware": md.hardware, "extra": md.extra},
    }
    head = orjson.dumps({"displayTimeUnit": "ns", "otherData": {OWN_KEY: own}}, default=str, option=orjson.OPT_NON_STR_KEYS)
    with open(path, "wb") as out:
        out.write(head[:-1])
        out.write(b',"traceEvents":[\n')
        out.write(",\n".join(lines).encode())
        out.write(b"\n]}\n")
