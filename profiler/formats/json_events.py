"""Decoding trace-event JSON (Chrome / Kineto) into typed events, fast, and surviving damage.

Why this module looks the way it does: a 1,000,000-event Kineto file is ~250 MB, and building a
Python dict per event (``json``/``orjson``) costs more than everything else an importer does.
``msgspec`` decodes straight into slotted structs (no dicts, no GC tracking) and leaves ``args``
as raw JSON text (most args are never looked at: they go to the ``args`` column as they are).
``ts`` is decoded as float64 microseconds, which :func:`us_to_ns` turns into exact nanoseconds
as long as every |ts| < 2**43 us (~100 days: relative times, torch 2.x files).  Files with larger
values (Unix-epoch microseconds with ns digits, 19 significant digits: beyond float64) are
recognised from a sample of their text and decoded with ``ts`` as raw JSON text instead
(:class:`EventExactTs`), converted exactly by :func:`raw_numbers_to_ns`; when the sample misled,
:func:`exact_ts_ns` reads the timestamps again as text (one extra skip-parse).

When the fast path's types do not fit (a string ``ts``, a numeric ``name``...), a tolerant path
decodes with orjson and validates event by event, counting what it drops.  A truncated or damaged
file keeps every complete event before the damage (:func:`_recover_prefix`).
"""

from __future__ import annotations

import gc
import json
import math
import mmap
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import orjson
import pyarrow as pa

from profiler.errors import TraceFormatError
from profiler.formats.source import GZIP_MAGIC, content_limit, read_bytes, too_large
from profiler.model import ImportStats

_EMPTY = msgspec.Raw(b"")


class _TsText(msgspec.Struct, gc=False):
    """Only the ``ts`` of an event, as raw JSON text (the exact path for huge timestamps)."""

    ts: msgspec.Raw = _EMPTY


class Event(msgspec.Struct, gc=False):
    """One trace event as the fast path decodes it (unknown fields are skipped by msgspec)."""

    # Fields in the order Kineto writes them: msgspec is a little faster when keys come in order.
    ph: str = ""
    cat: str | None = None
    name: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float | None = None  # microseconds; exact ns via us_to_ns or, for huge values, exact_ts_ns
    dur: float | None = None
    args: msgspec.Raw = _EMPTY  # raw JSON object text, b"" when absent
    id: int | str | None = None
    bp: str | None = None
    s: str | None = None
    bind_id: int | str | None = None
    flow_in: bool = False
    flow_out: bool = False


class EventExactTs(Event, gc=False):
    """An event whose ``ts`` stays raw JSON text, for files with timestamps beyond float64."""

    ts: msgspec.Raw = _EMPTY  # type: ignore[assignment]


_EVENTS = msgspec.json.Decoder(list[Event])
_EVENTS_EXACT = msgspec.json.Decoder(list[EventExactTs])
_TS_SAMPLE = re.compile(rb'"ts"\s*:\s*-?(\d{13,})')
_TS_TEXT = msgspec.json.Decoder(list[_TsText])
#: Nanosecond value given to a timestamp that is a number but does not fit int64 nanoseconds
#: (its valid flag is False): the importer counts those as ``ts_out_of_range``, not as non-numbers.
TS_OUT_OF_RANGE = np.iinfo(np.int64).min
#: Below this many microseconds float64 keeps every 3-decimal value apart (ulp < 1 ns), so
#: :func:`us_to_ns` is exact; 2**43 us is about 100 days.
EXACT_FLOAT_US = float(2**43)
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
#: Top-level keys not kept in metadata (the events themselves, and ftrace text dumps).
_SKIP_HEADER = {"traceEvents", "systemTraceEvents"}
_BYTE_RE = re.compile(r"\(byte (\d+)\)")


