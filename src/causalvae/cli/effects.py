"""``causalvae effects``: treatment effects with hidden confounders, using CEVAE."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from tqdm import tqdm

from causalvae.cli import UserError
from causalvae.cli._options import is_quiet
from causalvae.effects import (
    IHDP_CONFIG,
    CevaeConfig,
    EffectsInputError,
    TrainingDivergedError,
    TrainingSettings,
)
from causalvae.effects.errors import IdentifierColumnsError
from causalvae.effects.fit import MIN_BOOTSTRAP_SAMPLES
from causalvae.effects.images import DSPRITES_CONFIG
from causalvae.effects.training import EpochCallback

if TYPE_CHECKING:
    import pandas as pd

    from causalvae.effects import EffectFit

_CEVAE_DEFAULTS = CevaeConfig()
_TRAINING_DEFAULTS = TrainingSettings()
_IHDP_TRAINING = IHDP_CONFIG.training
_DSPRITES_TRAINING = DSPRITES_CONFIG.training
IHDP_OUTPUT_FILES = ("ihdp_scores.csv", "ihdp_summary.md")
DSPRITES_OUTPUT_FILES = ("dsprites_effects.json", "dsprites_effects.md")


F = TypeVar("F", bound=Callable[..., object])


def _output_options(default: str, contents: str) -> Callable[[F], F]:
    """Add ``-o/--output-dir`` (default ``default``, help ``contents``) and
    ``--overwrite`` to a command."""

    def decorate(command: F) -> F:
        command = click.option(
            "--overwrite",
            is_flag=True,
            help="Replace the files of an earlier run in -o.",
        )(command)
        return click.option(
            "-o",
            "--output-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(default),
            show_default=True,
            help=contents,
        )(command)

    return decorate


@click.group(
    "effects", short_help="Estimate treatment effects with hidden confounders."
)
def cli() -> None:
    """Estimate treatment effects when the confounder is seen only through proxies."""
    # Pyro's CEVAE logs every prediction batch at INFO through its own handler.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pyro.contrib.cevae").setLevel(logging.WARNING)


@cli.command("fit", short_help="Estimate the ATE and ITEs of a CSV table.")
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--treatment", required=True, help="Name of the 0/1 treatment column.")
@click.option("--outcome", required=True, help="Name of the outcome column.")
@click.option(
    "--covariates",
    default=None,
    help="Comma-separated covariate columns [default: every other column, "
    "except the index column].",
)
@click.option(
    "--index-column",
    default=None,
    help="Column of unique row labels, such as a unit ID; it labels the rows of "
    "ite.csv and is not a covariate [default: an unnamed first column, as "
    "pandas writes an index, else none].",
)
@click.option(
    "--outcome-family",
    type=click.Choice(["binary", "continuous", "auto"]),
    default="auto",
    show_default=True,
    help="Outcome model; auto picks binary when every outcome is 0 or 1.",
)
@click.option(
    "--outcome-likelihood",
    type=click.Choice(["normal", "johnson_su"]),
    default=_CEVAE_DEFAULTS.outcome_likelihood,
    show_default=True,
    help="Likelihood of a continuous outcome; johnson_su fits long tails.",
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
    help="Adam learning rate, constant during training.",
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
    help="Guide draws per unit when computing effects.",
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
    type=int,
    default=1000,
    show_default=True,
    callback=lambda _context, _parameter, value: _check_bootstrap_samples(value),
    help=f"Bootstrap resamples for the ATE interval, at least {MIN_BOOTSTRAP_SAMPLES}.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@_output_options(
    "runs/effects", "Folder for ite.csv, summary.json and ite_distribution.png."
)
def fit_command(
    table: Path,
    treatment: str,
    outcome: str,
    covariates: str | None,
    index_column: str | None,
    outcome_family: str,
    outcome_likelihood: str,
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
    overwrite: bool,
) -> None:
    """Estimate the ATE and per-unit ITEs of the table in TABLE (a CSV file)."""
    from causalvae.effects import (
        fit_effects,
        read_table,
        write_effect_outputs,
    )
    from causalvae.effects.outputs import OUTPUT_FILES

    with _setting_errors():
        config = CevaeConfig(
            latent_dim=latent_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            ite_samples=ite_samples,
            outcome_likelihood=outcome_likelihood,
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
    _reject_earlier_outputs(output_dir, OUTPUT_FILES, overwrite)
    with _user_errors():
        frame = read_table(table, index_column)
    _report_index(frame, table, index_column)

    # The bar appears with the first epoch, so input errors print without one.
    with (
        _user_errors(),
        _identifier_hint(),
        _epoch_bar(epochs, "training") as on_epoch,
    ):
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
    with _user_errors():
        outputs = write_effect_outputs(
            fit, output_dir, input_path=table.resolve(), overwrite=overwrite
        )
    _report_fit(fit, outcome_family, quiet=is_quiet())
    click.echo(f"per-unit effects: {outputs.ite_csv}")
    click.echo(f"summary: {outputs.summary_json}")
    click.echo(f"figure: {outputs.figure}")


def _report_index(frame: pd.DataFrame, table: Path, index_column: str | None) -> None:
    """Say when the unnamed first column was taken as the row labels."""
    from causalvae.effects.validation import PANDAS_INDEX_COLUMN

    if index_column is None and frame.index.name == PANDAS_INDEX_COLUMN:
        click.echo(
            f"row labels: the unnamed first column of {table} (an index written by "
            "pandas); it is not a covariate"
        )


@contextmanager
def _identifier_hint() -> Iterator[None]:
    """Reword an identifier-column error with the command-line options that fix it."""
    try:
        yield
    except IdentifierColumnsError as error:
        identifiers = error.columns
        if len(identifiers) == 1:
            described = f"column {identifiers[0]!r} looks like a row identifier"
        else:
            described = (
                f"columns {', '.join(map(repr, identifiers))} look like row identifiers"
            )
        raise UserError(
            f"{described} (distinct integers under an identifier name) and would "
            f"become a covariate. Pass --index-column {identifiers[0]} to use it "
            "as the row labels, or name the covariates with --covariates"
        ) from error


def _report_fit(fit: EffectFit, requested_family: str, quiet: bool) -> None:
    """Print the ATE, the outcome family and how training ended, and warn unless
    ``quiet`` when training ran to the epoch limit."""
    from causalvae.effects.figures import format_same_precision

    ate, lower, upper = format_same_precision([fit.ate, *fit.ate_interval])
    click.echo(
        f"ATE {ate} ({100 * fit.interval_level:g}% bootstrap interval over units, "
        f"model held fixed: {lower} to {upper})"
    )

    family = fit.data.outcome_family
    if requested_family == "auto":
        reason = "every outcome is 0 or 1" if family == "binary" else "not all 0 or 1"
        click.echo(f"outcome family: {family} (chosen by auto: {reason})")
    else:
        click.echo(f"outcome family: {family}")

    history = fit.model.history
    ending = "stopped early" if fit.stopped_early else "reached the epoch limit"
    click.echo(
        f"training: best epoch {history.best_epoch} of {history.epochs_run} run "
        f"({ending})"
    )
    if history.retried:
        click.echo(
            f"training diverged once and was rerun with learning rate "
            f"{history.learning_rate:g}"
        )
    if not fit.stopped_early and not quiet:
        click.echo(
            f"warning: training ran all {history.epochs_run} epochs without early "
            "stopping, so the estimate may not have converged; rerun with a larger "
            "--epochs",
            err=True,
        )


def _warn_epoch_limit(subject: str) -> None:
    """Warn on standard error that training reached its epoch limit, unless -q."""
    if is_quiet():
        return
    click.echo(
        f"warning: {subject} without early stopping, so its estimates may not have "
        "converged; rerun with a larger --epochs",
        err=True,
    )


@cli.group("benchmark", short_help="Score CEVAE on data with known true effects.")
def benchmark() -> None:
    """Score CEVAE on semi-synthetic data whose true effects are known."""


@benchmark.command("ihdp", short_help="Run CEVAE and three baselines on IHDP.")
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
    help="Adam learning rate, constant during training.",
)
@click.option(
    "--ite-samples",
    type=click.IntRange(min=1),
    default=IHDP_CONFIG.ite_samples,
    show_default=True,
    help="Guide draws per unit when computing effects.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="CEVAE seed.")
@_output_options("runs/effects-ihdp", "Folder for ihdp_scores.csv and ihdp_summary.md.")
def ihdp_command(
    data_dir: Path | None,
    replications: int,
    epochs: int,
    patience: int,
    learning_rate: float,
    ite_samples: int,
    seed: int,
    output_dir: Path,
    overwrite: bool,
) -> None:
    """Run CEVAE and three baselines on the IHDP replications."""
    from causalvae.effects.files import write_csv, write_text
    from causalvae.effects.ihdp import resolve_ihdp_dir
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
    _reject_earlier_outputs(output_dir, IHDP_OUTPUT_FILES, overwrite)
    try:
        folder = resolve_ihdp_dir(data_dir)
    except FileNotFoundError as error:
        raise UserError(f"{error} with --data-dir") from error

    quiet = is_quiet()
    with (
        _user_errors(),
        tqdm(total=replications, desc="replications", disable=quiet) as bar,
    ):
        result = run_ihdp_benchmark(
            folder,
            range(1, replications + 1),
            config=config,
            seed=seed,
            on_replication=lambda _replication, _rows: bar.update(),
        )
    markdown = format_ihdp_markdown(result)
    # Baseline rows have no epochs, which makes these columns float; Int64 keeps
    # the epochs integers and leaves the baselines' cells empty.
    scores = result.rows.astype({"best_epoch": "Int64", "epochs_run": "Int64"})
    scores_path = write_csv(scores, output_dir / IHDP_OUTPUT_FILES[0], index=False)
    summary_path = write_text(markdown, output_dir / IHDP_OUTPUT_FILES[1])
    click.echo(markdown)
    click.echo(f"{replications} replication(s) in {result.seconds:.0f} s")
    click.echo(f"scores: {scores_path}")
    click.echo(f"summary: {summary_path}")
    cevae = result.rows[result.rows["method"] == "CEVAE"]
    unstopped = int((~cevae["stopped_early"].astype(bool)).sum())
    if unstopped:
        _warn_epoch_limit(
            f"CEVAE ran all {config.training.epochs} epochs in {unstopped} of "
            f"{len(cevae)} replication(s)",
        )


@benchmark.command(
    "dsprites", short_help="Run CEVAE on dSprites images as confounder proxies."
)
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
@_output_options(
    "runs/effects-dsprites", "Folder for dsprites_effects.json and dsprites_effects.md."
)
def dsprites_command(
    units: int,
    features: str,
    epochs: int,
    seed: int,
    output_dir: Path,
    overwrite: bool,
) -> None:
    """Estimate an effect confounded by sprite scale, seen only through the image."""
    from causalvae.effects.files import write_json, write_text
    from causalvae.effects.images import run_dsprites_benchmark

    _reject_earlier_outputs(output_dir, DSPRITES_OUTPUT_FILES, overwrite)
    with _setting_errors():
        config = dataclasses.replace(
            DSPRITES_CONFIG,
            training=dataclasses.replace(_DSPRITES_TRAINING, epochs=epochs),
        )
    with _user_errors(), _epoch_bar(epochs, "training") as on_epoch:
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
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "config": dataclasses.asdict(config),
    }
    json_path = write_json(record, output_dir / DSPRITES_OUTPUT_FILES[0])
    markdown_path = write_text(markdown, output_dir / DSPRITES_OUTPUT_FILES[1])
    click.echo(markdown)
    click.echo(_compare_ate_errors(errors["CEVAE"], errors["difference in means"]))
    click.echo(f"results: {json_path}, {markdown_path}")
    if not result.stopped_early:
        _warn_epoch_limit(f"CEVAE ran all {result.epochs_run} epochs")


def _compare_ate_errors(cevae_error: float, naive_error: float) -> str:
    """Return a sentence that compares CEVAE's ATE error with the naive one."""
    sentence = (
        f"CEVAE's ATE error is {cevae_error:.3f}; the difference in means' ATE "
        f"error is {naive_error:.3f}"
    )
    if naive_error > 0:
        sentence += f", so CEVAE's is {100 * cevae_error / naive_error:.0f}% of it"
    return sentence + "."


