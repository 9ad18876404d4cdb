"""``profiler record -o TRACE -- python train.py ARGS``: profile a script with torch.profiler."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from profiler.cli.options import InputError, run_or_fail
from profiler.formats import format_for_output, write_trace


def _is_python(arg: str) -> bool:
    return Path(arg).name.startswith("python")


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-o", "--output", required=True, type=click.Path(), help="trace to write; its extension picks the format")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def record(output: str, command: tuple[str, ...]) -> None:
    """Run COMMAND under torch.profiler (shapes, FLOPs) and write the trace to OUTPUT.

    \b
    profiler record -o run.pftrace -- python train.py --epochs 1
    profiler record -o run.trace -- python -m mypkg.train
    profiler record -o run.json -- train.py          (runs with this Python)

    The script runs as __main__ in a child process; the trace is written also when it fails,
    and then record exits 2 (bad input) naming the script's status: status 1 stays reserved for
    failed budget and regression checks, so CI cannot mistake a crashed run for a regression.
    """
    run_or_fail(format_for_output, output)  # a bad extension fails before the run, not after
    cmd = list(command)
    python = cmd.pop(0) if _is_python(cmd[0]) else sys.executable
    if not cmd:
        raise InputError("nothing to run: give a script or -m MODULE after the Python")
    if cmd[0] != "-m" and not Path(cmd[0]).is_file():
        raise InputError(f"{cmd[0]}: no such script")
    from collectors.pytorch._runner import NO_TORCH_EXIT

    with tempfile.TemporaryDirectory(prefix="profiler-record") as tmp:
        js = Path(tmp) / "run.pt.trace.json"
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run([python, "-m", "collectors.pytorch._runner", str(js), *cmd], env=env)
        except OSError as exc:
            raise InputError(f"{python}: cannot run ({exc.strerror})") from None
        if proc.returncode == NO_TORCH_EXIT and not js.exists():
            raise InputError(f"torch is not installed for {python}; install it (pip install 'accel-profiler[torch]')")
        if not js.exists():
            raise InputError(f"the profiled run ended (status {proc.returncode}) before a trace was written")
        from collectors.pytorch import read_profile_json

        trace = run_or_fail(read_profile_json, js)
        fmt = run_or_fail(write_trace, trace, output)
    s = trace.summary()
    click.echo(f"wrote {output} ({fmt}): {s['slices']:,} slices on {s['tracks']:,} tracks")
    if proc.returncode:
        raise InputError(f"{cmd[0]}: the profiled command exited with status {proc.returncode} "
                         f"(its trace was written to {output})")
