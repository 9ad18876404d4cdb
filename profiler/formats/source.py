"""Reading trace bytes from disk: transparent gzip, a cap on the content, and errors that name the file.

Why the cap: a few MB of gzip can hold gigabytes (4 GiB of whitespace packs into 4 MB), and the
gzip trailer's size field is only the size modulo 2**32, so the compressed size says nothing.
Every reader takes its bytes through :func:`content_blocks`, which stops once the decompressed
content passes :func:`content_limit` (``ACCEL_PROFILER_MAX_BYTES``; by default a quarter of the
memory available when the limit is first asked for, since reading needs several times the
content) and raises :class:`ContentLimitError`, a :class:`TraceFormatError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from profiler.errors import ProfilerError, TraceFormatError

GZIP_MAGIC = b"\x1f\x8b"
#: Environment variable overriding the content limit (bytes, or with a K/M/G suffix).
LIMIT_ENV = "ACCEL_PROFILER_MAX_BYTES"
#: The default limit is never below this (a small machine can still read ordinary traces).
MIN_DEFAULT_LIMIT = 256 << 20
_READ = 1 << 20
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_override: ContextVar[int | None] = ContextVar("content_limit_override", default=None)
_switch: ContextVar[int | None] = ContextVar("stream_switch", default=None)


class ContentLimitError(TraceFormatError):
    """The (decompressed) content of a trace file is larger than the configured limit."""


class StreamInstead(TraceFormatError):
    """The content passed a size at which the caller asked to switch to the streaming reader.

    A TraceFormatError so that a caller who did not ask to switch still gets the project's error.
    """


def parse_size(text: str) -> int:
    """Bytes from ``"1073741824"``, ``"512M"``, ``"2G"``, ``"2GiB"`` (binary multiples)."""
    m = _SIZE.match(text)
    if m is None:
        raise ProfilerError(f"{LIMIT_ENV}={text!r}: expected a size such as 2G or 500M")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), or the physical size."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def default_content_limit() -> int:
    """A quarter of the available memory: the streaming reader needs ~2.3x the content, the
    normal one ~6x, and other programs share the machine.  Never below MIN_DEFAULT_LIMIT."""
    avail = available_memory()
    return max(MIN_DEFAULT_LIMIT, (avail or 4 * MIN_DEFAULT_LIMIT) // 4)


def content_limit() -> int:
    """The largest content (decompressed bytes) a reader accepts now."""
    o = _override.get()
    if o is not None:
        return o
    env = os.environ.get(LIMIT_ENV)
    if env:
        return parse_size(env)
    return default_content_limit()


@contextmanager
def limited_content(max_bytes: int) -> Iterator[None]:
    """Within the block, readers accept at most ``max_bytes`` of content (the dashboard's uploads)."""
    tok = _override.set(min(max_bytes, content_limit()))
    try:
        yield
    finally:
        _override.reset(tok)


@contextmanager
def stream_past(n_bytes: int) -> Iterator[None]:
    """Within the block, :func:`read_bytes` raises :class:`StreamInstead` past ``n_bytes`` of content.

    Why: a gzip file's trailer gives its size only modulo 2**32, so :func:`profiler.formats.read_trace`
    cannot always tell beforehand that a file is too large for the normal JSON reader.
    """
    tok = _switch.set(n_bytes)
    try:
        yield
    finally:
        _switch.reset(tok)


def too_large(path: str | Path, limit: int) -> ContentLimitError:
    return ContentLimitError(str(path), f"content larger than the limit of {limit / 2**20:,.0f} MiB",
                             f"set {LIMIT_ENV} (e.g. {LIMIT_ENV}=8G) to read larger traces")


def open_binary(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading bytes; a missing, directory or unreadable path is a TraceFormatError."""
    p = Path(path)
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise TraceFormatError(str(p), "no such file") from None
    except IsADirectoryError:
        raise TraceFormatError(str(p), "is a directory") from None
    except PermissionError:
        raise TraceFormatError(str(p), "permission denied") from None


def content_blocks(f: BinaryIO, path: str | Path, on_damage: Callable[[str], None], limit: int | None = None,
                   switch_at: int | None = None, block: int = _READ) -> Iterator[bytes]:
    """The content of the open file ``f`` in blocks, gunzipped (every member) when it is gzip.

    Raises :class:`ContentLimitError` once more than ``limit`` bytes (default :func:`content_limit`)
    came out, and :class:`StreamInstead` once more than ``switch_at``.  A damaged gzip stream ends
    the blocks early and calls ``on_damage`` with what went wrong (nothing is raised for it).
    """
    cap = content_limit() if limit is None else limit
    gz = f.read(2) == GZIP_MAGIC
    f.seek(0)
    total = 0

    def check(n: int) -> None:
        if switch_at is not None and n > switch_at:
            raise StreamInstead(str(path), f"content larger than {switch_at:,} bytes", "read it with the streaming reader")
        if n > cap:
            raise too_large(path, cap)

    if not gz:
        try:
            check(os.fstat(f.fileno()).st_size)
        except (OSError, ValueError):
            pass
        while chunk := f.read(block * 4):
            total += len(chunk)
            check(total)
            yield chunk
        return
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    fed = False  # has the current member's decompressor seen input?
    try:
        while raw := f.read(block // 8):
            while raw:
                # max_length bounds each step's output: a 1 KB input can expand to 1 MB.
                out = d.decompress(raw, block)
                fed = True
                while out:
                    total += len(out)
                    check(total)
                    yield out
                    out = d.decompress(d.unconsumed_tail, block) if d.unconsumed_tail else b""
                if not d.eof:
                    break
                raw = d.unused_data  # another gzip member follows
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                fed = False
    except zlib.error as exc:
        on_damage(f"gzip stream damaged after {total} decompressed bytes ({exc})")
        return
    if fed and not d.eof:
        on_damage(f"gzip stream cut short after {total} decompressed bytes")


def read_head(path: str | Path, n: int = 4096) -> bytes:
    """The first ``n`` bytes of the (decompressed) content, for format sniffing."""
    with open_binary(path) as f:
        raw = f.read(2)
        f.seek(0)
        if raw == GZIP_MAGIC:
            try:
                with gzip.open(f) as g:
                    return g.read(n)
            except (OSError, EOFError, zlib.error):
                # A stream cut short: sniff what decompresses cleanly (read_bytes keeps it too).
                f.seek(0)
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    return d.decompress(f.read(1 << 20), n)
                except zlib.error:
                    return b""
        return f.read(n)


def read_bytes(path: str | Path, switch_at: int | None = None) -> tuple[bytes, str | None]:
    """Whole content of ``path`` (gunzipped when it is gzip), at most :func:`content_limit` bytes.

    A truncated or corrupt gzip stream keeps what decompressed cleanly; the second value then
    says what went wrong (the caller records it in the import statistics) instead of failing.
    ``switch_at`` (default: set by :func:`stream_past`): raise :class:`StreamInstead` past that many bytes.
    """
    switch_at = _switch.get() if switch_at is None else switch_at
    problems: list[str] = []
    with open_binary(path) as f:
        gz = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not gz:  # one read, no copies (the size is checked against the limit first)
            blocks = content_blocks(f, path, problems.append, switch_at=switch_at, block=1 << 30)
            first = next(blocks, b"")
            rest = b"".join(blocks)
            return (first + rest if rest else first), None
        out = bytearray()
        for b in content_blocks(f, path, problems.append, switch_at=switch_at):
            out += b
    data = bytes(out)
    del out
    return data, (problems[0] if problems else None)
