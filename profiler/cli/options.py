"""Options shared by several verbs."""

from __future__ import annotations

from typing import Any

import click

from profiler.errors import ExitStatus, ProfilerError, SpecError
from profiler.hardware import HardwareSpec, load_spec, preset_names


def hw_option(default: str | None = None) -> Any:
    return click.option(
        "--hw", "hw", default=default, metavar="PRESET|SPEC.toml", show_default=bool(default),
        help=f"hardware spec: a preset ({', '.join(preset_names())}) or a TOML file",
    )


def resolve_spec(value: str | None) -> HardwareSpec | None:
    if value is None:
        return None
    try:
        return load_spec(value)
    except SpecError as exc:
        raise InputError(str(exc)) from None


class InputError(click.ClickException):
    """Bad input (unreadable trace, invalid spec): one line on stderr, exit status 2.

    Exit status 1 is kept for "the tool worked and the answer is no" (a failed CI budget).
    """

    exit_code = int(ExitStatus.BAD_INPUT)

    def show(self, file: Any = None) -> None:
        """One line, the same prefix whichever layer reported it."""
        click.echo(f"profiler: error: {self.format_message()}", err=True, file=file)


def run_or_fail(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; a ProfilerError becomes a one-line message and exit status 2."""
    try:
        return func(*args, **kwargs)
    except ProfilerError as exc:
        raise InputError(str(exc)) from None
