"""``causalvae evaluate``: metrics of a checkpoint against the dSprites oracle."""

from __future__ import annotations

from pathlib import Path

import click

from causalvae.checkpoint import atomic_write_json
from causalvae.cli._options import is_quiet, user_errors


@click.command("evaluate")
@click.argument(
    "checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dSprites file [default: the checkpoint's training data].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the metrics [default: CHECKPOINT/metrics.json].",
)
@click.option(
    "--num-images",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Held-out images for the reconstruction, label and counterfactual metrics.",
)
@click.option(
    "--refine-steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="SVI steps refining z against each image during abduction.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where to run the model.",
)
@user_errors
def cli(
    checkpoint: Path,
    data: Path | None,
    output: Path | None,
    num_images: int,
    refine_steps: int,
    seed: int,
    device: str,
) -> None:
    """Compute held-out -ELBO, reconstruction, label and counterfactual metrics."""
    from causalvae.pipeline import evaluate_checkpoint

    quiet = is_quiet()
    metrics = evaluate_checkpoint(
        checkpoint,
        data=data,
        num_images=num_images,
        refine_steps=refine_steps,
        seed=seed,
        device=device,
        progress=None if quiet else (lambda message: click.echo(message, err=True)),
    )
    target = output or checkpoint / "metrics.json"
    atomic_write_json(target, metrics)
    click.echo(f"held-out -ELBO: {metrics['heldout_neg_elbo']:.2f} nats/image")
    click.echo(f"reconstruction IoU: {metrics['reconstruction_iou']:.3f}")
    for name, value in metrics["counterfactual_iou"].items():
        click.echo(f"counterfactual IoU, do({name}): {value:.3f}")
    click.echo(f"metrics written to {target}")
