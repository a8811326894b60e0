"""The list of subcommand modules attached to the ``causalvae`` group."""

from __future__ import annotations

import importlib

import click

# Each module defines a click command or group named ``cli``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "causalvae.cli.data",
    "causalvae.cli.effects",
    "causalvae.cli.train",
    "causalvae.cli.query",
    "causalvae.cli.evaluate",
    "causalvae.cli.demo",
    "causalvae.cli.graphs",
)


def register(group: click.Group) -> None:
    """Add the ``cli`` object of every module in :data:`SUBCOMMAND_MODULES`."""
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        group.add_command(module.cli)
