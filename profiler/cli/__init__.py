"""The ``profiler`` command line.

Verbs live in their own modules and load only when used (``profiler info`` must not pay for
importing Dash or torch).  The CLI sits at the top of the data flow, so it is the one place in
this package allowed to reach the ``collectors``, ``analysis`` and ``ui`` packages.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from profiler.errors import ProfilerError

#: verb -> "module:attribute" of a click command.  A module that is not installed hides its verb.
VERBS: dict[str, str] = {
    "info": "profiler.cli.info:info",
    "convert": "profiler.cli.convert:convert",
    "specs": "profiler.cli.specs:specs",
    "simulate": "profiler.cli.simulate:simulate",
    "scalesim": "profiler.cli.scalesim:scalesim",
    "record": "profiler.cli.record:record",
    "analyze": "profiler.cli.analyze:analyze",
    "diff": "profiler.cli.diff:diff",
    "sql": "profiler.cli.sql:sql",
    "ui": "profiler.cli.ui:ui",
    "samples": "profiler.cli.samples:samples",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v in VERBS if self._load(v) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = VERBS.get(name)
        if target is None:
            return None
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                return None
            raise
        cmd: click.Command = getattr(mod, attr)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="accel-profiler", prog_name="profiler")
def cli() -> None:
    """Collect, analyze and visualize traces of ML workloads on AI accelerators.

    \b
    Start with:  profiler ui                 (dashboard on the bundled sample trace)
                 profiler info TRACE         (what a trace holds)
                 profiler analyze TRACE      (bottlenecks, roofline, CI budgets)
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry: ProfilerError becomes one line on stderr and exit status 2."""
    try:
        return cli.main(args=argv, prog_name="profiler", standalone_mode=True)
    except ProfilerError as exc:
        click.echo(f"profiler: error: {exc}", err=True)
        sys.exit(2)


def fail(exc: Exception) -> None:
    """Inside a verb: report a user-facing error in one line and exit 2."""
    click.echo(f"profiler: error: {exc}", err=True)
    sys.exit(2)
