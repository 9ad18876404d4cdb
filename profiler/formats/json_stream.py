"""Streaming import of huge Chrome / Kineto JSON traces: the JSON text is never held whole.

Why: the normal reader holds the whole JSON text (decoding keeps views into it) besides one
decoded struct per event.  This reader reads the file (plain or gzip) in windows of
``chunk_bytes``, cuts the ``traceEvents`` array at event boundaries, decodes each piece once
and turns it into columns at once (:class:`StreamEvents`: combination codes, ``ts``, ``dur``,
args text, flow ids); decoded events are kept only for the rare phases that need them as
objects (B/E, instants, counters, metadata, flow-v2 ``bind_id`` slices).  The *same* importer as the normal reader (:class:`JsonImporter` /
:class:`KinetoImporter`) then reads those columns, so the result is identical by construction.

Measured (``bench_streaming``, generated Kineto-style trace, peak RSS, 16 MB pieces):
129 MB / 708k events: normal 802 MB, streaming 393 MB; 515 MB / 2.8M events: normal 2852 MB
(7.3 s), streaming 1260 MB (10.4 s); 1 GB / 5.5M events under a 4 GB address-space limit: the
normal reader fails (MemoryError), streaming reads it at 2339 MB peak in 19 s.  What grows with
the file is the columnar trace itself (here mostly args text, ~2.3x the JSON size), plus one
transient copy of the slices' args text while it is taken in canonical order.

Finding boundaries robustly: candidates are ``}`` followed by ``,`` near the end of a window.  A
candidate inside a string (``"a},b"``) leaves an unterminated string, so the piece fails to
decode and the previous candidate is tried; a piece that fails *before* its end is damage, and
the normal damage rules apply (every complete event before it is kept, the rest is counted as
``event_after_damage``).  The text around the array (Kineto's header fields, before and after)
becomes the header as usual.

:func:`profiler.formats.read_trace` routes JSON files larger than
:data:`DEFAULT_THRESHOLD` (uncompressed; ``ACCEL_PROFILER_STREAM_BYTES`` overrides) here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import msgspec
import numpy as np
import orjson
import pyarrow as pa

from profiler.errors import TraceFormatError
from profiler.formats import json_events as je
from profiler.formats.source import GZIP_MAGIC, content_blocks, open_binary
from profiler.model import ImportStats, Trace

DEFAULT_CHUNK = 16 << 20
DEFAULT_THRESHOLD = 512 << 20
THRESHOLD_ENV = "ACCEL_PROFILER_STREAM_BYTES"
_READ = 4 << 20
_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_CUT = re.compile(rb"\}\s*,")
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_BYTE = re.compile(r"\(byte (\d+)\)")
_SKIP_HEADER = {"traceEvents", "systemTraceEvents"}
_FLOW_PHASES = frozenset({"s", "t", "f"})


def stream_threshold() -> int:
    """Uncompressed size above which read_trace streams (env ``ACCEL_PROFILER_STREAM_BYTES``)."""
    v = os.environ.get(THRESHOLD_ENV)
    try:
        return int(v) if v else DEFAULT_THRESHOLD
    except ValueError:
        return DEFAULT_THRESHOLD


def uncompressed_size(path: str | Path) -> int:
    """Size of the content: gzip's trailer gives it modulo 2^32, so it is lifted above the file size."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        if f.read(2) != GZIP_MAGIC or size < 18:
            return size
        f.seek(-4, os.SEEK_END)
        est = int.from_bytes(f.read(4), "little")
    while est < size:
        est += 1 << 32
    return est


# ------------------------------------------------------------------ bytes in
def _blocks(path: Path, stats: ImportStats) -> Iterator[bytes]:
    """The decompressed content in blocks (at most the content limit, see
    :func:`profiler.formats.source.content_blocks`); a damaged gzip stream ends early and is counted."""
    f = open_binary(path)
    with f:
        yield from content_blocks(f, path, lambda _why: stats.drop("gzip_stream_damaged", 1), block=_READ)


def _raw_pieces(body: bytes) -> list[msgspec.Raw]:
    """The events of a ``[...]`` text as raw values; lone surrogate escapes are looked past here
    (:func:`profiler.formats.json_events.decode_bytes` repairs and counts them when the piece is decoded)."""
    try:
        return _RAW_LIST.decode(body)
    except msgspec.DecodeError:
        fixed, n = je.repair_surrogates(body)
        if not n:
            raise
    return _RAW_LIST.decode(fixed)


