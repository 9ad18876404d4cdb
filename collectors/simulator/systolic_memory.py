"""What SCALE-Sim's double-buffered SRAMs do with one GEMM layer: misses, DRAM words, OFMAP writes.

SCALE-Sim 3.0 (``scalesim/memory/read_buffer.py``, ``write_buffer.py``,
``double_buffered_scratchpad_mem.py``) gives each operand an SRAM split into an *active* and a
*prefetch* half (``active_buf_frac = 0.5``).  What decides its cycles, and what this module
reproduces without walking every address:

* **Fetch order.**  Each read operand is fetched from DRAM in the order of its *prefetch matrix*:
  the operand cut into array-wide folds stacked on top of each other, read along anti-diagonals
  (the order the skewed array consumes them) for the streamed operands and row by row for the
  stationary block of ``ws``/``is`` (see :class:`Layout`).  Its valid words are grouped into
  *sets* of ``ceil(SRAM words / 100)``; the active half holds ``A`` consecutive sets, the prefetch
  half ``P`` (both about 50), cyclically over the ``N`` sets of the whole operand.
* **Misses.**  The array demands its operands row by row (one row per cycle, folds in
  ``col fold``-outer order, with the pipeline's fill and drain rows).  A demanded word outside the
  active window makes the buffer take the next prefetch: the window moves ``P`` sets forward
  (wrapping around the operand) until the word is inside.  A word *behind* the window therefore
  costs a trip around the whole operand: that is how a small SRAM multiplies DRAM traffic.
* **DRAM timing.**  The first prefetch (``ceil(active words / bandwidth)`` lines) ends just before
  cycle 0; every later one moves ``ceil(prefetch words / bandwidth)`` lines of ``bandwidth`` words
  and is timed right after the previous one, whether or not the buffer had room (SCALE-Sim
  back-dates the request), so each operand's DRAM reads form one back-to-back stream and the
  array stalls only when it demands a set before its prefetch has arrived.
* **OFMAP.**  Every output the array produces is written to the OFMAP SRAM, partial sums
  included: ``ws``/``is`` write the whole output once per fold of the reduction dimension
  (``M x N x ceil(K / rows)`` words).  Once more than half the buffer is used, a drain of half
  the buffer goes to DRAM at ``bandwidth`` words per cycle; the array stalls when the buffer is
  full while a drain is in flight, and whatever is left drains after the last compute row.

Dataflows (SCALE-Sim names: ``Sr`` spatial rows, ``Sc`` spatial cols, ``T`` streamed length):

==  ==========================  ==========================  ======================
df  IFMAP                       filter                      rows of one fold
==  ==========================  ==========================  ======================
os  streamed, folds of M        streamed, folds of N        T + R + C - 2
ws  streamed, folds of K        stationary block (K x C)    T + 2R + C - 2
is  stationary block (K x C)    streamed, folds of K        T + 2R + C - 2
==  ==========================  ==========================  ======================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SETS_PER_BUFFER = 100  # read_buffer.prepare_hashed_buffer: elems_per_set = ceil(total / 100)
ACTIVE_FRACTION = 0.5  # single_layer_sim: active_buf_frac


@dataclass(frozen=True)
class Layout:
    """One read operand's prefetch matrix: ``folds`` blocks of ``height`` rows x ``width`` cols.

    Fold ``f`` holds ``valid(f)`` real columns (the last fold of a ragged dimension is padded).
    ``diagonal``: fetched along anti-diagonals of the stacked matrix; else row by row.
    """

    folds: int
    height: int
    width: int
    spatial: int  # the dimension cut into folds of ``width``
    diagonal: bool

    @property
    def rows(self) -> int:
        return self.folds * self.height

    @property
    def cells(self) -> int:
        return self.rows * self.width

    def valid(self, f: np.ndarray | int) -> np.ndarray | int:
        return np.minimum(self.width, self.spatial - np.asarray(f) * self.width)

    @property
    def last_valid(self) -> int:
        return int(self.valid(self.folds - 1))

    def _diag_start(self) -> np.ndarray:
        """Cells before each anti-diagonal ``d`` of the stacked matrix."""
        d = np.arange(self.rows + self.width, dtype=np.int64)
        length = np.minimum(d, self.rows - 1) - np.maximum(0, d - self.width + 1) + 1
        length = np.clip(length, 0, None)
        return np.concatenate([[0], np.cumsum(length)])

    def positions(self, i: np.ndarray, j: np.ndarray, diag_start: np.ndarray | None = None) -> np.ndarray:
        """Fetch-order position of cell (row ``i``, col ``j``)."""
        if not self.diagonal:
            return i * self.width + j
        d = i + j
        ds = self._diag_start() if diag_start is None else diag_start
        return ds[d] + (np.minimum(d, self.rows - 1) - i)

    def invalid_positions(self, diag_start: np.ndarray) -> np.ndarray:
        """Sorted fetch positions of the padding cells (last fold, columns past ``last_valid``)."""
        v = self.last_valid
        if v >= self.width:
            return np.zeros(0, np.int64)
        i = np.arange((self.folds - 1) * self.height, self.rows, dtype=np.int64)
        j = np.arange(v, self.width, dtype=np.int64)
        ii, jj = np.meshgrid(i, j, indexing="ij")
        return np.sort(self.positions(ii.ravel(), jj.ravel(), diag_start))


@dataclass
class ReadStream:
    """One read operand's DRAM stream and where the array first needs each prefetch."""

    operand: str
    words_per_line: int
    first_lines: int  # lines of the prefetch before cycle 0
    lines: int  # lines of every later prefetch
    miss_rows: np.ndarray  # demand row of each later prefetch (sorted; a row repeats per prefetch)
    sets: int = 0
    active_sets: int = 0
    prefetch_sets: int = 0

    @property
    def prefetches(self) -> int:
        return int(self.miss_rows.size)

    @property
    def dram_words(self) -> int:
        """Words SCALE-Sim's report counts: whole lines, padding included."""
        return (self.first_lines + self.prefetches * self.lines) * self.words_per_line


