"""The ``profiler`` command line.

Verbs live in their own modules and load only when used (``profiler info`` must not pay for
importing Dash or torch).  The CLI sits at the top of the data flow, so it is the one place in
this package allowed to reach the ``collectors``, ``analysis`` and ``ui`` packages.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from profiler.errors import EXIT_STATUS_HELP, ExitStatus, ProfilerError

#: verb -> "module:attribute" of a click command (every module ships with the package).
VERBS: dict[str, str] = {
    "info": "profiler.cli.info:info",
    "convert": "profiler.cli.convert:convert",
    "specs": "profiler.cli.specs:specs",
    "simulate": "profiler.cli.simulate:simulate",
    "scalesim": "profiler.cli.scalesim:scalesim",
    "calibrate": "profiler.cli.calibrate:calibrate",
    "record": "profiler.cli.record:record",
    "analyze": "profiler.cli.analyze:analyze",
    "diff": "profiler.cli.diff:diff",
    "sql": "profiler.cli.sql:sql",
    "fleet": "profiler.cli.fleet:fleet",
    "sweep": "profiler.cli.sweep:sweep",
    "replay": "profiler.cli.replay:replay",
    "ui": "profiler.cli.ui:ui",
    "samples": "profiler.cli.samples:samples",
}


def _os_message(exc: OSError) -> str:
    """'path: reason' for a file the user named (a missing folder, no permission, a full disk)."""
    where = exc.filename if exc.filename is not None else "I/O"
    return f"{where}: {exc.strerror or exc}"


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use.

    It also holds the exit-status contract (:class:`profiler.errors.ExitStatus`) for every verb:
    a :class:`ProfilerError` or an ``OSError`` on a user's file leaves a verb as one line and
    status 2, whatever verb raised it; every verb's ``--help`` ends with the contract.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        from profiler.cli.options import InputError

        try:
            return super().invoke(ctx)
        except ProfilerError as exc:
            raise InputError(str(exc)) from None
        except OSError as exc:
            raise InputError(_os_message(exc)) from None
        except KeyboardInterrupt:
            # click would print "Aborted!" and exit 1, which reads as "check failed" in CI.
            click.echo("profiler: interrupted", err=True)
            raise click.exceptions.Exit(ExitStatus.INTERRUPTED) from None

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = VERBS.get(name)
        if target is None:
            return None
        mod_name, attr = target.split(":")
        cmd: click.Command = getattr(importlib.import_module(mod_name), attr)
        if cmd.epilog is None:
            cmd.epilog = EXIT_STATUS_HELP
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="accel-profiler", prog_name="profiler")
def cli() -> None:
    """Collect, analyze and visualize traces of ML workloads on AI accelerators.

    \b
    Start with:  profiler ui                 (dashboard on the bundled sample trace)
                 profiler info TRACE         (what a trace holds)
                 profiler analyze TRACE      (bottlenecks, roofline, CI budgets)

    \b
    Exit status (every verb):
      0  ok
      1  a budget (analyze --budget) or regression check (diff) failed
      2  bad input or usage: one line on stderr naming the file and where
      3  internal error: a bug in the tool (the traceback is printed for a report)
      130  interrupted (Ctrl+C), as shells report it
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry.  Verbs' errors are mapped by :class:`LazyGroup`; anything else that
    escapes is a bug, reported with its traceback and status 3 (never 1, which means "check failed")."""
    try:
        return cli.main(args=argv, prog_name="profiler", standalone_mode=True)
    except ProfilerError as exc:
        click.echo(f"profiler: error: {exc}", err=True)
        sys.exit(ExitStatus.BAD_INPUT)
    except Exception:
        traceback.print_exc()
        click.echo("profiler: internal error (a bug in the tool): please report it with the traceback above", err=True)
        sys.exit(ExitStatus.INTERNAL)
