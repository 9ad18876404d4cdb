"""``profiler ui``: the dashboard on 127.0.0.1 (timeline, roofline, findings)."""

from __future__ import annotations

from pathlib import Path

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail
from profiler.model import Trace


def _check_port(host: str, port: int) -> None:
    """Fail before loading anything when the address is taken: the web server would print its
    own paragraph and exit 1, which means "check failed" in our contract."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InputError(f"{host}:{port}: {exc.strerror or exc}; choose another --port") from None


@click.command()
@click.argument("traces", metavar="[TRACE ...]", nargs=-1, type=click.Path(exists=True, dir_okay=True))
@hw_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; anything but 127.0.0.1 exposes your traces to the network")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535))
@click.option("--trace-dir", "trace_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="a folder whose trace files the page may list and open (repeatable)")
@click.option("--separate", is_flag=True,
              help="open several TRACEs one at a time instead of as the ranks of one job")
@click.option("--sweep", "sweep_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a 'profiler sweep --format json' result to show at /sweep/N (repeatable)")
@click.option("--replay", "replay_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a 'profiler replay --format json' result to show at /replay/N (repeatable)")
@click.option("--max-upload-mb", default=200, show_default=True, type=click.IntRange(1, 4096),
              help="largest trace the page accepts by upload")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="a host name the page may be opened as besides 127.0.0.1/localhost (repeatable); "
                   "other Host headers are refused (DNS rebinding)")
def ui(traces: tuple[str, ...], hw: str | None, host: str, port: int, trace_dirs: tuple[str, ...],
       separate: bool, sweep_files: tuple[str, ...], replay_files: tuple[str, ...], max_upload_mb: int,
       allow_hosts: tuple[str, ...]) -> None:
    """Open the dashboard on TRACE (the bundled sample when none is given).

    Several TRACEs are the ranks of one job: one timeline with a collapsible group per rank, the
    ranks' clocks aligned on their collectives (--separate opens them one at a time instead).

    The page can open only the TRACE files given here, trace files inside --trace-dir folders,
    and files uploaded from the browser; it never reads another path.
    """
    from profiler.formats import read_trace
    from ui.replay_view import load_replay
    from ui.server import build_registry, serve
    from ui.sweep_view import load_sweep

    spec = resolve_spec(hw)
    sweeps = [run_or_fail(load_sweep, f) for f in sweep_files]
    replays = [run_or_fail(load_replay, f) for f in replay_files]
    if port:
        _check_port(host, port)
    paths = [Path(t) for t in traces]
    loaded: list[tuple[Trace, Path | None]] = [(run_or_fail(read_trace, p), p) for p in paths[:1]]
    if len(paths) > 1 and not separate:
        from analysis.ranks import merged_job

        parts = [loaded[0][0]] + [run_or_fail(read_trace, p) for p in paths[1:]]
        loaded = [(run_or_fail(merged_job, parts, [str(p) for p in paths]), None)]
    if not loaded:
        try:
            from sample_traces import default_sample

            sample = default_sample()
        except (FileNotFoundError, ModuleNotFoundError):
            sample = None
        if sample is not None:
            loaded = [(run_or_fail(read_trace, sample), sample)]
    if spec is None and loaded:
        # No --hw: judge the trace by the preset it was recorded for (its metadata.hardware), as
        # if the user had passed --hw with it.
        from analysis import spec_for

        spec = spec_for(loaded[0][0], None)
    reg = build_registry(loaded, spec, files=paths, trace_dirs=[Path(d) for d in trace_dirs],
                         max_upload_mb=max_upload_mb)
    first = reg.traces[min(reg.traces)]
    hw_name = spec.name if spec is not None else "none (no --hw, and the trace names no known preset)"
    click.echo(f"profiler ui: {first.label} on hardware {hw_name}")

    def announce(url: str) -> None:
        click.echo(f"profiler ui: {url}  (Ctrl+C to stop)")
        for i, sw in enumerate(sweeps):
            click.echo(f"profiler ui: sweep {sw['label']}: {url}sweep/{i}")
        for i, rp in enumerate(replays):
            click.echo(f"profiler ui: replay {rp['label']}: {url}replay/{i}")

    serve(reg, host, port, announce=announce, allow_hosts=allow_hosts, sweeps=sweeps, replays=replays)
