"""Streaming import of huge Chrome / Kineto JSON traces: the JSON text is never held whole.

Why: the normal reader holds the whole JSON text (decoding keeps views into it) besides one
decoded struct per event.  This reader reads the file (plain or gzip) in windows of
``chunk_bytes``, cuts the ``traceEvents`` array at event boundaries, checks each piece decodes on
its own, and keeps it LZ4-compressed (JSON compresses ~5-10x).  The events are then handed to the
*same* importer as the normal reader (:class:`JsonImporter` / :class:`KinetoImporter`) through
:class:`StreamEvents`, a sequence that decodes one piece at a time as the importer walks it, so
the result is identical to the normal reader's by construction.

What it does not bound: the importer's own per-event working set (the X events it picks, their
args, the builder's columns), which is most of either reader's peak (``bench_streaming``: ~4x the
file size streamed, ~5.5x normally, at 0.5 GB).  A true bound needs the importer to turn a piece
into columns and keep only those (B/E, flow and metadata events aside); that is a change to
:mod:`profiler.formats.json_import`, and this module's piece machinery is ready for it.

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

import bisect
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import msgspec
import numpy as np
import orjson
import pyarrow as pa

from profiler.errors import TraceFormatError
from profiler.formats import json_events as je
from profiler.formats.source import GZIP_MAGIC
from profiler.model import ImportStats, Trace

DEFAULT_CHUNK = 64 << 20
DEFAULT_THRESHOLD = 512 << 20
THRESHOLD_ENV = "ACCEL_PROFILER_STREAM_BYTES"
_READ = 4 << 20
_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_CUT = re.compile(rb"\}\s*,")
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_BYTE = re.compile(r"\(byte (\d+)\)")
_SKIP_HEADER = {"traceEvents", "systemTraceEvents"}
#: The normal reader's array decoder (it picks float or text timestamps from the text itself).
_DECODE_LIST: Any = getattr(je, "_decode_list", je._EVENTS.decode)


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
    """The decompressed content in blocks; a damaged gzip stream ends early and is counted."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise TraceFormatError(str(path), "no such file") from None
    except IsADirectoryError:
        raise TraceFormatError(str(path), "is a directory") from None
    except PermissionError:
        raise TraceFormatError(str(path), "permission denied") from None
    with f:
        gz = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not gz:
            while block := f.read(_READ):
                yield block
            return
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        fed = False  # has the current gzip member decompressor seen input?
        try:
            while raw := f.read(_READ // 8):
                while raw:
                    out = d.decompress(raw)
                    fed = True
                    if out:
                        yield out
                    if not d.eof:
                        break
                    raw = d.unused_data  # another gzip member follows
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    fed = False
        except zlib.error:
            stats.drop("gzip_stream_damaged", 1)
            return
        if fed and not d.eof:
            stats.drop("gzip_stream_damaged", 1)


# ------------------------------------------------------------------ pieces
class _Piece:
    """One run of events: LZ4-compressed JSON array text, or (damaged/odd pieces) the decoded events."""

    __slots__ = ("text", "size", "n", "events", "ts")

    def __init__(self, text: bytes | None, size: int, n: int, events: list[Any] | None,
                 ts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.text = text
        self.size = size
        self.n = n
        self.events = events
        self.ts = ts  # (ns, valid, present) as the importer reads them from this piece's text


class StreamEvents(Sequence[Any]):
    """The events of all pieces as one read-only sequence, decoding one piece at a time.

    Items fetched by index own their ``args`` bytes (so a list of them does not pin every
    decoded piece); ``B`` events are pinned so a name the importer fills in from the matching
    ``E`` is seen by later passes, as it is with a plain list.
    """

    def __init__(self, pieces: list[_Piece]) -> None:
        self._pieces = pieces
        self._starts = np.cumsum([0] + [p.n for p in pieces]).tolist()
        self._cache: tuple[int, list[Any]] | None = None
        self._pinned: dict[int, Any] = {}
        self._intern: dict[Any, Any] = {}

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _piece(self, k: int) -> list[Any]:
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1]
        p = self._pieces[k]
        if p.events is not None:
            evs = p.events
        else:
            assert p.text is not None
            evs = _DECODE_LIST(pa.decompress(p.text, decompressed_size=p.size, codec="lz4", asbytes=True))
        self._cache = (k, evs)
        return evs

    def __iter__(self) -> Iterator[Any]:
        for k in range(len(self._pieces)):
            evs = self._piece(k)
            lo, hi = self._starts[k], self._starts[k + 1]
            pins = [i for i in self._pinned if lo <= i < hi] if self._pinned else []
            if not pins:
                yield from evs
            else:
                for j, e in enumerate(evs):
                    yield self._pinned.get(lo + j, e)

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        pin = self._pinned.get(i)
        if pin is not None:
            return pin
        k = bisect.bisect_right(self._starts, i) - 1
        if not 0 <= k < len(self._pieces):
            raise IndexError(i)
        e = self._piece(k)[i - self._starts[k]]
        if self._pieces[k].events is None:
            # A copy that pins nothing of the piece: own args bytes, and shared (interned) strings
            # and ids instead of the decoder's fresh objects (~200 bytes less per event kept).
            c = self._intern
            e = msgspec.structs.replace(e, ph=c.setdefault(e.ph, e.ph), name=c.setdefault(e.name, e.name),
                                        cat=c.setdefault(e.cat, e.cat), pid=c.setdefault(e.pid, e.pid),
                                        tid=c.setdefault(e.tid, e.tid),
                                        args=msgspec.Raw(bytes(e.args)) if e.args else e.args)
        if e.ph == "B":
            self._pinned[i] = e
        return e

    def timestamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ns, valid, present) of every event, as the importer computed them piece by piece."""
        if not self._pieces:
            z = np.zeros(0, dtype=np.int64)
            return z, z.astype(bool), z.astype(bool)
        return tuple(np.concatenate([p.ts[i] for p in self._pieces]) for i in range(3))  # type: ignore[return-value]


def _make_piece(body: bytes, path: str, stats: ImportStats, damaged: bool, importer: type[Any]) -> _Piece:
    """Decode one ``[...]`` piece as the normal reader would; keep it compressed when it was clean.

    The timestamps are computed here, by the importer's own method on this piece (float or text
    decoding, exact nanoseconds), so later passes never need the whole text.
    """
    scratch = ImportStats()
    try:
        dec = je.decode_bytes(body, path, scratch)
    except TraceFormatError:
        if not damaged:
            raise
        stats.drop("event_after_damage", max(body.count(b'"ph"'), 1))
        z = np.zeros(0, dtype=np.int64)
        return _Piece(None, 0, 0, [], (z, z.astype(bool), z.astype(bool)))
    stats.merge(scratch)
    evs = dec.events
    ts = importer(dec)._timestamps()
    if scratch.dropped or scratch.repaired or damaged:
        return _Piece(None, 0, len(evs), list(evs), ts)
    comp = pa.compress(body, codec="lz4", asbytes=True)
    return _Piece(comp, len(body), len(evs), None, ts)


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
    else:
        start = je._first_non_space(bytes(buf[:4096]))
        if start >= len(buf):
            raise TraceFormatError(ps, "empty file", where="byte 0")
        raise TraceFormatError(ps, "JSON object has no traceEvents array", where="byte 0")
    consumed = len(head)

    pieces: list[_Piece] = []
    tail = b""
    eof = False
    damaged = False
    while True:
        while not eof and len(buf) < chunk_bytes:
            nxt = next(blocks, None)
            if nxt is None:
                eof = True
            else:
                buf += nxt
        if eof:
            body = b"[" + bytes(buf)
            try:
                _RAW_LIST.decode(body)
                end = len(body)
            except msgspec.DecodeError as exc:
                pos = _error_pos(exc)
                trailing = pos is not None and "trailing characters" in str(exc)
                end = body.rfind(b"]", 0, pos) + 1 if trailing else -1
            if end < 0:  # truncated or damaged: the normal damage rules keep the complete events
                damaged = True
                pieces.append(_make_piece(body, ps, stats, damaged=True, importer=imp))
            else:
                if _RAW_LIST.decode(body[:end]):
                    pieces.append(_make_piece(body[:end], ps, stats, damaged=False, importer=imp))
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
            pieces.append(_make_piece(b"[" + bytes(buf[: end + 1]), ps, stats, damaged=False, importer=imp))
            tail = bytes(buf[end + 1 :]) + b"".join(blocks)
            break
        if kind == "damage":
            damaged = True
            pieces.append(_make_piece(b"[" + bytes(buf), ps, stats, damaged=True, importer=imp))
            for block in blocks:
                stats.drop("event_after_damage", block.count(b'"ph"'))
            break
        pieces.append(_make_piece(b"[" + bytes(buf[: end + 1]) + b"]", ps, stats, damaged=False, importer=imp))
        consumed += end + 1
        comma = buf.index(b",", end) + 1
        del buf[:comma]
    for _ in blocks:  # drain, so a damaged gzip tail is counted
        pass
    header = _parse_header(head, tail.rstrip())
    n = sum(pc.n for pc in pieces)
    if n == 0 and damaged:
        raise TraceFormatError(ps, "no complete trace event before the damage", "the file is truncated or corrupt",
                               where=f"byte {consumed}")
    stats.events_read += n
    events = StreamEvents(pieces)
    return je.Decoded(ps, events, header, stats, source=None)  # type: ignore[arg-type]


def _cut_piece(buf: bytearray, chunk_bytes: int) -> tuple[int, str] | None:
    """Where to cut ``buf``: (index of the closing ``}``, "event"), the array's end, damage, or None."""
    lo = max(0, min(len(buf), chunk_bytes) - (8 << 20))
    cands = [m.start() for m in _CUT.finditer(buf, lo, min(len(buf), chunk_bytes + 1))]
    for tries, c in enumerate(reversed(cands)):
        if tries >= 64:
            break
        body = b"[" + bytes(buf[: c + 1]) + b"]"
        try:
            _RAW_LIST.decode(body)
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
