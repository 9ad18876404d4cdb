"""Run SCALE-Sim in its own interpreter.

SCALE-Sim 3.0 needs numpy < 2 and our environment has numpy 2, so it never runs in-process: we
find a Python that can ``import scalesim`` and run ``python -m scalesim.scale`` as a subprocess.
Where that interpreter comes from, in order:

1. the ``SCALESIM_PYTHON`` environment variable;
2. ``.venv-scalesim/bin/python`` in the repository root (or next to it), which CI creates;
3. ``python3`` on PATH, if ``python3 -c "import scalesim"`` works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from profiler.errors import ProfilerError

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "SCALESIM_PYTHON"


#: ``python -c`` program: what ``scalesim.scale`` does, with ``save_disk_space=True`` (reports only).
_NO_TRACE_DRIVER = (
    "import sys\n"
    "from scalesim.scale_sim import scalesim\n"
    "cfg, topo, layout, out, kind = sys.argv[1:6]\n"
    "s = scalesim(save_disk_space=True, verbose=True, config=cfg, topology=topo, layout=layout,\n"
    "             input_type_gemm=(kind == 'gemm'))\n"
    "s.run_scale(top_path=out)\n"
)


class ScaleSimError(ProfilerError):
    """SCALE-Sim is missing or failed; the message says which and how to fix it."""


@lru_cache(maxsize=8)
def _can_import(python: str) -> bool:
    try:
        r = subprocess.run([python, "-c", "import scalesim.scale_sim"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def find_scalesim_python(required: bool = True) -> str | None:
    """The interpreter that runs SCALE-Sim, or None (``required=False``) / ScaleSimError."""
    env = os.environ.get(ENV_VAR)
    if env:
        if not _can_import(env):
            raise ScaleSimError(f"{ENV_VAR}={env} cannot import scalesim (install it there: "
                                f"{env} -m pip install 'numpy<2' scalesim==3.0.0)")
        return env
    for base in (REPO_ROOT, REPO_ROOT.parent):
        cand = base / ".venv-scalesim" / "bin" / "python"
        if cand.exists() and _can_import(str(cand)):
            return str(cand)
    py3 = shutil.which("python3")
    if py3 and Path(py3).resolve() != Path(sys.executable).resolve() and _can_import(py3):
        return py3
    if required:
        raise ScaleSimError(
            "SCALE-Sim not found. It needs numpy<2, so it lives in its own environment: "
            "python3 -m venv .venv-scalesim && .venv-scalesim/bin/pip install 'numpy<2' scalesim==3.0.0, "
            f"or point {ENV_VAR} at a Python that has it")
    return None


def run_scalesim_process(
    config_path: Path,
    topology_path: Path,
    layout_path: Path,
    out_dir: Path,
    gemm: bool,
    python: str | None = None,
    on_layer: Callable[[int], None] | None = None,
    timeout_s: float | None = None,
    save_traces: bool = True,
) -> Path:
    """Run SCALE-Sim; returns the directory holding its reports (``out_dir/<run_name>``).

    ``on_layer(i)`` is called as SCALE-Sim starts layer ``i`` (it prints "Running Layer i").
    ``save_traces=False`` writes only the three reports, not the per-cycle ``layer*/`` traces
    (SCALE-Sim 3.0's ``-s N`` flag is ignored by its ``scale.py``, so we call its API directly).
    """
    py = python or find_scalesim_python()
    assert py is not None
    if save_traces:
        cmd = [py, "-m", "scalesim.scale", "-c", str(config_path), "-t", str(topology_path), "-l", str(layout_path),
               "-p", str(out_dir), "-i", "gemm" if gemm else "conv", "-s", "Y"]
    else:
        cmd = [py, "-c", _NO_TRACE_DRIVER, str(config_path), str(topology_path), str(layout_path), str(out_dir),
               "gemm" if gemm else "conv"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    tail: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=str(out_dir), env=env)
    except OSError as exc:
        raise ScaleSimError(f"cannot start SCALE-Sim with {py}: {exc}") from None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-15:]
            if line.startswith("Running Layer") and on_layer is not None:
                try:
                    on_layer(int(line.split()[-1]))
                except ValueError:
                    pass
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise ScaleSimError(f"SCALE-Sim ran longer than {timeout_s:g} s and was stopped") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        last = [t for t in tail if t.strip()][-3:]
        raise ScaleSimError(f"SCALE-Sim failed (exit {rc}) on {topology_path.name}: " + " | ".join(last))
    runs = [d for d in out_dir.iterdir() if d.is_dir() and (d / "COMPUTE_REPORT.csv").exists()]
    if len(runs) != 1:
        raise ScaleSimError(f"SCALE-Sim finished but wrote no single report directory under {out_dir}")
    return runs[0]
