"""Vectorized protobuf wire-format encoding for whole columns of messages.

Writing a million TrackEvents through generated protobuf classes costs microseconds per event in
Python.  Here a *group* of messages that share one shape (same fields present) is laid out as a
fixed-width byte record: every varint column gets one width for the whole group (the width of its
largest value; smaller values are written as padded, non-minimal varints, which the protobuf spec
and every Perfetto parser accept), so each field lands at the same column of every record.  A group
is then built with a handful of numpy operations on a ``(rows, width)`` uint8 array, and the records
of all groups are scattered into the output buffer at their final byte offsets through a strided
``void`` view (one memcpy per record, no per-byte work).  Variable-length trailing bytes (JSON args)
are moved by :func:`copy_ranges`, grouped by length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Wire types.
VARINT, I64, LEN = 0, 1, 2

_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def tag(field_no: int, wire_type: int) -> bytes:
    """The encoded key of a field."""
    return varint_bytes((field_no << 3) | wire_type)


def varint_bytes(value: int) -> bytes:
    """Minimal varint encoding of one non-negative int."""
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint_width(max_value: int) -> int:
    """Bytes a varint needs for ``max_value`` (1..10)."""
    if max_value < 0:
        return 10
    w = 1
    while max_value >= 1 << (7 * w) and w < 10:
        w += 1
    return w


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Minimal varint length of every value (int64 array, values read as uint64)."""
    v = np.asarray(values).astype(np.uint64, copy=False)
    return (1 + np.searchsorted(_VARINT_LIMITS, v, side="right")).astype(np.int64)


def write_padded_varint(dst: np.ndarray, values: np.ndarray, width: int) -> None:
    """Write ``values`` as ``width``-byte varints into the columns of ``dst`` (shape (n, width))."""
    v = np.asarray(values).astype(np.uint64, copy=False)
    for k in range(width):
        b = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
        if k < width - 1:
            b |= np.uint64(0x80)
        dst[:, k] = b


# ---------------------------------------------------------------- layouts
@dataclass
class _Part:
    kind: str  # "const", "varint", "fixed64", "msg"
    data: bytes = b""
    values: np.ndarray | None = None
    width: int = 0
    parts: list[_Part] = field(default_factory=list)
    tail: np.ndarray | None = None  # per-row trailing byte counts (only on the innermost message)


def const(data: bytes) -> _Part:
    return _Part("const", data=data)


def varint(field_no: int, values: np.ndarray | int) -> list[_Part]:
    """A varint field: the key, then the value column (or one value for the whole group)."""
    if isinstance(values, (int, np.integer)):
        return [const(tag(field_no, VARINT) + varint_bytes(int(values)))]
    v = np.asarray(values)
    mx = int(v.astype(np.uint64).max()) if v.size else 0
    return [const(tag(field_no, VARINT)), _Part("varint", values=v, width=varint_width(mx))]


def fixed64(field_no: int, values: np.ndarray) -> list[_Part]:
    """A fixed64/double field (``values`` are uint64, int64 or float64)."""
    return [const(tag(field_no, I64)), _Part("fixed64", values=np.ascontiguousarray(values))]


def message(field_no: int, parts: list[_Part], tail: np.ndarray | None = None) -> list[_Part]:
    """A nested message; ``tail`` gives per-row byte counts appended after its fixed parts."""
    flat: list[_Part] = []
    for p in parts:
        flat.append(p)
    return [const(tag(field_no, LEN)), _Part("msg", parts=flat, tail=tail)]


def _fixed_width(parts: list[_Part]) -> int:
    w = 0
    for p in parts:
        if p.kind == "const":
            w += len(p.data)
        elif p.kind == "varint":
            w += p.width
        elif p.kind == "fixed64":
            w += 8
        else:
            w += p.width
    return w


def _tail_of(parts: list[_Part]) -> np.ndarray | None:
    for p in parts:
        if p.kind == "msg":
            t = p.tail if p.tail is not None else _tail_of(p.parts)
            if t is not None:
                return t
    return None


def _resolve(parts: list[_Part]) -> None:
    """Compute the width of every nested message part (length prefix plus content)."""
    for p in parts:
        if p.kind == "msg":
            _resolve(p.parts)
            inner = _fixed_width(p.parts)
            tail = p.tail if p.tail is not None else _tail_of(p.parts)
            mx = inner + (int(tail.max()) if tail is not None and tail.size else 0)
            p.data = b""
            p.width = varint_width(mx) + inner  # length prefix + content


