"""Reading trace bytes from disk: transparent gzip, and errors that name the file."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO

from profiler.errors import TraceFormatError

GZIP_MAGIC = b"\x1f\x8b"


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


def read_bytes(path: str | Path) -> tuple[bytes, str | None]:
    """Whole content of ``path`` (gunzipped when it is gzip).

    A truncated or corrupt gzip stream keeps what decompressed cleanly; the second value then
    says what went wrong (the caller records it in the import statistics) instead of failing.
    """
    with open_binary(path) as f:
        data = f.read()
    if data[:2] != GZIP_MAGIC:
        return data, None
    try:
        return gzip.decompress(data), None
    except (OSError, EOFError, zlib.error) as exc:
        # Decompress as far as the stream allows.
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = bytearray()
        try:
            for i in range(0, len(data), 1 << 16):
                out += d.decompress(data[i : i + (1 << 16)])
        except zlib.error:
            pass
        return bytes(out), f"gzip stream damaged after {len(out)} decompressed bytes ({exc})"
