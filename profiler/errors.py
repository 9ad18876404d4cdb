"""Errors users see.  Each names the file and where in it, never a library's internals."""

from __future__ import annotations


class ProfilerError(Exception):
    """Base of every error the CLI turns into a one-line message and a non-zero exit."""


class TraceFormatError(ProfilerError):
    """A trace file could not be read (at all, or past some point with nothing usable before it).

    ``where`` is a byte offset, event index or field path as the format allows.
    """

    def __init__(self, path: str, what: str, detail: str | None = None, where: str | None = None) -> None:
        self.path = path
        self.what = what
        self.detail = detail
        self.where = where
        msg = f"{path}"
        if where:
            msg += f" ({where})"
        msg += f": {what}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class TraceInvalidError(TraceFormatError, ValueError):
    """A trace was read but breaks an invariant of the model (:meth:`profiler.model.Trace.validate`):
    a flow pointing past the slices, unsorted or overlapping slices.  Bad input, like an unreadable
    file; also a ``ValueError`` for callers that predate this class."""


class UnknownFormatError(TraceFormatError):
    """The content matches none of the formats we read."""


class SpecError(ProfilerError):
    """A hardware spec file is invalid (names the file and the offending key)."""