def _fill(rec: np.ndarray, col: int, parts: list[_Part], n: int, consts: bool) -> int:
    """Write the constant bytes (``consts``) or the per-row columns of a layout into ``rec``."""
    for p in parts:
        if p.kind == "const":
            k = len(p.data)
            if consts:
                rec[:, col : col + k] = np.frombuffer(p.data, dtype=np.uint8)
            col += k
        elif p.kind == "varint":
            assert p.values is not None
            if not consts:
                write_padded_varint(rec[:, col : col + p.width], p.values, p.width)
            col += p.width
        elif p.kind == "fixed64":
            assert p.values is not None
            if not consts:
                v = p.values
                if v.dtype != np.float64:
                    v = v.astype("<u8", copy=False)
                rec[:, col : col + 8] = v.view(np.uint8).reshape(n, 8)
            col += 8
        else:
            inner = _fixed_width(p.parts)
            lw = p.width - inner
            tail = p.tail if p.tail is not None else _tail_of(p.parts)
            if tail is None:
                if consts:
                    rec[:, col : col + lw] = np.frombuffer(varint_bytes(inner), dtype=np.uint8)
            elif not consts:
                write_padded_varint(rec[:, col : col + lw], inner + tail, lw)
            col = _fill(rec, col + lw, p.parts, n, consts)
    return col


def build_records(parts: list[_Part], n: int) -> np.ndarray:
    """Encode ``n`` messages of one shape into an ``(n, width)`` uint8 array.

    A ``tail`` (see :func:`message`) is not written here; its bytes follow each record in the
    output and are placed by :func:`scatter_tails`.
    """
    _resolve(parts)
    width = _fixed_width(parts)
    template = np.zeros((1, width), dtype=np.uint8)
    _fill(template, 0, parts, 1, consts=True)
    rec = np.empty((n, width), dtype=np.uint8)
    rec[:] = template  # constant bytes: one contiguous broadcast copy
    end = _fill(rec, 0, parts, n, consts=False)
    assert end == width
    return rec


def record_tail(parts: list[_Part]) -> np.ndarray | None:
    """Per-row trailing byte counts of a layout (None when it has no variable part)."""
    return _tail_of(parts)


def scatter_records(out: np.ndarray, positions: np.ndarray, rec: np.ndarray) -> None:
    """Copy record ``i`` of ``rec`` to ``out[positions[i]:]`` (one memcpy per record).

    ``out`` is viewed as overlapping ``void`` items of the record width starting at every byte,
    so the whole group is one fancy-index assignment.
    """
    n, width = rec.shape
    if n == 0 or width == 0:
        return
    dt = np.dtype(f"V{width}")
    view = np.ndarray(shape=(out.size - width + 1,), dtype=dt, buffer=out, offset=0, strides=(1,))
    view[positions] = np.ascontiguousarray(rec).view(dt).reshape(n)


def copy_ranges(out: np.ndarray, positions: np.ndarray, src: np.ndarray, starts: np.ndarray,
                lengths: np.ndarray) -> None:
    """Copy ``src[starts[i]:starts[i] + lengths[i]]`` to ``out[positions[i]:]`` for every i.

    Ranges of equal length are moved together as ``void`` items (one memcpy each), so the cost
    grows with the number of ranges and distinct lengths, not with the bytes copied.
    """
    keep = lengths > 0
    if not keep.any():
        return
    positions, starts, lengths = positions[keep], starts[keep], lengths[keep]
    order = np.argsort(lengths, kind="stable")
    ln = lengths[order]
    cuts = np.flatnonzero(np.diff(ln)) + 1
    bounds = np.concatenate(([0], cuts, [ln.size]))
    src = np.ascontiguousarray(src)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        width = int(ln[a])
        idx = order[a:b]
        dt = np.dtype(f"V{width}")
        s_view = np.ndarray(shape=(src.size - width + 1,), dtype=dt, buffer=src, offset=0, strides=(1,))
        d_view = np.ndarray(shape=(out.size - width + 1,), dtype=dt, buffer=out, offset=0, strides=(1,))
        d_view[positions[idx]] = s_view[starts[idx]]