@dataclass
class LayerMemory:
    """A GEMM layer on SCALE-Sim's memory system: demand rows, read streams, OFMAP writes per row."""

    dataflow: str
    rows: int
    cols: int
    M: int  # noqa: N815
    N: int  # noqa: N815
    K: int  # noqa: N815
    fold_rows: int  # demand rows (cycles) of one fold
    folds: int
    reads: dict[str, ReadStream] = field(default_factory=dict)
    ofmap_per_row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def demand_rows(self) -> int:
        return self.folds * self.fold_rows

    @property
    def ofmap_words(self) -> int:
        return int(self.ofmap_per_row.sum(dtype=np.int64))


def _buffer_sets(total_words: int, valid_words: int) -> tuple[int, int, int, int]:
    """(elements per set, sets N, active sets A, prefetch sets P) of read_buffer.prepare_hashed_buffer."""
    eps = max(1, math.ceil(total_words / SETS_PER_BUFFER))
    active = math.ceil(total_words * ACTIVE_FRACTION)
    prefetch = total_words - active
    n = valid_words // eps + 1
    a = min(math.ceil(active / eps), n)
    p = min(math.ceil(prefetch / eps), n - a)
    return eps, n, a, p


def _window_misses(lo: np.ndarray, hi: np.ndarray, n: int, a: int, p: int) -> np.ndarray:
    """Demand row of every prefetch: walk the active window over the rows' touched sets.

    ``lo``/``hi``: first and last set each row touches (-1: none).  Rows touch their sets in
    ascending order, so checking the first and the last is enough (the window only moves forward).
    """
    if p <= 0:
        return np.zeros(0, np.int64)
    start, end = 0, a
    out: list[tuple[int, int]] = []
    i, total = 0, lo.size
    block = 64

    def inside(s: np.ndarray, start: int, end: int) -> np.ndarray:
        if start < end:
            return (s >= start) & (s < end)
        return (s >= start) | (s < end)

    while i < total:
        lo_b = lo[i:i + block]
        hi_b = hi[i:i + block]
        miss = (lo_b >= 0) & ~(inside(lo_b, start, end) & inside(hi_b, start, end))
        hits = np.flatnonzero(miss)
        if hits.size == 0:
            i += block
            block = min(block * 2, 1 << 16)
            continue
        i += int(hits[0])
        k = 0
        for s in (int(lo[i]), int(hi[i])):
            while not ((start <= s < end) if start < end else (s >= start or s < end)):
                start = (start + p) % n
                end = (start + a) % n
                k += 1
                if k > 4 * n + 8:  # cannot happen for a set inside [0, n); guard against a bad layout
                    raise RuntimeError("systolic memory model: set outside the operand")
        out.append((i, k))
        i += 1
        block = 64
    if not out:
        return np.zeros(0, np.int64)
    rows_, counts = zip(*out, strict=True)
    return np.repeat(np.asarray(rows_, np.int64), np.asarray(counts, np.int64))


