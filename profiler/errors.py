"""Errors users see.  Each names the file and where in it, never a library's internals.

Every error a user can cause (an unreadable or invalid trace, a bad spec, budget, query or
workload) is a :class:`ProfilerError`; the modules that detect them subclass it (``BudgetError``
in :mod:`analysis.budget`, ``QueryError`` in :mod:`analysis.sql`, the simulators' errors).  The
command line maps the hierarchy onto one exit-status contract, :class:`ExitStatus`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What every ``profiler`` verb (and ``python -m bench``) exits with.

    CI tells a regression from bad input by the status alone, so 1 is never used for anything
    but a check that ran and failed.
    """

    OK = 0  #: the command did what was asked; every budget / regression check passed
    CHECK_FAILED = 1  #: a budget (``analyze --budget``) or regression check (``diff``) failed
    BAD_INPUT = 2  #: bad input or usage: one line on stderr naming the file and where, no traceback
    INTERNAL = 3  #: a bug in the tool: the traceback is printed for a report
    INTERRUPTED = 130  #: stopped by Ctrl+C (128 + SIGINT, as shells report it)


#: The contract in words, for ``--help`` texts.
EXIT_STATUS_HELP = (
    "Exit status: 0 ok; 1 a budget or regression check failed; 2 bad input or usage (one line on "
    "stderr naming the file); 3 internal error (a bug; traceback printed); 130 interrupted (Ctrl+C)."
)


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
