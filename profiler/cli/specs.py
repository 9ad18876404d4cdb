"""``profiler specs [NAME]``: list the hardware presets, or show one."""

from __future__ import annotations

import json

import click

from profiler.cli.options import resolve_spec
from profiler.hardware import load_spec, preset_names


@click.command()
@click.argument("name", required=False, metavar="[PRESET|SPEC.toml]")
def specs(name: str | None) -> None:
    """List hardware presets, or print one spec (a preset or your TOML file, validated)."""
    if name is None:
        for n in preset_names():
            s = load_spec(n)
            click.echo(f"{n:12s} {s.description}")
        return
    spec = resolve_spec(name)
    assert spec is not None
    click.echo(json.dumps(spec.to_dict(), indent=2))
