"""Which files a set of trace arguments means: files, trace directories, folders of traces, globs.

``profiler analyze|info|ui`` and ``profiler fleet`` take several traces at once (the ranks of a
job, the runs of a week).  A folder that is not itself a trace directory stands for the traces in
it (recursively, in name order); a glob pattern stands for what it matches.  What is not a trace
by its extension is skipped; nothing found at all is bad input.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from pathlib import Path

from profiler.errors import ProfilerError
from profiler.model import Trace, TraceMetadata
from profiler.store import is_trace_dir

#: File names taken as traces when a folder is expanded (gzip of each too).
TRACE_SUFFIXES = (".json", ".pftrace", ".perfetto-trace", ".pb")


_RANK_IN_NAME = re.compile(r"rank[_-]?(\d+)", re.I)


def rank_of(trace: Trace | TraceMetadata, source: str | None = None) -> int | None:
    """The rank a trace says it is (Kineto ``distributedInfo.rank``), else one in its file name."""
    md = trace.metadata if isinstance(trace, Trace) else trace
    info = md.extra.get("distributedInfo")
    if isinstance(info, dict) and isinstance(info.get("rank"), int):
        return int(info["rank"])
    m = _RANK_IN_NAME.search(Path(source or md.source or "").name)
    return int(m.group(1)) if m else None


def world_size_of(trace: Trace | TraceMetadata) -> int | None:
    """Ranks in the job, when the trace says (Kineto ``distributedInfo.world_size``)."""
    md = trace.metadata if isinstance(trace, Trace) else trace
    info = md.extra.get("distributedInfo")
    if isinstance(info, dict) and isinstance(info.get("world_size"), int):
        return int(info["world_size"])
    return None


_RANK_SUFFIX = re.compile(r"[._-]*rank[_-]?\d+", re.I)
_TRACE_EXT = re.compile(r"(\.pt\.trace)?(\.json|\.pftrace|\.perfetto-trace|\.pb|\.trace)(\.gz)?$", re.I)


def run_of(path: str | Path, root: str | Path | None = None) -> str:
    """Which run a trace belongs to: its folder under ``root`` ("2026-12-01/job3"), or, for files
    directly in ``root``, the file name without extension and rank ("job3_rank5.json" -> "job3")."""
    p = Path(path)
    if root is not None:
        try:
            rel = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            rel = None
        if rel is not None and len(rel.parts) > 1:
            return "/".join(rel.parts[:-1])
    stem = _TRACE_EXT.sub("", p.name)
    return _RANK_SUFFIX.sub("", stem) or stem


class TraceSetError(ProfilerError):
    """Arguments that name no trace."""


def _is_trace_name(p: Path) -> bool:
    name = p.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(TRACE_SUFFIXES) and name != "trace.json"


def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(folder.iterdir()):
        if is_trace_dir(p):
            out.append(p)
        elif p.is_dir():
            out.extend(_walk(p))
        elif p.is_file() and _is_trace_name(p):
            out.append(p)
    return out


def expand(args: Iterable[str]) -> list[Path]:
    """Trace paths named by ``args`` (see the module docstring), in order, each once."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_file() or is_trace_dir(p):
            found = [p]
        elif p.is_dir():
            found = _walk(p)
            if not found:
                raise TraceSetError(f"{a}: no trace files in this folder")
        elif any(ch in a for ch in "*?["):
            found = [Path(m) for m in sorted(glob.glob(a, recursive=True))
                     if (Path(m).is_file() and _is_trace_name(Path(m))) or is_trace_dir(m)]
            if not found:
                raise TraceSetError(f"{a}: the pattern matches no trace")
        else:
            raise TraceSetError(f"{a}: no such file or folder")
        out.extend(found)
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique
