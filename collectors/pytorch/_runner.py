"""``python -m collectors.pytorch._runner OUT.json [-m] TARGET ARGS...``: run a script under torch.profiler.

Used by ``profiler record``: the user's script runs as ``__main__`` (via runpy) in the interpreter
the user named, with the profiler active; the Kineto JSON is written even when the script fails
or calls ``sys.exit``, and the script's exit status is passed on.
"""

from __future__ import annotations

import runpy
import sys

NO_TORCH_EXIT = 3


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m collectors.pytorch._runner OUT.json [-m] TARGET [ARGS...]", file=sys.stderr)
        return 2
    out, rest = argv[0], argv[1:]
    as_module = rest[0] == "-m"
    if as_module:
        rest = rest[1:]
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("profiler record: torch is not installed in this Python", file=sys.stderr)
        return NO_TORCH_EXIT
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    sys.argv = list(rest)
    status = 0
    with profile(activities=activities, record_shapes=True, with_flops=True) as prof:
        try:
            if as_module:
                runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(rest[0], run_name="__main__")
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - report, keep the trace, pass the failure on
            import traceback

            traceback.print_exc()
            status = 1
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
    prof.export_chrome_trace(out)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
