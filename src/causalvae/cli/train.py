"""``causalvae train``: fit the conditional VAE by SVI and write a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from causalvae.checkpoint import CheckpointError, load_checkpoint
from causalvae.cli import UserError
from causalvae.cli._options import (
    DATA_DIR_OPTION,
    TrainingBar,
    build_model_config,
    is_quiet,
    model_options,
    user_errors,
)
from causalvae.pipeline import (
    DEFAULT_HELDOUT,
    load_image_data,
    resolve_data_path,
    train_model,
)
from causalvae.training import TrainConfig


def _interrupted_message(output: Path) -> str:
    try:
        step = load_checkpoint(output).state["step"]
    except CheckpointError:
        return f"training interrupted before the first checkpoint in {output}"
    return (
        f"training interrupted; the last checkpoint in {output} is at step {step}. "
        "Continue it with the same command and --resume"
    )


@click.command("train")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dSprites .npz file [default: the cached full grid, generated if missing].",
)
@DATA_DIR_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Checkpoint folder to write (and to resume from with --resume).",
)
@model_options
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=2e-3,
    show_default=True,
    help="Adam learning rate of the networks.",
)
@click.option(
    "--mechanism-learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=0.05,
    show_default=True,
    help="Adam learning rate of the factor mechanisms' probability tables.",
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Budget in passes over the training images.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Budget in optimisation steps.",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Budget in minutes of training (evaluations included).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the initialisation, the batch order and the noise.",
)
@click.option(
    "--heldout",
    type=click.IntRange(min=1),
    default=DEFAULT_HELDOUT,
    show_default=True,
    help="Images held out for evaluation.",
)
@click.option(
    "--eval-every",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Steps between held-out evaluations and checkpoints.",
)
@click.option(
    "--aux-weight",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Weight of the label encoder's cross-entropy.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to train.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output from its last checkpoint.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a checkpoint already in --output."
)
@user_errors
def cli(
    data: Path | None,
    data_dir: Path | None,
    output: Path,
    batch_size: int,
    learning_rate: float,
    mechanism_learning_rate: float,
    epochs: float | None,
    steps: int | None,
    minutes: float | None,
    seed: int,
    heldout: int,
    eval_every: int,
    aux_weight: float,
    device: str,
    resume: bool,
    overwrite: bool,
    **model_kwargs: object,
) -> None:
    """Train the conditional VAE on dSprites and write a checkpoint folder."""
    if epochs is None and steps is None and minutes is None:
        raise click.UsageError("set a budget with --epochs, --steps or --minutes")
    train_config = TrainConfig(
        batch_size=batch_size,
        learning_rate=learning_rate,
        mechanism_learning_rate=mechanism_learning_rate,
        epochs=epochs,
        steps=steps,
        minutes=minutes,
        seed=seed,
        aux_weight=aux_weight,
        eval_every=eval_every,
        device=device,
    )
    model_config = None if resume else build_model_config(model_kwargs)
    image_data = load_image_data(resolve_data_path(data, data_dir), heldout=heldout)
    bar = TrainingBar(steps=steps, minutes=minutes, quiet=is_quiet())
    try:
        _, history = train_model(
            image_data,
            output,
            model_config=model_config,
            train_config=train_config,
            resume=resume,
            overwrite=overwrite,
            progress=bar,
        )
    except KeyboardInterrupt:
        bar.close()
        raise UserError(_interrupted_message(output)) from None
    finally:
        bar.close()
    last = history[-1]
    click.echo(
        f"step {last['step']}: held-out -ELBO {last['heldout_neg_elbo']:.2f} "
        f"nats/image; checkpoint in {output}"
    )
