"""``causalvae demo``: the main job on the built-in dSprites grid, end to end."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm.auto import tqdm

from causalvae.cli._options import (
    DATA_DIR_OPTION,
    TrainingBar,
    build_model_config,
    is_quiet,
    model_options,
    user_errors,
)
from causalvae.graph import PRESET_NAMES


@click.command("demo")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Report folder; the checkpoint goes to OUTPUT/checkpoint.",
)
@DATA_DIR_OPTION
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="Training budget in minutes.",
)
@click.option(
    "--num-images",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Held-out images for the metrics.",
)
@click.option(
    "--preset",
    type=click.Choice([*PRESET_NAMES, "none"]),
    default="chain",
    show_default=True,
    help="Graph of the report's causal section: the model's factor mechanisms are "
    "fitted to units resampled from it and compared with its exact answers; "
    "'none' skips the section.",
)
@model_options
@user_errors
def cli(
    output: Path,
    data_dir: Path | None,
    minutes: float,
    num_images: int,
    preset: str,
    **model_kwargs: object,
) -> None:
    """Generate the data if missing, train, evaluate and write an HTML report."""
    from causalvae.pipeline import run_demo

    quiet = is_quiet()
    bar = TrainingBar(steps=None, minutes=minutes, quiet=quiet)
    generate_bar: tqdm | None = None

    def generating(done: int, total: int) -> None:
        nonlocal generate_bar
        if generate_bar is None:
            generate_bar = tqdm(
                total=total, unit="img", disable=quiet, desc="rendering"
            )
        generate_bar.update(done - generate_bar.n)
        if done >= total:
            generate_bar.close()

    def say(message: str) -> None:
        # A message after training has started means the training bar is done.
        if bar.bar is not None:
            bar.close()
        if not quiet:
            tqdm.write(message)

    try:
        result = run_demo(
            output,
            data_dir=data_dir,
            minutes=minutes,
            model_config=build_model_config(model_kwargs),
            num_images=num_images,
            preset=None if preset == "none" else preset,
            progress=bar,
            say=say,
            generate_progress=generating,
        )
    finally:
        bar.close()
        if generate_bar is not None:
            generate_bar.close()
    metrics = result.metrics
    click.echo(f"held-out -ELBO: {metrics['heldout_neg_elbo']:.2f} nats/image")
    cf = ", ".join(f"{k} {v:.3f}" for k, v in metrics["counterfactual_iou"].items())
    click.echo(f"counterfactual IoU: {cf}")
    if "causal" in metrics:
        causal = metrics["causal"]
        click.echo(
            f"causal answers on the {causal['preset']} graph: interventional TV "
            f"{causal['interventional_tv']:.3f}, counterfactual TV "
            f"{causal['counterfactual_tv']:.3f}"
        )
    click.echo(f"report: {result.report.resolve()}")