@dataclass
class Decoded:
    """Events of one file plus its top-level fields and what decoding had to drop."""

    path: str
    events: list[Event]
    header: dict[str, Any] = field(default_factory=dict)
    stats: ImportStats = field(default_factory=ImportStats)
    #: The JSON array text the events were decoded from one to one (None after the tolerant path):
    #: :func:`exact_ts_ns` reads the timestamps from it again as text when floats are not enough.
    source: bytes | memoryview | None = None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: decoding creates millions of objects and none of them form cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decode_file(path: str | Path) -> Decoded:
    """Read ``path`` (gzip or not) and decode its events; raise TraceFormatError when nothing is usable."""
    mapped = _map_plain_file(path)
    data, gz_problem = (mapped, None) if mapped is not None else read_bytes(path)
    stats = ImportStats()
    if gz_problem:
        stats.drop("gzip_stream_damaged", 1)
    with gc_paused():
        dec = decode_bytes(data, str(path), stats)
    stats.events_read += len(dec.events)
    return dec


def _map_plain_file(path: str | Path) -> bytes | None:
    """The file memory-mapped read-only when it is plain (not gzip) and not empty, else None.

    Why: reading 250 MB into a new bytes object touches every page twice (page cache, then the
    copy); a mapping reads the page cache directly, ~0.1 s less per 250 MB.  The events' raw
    ``args`` point into the mapping, which stays open as long as they live.  Anything unusual
    (empty file, no permission, not a regular file) goes through :func:`read_bytes`, whose
    errors name the file.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) == GZIP_MAGIC:
                return None
            size = os.fstat(f.fileno()).st_size
            if size > content_limit():
                raise too_large(path, content_limit())
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]
    except (OSError, ValueError):
        return None


class _LoneSurrogates(Exception):
    """The text holds a \\uXXXX escape of half a UTF-16 pair, which msgspec and orjson refuse."""


#: An escaped backslash (kept), a whole surrogate pair (kept), or half of one (replaced).
_SURROGATE_ESC = re.compile(rb"\\(?:\\|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[dD][89a-fA-F][0-9a-fA-F]{2})")
_REPLACEMENT_ESC = b"\\ufffd"
#: Nesting deeper than msgspec and orjson decode (both stop near 1000 levels).
MAX_DEPTH_MESSAGE = "values nested too deeply (1000 levels or more)"


def repair_surrogates(data: bytes | bytearray | memoryview) -> tuple[bytes, int]:
    """``data`` with every lone surrogate escape (``\\udc80``) replaced by ``\\ufffd``, and how many.

    The replacement has the same length, so byte offsets (damage positions, cut points) stay
    valid.  Escaped backslashes are matched as a unit, so ``\\\\udc80`` (a backslash, then text) is
    left alone.  Python's own ``json`` would accept the escape, but the string cannot become
    UTF-8 (Arrow, Parquet, Perfetto), so the character is replaced as invalid UTF-8 is.
    """
    n = 0

    def sub(m: re.Match[bytes]) -> bytes:
        nonlocal n
        g = m.group(0)
        if len(g) != 6:  # an escaped backslash or a whole pair
            return g
        n += 1
        return _REPLACEMENT_ESC

    out = _SURROGATE_ESC.sub(sub, bytes(data))
    return out, n


def _has_lone_surrogate(exc: Exception, text: bytes | bytearray | memoryview) -> bool:
    """Did decoding ``text`` fail on a lone surrogate escape?  msgspec says so for a lone low
    half but reports a lone high half as "truncated", so the text is looked at (failures only)."""
    if "surrogate" in str(exc):
        return True
    return any(len(m.group(0)) == 6 for m in _SURROGATE_ESC.finditer(bytes(text)))


def decode_bytes(data: bytes, path: str, stats: ImportStats) -> Decoded:
    """Decode a whole JSON trace text.  Lone surrogate escapes are repaired (and counted) first
    when decoding meets one; nesting beyond the decoders' depth is a TraceFormatError."""
    try:
        return _decode_bytes(data, path, stats)
    except _LoneSurrogates:
        pass
    except RecursionError:
        raise TraceFormatError(path, MAX_DEPTH_MESSAGE) from None
    fixed, n = repair_surrogates(data)
    stats.repair("lone_surrogate_replaced", n)
    try:
        return _decode_bytes(fixed, path, stats)
    except _LoneSurrogates:  # cannot happen: the repair leaves no lone surrogate to find
        raise TraceFormatError(path, "invalid UTF-16 surrogate escape") from None
    except RecursionError:
        raise TraceFormatError(path, MAX_DEPTH_MESSAGE) from None