_WS = b" \t\r\n"
#: Text around the events array (header fields) kept at most: the rest is dropped and counted.
_MAX_HEADER = 64 << 20


def _lstrip_ws(buf: bytearray) -> None:
    """Drop the whitespace at the start of ``buf`` (it starts between two events, where JSON
    whitespace means nothing): megabytes of it must not pile up waiting for the next event."""
    if buf[:1] and buf[0] in _WS:
        n = len(buf) - len(buf.lstrip(_WS))
        del buf[:n]


# ------------------------------------------------------------------ pieces
class StreamEvents(Sequence[Any]):
    """All pieces' events as columns, plus the few events that must be matched across pieces.

    Each piece is decoded once and turned into columns at once (:meth:`add_piece`): the code of
    its (ph, cat, pid, tid, name) combination, ``ts`` (ns, valid, present), ``dur``, the args
    text, and for flow events their id and ``bp``.  Decoded events are kept only where the
    importer still needs them as objects: B/E (matched as stacks), instants, counters,
    metadata, and ``X`` events with a flow-v2 ``bind_id``.  So the memory held grows with the columns the
    trace keeps anyway, not with the decoded events.

    Indexing returns the kept events only (the importer never asks for the others: it reads
    their columns through :meth:`args_rows`, :attr:`dur_us` and :attr:`combo`).
    """

    columnar = True

    def __init__(self) -> None:
        self.combos: dict[tuple[Any, Any, Any, Any, Any], int] = {}
        self._combo: list[np.ndarray] = []
        self._ts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._dur: list[np.ndarray] = []
        # Args text of all events in one growing buffer (large reallocations move pages, not bytes).
        self._args_data = bytearray()
        self._args_lens: list[np.ndarray] = []
        self._slice_pos: np.ndarray | None = None
        self.kept: dict[int, Any] = {}
        self.bind_rows: list[int] = []
        self._flow_rows: list[np.ndarray] = []
        self._flow_ids: list[np.ndarray] = []
        self._flow_bp: list[np.ndarray] = []
        self._flows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._n = 0
        self._intern: dict[Any, Any] = {}
        self._final: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self._n

    def add_piece(self, evs: Sequence[Any], ts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Columns of one decoded piece; the piece's event objects can be dropped afterwards."""
        from profiler.formats.json_import import float_column

        sd = self.combos.setdefault
        combos = self.combos
        self._combo.append(np.array([sd((e.ph, e.cat, e.pid, e.tid, e.name), len(combos)) for e in evs],
                                    dtype=np.int64))
        self._ts.append(ts)
        self._dur.append(float_column(evs, "dur"))
        raws = [e.args for e in evs]
        self._args_lens.append(np.fromiter(map(len, raws), dtype=np.int64, count=len(raws)))
        self._args_data += b"".join(raws)
        del raws
        c = self._intern
        base = self._n
        f_rows: list[int] = []
        f_ids: list[Any] = []
        f_bp: list[bool] = []
        for j, e in enumerate(evs):
            if e.bind_id is None:
                if e.ph == "X":
                    continue
                if e.ph in _FLOW_PHASES:  # flows need only their id and bp beyond the columns
                    f_rows.append(base + j)
                    f_ids.append(e.id)
                    f_bp.append(e.bp == "e")
                    continue
            # A copy that pins nothing of the piece: own args bytes, shared (interned) strings and ids.
            self.kept[base + j] = msgspec.structs.replace(
                e, ph=c.setdefault(e.ph, e.ph), name=c.setdefault(e.name, e.name), cat=c.setdefault(e.cat, e.cat),
                pid=c.setdefault(e.pid, e.pid), tid=c.setdefault(e.tid, e.tid),
                args=msgspec.Raw(bytes(e.args)) if e.args else e.args)
            if e.bind_id is not None:
                self.bind_rows.append(base + j)
        self._n += len(evs)
        if f_rows:
            self._flow_rows.append(np.asarray(f_rows, dtype=np.int64))
            try:
                self._flow_ids.append(np.fromiter(f_ids, dtype=np.int64, count=len(f_ids)))
            except (TypeError, ValueError, OverflowError):
                ids = np.empty(len(f_ids), dtype=object)
                ids[:] = f_ids
                self._flow_ids.append(ids)
            self._flow_bp.append(np.asarray(f_bp, dtype=bool))

    def flow_columns(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(id, bp == "e") of the flow events ``rows`` (int64 ids, or objects when some are not integers)."""
        if self._flows is None:
            if not self._flow_rows:
                z = np.zeros(0, dtype=np.int64)
                self._flows = (z, z, z.astype(bool))
            else:
                if all(a.dtype == np.int64 for a in self._flow_ids):
                    ids = np.concatenate(self._flow_ids)
                else:  # Python objects throughout, so an id 5 from an all-integer piece equals one from another
                    ids = np.empty(sum(a.size for a in self._flow_ids), dtype=object)
                    ids[:] = [v for a in self._flow_ids for v in a.tolist()]
                self._flows = (np.concatenate(self._flow_rows), ids, np.concatenate(self._flow_bp))
            self._flow_rows, self._flow_ids, self._flow_bp = [], [], []
        f_rows, ids, bp = self._flows
        k = np.searchsorted(f_rows, rows)
        return ids[k], bp[k]

    def _columns(self) -> dict[str, Any]:
        if self._final is None:
            z = np.zeros(0, dtype=np.int64)
            cat = np.concatenate
            self._final = {
                "combo": cat(self._combo) if self._combo else z,
                "ts": tuple(cat([t[i] for t in self._ts]) for i in range(3)) if self._ts
                else (z, z.astype(bool), z.astype(bool)),
                "dur": cat(self._dur) if self._dur else z.astype(np.float64),
                "args": self._args_column(),
            }
            self._combo, self._ts, self._dur = [], [], []
        return self._final

    def _args_column(self) -> pa.Array:
        lens = np.concatenate(self._args_lens) if self._args_lens else np.zeros(0, dtype=np.int64)
        self._args_lens = []
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        mask = pa.py_buffer(np.packbits(lens > 0, bitorder="little"))
        data = pa.py_buffer(self._args_data)
        if offsets[-1] < 2**31 - 1:
            return pa.Array.from_buffers(pa.binary(), lens.size, [mask, pa.py_buffer(offsets.astype(np.int32)), data])
        return pa.Array.from_buffers(pa.large_binary(), lens.size, [mask, pa.py_buffer(offsets), data])

    def adopt_slice_args(self, rows: np.ndarray, args: pa.Array) -> None:
        """The slices' args column (event ``rows``, in its order) replaces the all-events column.

        Later args lookups are of slice rows only, so one copy of the args text is kept, not two.
        """
        pos = np.full(self._n, -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size)
        self._slice_pos = pos
        self._columns()["args"] = args
        self._args_data = bytearray()

    @property
    def combo(self) -> np.ndarray:
        """Combination code of every event (keys: :attr:`combos` in code order)."""
        return self._columns()["combo"]

    @property
    def dur_us(self) -> np.ndarray:
        """``dur`` of every event in microseconds, NaN where absent."""
        return self._columns()["dur"]

    def timestamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ns, valid, present) of every event, as the importer computed them piece by piece."""
        return self._columns()["ts"]

    def args_array(self, rows: np.ndarray) -> pa.Array:
        """The args text of events ``rows`` as one binary array (null where absent)."""
        idx = np.asarray(rows, dtype=np.int64)
        if self._slice_pos is not None:
            idx = self._slice_pos[idx]
            if (idx < 0).any():
                raise IndexError("after the slices took the args text, only slice rows have args")
        return self._columns()["args"].take(pa.array(idx))

    def args_rows(self, rows: np.ndarray) -> list[bytes]:
        """The args text of events ``rows`` as bytes (b"" where absent), for the args decoders."""
        arr = self.args_array(rows)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary())
        return [b or b"" for b in arr.to_pylist()]

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("streamed events are columns; only the kept events can be indexed")

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        try:
            return self.kept[int(i)]
        except KeyError:
            raise IndexError(f"event {i} is held as columns only") from None


def _add_piece(events: StreamEvents, body: bytes, path: str, stats: ImportStats, damaged: bool,
               importer: type[Any]) -> None:
    """Decode one ``[...]`` piece as the normal reader would and add its columns to ``events``.

    The timestamps are computed here, by the importer's own method on this piece (float or text
    decoding, exact nanoseconds), so later passes never need the text.
    """
    scratch = ImportStats()
    try:
        dec = je.decode_bytes(body, path, scratch)
    except TraceFormatError:
        if not damaged:
            raise
        stats.drop("event_after_damage", max(body.count(b'"ph"'), 1))
        return
    stats.merge(scratch)
    events.add_piece(dec.events, importer(dec)._timestamps())


def _error_pos(exc: Exception) -> int | None:
    m = _BYTE.search(str(exc))
    return int(m.group(1)) if m else None


def _parse_header(head: bytes, tail: bytes) -> dict[str, Any]:
    """Header fields from the text before the array (``{..., ``) and after it (``, ...}``)."""
    for doc in (head + b'"traceEvents":[]' + tail, head.rstrip().rstrip(b",") + b"}"):
        try:
            top = orjson.loads(doc)
        except orjson.JSONDecodeError:
            continue
        if isinstance(top, dict):
            return {k: v for k, v in top.items() if k not in _SKIP_HEADER}
    return {}


def stream_decode(path: str | Path, chunk_bytes: int = DEFAULT_CHUNK, importer: type[Any] | None = None) -> je.Decoded:
    """Decode ``path`` piece by piece into a :class:`Decoded` whose events are a :class:`StreamEvents`."""
    try:
        return _stream_decode(path, chunk_bytes, importer)
    except RecursionError:  # msgspec and orjson stop near 1000 levels of nesting
        raise TraceFormatError(str(path), je.MAX_DEPTH_MESSAGE) from None


def _stream_decode(path: str | Path, chunk_bytes: int, importer: type[Any] | None) -> je.Decoded:
    from profiler.formats.json_import import JsonImporter

    imp: type[Any] = importer or JsonImporter
    p = Path(path)
    ps = str(path)
    stats = ImportStats()
    blocks = _blocks(p, stats)
    buf = bytearray()
    # ---- find the array
    head = b""
    for block in blocks:
        buf += block
        start = je._first_non_space(bytes(buf[:4096]))
        if start >= len(buf):
            continue
        if buf[start : start + 1] == b"[":
            head = b""
            del buf[: start + 1]
            break
        if buf[start : start + 1] != b"{":
            raise TraceFormatError(ps, "not a JSON trace (expected '{' or '[')", where=f"byte {start}")
        m = _EVENTS_KEY.search(buf)
        if m is not None:
            head = bytes(buf[start : m.start()])
            del buf[: m.end()]
            break
        if len(buf) > _MAX_HEADER:
            raise TraceFormatError(ps, f"no traceEvents array in the first {_MAX_HEADER >> 20} MB", where="byte 0")
    else:
        start = je._first_non_space(bytes(buf[:4096]))
        if start >= len(buf):
            raise TraceFormatError(ps, "empty file", where="byte 0")
        raise TraceFormatError(ps, "JSON object has no traceEvents array", where="byte 0")
    consumed = len(head)

    events = StreamEvents()
    tail = b""
    eof = False
    damaged = False
    while True:
        _lstrip_ws(buf)
        while not eof and len(buf) < chunk_bytes:
            nxt = next(blocks, None)
            if nxt is None:
                eof = True
            else:
                buf += nxt
                _lstrip_ws(buf)
        if eof:
            body = b"[" + bytes(buf)
            try:
                _raw_pieces(body)
                end = len(body)
            except msgspec.DecodeError as exc:
                pos = _error_pos(exc)
                trailing = pos is not None and "trailing characters" in str(exc)
                end = body.rfind(b"]", 0, pos) + 1 if trailing else -1
                if end > 0:  # the "]" before the trailing text must close the array itself
                    try:
                        _raw_pieces(body[:end])
                    except msgspec.DecodeError:
                        end = -1
            if end < 0:  # truncated or damaged: the normal damage rules keep the complete events
                damaged = True
                _add_piece(events, body, ps, stats, damaged=True, importer=imp)
            else:
                if _raw_pieces(body[:end]):
                    _add_piece(events, body[:end], ps, stats, damaged=False, importer=imp)
                tail = body[end:]
            break
        cut = _cut_piece(buf, chunk_bytes)
        if cut is None:  # one event larger than the window: read on
            more = next(blocks, None)
            if more is None:
                eof = True
            else:
                buf += more
                chunk_bytes *= 2
            continue
        end, kind = cut
        if kind == "array_end":
            _add_piece(events, b"[" + bytes(buf[: end + 1]), ps, stats, damaged=False, importer=imp)
            tail = _read_tail(bytes(buf[end + 1 :]), blocks, stats)
            break
        if kind == "damage":
            damaged = True
            _add_piece(events, b"[" + bytes(buf), ps, stats, damaged=True, importer=imp)
            for block in blocks:
                stats.drop("event_after_damage", block.count(b'"ph"'))
            break
        _add_piece(events, b"[" + bytes(buf[: end + 1]) + b"]", ps, stats, damaged=False, importer=imp)
        consumed += end + 1
        comma = buf.index(b",", end) + 1
        del buf[:comma]
    for _ in blocks:  # drain, so a damaged gzip tail is counted
        pass
    header = _parse_header(head, tail.rstrip())
    n = len(events)
    if n == 0 and damaged:
        raise TraceFormatError(ps, "no complete trace event before the damage", "the file is truncated or corrupt",
                               where=f"byte {consumed}")
    stats.events_read += n
    return je.Decoded(ps, events, header, stats, source=None)  # type: ignore[arg-type]


def _read_tail(first: bytes, blocks: Iterator[bytes], stats: ImportStats) -> bytes:
    """The text after the events array (more header fields) without blocks that are all whitespace;
    beyond :data:`_MAX_HEADER` it is not kept (counted as ``header_after_events_too_large``)."""
    parts = [first]
    size = len(first)
    for b in blocks:
        if not b.strip(_WS):
            continue
        size += len(b)
        if size > _MAX_HEADER:
            stats.drop("header_after_events_too_large", 1)
            for _ in blocks:  # drain: the content limit and gzip damage still apply
                pass
            return b"}"
        parts.append(b)
    return b"".join(parts)


def _cut_piece(buf: bytearray, chunk_bytes: int) -> tuple[int, str] | None:
    """Where to cut ``buf``: (index of the closing ``}``, "event"), the array's end, damage, or None."""
    lo = max(0, min(len(buf), chunk_bytes) - (8 << 20))
    cands = [m.start() for m in _CUT.finditer(buf, lo, min(len(buf), chunk_bytes + 1))]
    if not cands and lo:  # a long run without event ends (whitespace, one huge event): look further back
        cands = [m.start() for m in _CUT.finditer(buf, 0, lo)][-64:]
    for tries, c in enumerate(reversed(cands)):
        if tries >= 64:
            break
        body = b"[" + bytes(buf[: c + 1]) + b"]"
        try:
            _raw_pieces(body)
        except msgspec.DecodeError as exc:
            pos = _error_pos(exc)
            if pos is not None and "trailing characters" in str(exc) and pos <= c + 1:
                return body.rfind(b"]", 0, pos) - 1, "array_end"  # index of the array's "]" in buf
            if pos is not None and pos < c - 1:
                # A cut inside a string fails only at the end; failing earlier is damage.
                return 0, "damage"
            continue
        return c, "event"
    return None


def read_json_streaming(path: str | Path, fmt: str = "chrome_json", chunk_bytes: int = DEFAULT_CHUNK) -> Trace:
    """Read a Chrome (``fmt="chrome_json"``) or Kineto (``"kineto"``) JSON file with bounded memory."""
    from profiler.formats.json_import import JsonImporter
    from profiler.formats.kineto import KinetoImporter

    base: type[JsonImporter] = KinetoImporter if fmt == "kineto" else JsonImporter
    with je.gc_paused():
        dec = stream_decode(path, chunk_bytes, base)
    return _importer_for(base)(dec).run()


def _importer_for(base: type[Any]) -> type[Any]:
    """The importer taking timestamps from the pieces (there is no whole text to read them from)."""

    class StreamImporter(base):
        def _timestamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            out: tuple[np.ndarray, np.ndarray, np.ndarray] = self.dec.events.timestamps()
            return out

    StreamImporter.__name__ = f"Stream{base.__name__}"
    return StreamImporter


__all__ = ["DEFAULT_CHUNK", "DEFAULT_THRESHOLD", "StreamEvents", "read_json_streaming", "stream_decode",
           "stream_threshold", "uncompressed_size"]
