"""``profiler calibrate MEASURED.csv --hw SPEC -o mychip.toml``: fit a spec's [timing] to measurements."""

from __future__ import annotations

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail


@click.command()
@click.argument("measured", type=click.Path())
@hw_option(default=None)
@click.option("-o", "--output", required=True, type=click.Path(), help="where to write the fitted spec (TOML)")
@click.option("--progress/--no-progress", default=True, help="show a progress bar while simulating the rows")
def calibrate(measured: str, hw: str | None, output: str, progress: bool) -> None:
    """Fit SPEC's [timing] efficiency and overhead keys to kernel times measured on real silicon.

    \b
    MEASURED.csv: a header row, then one kernel per row:
      op        gemm, softmax, layernorm, gelu or elementwise
      dtype     fp16, bf16, fp32, int8, ...
      M,N,K     gemm shape (batch optional); rows,cols for softmax/layernorm;
                elements (or rows,cols) for gelu/elementwise; unused cells may be empty
      latency_us or latency_ms: wall time of one call
    \b
    Prints each row's error before and after the fit and writes SPEC with its [timing] table
    replaced (atomically); `--hw mychip.toml` then simulates with it.
    \b
    profiler calibrate a100.csv --hw a100-sxm -o my-a100.toml
    """
    import dataclasses
    import math
    from importlib import resources
    from pathlib import Path

    from collectors.simulator.calibrate import fit_timing, read_measured, row_errors, write_spec
    from profiler.hardware import load_spec, preset_names

    if hw is None:
        raise InputError("--hw is required: the spec to calibrate (a preset or a TOML file)")
    spec = resolve_spec(hw)
    assert spec is not None
    rows = run_or_fail(read_measured, measured)
    for r in rows:
        if not spec.supports(r.dtype):
            raise InputError(f"{measured}:{r.line}: dtype {r.dtype!r} is not in {spec.name} "
                             f"(it has {', '.join(sorted(spec.peak_flops))})")
    bar = None
    cb = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rows), unit="row", desc="fitting", leave=False)

        def cb(k: int) -> None:
            bar.n = k
            bar.refresh()

    try:
        before = run_or_fail(row_errors, spec, rows)
        timing = run_or_fail(fit_timing, spec, rows, cb)
    finally:
        if bar is not None:
            bar.close()
    fitted = dataclasses.replace(spec, timing=timing)
    after = run_or_fail(row_errors, fitted, rows)
    click.echo(f"{'row':>5}  {'kernel':36s} {'measured us':>12} {'before':>8} {'after':>8}")
    for r, b, a in zip(rows, before, after, strict=True):
        click.echo(f"{r.line:5d}  {r.label():36s} {r.latency_ns / 1e3:12.1f} {100 * b:+7.1f}% {100 * a:+7.1f}%")
    fams = sorted({r.op for r in rows})
    for f in fams:
        bs = [abs(b) for r, b in zip(rows, before, strict=True) if r.op == f]
        as_ = [abs(a) for r, a in zip(rows, after, strict=True) if r.op == f]
        click.echo(f"{f}: mean |error| {100 * sum(bs) / len(bs):.1f}% -> {100 * sum(as_) / len(as_):.1f}%, "
                   f"max {100 * max(bs):.1f}% -> {100 * max(as_):.1f}%")
    if hw in preset_names():
        text = resources.files("profiler.specs").joinpath(f"{hw}.toml").read_text()
    else:
        text = Path(hw).read_text()
    mean_b = sum(abs(b) for b in before) / len(before)
    mean_a = sum(abs(a) for a in after) / len(after)
    note = (f"fitted by `profiler calibrate` to {Path(measured).name} ({len(rows)} rows; mean |error| "
            f"{100 * mean_b:.1f}% -> {100 * mean_a:.1f}%)")
    write_spec(text, timing, output, note)
    run_or_fail(load_spec, output)  # what was written loads back
    assert math.isfinite(mean_a)
    click.echo(f"wrote {output}: mean |error| {100 * mean_b:.1f}% -> {100 * mean_a:.1f}% over {len(rows)} rows")