def _decode_bytes(data: bytes, path: str, stats: ImportStats) -> Decoded:
    start = _first_non_space(data)
    if start >= len(data):
        raise TraceFormatError(path, "empty file", where="byte 0")
    lead = data[start : start + 1]
    if lead not in (b"{", b"["):
        raise TraceFormatError(path, "not a JSON trace (expected '{' or '[')", where=f"byte {start}")
    header: dict[str, Any] = {}
    if lead == b"{":
        split = _split_object(data, start)
        if split is not None:  # one parse of the events, the header read from the text around them
            header, arr = split
            try:
                return Decoded(path, _decode_list(arr), header, stats, source=arr)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
                pass  # let the general path below find out what is wrong
        data = bytes(data)  # the slow paths slice and hand it to orjson: plain bytes (a mapped file is not)
        try:
            top = _TOP.decode(data)
        except msgspec.DecodeError as exc:
            if _has_lone_surrogate(exc, data):
                raise _LoneSurrogates from None
            return _damaged_object(data, path, stats, start)
        except UnicodeDecodeError:  # msgspec: bad UTF-8 in a string
            return _damaged_object(data, path, stats, start)
        except msgspec.ValidationError as exc:
            raise TraceFormatError(path, "not a trace-event JSON object", str(exc), where="byte 0") from None
        header = _decode_header(top)
        raw_events = top.get("traceEvents")
        if raw_events is None:
            raise TraceFormatError(path, "JSON object has no traceEvents array", where="byte 0")
        events, source = _decode_events(bytes(raw_events), path, stats)
    else:
        try:
            events, source = _decode_list(data), data
        except msgspec.ValidationError:
            events, source = _tolerant(bytes(data), path, stats), None
        except msgspec.DecodeError:
            events, source = _recover_array(bytes(data), start, path, stats)
    return Decoded(path, events, header, stats, source=source)


_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_TAIL_RE = re.compile(rb"\]\s*(?:,|\}\s*$)")


def _split_object(data: bytes, start: int) -> tuple[dict[str, Any], memoryview] | None:
    """Header fields and the traceEvents array text of ``{..., "traceEvents": [...], ...}``, or None.

    Why: decoding the top-level object as ``dict[str, Raw]`` is a full extra parse (~0.2 s per
    250 MB) only to find where the array is.  The head before ``"traceEvents"`` and the tail after
    the array's closing bracket are small: each must decode on its own, and the array must then
    decode as a whole, so a wrong guess (a bracket inside a header value) fails and the caller
    falls back to the general path.  Returns None whenever the layout is not the plain one.
    """
    m = _EVENTS_KEY.search(data, start, start + (1 << 20))
    if m is None:
        return None
    head = data[start : m.start()].rstrip()
    try:
        if head == b"{":
            header: dict[str, Any] = {}
        elif head.endswith(b","):
            header = _decode_header(_TOP.decode(head[:-1] + b"}"))
        else:
            return None
        # The tail: the last "]" followed by "," or by the closing "}" of the object.
        window = max(m.end(), len(data) - (1 << 16))
        ends = [t for t in _TAIL_RE.finditer(data, window)]
        for t in reversed(ends[-8:]):
            rest = data[t.start() + 1 :].strip()
            if rest == b"}":
                tail: dict[str, Any] = {}
            elif rest.startswith(b","):
                tail = _decode_header(_TOP.decode(b"{" + rest[1:]))
            else:
                continue
            if "traceEvents" in tail or "traceEvents" in header:
                return None
            header.update(tail)
            return header, memoryview(data)[m.end() - 1 : t.start() + 1]
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return None


