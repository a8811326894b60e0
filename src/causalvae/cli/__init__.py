"""Command-line interface: a thin layer over the library.

The CLI configures logging once, maps ``-v``/``-q`` onto it and owns progress bars.
Each subcommand group lives in its own module and is registered here.
"""

from __future__ import annotations

import logging
import sys

import click

from causalvae import __version__
from causalvae.runtime import configure_threads


class UserError(click.ClickException):
    """An error caused by the user's input: printed without a traceback, exit code 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="causalvae")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug output).")
@click.option(
    "-q", "--quiet", is_flag=True, help="Log only errors and hide progress bars."
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for PyTorch [default: $CAUSALVAE_THREADS or 1].",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, threads: int | None) -> None:
    """Causal questions about images: condition, intervene, counterfactual."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if verbose == 0 and not quiet:
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    try:
        configure_threads(threads)
    except ValueError as error:
        raise UserError(str(error)) from error


def _register() -> None:
    """Attach every subcommand module to :func:`main`."""
    from causalvae.cli import commands

    commands.register(main)


_register()
