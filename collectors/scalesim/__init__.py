"""SCALE-Sim v3 collector: run the systolic-array simulator and read what it writes as a Trace.

* :func:`run_scalesim` runs SCALE-Sim (in its own interpreter, see :mod:`.runner`) on a config
  and a topology (GEMM or convolution layers) in a temporary directory and returns the trace;
* :func:`read_scalesim_output` imports a SCALE-Sim output directory that already exists.

The trace layout is described in :mod:`.to_trace`, the meaning of SCALE-Sim's numbers in
:mod:`.reader`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from collectors.scalesim.config import ScaleSimConfig
from collectors.scalesim.reader import LayerResult, ScaleSimResult, read_scalesim_result
from collectors.scalesim.runner import ScaleSimError, find_scalesim_python, run_scalesim_process
from collectors.scalesim.to_trace import build_trace
from collectors.scalesim.topology import (
    ConvLayer,
    GemmLayer,
    Layer,
    gemm_layers,
    parse_gemm_shapes,
    read_topology,
    topology_kind,
    write_layout,
    write_topology,
)
from profiler.model import Trace

__all__ = [
    "ConvLayer", "GemmLayer", "Layer", "LayerResult", "ScaleSimConfig", "ScaleSimError", "ScaleSimResult",
    "find_scalesim_python", "gemm_layers", "parse_gemm_shapes", "read_scalesim_output", "read_topology",
    "run_scalesim", "run_scalesim_result",
]


def _as_config(config: ScaleSimConfig | str | Path) -> ScaleSimConfig:
    return config if isinstance(config, ScaleSimConfig) else ScaleSimConfig.read(config)


def _as_layers(topology: Sequence[Layer] | str | Path) -> list[Layer]:
    if isinstance(topology, (str, Path)):
        return read_topology(topology)
    return list(topology)


def run_scalesim_result(
    config: ScaleSimConfig | str | Path,
    topology: Sequence[Layer] | str | Path,
    keep_dir: str | Path | None = None,
    python: str | None = None,
    on_layer: Callable[[int, int], None] | None = None,
    timeout_s: float | None = None,
    save_traces: bool = True,
) -> ScaleSimResult:
    """Run SCALE-Sim and parse its output (no trace yet); ``keep_dir`` keeps the raw output there.

    ``save_traces=False`` skips SCALE-Sim's per-cycle trace files (reports only; much faster for
    big layers, but the result then has no per-cycle DRAM streams or stall windows).
    """
    cfg = _as_config(config)
    layers = _as_layers(topology)
    kind = topology_kind(layers)
    with tempfile.TemporaryDirectory(prefix="scalesim-") as tmp:
        work = Path(tmp)
        cfg_path = cfg.write(work / "scalesim.cfg")
        topo_path, _ = write_topology(layers, work / "topology.csv")
        layout_path = write_layout(work / "layout.csv")
        out = work / "out"
        out.mkdir()
        n = len(layers)
        run_dir = run_scalesim_process(
            cfg_path, topo_path, layout_path, out, gemm=(kind == "gemm"), python=python,
            on_layer=(lambda i: on_layer(i, n)) if on_layer else None, timeout_s=timeout_s,
            save_traces=save_traces,
        )
        if on_layer:
            on_layer(n, n)
        if keep_dir is not None:
            dest = Path(keep_dir)
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(run_dir, dest)
            shutil.copy(cfg_path, dest / "scalesim.cfg")
            shutil.copy(topo_path, dest / "topology.csv")
            run_dir = dest
        result = read_scalesim_result(run_dir, config=cfg, layers=layers)
    return result


def run_scalesim(
    config: ScaleSimConfig | str | Path,
    topology: Sequence[Layer] | str | Path,
    *,
    clock_ghz: float | None = None,
    word_size: int | None = None,
    dtype: str | None = None,
    keep_dir: str | Path | None = None,
    python: str | None = None,
    on_layer: Callable[[int, int], None] | None = None,
    hardware: str | None = None,
    timeout_s: float | None = None,
) -> Trace:
    """Run SCALE-Sim on ``config`` (object or ``.cfg`` path) and ``topology`` (layers or CSV path).

    ``clock_ghz`` and ``word_size`` override the config's (defaults 1 GHz and 1 byte, SCALE-Sim's own
    word size); ``on_layer(i, n)`` reports progress as SCALE-Sim starts layer ``i`` of ``n``.
    """
    result = run_scalesim_result(config, topology, keep_dir=keep_dir, python=python, on_layer=on_layer,
                                 timeout_s=timeout_s)
    src = str(keep_dir) if keep_dir else f"scalesim {result.config.array_name if result.config else ''}".strip()
    return build_trace(result, clock_ghz=clock_ghz, word_size=word_size, dtype=dtype, source=src, hardware=hardware)


def read_scalesim_output(
    path: str | Path,
    config: ScaleSimConfig | str | Path | None = None,
    topology: Sequence[Layer] | str | Path | None = None,
    *,
    clock_ghz: float | None = None,
    word_size: int | None = None,
    dtype: str | None = None,
) -> Trace:
    """Import an existing SCALE-Sim output directory (the run directory or the ``-p`` directory above it).

    Without a topology, layer FLOPs come from the report's "Overall Util %" and the array size.
    """
    result = read_scalesim_result(
        path,
        config=_as_config(config) if config is not None else None,
        layers=_as_layers(topology) if topology is not None else None,
    )
    return build_trace(result, clock_ghz=clock_ghz, word_size=word_size, dtype=dtype, source=str(path))
