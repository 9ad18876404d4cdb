"""``profiler scalesim``: run SCALE-Sim v3 (or import its output) and write the trace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from profiler.cli.options import InputError, run_or_fail


def _array(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"{value!r} is not ROWSxCOLS (e.g. 16x16)")
    return int(parts[0]), int(parts[1])


@click.command()
@click.argument("config", metavar="[CONFIG|OUTPUT_DIR]", required=False, type=click.Path(exists=True, dir_okay=True))
@click.argument("topology", metavar="[TOPOLOGY]", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(), help="trace to write; its extension picks the format")
@click.option("--gemm", "gemm", metavar="MxNxK[,MxNxK...]", help="GEMM shapes instead of a TOPOLOGY file")
@click.option("--array", "array", metavar="ROWSxCOLS", help="systolic array size (overrides CONFIG)")
@click.option("--dataflow", type=click.Choice(["os", "ws", "is"]), help="dataflow (overrides CONFIG)")
@click.option("--sram-kb", type=int, help="IFMAP and filter SRAM size in KiB each; OFMAP gets half (overrides CONFIG)")
@click.option("--bandwidth", type=int, help="DRAM bandwidth in words per cycle (overrides CONFIG)")
@click.option("--clock-ghz", type=float, help="clock for cycles -> ns (default: CONFIG's, else 1 GHz)")
@click.option("--word-size", type=int, help="bytes per word (default: CONFIG's, else 1 as SCALE-Sim assumes)")
@click.option("--keep", "keep", type=click.Path(file_okay=False), help="keep SCALE-Sim's raw output in this directory")
@click.option("--compare", is_flag=True,
              help="also run our simulator on every layer with the same config and print the cycles side by side")
def scalesim(config: str | None, topology: str | None, output: str | None, gemm: str | None, array: str | None,
             dataflow: str | None, sram_kb: int | None, bandwidth: int | None, clock_ghz: float | None,
             word_size: int | None, keep: str | None, compare: bool) -> None:
    """Run SCALE-Sim on CONFIG and TOPOLOGY and write the trace to -o.

    \b
    profiler scalesim scale.cfg resnet18.csv -o resnet.pftrace    # conv or GEMM topology CSV
    profiler scalesim --array 16x16 --gemm 256x256x256,64x512x128 -o gemm.trace
    profiler scalesim results/run1 -o run1.json                   # import existing SCALE-Sim output
    profiler scalesim scale.cfg gpt2.csv --compare                # SCALE-Sim vs our simulator, per layer
    profiler scalesim results/run1 --compare                      # ... on a stored run (its cfg + topology)

    --compare prints, per layer, SCALE-Sim's total cycles (first DRAM read to last DRAM write),
    ours for the same array, dataflow, SRAM sizes and bandwidth, and the error in percent.

    SCALE-Sim needs numpy<2, so it runs in its own Python: set SCALESIM_PYTHON or create
    .venv-scalesim (see the README).  Cycles become ns at --clock-ghz (default 1 GHz).
    """
    from collectors.scalesim import (
        ScaleSimConfig,
        parse_gemm_shapes,
        read_scalesim_output,
        read_topology,
        run_scalesim_result,
    )
    from collectors.scalesim.reader import read_scalesim_result
    from collectors.scalesim.to_trace import build_trace
    from profiler.formats import format_for_output, write_trace

    if output is None and not compare:
        raise InputError("nothing to do: pass -o TRACE to write the trace, or --compare")
    if output is not None:
        run_or_fail(format_for_output, output)  # a bad -o fails before SCALE-Sim runs, not after
    if config is not None and Path(config).is_dir():
        if topology or gemm:
            raise InputError("an OUTPUT_DIR is imported as it is; do not pass a topology or --gemm with it")
        if compare:
            _print_comparison(run_or_fail(read_scalesim_result, config))
        if output is None:
            return
        trace = run_or_fail(read_scalesim_output, config, clock_ghz=clock_ghz, word_size=word_size)
    else:
        cfg = run_or_fail(ScaleSimConfig.read, config) if config else ScaleSimConfig()
        changes: dict[str, Any] = {}
        rc = _array(array)
        if rc:
            changes.update(rows=rc[0], cols=rc[1])
        if dataflow:
            changes["dataflow"] = dataflow
        if sram_kb:
            changes.update(ifmap_sram_kb=sram_kb, filter_sram_kb=sram_kb, ofmap_sram_kb=max(1, sram_kb // 2))
        if bandwidth:
            changes["bandwidth"] = bandwidth
        try:
            cfg = cfg.with_(**changes) if changes else cfg
            if gemm:
                if topology:
                    raise InputError("pass either TOPOLOGY or --gemm, not both")
                layers: Any = parse_gemm_shapes(gemm)
            elif topology:
                layers = run_or_fail(read_topology, topology)
            else:
                raise InputError("nothing to simulate: pass a TOPOLOGY csv or --gemm MxNxK")
        except ValueError as exc:
            raise InputError(str(exc)) from None
        with click.progressbar(length=len(layers), label=f"SCALE-Sim {cfg.array_name}", file=sys.stderr,
                               show_pos=True) as bar:
            done = [0]

            def on_layer(i: int, n: int) -> None:
                bar.update(i - done[0])
                done[0] = i

            result = run_or_fail(run_scalesim_result, cfg, layers, keep_dir=keep, on_layer=on_layer,
                                 save_traces=output is not None)
        if compare:
            _print_comparison(result)
        if output is None:
            return
        src = str(keep) if keep else f"scalesim {cfg.array_name}"
        trace = run_or_fail(build_trace, result, clock_ghz=clock_ghz, word_size=word_size, source=src)
    assert output is not None
    written = run_or_fail(write_trace, trace, output)
    info = trace.metadata.extra.get("scalesim", {})
    click.echo(f"wrote {output} ({written}): {info.get('layers', 0)} layers, {info.get('compute_cycles', 0):,} compute "
               f"cycles ({info.get('stall_cycles', 0):,} stalled), {info.get('dram_bytes', 0):,} DRAM bytes, "
               f"{trace.slices.num_rows:,} slices")


def _print_comparison(result: Any) -> None:
    from collectors.scalesim.compare import compare_layers, format_comparison

    cfg = result.config
    if cfg is None or any(lr.layer is None for lr in result.layers):
        raise InputError(f"{result.run_dir}: --compare needs the config (.cfg) and topology (.csv) the run used")
    try:
        rows = run_or_fail(compare_layers, result)
    except ValueError as exc:
        raise InputError(f"{result.run_dir}: {exc}") from None
    click.echo(f"SCALE-Sim vs simulator: {cfg.array_name}, SRAM {cfg.ifmap_sram_kb}/{cfg.filter_sram_kb}/"
               f"{cfg.ofmap_sram_kb} KiB, {cfg.bandwidth} words/cycle (total cycles incl. prefetch)")
    click.echo(format_comparison(rows))
    windows = [lr.name for lr in result.layers if getattr(lr.layer, "filter_h", 1) * getattr(lr.layer, "filter_w", 1) > 1]
    if windows:
        click.echo(f"note: {', '.join(windows[:5])}{' ...' if len(windows) > 5 else ''}: convolutions with windows "
                   "larger than 1x1 are simulated as their GEMM; SCALE-Sim's im2col IFMAP repeats addresses of "
                   "overlapping windows, so its IFMAP SRAM hits (and cycles, for ws/is) can differ")