def _decode_list(text: bytes | memoryview) -> list[Event]:
    """Decode a JSON array of events, with ``ts`` as text when a sample of the file needs it.

    The sample is the first and last 256 KiB: an integer part of 13 digits or more (>= 10**12 us;
    float64 stays exact below 2**43 ~ 8.8e12) means Unix-epoch microseconds.
    """
    n = len(text)
    view = memoryview(text)
    sample = bytes(view[: 1 << 18]) + b" " + bytes(view[max(0, n - (1 << 18)) :])
    huge = any(int(m.group(1)) >= EXACT_FLOAT_US for m in _TS_SAMPLE.finditer(sample))
    try:
        if huge:
            return cast(list[Event], _EVENTS_EXACT.decode(text))
        return _EVENTS.decode(text)
    except msgspec.DecodeError as exc:
        if _has_lone_surrogate(exc, text):
            raise _LoneSurrogates from None
        raise
    except UnicodeDecodeError as exc:  # msgspec raises this (not DecodeError) for bad UTF-8 in a string
        raise msgspec.DecodeError(f"JSON is malformed: invalid UTF-8 (byte {exc.start})") from None


def _first_non_space(data: bytes) -> int:
    i = 0
    if data[:3] == b"\xef\xbb\xbf":
        i = 3
    n = len(data)
    while i < n and data[i] in b" \t\r\n":
        i += 1
    return i


def _decode_header(top: dict[str, msgspec.Raw]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in top.items():
        if k in _SKIP_HEADER:
            continue
        try:
            out[k] = orjson.loads(bytes(v))
        except orjson.JSONDecodeError:
            continue
    return out


def _decode_events(raw: bytes, path: str, stats: ImportStats) -> tuple[list[Event], bytes | None]:
    """Events of a JSON array text, and the text itself when they were decoded from it one to one."""
    if raw.lstrip()[:1] != b"[":
        raise TraceFormatError(path, "traceEvents is not an array")
    try:
        return _decode_list(raw), raw
    except msgspec.ValidationError:
        return _tolerant(raw, path, stats), None
    except msgspec.DecodeError:  # damage inside the array (e.g. invalid UTF-8): keep what precedes it
        return _recover_array(raw, raw.index(b"["), path, stats)


def _damaged_object(data: bytes, path: str, stats: ImportStats, start: int) -> Decoded:
    """The object form failed to parse: keep the header fields before traceEvents and the complete events."""
    m = _EVENTS_KEY.search(data)
    if m is None:
        where = _error_offset(data)
        raise TraceFormatError(path, "malformed JSON and no traceEvents array found", where=f"byte {where}")
    events, source = _recover_array(data, m.end() - 1, path, stats)
    header: dict[str, Any] = {}
    head = data[start : m.start()].rstrip().rstrip(b",")
    try:  # fields before traceEvents, when they parse on their own
        header = {k: v for k, v in orjson.loads(head + b"}").items() if k not in _SKIP_HEADER}
    except orjson.JSONDecodeError:
        pass
    return Decoded(path, events, header, stats, source=source)


def _error_offset(data: bytes) -> int:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return int(exc.pos)
    return len(data)


def _recover_array(data: bytes, arr_start: int, path: str, stats: ImportStats) -> tuple[list[Event], bytes | None]:
    """Keep every complete event of the array starting at ``arr_start``; count the rest as lost.

    The damage point is where orjson stops (truncation: the end).  Candidate cut points are the
    ``}`` just before a ``,`` (where one event ends and the next begins), tried from the damage
    backwards; each try is a msgspec skip-parse of the prefix, so only a few are needed.
    """
    damage = _error_offset(data[arr_start:]) + arr_start
    cut_region = data[arr_start:damage]
    ends = [m.start() for m in re.finditer(rb"\}\s*,", cut_region[-(1 << 20) :])]
    base = max(0, len(cut_region) - (1 << 20))
    for tries, pos in enumerate(reversed(ends)):
        if tries >= 64:
            break
        prefix = cut_region[: base + pos + 1] + b"]"
        try:
            _RAW_LIST.decode(prefix)
        except msgspec.DecodeError:
            continue
        decoded = _decode_events(prefix, path, stats)
        lost = data[arr_start + base + pos + 1 :].count(b'"ph"')
        stats.drop("event_after_damage", max(lost, 1))
        return decoded
    raise TraceFormatError(path, "no complete trace event before the damage", "the file is truncated or corrupt",
                           where=f"byte {damage}")


# ----------------------------------------------------------------- tolerant path
_STR_FIELDS = ("ph", "name", "cat", "bp", "s")


def _tolerant(raw: bytes, path: str, stats: ImportStats) -> list[Event]:
    """Decode with orjson and validate each event; drop (and count) what cannot be an event."""
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if _has_lone_surrogate(exc, raw):
            raise _LoneSurrogates from None
        # orjson refuses numbers beyond float64 (1e999); Python's parser reads them as inf, which
        # the event checks then drop and count (one bad value must not cost the whole file).
        try:
            items = json.loads(raw)
        except (ValueError, RecursionError):
            raise TraceFormatError(path, "malformed JSON", str(exc), where=f"byte {exc.pos}") from None
    if isinstance(items, dict):
        items = items.get("traceEvents")
    if not isinstance(items, list):
        raise TraceFormatError(path, "traceEvents is not an array")
    out: list[Event] = []
    for ev in items:
        e = _tolerant_event(ev, stats)
        if e is not None:
            out.append(e)
    return out


def _tolerant_event(ev: Any, stats: ImportStats) -> Event | None:
    if not isinstance(ev, dict):
        stats.drop("event_not_an_object")
        return None
    kw: dict[str, Any] = {}
    for k in _STR_FIELDS:
        v = ev.get(k)
        if v is None:
            continue
        if not isinstance(v, str):
            if k == "name" and isinstance(v, int | float):
                v = str(v)
                stats.repair("name_not_a_string")
            else:
                stats.drop(f"{k}_wrong_type")
                return None
        kw[k] = v
    for k in ("pid", "tid", "id", "bind_id"):
        v = ev.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | str):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                stats.drop(f"{k}_wrong_type")
                return None
        kw[k] = v
    ts = ev.get("ts")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            stats.drop("ts_not_a_number")
            return None
        kw["ts"] = float(ts)
    dur = ev.get("dur")
    if dur is not None:
        if isinstance(dur, bool) or not isinstance(dur, int | float):
            stats.drop("dur_not_a_number")
            return None
        kw["dur"] = float(dur)
    args = ev.get("args")
    if args is not None:
        kw["args"] = msgspec.Raw(orjson.dumps(args, option=orjson.OPT_NON_STR_KEYS, default=str))
    for k in ("flow_in", "flow_out"):
        if ev.get(k) is True:
            kw[k] = True
    return Event(**kw)


