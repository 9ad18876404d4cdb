"""Run a function under torch.profiler and return its result and the imported trace."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.model import Trace


@dataclass
class Recording:
    """What :func:`record` returns: the function's result, our trace, and torch's profiler."""

    result: Any
    trace: Trace
    prof: Any


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # an optional extra
        raise RuntimeError("the PyTorch collector needs torch (pip install 'accel-profiler[torch]')") from exc
    return torch


def read_profile_json(path: str | Path) -> Trace:
    """Import a Kineto JSON written by torch.profiler and fill FLOPs/bytes from the shapes."""
    from collectors.pytorch.enrich import enrich
    from profiler.formats.kineto import read_kineto

    trace = enrich(read_kineto(path))
    trace.metadata.extra["collector"] = "collectors.pytorch"
    return trace


def record(fn: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, *,
           with_stack: bool = False, cuda: bool | None = None, keep_json: str | Path | None = None) -> Recording:
    """Call ``fn(*args, **kwargs)`` under torch.profiler (shapes and FLOPs on) and import the result.

    ``cuda`` adds CUDA activities (default: when a GPU is available); ``keep_json`` also keeps
    torch's own Kineto JSON.
    """
    torch = _torch()
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if cuda if cuda is not None else torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True, with_flops=True, with_stack=with_stack) as prof:
        result = fn(*args, **(kwargs or {}))
        if torch.cuda.is_available() and ProfilerActivity.CUDA in activities:
            torch.cuda.synchronize()
    with tempfile.TemporaryDirectory(prefix="torchprof") as tmp:
        path = Path(tmp) / "trace.pt.trace.json"
        prof.export_chrome_trace(str(path))
        if keep_json is not None:
            Path(keep_json).write_bytes(path.read_bytes())
        trace = read_profile_json(path)
    return Recording(result, trace, prof)


def profile(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Trace]:
    """``result, trace = profile(model, x)``: run ``fn(*args, **kwargs)`` profiled (see :func:`record`)."""
    rec = record(fn, args, kwargs)
    return rec.result, rec.trace
