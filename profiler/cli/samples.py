"""``profiler samples``: list the bundled sample traces, or regenerate them from their sources."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from profiler.cli.options import InputError


@click.command()
@click.argument("names", metavar="[NAME ...]", nargs=-1)
@click.option("--regenerate", is_flag=True, help="re-run each sample's source (simulator, PyTorch, ONNX Runtime, SCALE-Sim)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="with --regenerate: write here instead of over the bundled files")
def samples(names: tuple[str, ...], regenerate: bool, out_dir: str | None) -> None:
    """List the bundled sample traces (NAME: only those), or --regenerate them.

    \b
    profiler samples                                   # name, file, size, what it shows
    profiler samples --regenerate gemm_single_buffered # re-run one sample's simulation
    profiler samples --regenerate --out /tmp/samples   # all of them, elsewhere

    Each sample is a real output of one of our sources; regenerating runs that source again
    (torch, onnxruntime and SCALE-Sim samples need those installed).  Files are written to a
    temporary sibling and renamed, so an interrupted run leaves the old file.
    """
    from sample_traces import HERE
    from sample_traces.regenerate import FILES, SAMPLES

    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        raise InputError(f"unknown sample(s) {', '.join(unknown)}; known: {', '.join(SAMPLES)}")
    chosen = list(names) or list(SAMPLES)
    if not regenerate:
        if out_dir:
            raise InputError("--out is for --regenerate")
        w = max(len(n) for n in chosen)
        for n in chosen:
            path = HERE / FILES[n]
            size = f"{path.stat().st_size / 1024:7.0f} KiB" if path.exists() else "  missing"
            doc = (SAMPLES[n].__doc__ or "").strip().splitlines()[0]
            click.echo(f"{n.ljust(w)}  {size}  {path}\n{' ' * w}  {doc}")
        return
    dest = Path(out_dir) if out_dir else HERE
    dest.mkdir(parents=True, exist_ok=True)
    for n in chosen:
        with tempfile.TemporaryDirectory(prefix=f".{n}-", dir=dest) as tmp:
            made = SAMPLES[n](Path(tmp))
            final = dest / made.name
            os.replace(made, final)
        click.echo(f"{n}: wrote {final} ({final.stat().st_size / 1024:.0f} KiB)")