# ------------------------------------------------------------ exact timestamps
def us_to_ns(us: np.ndarray) -> np.ndarray:
    """Nanoseconds from float64 microseconds, exact for 3-decimal values below EXACT_FLOAT_US.

    ``rint(us * 1000)`` is not: for |us| >= 2**42 the product's own rounding adds to the parse
    error.  Splitting off the integer part first keeps the fraction exact-ish (error < 0.49 ns
    below 2**43 us), so rounding it lands on the written digits.  NaN gives 0 (mask it).
    """
    us = np.where(np.isfinite(us), us, 0.0)
    whole = np.floor(us)
    return whole.astype(np.int64) * 1000 + np.rint((us - whole) * 1000.0).astype(np.int64)


def exact_ts_ns(dec: Decoded) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact ns of every event's ``ts`` read again as text (None when the text is not at hand)."""
    if dec.source is None:
        return None
    try:
        texts = _TS_TEXT.decode(dec.source)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None
    if len(texts) != len(dec.events):
        return None
    return raw_numbers_to_ns([t.ts for t in texts])


def raw_numbers_to_ns(raws: Sequence[msgspec.Raw] | Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Exact int64 nanoseconds from raw JSON microsecond numbers, and a validity mask.

    The text is cast to a decimal with 3 fractional digits by Arrow (one pass in C++), whose
    unscaled integer *is* the nanosecond count: ``"1712195495519689.047"`` -> 1712195495519689047,
    which float64 (53-bit mantissa) cannot hold.  More than 3 decimals round to the nearest ns.
    Empty, ``null`` and non-numeric values are invalid (mask False, value 0).
    """
    ns, valid, _ = raw_numbers_to_ns_present(raws)
    return ns, valid


def raw_numbers_to_ns_present(raws: Sequence[msgspec.Raw] | Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`raw_numbers_to_ns` plus whether a value was there at all (not empty, not ``null``)."""
    n = len(raws)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    lens = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = b"".join(raws)
    buf = np.frombuffer(data, dtype=np.uint8)
    first = np.zeros(n, dtype=np.uint8)
    has = lens > 0
    if buf.size:
        first[has] = buf[offsets[:-1][has]]
    valid = ((first >= 48) & (first <= 57)) | (first == 45)
    present = has & (first != ord("n"))  # "null" is the only JSON value starting with n
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data),
                                           pa.py_buffer(np.packbits(valid, bitorder="little")))
    try:
        dec = arr.cast(pa.decimal128(38, 3))
    except pa.ArrowInvalid:
        try:
            return _round_decimal(arr, valid), valid, present
        except pa.ArrowInvalid:
            return (*_slow_ns(arr, valid), present)
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)[2 * dec.offset : 2 * (dec.offset + n)]
    ns = words[0::2].copy()
    # The decimal is 128 bits: where its high word is not the low word's sign, the value does not fit int64.
    out_of_range = valid & (words[1::2] != (ns >> 63))
    if out_of_range.any():
        valid = valid & ~out_of_range
        ns[out_of_range] = TS_OUT_OF_RANGE
    ns[~valid & ~out_of_range] = 0
    return ns, valid, present


