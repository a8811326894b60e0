"""``causalvae effects``: treatment effects with hidden confounders, using CEVAE."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from tqdm import tqdm

from causalvae.cli import UserError
from causalvae.effects import (
    IHDP_CONFIG,
    CevaeConfig,
    EffectsInputError,
    TrainingDivergedError,
    TrainingSettings,
)
from causalvae.effects.images import DSPRITES_CONFIG
from causalvae.effects.training import EpochCallback

_CEVAE_DEFAULTS = CevaeConfig()
_TRAINING_DEFAULTS = TrainingSettings()
_IHDP_TRAINING = IHDP_CONFIG.training
_DSPRITES_TRAINING = DSPRITES_CONFIG.training


@click.group("effects")
def cli() -> None:
    """Estimate treatment effects when the confounder is seen only through proxies."""
    # Pyro's CEVAE logs every prediction batch at INFO through its own handler.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pyro.contrib.cevae").setLevel(logging.WARNING)


@cli.command("fit")
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--treatment", required=True, help="Name of the 0/1 treatment column.")
@click.option("--outcome", required=True, help="Name of the outcome column.")
@click.option(
    "--covariates",
    default=None,
    help="Comma-separated covariate columns [default: every other column].",
)
@click.option(
    "--outcome-family",
    type=click.Choice(["binary", "continuous", "auto"]),
    default="auto",
    show_default=True,
    help="Outcome model; auto picks binary when every outcome is 0 or 1.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_TRAINING_DEFAULTS.epochs,
    show_default=True,
    help="Maximum training epochs.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=_TRAINING_DEFAULTS.patience,
    show_default=True,
    help="Stop after this many epochs without a lower validation loss.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=_TRAINING_DEFAULTS.learning_rate,
    show_default=True,
    help="Initial Adam learning rate.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_TRAINING_DEFAULTS.batch_size,
    show_default=True,
    help="Units per gradient step.",
)
@click.option(
    "--latent-dim",
    type=click.IntRange(min=1),
    default=_CEVAE_DEFAULTS.latent_dim,
    show_default=True,
    help="Dimension of the latent confounder.",
)
@click.option(
    "--hidden-dim",
    type=click.IntRange(min=1),
    default=_CEVAE_DEFAULTS.hidden_dim,
    show_default=True,
    help="Units per hidden layer.",
)
@click.option(
    "--num-layers",
    type=click.IntRange(min=1),
    default=_CEVAE_DEFAULTS.num_layers,
    show_default=True,
    help="Hidden layers per network.",
)
@click.option(
    "--ite-samples",
    type=click.IntRange(min=1),
    default=_CEVAE_DEFAULTS.ite_samples,
    show_default=True,
    help="Latent samples per unit when estimating effects.",
)
@click.option(
    "--validation-fraction",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="Share of each arm held out for early stopping.",
)
@click.option(
    "--interval-level",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Coverage of the ATE interval.",
)
@click.option(
    "--bootstrap-samples",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the ATE interval.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/effects"),
    show_default=True,
    help="Folder for ite.csv, summary.json and ite_distribution.png.",
)
@click.pass_context
def fit_command(
    ctx: click.Context,
    table: Path,
    treatment: str,
    outcome: str,
    covariates: str | None,
    outcome_family: str,
    epochs: int,
    patience: int,
    learning_rate: float,
    batch_size: int,
    latent_dim: int,
    hidden_dim: int,
    num_layers: int,
    ite_samples: int,
    validation_fraction: float,
    interval_level: float,
    bootstrap_samples: int,
    seed: int,
    output_dir: Path,
) -> None:
    """Estimate the ATE and per-unit ITEs of the table in TABLE (a CSV file)."""
    from causalvae.effects import fit_effects, read_table, write_effect_outputs

    with _setting_errors():
        config = CevaeConfig(
            latent_dim=latent_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            ite_samples=ite_samples,
            training=dataclasses.replace(
                _TRAINING_DEFAULTS,
                epochs=epochs,
                patience=patience,
                learning_rate=learning_rate,
                batch_size=batch_size,
            ),
        )
    covariate_names = None
    if covariates is not None:
        covariate_names = [
            name.strip() for name in covariates.split(",") if name.strip()
        ]
    with _user_errors(), _epoch_bar(ctx, epochs, "training") as on_epoch:
        frame = read_table(table)
        fit = fit_effects(
            frame,
            treatment,
            outcome,
            covariate_names,
            outcome_family=outcome_family,  # type: ignore[arg-type]
            config=config,
            validation_fraction=validation_fraction,
            interval_level=interval_level,
            bootstrap_samples=bootstrap_samples,
            seed=seed,
            on_epoch=on_epoch,
        )
        outputs = write_effect_outputs(fit, output_dir)
    lower, upper = fit.ate_interval
    click.echo(
        f"ATE {fit.ate:.4g} ({100 * interval_level:g}% interval {lower:.4g} to "
        f"{upper:.4g}, percentile bootstrap over units)"
    )
    click.echo(f"per-unit effects: {outputs.ite_csv}")
    click.echo(f"summary: {outputs.summary_json}")
    click.echo(f"figure: {outputs.figure}")


@cli.group("benchmark")
def benchmark() -> None:
    """Score CEVAE on semi-synthetic data whose true effects are known."""


@benchmark.command("ihdp")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of ihdp_npci_1.csv ... ihdp_npci_10.csv "
    "[default: ../shared/data/ihdp from the current folder or the repository].",
)
@click.option(
    "--replications",
    type=click.IntRange(min=1, max=10),
    default=10,
    show_default=True,
    help="Run replications 1 to N.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_IHDP_TRAINING.epochs,
    show_default=True,
    help="Maximum training epochs per replication.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=_IHDP_TRAINING.patience,
    show_default=True,
    help="Stop after this many epochs without a lower validation loss.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=_IHDP_TRAINING.learning_rate,
    show_default=True,
    help="Initial Adam learning rate.",
)
@click.option(
    "--ite-samples",
    type=click.IntRange(min=1),
    default=IHDP_CONFIG.ite_samples,
    show_default=True,
    help="Latent samples per unit when estimating effects.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="CEVAE seed.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/effects-ihdp"),
    show_default=True,
    help="Folder for ihdp_scores.csv and ihdp_summary.md.",
)
@click.pass_context
def ihdp_command(
    ctx: click.Context,
    data_dir: Path | None,
    replications: int,
    epochs: int,
    patience: int,
    learning_rate: float,
    ite_samples: int,
    seed: int,
    output_dir: Path,
) -> None:
    """Run CEVAE and three baselines on the IHDP replications."""
    from causalvae.effects.files import write_csv, write_text
    from causalvae.effects.ihdp_benchmark import (
        format_ihdp_markdown,
        run_ihdp_benchmark,
    )

    with _setting_errors():
        config = dataclasses.replace(
            IHDP_CONFIG,
            ite_samples=ite_samples,
            training=dataclasses.replace(
                _IHDP_TRAINING,
                epochs=epochs,
                patience=patience,
                learning_rate=learning_rate,
            ),
        )
    quiet = _is_quiet(ctx)
    with (
        _user_errors(),
        tqdm(total=replications, desc="replications", disable=quiet) as bar,
    ):
        result = run_ihdp_benchmark(
            data_dir,
            range(1, replications + 1),
            config=config,
            seed=seed,
            on_replication=lambda _replication, _rows: bar.update(),
        )
    markdown = format_ihdp_markdown(result)
    scores_path = write_csv(result.rows, output_dir / "ihdp_scores.csv", index=False)
    summary_path = write_text(markdown, output_dir / "ihdp_summary.md")
    click.echo(markdown)
    click.echo(f"{replications} replication(s) in {result.seconds:.0f} s")
    click.echo(f"scores: {scores_path}")
    click.echo(f"summary: {summary_path}")


@benchmark.command("dsprites")
@click.option(
    "--units",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="Units (images) to simulate.",
)
@click.option(
    "--features",
    type=click.Choice(["moments", "pixels"]),
    default="moments",
    show_default=True,
    help="Image features given to the estimators: 5 shape moments or 4096 raw pixels.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_DSPRITES_TRAINING.epochs,
    show_default=True,
    help="Maximum training epochs.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/effects-dsprites"),
    show_default=True,
    help="Folder for dsprites_effects.json and dsprites_effects.md.",
)
@click.pass_context
def dsprites_command(
    ctx: click.Context,
    units: int,
    features: str,
    epochs: int,
    seed: int,
    output_dir: Path,
) -> None:
    """Estimate an effect confounded by sprite scale, seen only through the image."""
    from causalvae.effects.files import write_json, write_text
    from causalvae.effects.images import run_dsprites_benchmark

    with _setting_errors():
        config = dataclasses.replace(
            DSPRITES_CONFIG,
            training=dataclasses.replace(_DSPRITES_TRAINING, epochs=epochs),
        )
    with _user_errors(), _epoch_bar(ctx, epochs, "training") as on_epoch:
        result = run_dsprites_benchmark(
            units,
            features,  # type: ignore[arg-type]
            config=config,
            seed=seed,
            on_epoch=on_epoch,
        )
    markdown = result.to_markdown()
    errors = result.ate_errors()
    record = {
        "true_ate": result.true_ate,
        "estimates": result.estimates,
        "ate_errors": errors,
        "cevae_sqrt_pehe": result.cevae_sqrt_pehe,
        "num_units": units,
        "features": features,
        "seed": seed,
        "seconds": result.seconds,
        "config": dataclasses.asdict(config),
    }
    json_path = write_json(record, output_dir / "dsprites_effects.json")
    markdown_path = write_text(markdown, output_dir / "dsprites_effects.md")
    click.echo(markdown)
    ratio = errors["CEVAE"] / errors["difference in means"]
    click.echo(f"CEVAE ATE error / difference-in-means ATE error: {ratio:.3f}")
    click.echo(f"results: {json_path}, {markdown_path}")


def _is_quiet(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("quiet"))


@contextmanager
def _epoch_bar(ctx: click.Context, epochs: int, label: str) -> Iterator[EpochCallback]:
    """Yield an epoch callback that drives a progress bar, hidden with ``--quiet``."""
    with tqdm(total=epochs, desc=label, unit="epoch", disable=_is_quiet(ctx)) as bar:

        def on_epoch(epoch: int, train_loss: float, validation_loss: float) -> None:
            if epoch == 1 and bar.n:
                bar.reset()  # a retry after divergence starts again
            bar.update()
            bar.set_postfix(train=f"{train_loss:.3g}", valid=f"{validation_loss:.3g}")

        yield on_epoch


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn errors caused by the input or the settings into :class:`UserError`."""
    try:
        yield
    except (EffectsInputError, TrainingDivergedError, FileNotFoundError) as error:
        raise UserError(str(error)) from error


@contextmanager
def _setting_errors() -> Iterator[None]:
    """Turn a rejected combination of settings into :class:`UserError`."""
    try:
        yield
    except ValueError as error:
        raise UserError(f"invalid setting: {error}") from error