def _fold_grid(folds_c: int, folds_r: int, fold_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(col fold, row fold, row within fold) of every demand row, in SCALE-Sim's fold order."""
    f = np.arange(folds_c * folds_r, dtype=np.int64)
    fc, fr = np.divmod(f, folds_r)
    c = np.arange(fold_rows, dtype=np.int64)
    return (np.repeat(fc, fold_rows), np.repeat(fr, fold_rows), np.tile(c, folds_c * folds_r))


def _skewed_demand(lay: Layout, fsel: np.ndarray, c: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """First/last fetch position a skewed streamed-operand row demands (-1: none).

    Column ``x`` of demand row ``c`` reads block row ``c - shift - x`` of fold ``fsel``, so a row
    reads one anti-diagonal of the prefetch matrix: a contiguous, ascending run of positions.
    """
    t = c - shift
    vw = lay.valid(fsel)
    x0 = np.maximum(0, t - lay.height + 1)
    x1 = np.minimum(vw - 1, t)
    ok = x0 <= x1
    ds = lay._diag_start()
    base = fsel * lay.height + t
    lo = np.where(ok, lay.positions(np.where(ok, base - x0, 0), np.where(ok, x0, 0), ds), -1)
    hi = np.where(ok, lay.positions(np.where(ok, base - x1, 0), np.where(ok, x1, 0), ds), -1)
    return lo, hi


def _block_demand(lay: Layout, g: np.ndarray, fr: np.ndarray, c: np.ndarray, arr_rows: int,
                  reduce_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """First/last fetch position of a stationary-block row (``ws`` filter, ``is`` IFMAP).

    The fold's ``rows x cols`` block is loaded in ``rows`` cycles, bottom row first (SCALE-Sim flips
    it); block row ``b`` is reduction index ``fr * rows + rows - 1 - b``.
    """
    vr = np.minimum(arr_rows, reduce_dim - fr * arr_rows)
    k_off = arr_rows - 1 - c
    ok = (c < arr_rows) & (k_off < vr)
    i = g * lay.height + fr * arr_rows + k_off
    vw = lay.valid(g)
    lo = np.where(ok, lay.positions(np.where(ok, i, 0), np.zeros_like(i)), -1)
    hi = np.where(ok, lay.positions(np.where(ok, i, 0), np.asarray(vw) - 1), -1)
    return lo, hi


def _to_sets(pos: np.ndarray, invalid: np.ndarray, eps: int) -> np.ndarray:
    """Set index of valid fetch positions (sets count valid words only; -1 stays -1)."""
    rank = pos - np.searchsorted(invalid, pos) if invalid.size else pos
    return np.where(pos >= 0, rank // eps, -1)


def _read_stream(name: str, lay: Layout, lo_pos: np.ndarray, hi_pos: np.ndarray, sram_words: int,
                 bandwidth: int) -> ReadStream:
    invalid = lay.invalid_positions(lay._diag_start()) if lay.diagonal else _rowmajor_invalid(lay)
    valid_words = lay.cells - invalid.size
    eps, n, a, p = _buffer_sets(sram_words, valid_words)
    misses = _window_misses(_to_sets(lo_pos, invalid, eps), _to_sets(hi_pos, invalid, eps), n, a, p)
    active = math.ceil(sram_words * ACTIVE_FRACTION)
    prefetch = sram_words - active
    fetch_lines = math.ceil(lay.cells / bandwidth)
    return ReadStream(name, bandwidth, first_lines=min(math.ceil(active / bandwidth), fetch_lines),
                      lines=math.ceil(prefetch / bandwidth), miss_rows=misses, sets=n, active_sets=a,
                      prefetch_sets=p)


def _rowmajor_invalid(lay: Layout) -> np.ndarray:
    v = lay.last_valid
    if v >= lay.width:
        return np.zeros(0, np.int64)
    i = np.arange((lay.folds - 1) * lay.height, lay.rows, dtype=np.int64)
    j = np.arange(v, lay.width, dtype=np.int64)
    return (i[:, None] * lay.width + j[None, :]).ravel()


def _skewed_outputs(c: np.ndarray, vc: np.ndarray, first: int, span: int, skip: np.ndarray | int = 0) -> np.ndarray:
    """Outputs written in each demand row of a fold: output row ``b`` (of ``span``) leaves through
    column ``j < vc`` in demand row ``first + b + j``; rows ``b < skip`` are padding."""
    t = c - first
    j0 = np.maximum(0, t - (span - 1))
    j1 = np.minimum(vc - 1, t - skip)
    return np.clip(j1 - j0 + 1, 0, None).astype(np.int32)


def layer_memory(M: int, N: int, K: int, rows: int, cols: int, dataflow: str,  # noqa: N803
                 ifmap_words: int, filter_words: int, bandwidth: int) -> LayerMemory:
    """SCALE-Sim's memory behaviour for ``C[M, N] = A[M, K] @ B[K, N]`` (GEMM topology layer).

    ``ifmap_words``/``filter_words``: SRAM sizes in words (SCALE-Sim's word is one byte);
    ``bandwidth``: DRAM words per cycle of each operand's interface.
    """
    df = dataflow.lower()
    R, C = rows, cols  # noqa: N806
    if df == "os":
        sr, sc, t = M, N, K
        fold_rows = t + R + C - 2
    elif df in ("ws", "is"):
        sr, sc, t = (K, N, M) if df == "ws" else (K, M, N)
        fold_rows = t + 2 * R + C - 2
    else:
        raise ValueError(f"unknown dataflow {dataflow!r}")
    fr_n, fc_n = math.ceil(sr / R), math.ceil(sc / C)
    fc, fr, c = _fold_grid(fc_n, fr_n, fold_rows)
    mem = LayerMemory(df, R, C, M, N, K, fold_rows, fr_n * fc_n)
    if df == "os":
        lay_i = Layout(fr_n, K, R, M, diagonal=True)
        lay_f = Layout(fc_n, K, C, N, diagonal=True)
        ilo, ihi = _skewed_demand(lay_i, fr, c, 0)
        flo, fhi = _skewed_demand(lay_f, fc, c, 0)
        vr = np.minimum(R, sr - fr * R)
        vc = np.minimum(C, sc - fc * C)
        # T - 1 idle rows, then the R x C block leaves bottom row first (padded rows of a ragged
        # fold first), over C skewed columns
        ofmap = _skewed_outputs(c, vc, t - 1, R, R - vr)
    else:
        vc = np.minimum(C, sc - fc * C)
        if df == "ws":
            lay_i = Layout(fr_n, M, R, K, diagonal=True)
            lay_f = Layout(fc_n, K, C, N, diagonal=False)
            ilo, ihi = _skewed_demand(lay_i, fr, c, R)
            flo, fhi = _block_demand(lay_f, fc, fr, c, R, K)
        else:
            lay_i = Layout(fc_n, K, C, M, diagonal=False)
            lay_f = Layout(fr_n, N, R, K, diagonal=True)
            ilo, ihi = _block_demand(lay_i, fc, fr, c, R, K)
            flo, fhi = _skewed_demand(lay_f, fr, c, R)
        # 2R - 1 idle rows, then T output rows over C skewed columns (partial sums: every fold)
        ofmap = _skewed_outputs(c, vc, 2 * R - 1, t)
    mem.reads["ifmap"] = _read_stream("ifmap", lay_i, ilo, ihi, ifmap_words, bandwidth)
    mem.reads["filter"] = _read_stream("filter", lay_f, flo, fhi, filter_words, bandwidth)
    mem.ofmap_per_row = ofmap
    return mem


@dataclass
class ScaleSimTiming:
    """SCALE-Sim's cycle accounting of one layer (what its COMPUTE_REPORT says), replayed."""

    overall_cycles: int  # first DRAM read to last DRAM write ("Total Cycles (incl. prefetch)")
    compute_cycles: int  # cycle of the last OFMAP SRAM write ("Total Cycles")
    stall_cycles: int
    #: per demand row that waited on a prefetch: the stall SCALE-Sim charged beyond the wait itself
    #: (``read_buffer.service_reads`` adds a positive wait to its offset twice)
    extra_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    extra_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: OFMAP words written to DRAM as SCALE-Sim counts them (a line cut short by a drain is counted
    #: whole unless it is the drain's last)
    ofmap_dram_words: int = 0


class _OfmapBuffer:
    """``write_buffer.write_buffer`` with outputs counted, not addressed: lines of ``bw`` words."""

    def __init__(self, total: int, bw: int) -> None:
        self.total = total
        self.active = math.ceil(total * ACTIVE_FRACTION)
        self.drain_size = total - self.active
        self.bw = bw
        self.lines_per_drain = max(1, math.ceil(self.drain_size / bw))
        self.free = total
        self.drain_end = 0
        self.partial = 0  # words in the line being filled
        self.runs: list[list[int]] = []  # undrained lines: [count, valid words each]
        self.last_drain_end = -(1 << 62)
        self.dram_words = 0  # what the report counts: whole lines, the last line of each drain as filled

    def add(self, words: int) -> None:
        """Store ``words`` without any drain or stall check (bulk rows between events)."""
        self.free -= words
        t = self.partial + words
        full, self.partial = divmod(t, self.bw)
        if full:
            self._push(full, self.bw)

    def _push(self, n: int, valid: int) -> None:
        if self.runs and self.runs[-1][1] == valid:
            self.runs[-1][0] += n
        else:
            self.runs.append([n, valid])

    def drain(self, start: int) -> int:
        """Drain up to half the buffer from ``start`` (forcing the partial line out); returns its end."""
        if self.partial:
            self._push(1, self.partial)
            self.partial = 0
        n, last_valid = 0, self.bw
        while self.runs and n < self.lines_per_drain:
            run = self.runs[0]
            take = min(run[0], self.lines_per_drain - n)
            n += take
            last_valid = run[1]
            run[0] -= take
            if not run[0]:
                self.runs.pop(0)
        if not n:
            return start - 1
        self.free += (n - 1) * self.bw + last_valid
        self.dram_words += (n - 1) * self.bw + last_valid
        end = start + n - 1
        self.last_drain_end = max(self.last_drain_end, end)
        return end

    def has_data(self) -> bool:
        return bool(self.runs) or self.partial > 0

    def write_row(self, words: int, cycle: int) -> int:
        """One demand row's outputs arriving at ``cycle``; returns the cycle the row is served."""
        cur = cycle
        for _ in range(words):
            self.add(1)
            if cur < self.drain_end:
                if self.free <= 0:
                    cur = self.drain_end
            elif self.free < self.active:
                self.drain_end = self.drain(cur)
        return cur


def scalesim_timing(mem: LayerMemory, ofmap_words: int, bandwidth: int) -> ScaleSimTiming:
    """Replay ``double_buffered_scratchpad.service_memory_requests`` at the granularity of events.

    Row ``i`` is issued at cycle ``i + S`` (``S``: stalls so far).  A row that needs prefetches
    waits for them (each ends ``lines + 1`` cycles after the previous one, the first before cycle
    0); SCALE-Sim adds a positive wait to the row's offset twice.  The OFMAP buffer stalls the row
    when it fills while a drain is in flight.  The row's stall is the largest of the three.
    Rows between events only store outputs, so they are skipped in bulk.
    """
    n = mem.demand_rows
    w = mem.ofmap_per_row.astype(np.int64)
    wc = np.concatenate([[0], np.cumsum(w)])  # wc[r]: outputs of rows < r
    ob = _OfmapBuffer(ofmap_words, bandwidth)
    streams = [mem.reads["ifmap"], mem.reads["filter"]]
    last = [-1, -1]  # each operand's last prefetch completion
    miss = [np.unique(s.miss_rows, return_counts=True) for s in streams]
    ptr = [0, 0]
    events = np.unique(np.concatenate([m[0] for m in miss])) if any(m[0].size for m in miss) else np.zeros(0, np.int64)
    ev = 0
    stall = 0
    r = 0
    last_served = -1
    extra_rows: list[int] = []
    extra_cycles: list[int] = []
    while r < n:
        stop = int(events[ev]) if ev < events.size else n
        while r < stop:
            c = r + stall
            if c < ob.drain_end:
                r_e = min(ob.drain_end - stall, stop)
                # first row whose outputs would use up the free space while the drain is in flight
                x = int(np.searchsorted(wc, wc[r] + max(ob.free, 1), side="left")) - 1
                if x < r_e:
                    ob.add(int(wc[x] - wc[r]))
                    r = x
                    break
                ob.add(int(wc[r_e] - wc[r]))
                r = r_e
            else:
                # first row whose outputs bring the free space under the active half (a drain starts)
                x = int(np.searchsorted(wc, wc[r] + max(ob.free - ob.active + 1, 1), side="left")) - 1
                if x < stop:
                    ob.add(int(wc[x] - wc[r]))
                    r = x
                    break
                ob.add(int(wc[stop] - wc[r]))
                r = stop
        if r >= n:
            break
        c = r + stall
        read_stall = 0
        physical = 0
        if ev < events.size and r == int(events[ev]):
            for k, s in enumerate(streams):
                rows_k, counts_k = miss[k]
                if ptr[k] < rows_k.size and int(rows_k[ptr[k]]) == r:
                    offset = 1
                    for _ in range(int(counts_k[ptr[k]])):
                        last[k] += s.lines + 1
                        p = last[k] - (c + offset)
                        offset += p
                        if p > 0:
                            offset += p
                    ptr[k] += 1
                    read_stall = max(read_stall, offset - 1)
                    physical = max(physical, last[k] - c - 1)
            ev += 1
        served = ob.write_row(int(w[r]), c)
        row_stall = max(read_stall, served - c, 0)
        if row_stall > max(physical, served - c, 0):
            extra_rows.append(r)
            extra_cycles.append(row_stall - max(physical, served - c, 0))
        stall += row_stall
        last_served = max(last_served, served)
        r += 1
    compute = max(last_served, n - 1 + stall)
    end = ob.last_drain_end
    c = compute
    if ob.has_data():
        while ob.has_data():
            e = ob.drain(c)
            c = e + 1
        end = max(end, ob.last_drain_end)
    first = -max(s.first_lines for s in streams)
    return ScaleSimTiming(int(end - first), int(compute), int(stall), np.asarray(extra_rows, np.int64),
                          np.asarray(extra_cycles, np.int64), ob.dram_words)