def _round_decimal(arr: pa.Array, valid: np.ndarray) -> np.ndarray:
    """Values with sub-nanosecond digits: round half away from zero at the ns digit."""
    import pyarrow.compute as pc

    d12 = arr.cast(pa.decimal128(38, 12))
    r = pc.round(d12, ndigits=3, round_mode="half_towards_infinity").cast(pa.decimal128(38, 3))
    n = len(arr)
    words = np.frombuffer(r.buffers()[1], dtype=np.int64)[2 * r.offset : 2 * (r.offset + n)]
    ns = words[0::2].copy()
    bad = valid & (words[1::2] != (ns >> 63))
    ns[~valid] = 0
    ns[bad] = TS_OUT_OF_RANGE
    valid &= ~bad
    return ns


def _slow_ns(arr: pa.Array, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-value fallback for exponents and out-of-range numbers (rare)."""
    n = len(arr)
    ns = np.zeros(n, dtype=np.int64)
    valid = valid.copy()
    for i, s in enumerate(arr.to_pylist()):
        if s is None:
            continue
        try:
            d = Decimal(s) * 1000
            if not d.is_finite():
                raise InvalidOperation
            if abs(d) >= 2**63:
                ns[i] = TS_OUT_OF_RANGE
                valid[i] = False
                continue
            ns[i] = int(d.to_integral_value())
        except (InvalidOperation, ValueError):
            valid[i] = False
    return ns, valid


def raw_to_string_array(raws: Sequence[msgspec.Raw], stats: ImportStats | None = None) -> pa.Array:
    """Raw JSON texts as one Arrow string array without per-value Python strings (b"" -> null).

    32-bit offsets (``pa.string()``, what the slices table stores) unless the text passes 2 GiB.
    msgspec does not check UTF-8 inside a Raw value: a damaged file's invalid bytes are replaced
    (U+FFFD) and counted in ``stats`` as ``args_not_utf8`` rather than reaching Arrow.
    """
    n = len(raws)
    lens = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = b"".join(raws)
    mask = np.packbits(lens > 0, bitorder="little")
    if offsets[-1] < 2**31 - 1:
        arr = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data),
                                          pa.py_buffer(mask))
    else:
        arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), pa.py_buffer(mask))
    try:
        arr.validate(full=True)  # Arrow must not trust bytes that are not UTF-8
    except pa.ArrowInvalid:
        texts: list[str | None] = []
        bad = 0
        for r in raws:
            b = bytes(r)
            try:
                texts.append(b.decode() if b else None)
            except UnicodeDecodeError:
                texts.append(b.decode(errors="replace"))
                bad += 1
        if stats is not None:
            stats.repair("args_not_utf8", bad)
        arr = pa.array(texts, type=arr.type)
    return arr


def is_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
