"""The segment event loop over plain arrays, compiled with numba when it is installed.

Same algorithm, event order and floating-point operations as the list-based loop in
:func:`collectors.simulator.engine.simulate_segment` (a test holds them equal, event for
event), written the way numba compiles well: arrays instead of tuples, hand-made binary heaps
ordered by (time, instruction) like Python's tuple heaps, dependencies in CSR form, waiters as
per-instruction FIFO lists of engines.  The engine imports this module only for large segments
(importing numba takes a moment) and keeps its own loop when numba is not installed
(``HAVE_NUMBA`` False).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import numba

    _jit: Any = numba.njit(cache=True, nogil=True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_NUMBA = False

    def _jit(f: Any) -> Any:
        return f


@_jit
def _sift_down(ht: np.ndarray, hi: np.ndarray, pos: int, size: int) -> None:
    t = ht[pos]
    i = hi[pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hi[c + 1] < hi[c])):
            c += 1
        if ht[c] < t or (ht[c] == t and hi[c] < i):
            ht[pos] = ht[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    ht[pos] = t
    hi[pos] = i


@_jit
def _push(ht: np.ndarray, hi: np.ndarray, size: int, t: float, i: int) -> int:
    pos = size
    while pos > 0:
        p = (pos - 1) // 2
        if t < ht[p] or (t == ht[p] and i < hi[p]):
            ht[pos] = ht[p]
            hi[pos] = hi[p]
            pos = p
        else:
            break
    ht[pos] = t
    hi[pos] = i
    return size + 1


@_jit
def segment_loop(
    engine: np.ndarray, mode: np.ndarray, dur: np.ndarray, nbytes: np.ndarray, alloc: np.ndarray,
    alloc_core: np.ndarray, free: np.ndarray, free_core: np.ndarray, dep_ptr: np.ndarray, dep_idx: np.ndarray,
    succ: np.ndarray, is_first: np.ndarray, first: np.ndarray, n_cores: int, latency: float, queue_bw: float,
    dram_bw: float, cap: float,
) -> tuple[Any, ...]:
    """Simulate one segment; returns (status, bad instruction, value, start, end, stalls, SRAM, bandwidth).

    status 0: done; 1: SRAM overflow at instruction ``bad`` (``value`` = occupancy); 2: deadlock.
    """
    n = engine.size
    n_eng = first.size
    start = np.zeros(n)
    end = np.zeros(n)
    done = np.zeros(n, np.uint8)
    pend = first.copy()
    free_at = np.zeros(n_eng)
    whead = np.full(n, -1, np.int64)
    wtail = np.full(n, -1, np.int64)
    wnext = np.full(n_eng, -1, np.int64)
    hp_t = np.zeros(n + 1)
    hp_i = np.zeros(n + 1, np.int64)
    hsize = 0
    ac_t = np.zeros(n + 1)
    ac_i = np.zeros(n + 1, np.int64)
    asize = 0
    jq_t = np.zeros(n + 1)
    jq_i = np.zeros(n + 1, np.int64)
    jhead = 0
    jtail = 0
    occ = np.zeros(n_cores)
    peak = np.zeros(n_cores)
    st_e = np.zeros(n, np.int64)
    st_s = np.zeros(n)
    st_t = np.zeros(n)
    st_by = np.zeros(n, np.int64)
    ns = 0
    sr_c = np.zeros(2 * n + 1, np.int64)
    sr_t = np.zeros(2 * n + 1)
    sr_v = np.zeros(2 * n + 1)
    nsr = 0
    bw_t = np.zeros(2 * n + 1)
    bw_v = np.zeros(2 * n + 1)
    nbw = 0
    tries = np.zeros(n_eng + 1, np.int64)
    ntries = n_eng
    for e in range(n_eng):
        tries[e] = e
    v = 0.0
    tv = 0.0
    rate = 0.0
    inf = np.inf
    nxt = inf
    jt = inf
    now = 0.0
    while True:
        for ti in range(ntries):
            e = tries[ti]
            i = pend[e]
            if i < 0:
                continue
            blocked = False
            for p in range(dep_ptr[i], dep_ptr[i + 1]):
                d = dep_idx[p]
                if done[d] == 0:
                    if whead[d] < 0:
                        whead[d] = e
                    else:
                        wnext[wtail[d]] = e
                    wtail[d] = e
                    wnext[e] = -1
                    blocked = True
                    break
            if blocked:
                continue
            if now > free_at[e] and dep_ptr[i + 1] > dep_ptr[i] and is_first[i] == 0:
                by = dep_idx[dep_ptr[i]]
                for p in range(dep_ptr[i], dep_ptr[i + 1]):
                    d = dep_idx[p]
                    if end[d] > end[by]:
                        by = d
                st_e[ns] = e
                st_s[ns] = free_at[e]
                st_t[ns] = now
                st_by[ns] = by
                ns += 1
            pend[e] = succ[i]
            start[i] = now
            a = alloc[i]
            if a != 0.0:
                c = alloc_core[i]
                o = occ[c] + a
                if o > cap:
                    return (1, i, o, start, end, st_e[:0], st_s[:0], st_t[:0], st_by[:0], sr_c[:0], sr_t[:0],
                            sr_v[:0], bw_t[:0], bw_v[:0], peak)
                occ[c] = o
                if o > peak[c]:
                    peak[c] = o
                sr_c[nsr] = c
                sr_t[nsr] = now
                sr_v[nsr] = o
                nsr += 1
            if mode[i] != 0:
                if jhead == jtail:
                    jt = now + latency
                jq_t[jtail] = now + latency
                jq_i[jtail] = i
                jtail += 1
            else:
                hsize = _push(hp_t, hp_i, hsize, now + dur[i], i)
        th = hp_t[0] if hsize > 0 else inf
        if nxt <= th and nxt <= jt:
            if nxt == inf:
                break
            now = nxt
            v = ac_t[0]
            i = ac_i[0]
            asize -= 1
            if asize > 0:
                ac_t[0] = ac_t[asize]
                ac_i[0] = ac_i[asize]
                _sift_down(ac_t, ac_i, 0, asize)
            tv = now
            k = asize
            if k > 0:
                r = dram_bw / k
                rate = queue_bw if queue_bw < r else r
                nxt = tv + (ac_t[0] - v) / rate
            else:
                rate = 0.0
                v = 0.0
                nxt = inf
            bw_t[nbw] = now
            bw_v[nbw] = rate * k * 1e9
            nbw += 1
        elif th <= jt:
            now = th
            i = hp_i[0]
            hsize -= 1
            if hsize > 0:
                hp_t[0] = hp_t[hsize]
                hp_i[0] = hp_i[hsize]
                _sift_down(hp_t, hp_i, 0, hsize)
        else:
            now = jq_t[jhead]
            i = jq_i[jhead]
            jhead += 1
            jt = jq_t[jhead] if jhead < jtail else inf
            if mode[i] == 1:
                if asize > 0:
                    v += rate * (now - tv)
                tv = now
                asize = _push(ac_t, ac_i, asize, v + nbytes[i], i)
                k = asize
                r = dram_bw / k
                rate = queue_bw if queue_bw < r else r
                nxt = tv + (ac_t[0] - v) / rate
                bw_t[nbw] = now
                bw_v[nbw] = rate * k * 1e9
                nbw += 1
            else:
                hsize = _push(hp_t, hp_i, hsize, now + nbytes[i] / queue_bw, i)
            ntries = 0
            continue
        done[i] = 1
        end[i] = now
        e = engine[i]
        free_at[e] = now
        f = free[i]
        if f != 0.0:
            c = free_core[i]
            o = occ[c] - f
            occ[c] = o
            sr_c[nsr] = c
            sr_t[nsr] = now
            sr_v[nsr] = o if o > 1e-6 else 0.0
            nsr += 1
        tries[0] = e
        ntries = 1
        w = whead[i]
        while w >= 0:
            tries[ntries] = w
            ntries += 1
            w = wnext[w]
        whead[i] = -1
    status = 0
    bad = -1
    for e in range(n_eng):
        if pend[e] >= 0:
            status = 2
            bad = pend[e]
            break
    return (status, bad, 0.0, start, end, st_e[:ns], st_s[:ns], st_t[:ns], st_by[:ns], sr_c[:nsr], sr_t[:nsr],
            sr_v[:nsr], bw_t[:nbw], bw_v[:nbw], peak)
