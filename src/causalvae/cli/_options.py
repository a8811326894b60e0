"""Options and helpers shared by the training, evaluation and demo commands."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm.auto import tqdm

from causalvae.models.cvae import ARCHITECTURES, PRECISIONS, ModelConfig

F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder of the generated grid [default: $CAUSALVAE_DATA_DIR, else "
    "$XDG_CACHE_HOME/causalvae, else ~/.cache/causalvae].",
)


def model_options(function: F) -> F:
    """Add the model configuration flags to a command."""
    options = [
        click.option(
            "--architecture",
            type=click.Choice(ARCHITECTURES),
            default="geometric",
            show_default=True,
            help="Decoder family: 'geometric' (coordinate MLP behind the sprite's "
            "transform) or 'mlp' (the reference fully connected network).",
        ),
        click.option(
            "--z-dim",
            type=click.IntRange(min=1),
            default=None,
            help="Style latent size [default: 4 geometric, 50 mlp].",
        ),
        click.option(
            "--hidden",
            type=click.IntRange(min=1),
            default=None,
            help="Hidden units per layer [default: 64 geometric, 1000 mlp].",
        ),
        click.option(
            "--layers",
            type=click.IntRange(min=1),
            default=None,
            help="Hidden layers [default: 3 geometric, 2 mlp].",
        ),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            default="bf16",
            show_default=True,
            help="Autocast precision of the networks' forward passes.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def build_model_config(kwargs: Mapping[str, Any]) -> ModelConfig:
    """Turn the values of :func:`model_options` into a :class:`ModelConfig`."""
    return ModelConfig(
        architecture=kwargs["architecture"],
        z_dim=kwargs["z_dim"],
        hidden=kwargs["hidden"],
        layers=kwargs["layers"],
        precision=kwargs["precision"],
    )


class TrainingBar:
    """A tqdm bar for a training run, by steps or by minutes, hidden when quiet.

    The bar appears on the first progress report, so that output printed before
    training (data generation, say) is not interleaved with an empty bar.
    """

    def __init__(
        self, *, steps: int | None, minutes: float | None, quiet: bool
    ) -> None:
        self.by_time = steps is None and minutes is not None
        self.total = round(minutes * 60) if self.by_time else steps
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.closed = False

    def __call__(self, info: Mapping[str, Any]) -> None:
        if self.closed:
            return
        if self.bar is None:
            unit = "s" if self.by_time else "step"
            self.bar = tqdm(
                total=self.total, unit=unit, disable=self.quiet, dynamic_ncols=True
            )
        # The postfix is set before the update, which redraws the bar, so that the
        # step shown matches the count.
        self.bar.set_postfix(
            step=info["step"], loss=f"{info['loss']:.2f}", refresh=False
        )
        target = int(info["elapsed"]) if self.by_time else int(info["step"])
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def close(self) -> None:
        """Close the bar; later progress reports are ignored."""
        if self.bar is not None:
            self.bar.close()
        self.closed = True


def is_quiet() -> bool:
    """Return whether the root command was given ``--quiet``."""
    context = click.get_current_context(silent=True)
    root = context.find_root() if context else None
    return bool(root and root.obj and root.obj.get("quiet"))


def user_errors(function: F) -> F:
    """Turn the library's errors about values and files into CLI errors (exit 2)."""
    from causalvae.cli import UserError

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError, FileExistsError) as error:
            raise UserError(str(error)) from error

    return wrapper  # type: ignore[return-value]