def _check_bootstrap_samples(value: int) -> int:
    if value < MIN_BOOTSTRAP_SAMPLES:
        raise click.BadParameter(
            f"{value} is too few; use at least {MIN_BOOTSTRAP_SAMPLES}, because a "
            "percentile interval from fewer resamples is too coarse and can even "
            "exclude the estimate"
        )
    return value


def _reject_earlier_outputs(
    output_dir: Path, names: Sequence[str], overwrite: bool
) -> None:
    """Raise :class:`UserError` if ``output_dir`` contains a file of ``names``,
    unless ``overwrite`` is set."""
    existing = [name for name in names if (output_dir / name).exists()]
    if existing and not overwrite:
        raise UserError(
            f"{output_dir} already contains {', '.join(existing)} from an earlier "
            "run; pass --overwrite to replace them, or choose another --output-dir"
        )


@contextmanager
def _epoch_bar(epochs: int, label: str) -> Iterator[EpochCallback]:
    """Yield an epoch callback that drives a progress bar, hidden with ``--quiet``.

    The bar is drawn at the first epoch, so that errors raised before training
    print without an empty bar.
    """
    bars: list[tqdm] = []

    def on_epoch(epoch: int, train_loss: float, validation_loss: float) -> None:
        if not bars:
            bars.append(
                tqdm(total=epochs, desc=label, unit="epoch", disable=is_quiet())
            )
        bar = bars[0]
        if epoch == 1 and bar.n:
            bar.reset()  # a retry after divergence starts again
        bar.set_postfix(
            train=f"{train_loss:.3g}", valid=f"{validation_loss:.3g}", refresh=False
        )
        bar.update()

    try:
        yield on_epoch
    finally:
        for bar in bars:
            bar.close()


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn errors caused by the input or the settings into :class:`UserError`."""
    try:
        yield
    except (
        EffectsInputError,
        TrainingDivergedError,
        FileNotFoundError,
        FileExistsError,
    ) as error:
        raise UserError(str(error)) from error


@contextmanager
def _setting_errors() -> Iterator[None]:
    """Turn a rejected combination of settings into :class:`UserError`."""
    try:
        yield
    except ValueError as error:
        raise UserError(f"invalid setting: {error}") from error
