"""``causalvae data``: generate, inspect and show dSprites files."""

from __future__ import annotations

import click


@click.group("data")
def cli() -> None:
    """Generate, inspect and show dSprites data."""
