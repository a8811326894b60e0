r"""Treatment effects from a table of units with CEVAE.

The estimands, for units with covariates :math:`x_i`:

.. math::

    \mathrm{ITE}_i = \mathbb{E}[y \mid x_i, do(t=1)] - \mathbb{E}[y \mid x_i, do(t=0)],
    \qquad
    \mathrm{ATE} = \frac{1}{n} \sum_{i=1}^{n} \mathrm{ITE}_i .

The ATE interval is a percentile bootstrap over units: the units' estimated ITEs
are resampled with replacement and the ATE recomputed. It covers the sampling
variation of the units with the fitted model held fixed. It does not cover the
uncertainty of training the model, nor any bias from confounding that the
covariates do not reveal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalvae.effects.errors import EffectsInputError
from causalvae.effects.model import CevaeConfig, FittedCevae, fit_cevae_arrays
from causalvae.effects.training import EpochCallback
from causalvae.effects.validation import (
    DEFAULT_MIN_GROUP_SIZE,
    EffectData,
    OutcomeFamily,
    validate_effect_data,
)

logger = logging.getLogger(__name__)

BOOTSTRAP_CHUNK = 100
"""Bootstrap resamples drawn at once, which bounds memory at ``100 x units``."""

MIN_BOOTSTRAP_SAMPLES = 100
"""Minimum number of bootstrap resamples. The tails of a percentile interval come
from a handful of resamples, and with very few the interval can even exclude the
estimate it is meant to surround."""


@dataclass
class EffectFit:
    """Estimated effects of one table.

    :ivar ate: average treatment effect over all units, in outcome units.
    :ivar ate_interval: ``(lower, upper)`` bootstrap interval of the ATE.
    :ivar interval_level: coverage level of ``ate_interval``, such as 0.95.
    :ivar ite: estimated individual effects ``(units,)``, in row order.
    :ivar y0: estimated ``E[y | x, do(t=0)]`` per unit ``(units,)``.
    :ivar y1: estimated ``E[y | x, do(t=1)]`` per unit ``(units,)``.
    :ivar is_validation: ``(units,)`` bool, true for units of the validation split.
    :ivar data: the validated input.
    :ivar model: the trained CEVAE.
    :ivar seed: seed of the split, the model and the bootstrap.
    :ivar validation_fraction: share of each arm held out for early stopping.
    :ivar bootstrap_samples: bootstrap resamples behind ``ate_interval``.
    :ivar min_group_size: fewest treated and fewest control units accepted.
    """

    ate: float
    ate_interval: tuple[float, float]
    interval_level: float
    ite: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    is_validation: np.ndarray
    data: EffectData
    model: FittedCevae
    seed: int
    validation_fraction: float
    bootstrap_samples: int
    min_group_size: int

    @property
    def stopped_early(self) -> bool:
        """Whether training stopped because the validation loss stopped improving.

        False means it ran to the epoch limit, so the model may not have converged.
        """
        return self.model.history.stopped_early(self.model.config.training.patience)

    def unit_table(self) -> pd.DataFrame:
        """Return one row per unit: treatment, outcome, split, y0, y1 and ITE.

        The index is the index of the input table.
        """
        return pd.DataFrame(
            {
                "treatment": self.data.treatment.astype(np.int64),
                "outcome": self.data.outcome,
                "split": np.where(self.is_validation, "validation", "train"),
                "y0": self.y0,
                "y1": self.y1,
                "ite": self.ite,
            },
            index=self.data.index,
        )

    def summary(self) -> dict[str, Any]:
        """Return the estimates, the data sizes, the settings and the training
        history as JSON-compatible values.

        The columns, the seed and the other settings are those that reproduce the
        fit with :func:`fit_effects`. ``index_column`` is the name of the input's
        index, or ``None`` when it has none.
        """
        history = self.model.history
        index_name = self.data.index.name
        return {
            "ate": self.ate,
            "ate_interval": list(self.ate_interval),
            "interval_level": self.interval_level,
            "interval_method": "percentile bootstrap over units of the estimated ITE",
            "bootstrap_samples": self.bootstrap_samples,
            "outcome_family": self.data.outcome_family,
            "num_units": self.data.num_units,
            "num_treated": int(self.data.treatment.sum()),
            "num_validation": int(self.is_validation.sum()),
            "treatment": self.data.treatment_name,
            "outcome": self.data.outcome_name,
            "covariates": list(self.data.covariate_names),
            "index_column": None if index_name is None else str(index_name),
            "seed": self.seed,
            "validation_fraction": self.validation_fraction,
            "min_group_size": self.min_group_size,
            "config": asdict(self.model.config),
            "training": {
                "epochs_run": history.epochs_run,
                "best_epoch": history.best_epoch,
                "stopped_early": self.stopped_early,
                "learning_rate": history.learning_rate,
                "retried": history.retried,
                "seconds": history.seconds,
                "train_loss": history.train_loss,
                "validation_loss": history.validation_loss,
            },
        }


def fit_effects(
    data: pd.DataFrame,
    treatment: str,
    outcome: str,
    covariates: Sequence[str] | None = None,
    *,
    outcome_family: OutcomeFamily = "auto",
    config: CevaeConfig | None = None,
    validation_fraction: float = 0.3,
    interval_level: float = 0.95,
    bootstrap_samples: int = 1000,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
) -> EffectFit:
    """Estimate individual and average treatment effects with CEVAE.

    The units are split at random into training and validation sets, separately
    within the treated and the control units so that both sets hold both arms.
    CEVAE is trained on the first and stopped early on the second, then the
    effects of all units are estimated.

    :param data: one row per unit.
    :param treatment: name of the 0/1 treatment column.
    :param outcome: name of the outcome column.
    :param covariates: covariate columns; default every other column.
    :param outcome_family: ``"binary"``, ``"continuous"`` or ``"auto"`` (binary
        when every outcome is 0 or 1). Binary effects are differences of
        probabilities; continuous ones are in the outcome's units.
    :param config: CEVAE settings; default :class:`CevaeConfig()`.
    :param validation_fraction: share of each arm used for validation.
    :param interval_level: coverage of the ATE interval.
    :param bootstrap_samples: bootstrap resamples for the interval, at least
        :data:`MIN_BOOTSTRAP_SAMPLES`.
    :param min_group_size: fewest treated and fewest control units accepted.
    :param seed: seeds the split, the model and the bootstrap; the global random
        state is left unchanged.
    :param on_epoch: called after each training epoch.
    :raises EffectsInputError: if the table fails a check of
        :func:`~causalvae.effects.validation.validate_effect_data`.
    :raises ValueError: if a setting is out of range.
    :raises TrainingDivergedError: if training diverges twice.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {validation_fraction!r}"
        )
    if not 0 < interval_level < 1:
        raise ValueError(f"interval_level must lie in (0, 1), got {interval_level!r}")
    if bootstrap_samples < MIN_BOOTSTRAP_SAMPLES:
        raise ValueError(
            f"bootstrap_samples must be at least {MIN_BOOTSTRAP_SAMPLES}, got "
            f"{bootstrap_samples!r}; fewer resamples give too coarse a percentile "
            "interval"
        )
    table = validate_effect_data(
        data, treatment, outcome, covariates, outcome_family, min_group_size
    )
    rng = np.random.default_rng(seed)
    is_validation = stratified_validation_mask(
        table.treatment, validation_fraction, rng
    )

    def take(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return table.covariates[mask], table.treatment[mask], table.outcome[mask]

    model = fit_cevae_arrays(
        take(~is_validation),
        take(is_validation),
        table.outcome_family,
        config=config,
        seed=seed,
        on_epoch=on_epoch,
    )
    # One Monte Carlo pass gives both arms, and their difference is what ite() returns.
    y0, y1 = model.potential_outcomes(table.covariates, seed=seed)
    ite = y1 - y0
    ate = float(ite.mean())
    interval = bootstrap_ate_interval(ite, interval_level, bootstrap_samples, rng)
    logger.info(
        "ATE %.4g, %g%% interval [%.4g, %.4g]", ate, 100 * interval_level, *interval
    )
    fit = EffectFit(
        ate=ate,
        ate_interval=interval,
        interval_level=interval_level,
        ite=ite,
        y0=y0,
        y1=y1,
        is_validation=is_validation,
        data=table,
        model=model,
        seed=seed,
        validation_fraction=validation_fraction,
        bootstrap_samples=bootstrap_samples,
        min_group_size=min_group_size,
    )
    if not fit.stopped_early:
        logger.info(
            "training ran to the limit of %d epochs (best epoch %d) without early "
            "stopping; the model may not have converged",
            model.history.epochs_run,
            model.history.best_epoch,
        )
    return fit


def stratified_validation_mask(
    treatment: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Mark ``ceil(fraction * n_arm)`` random units of each arm for validation.

    :raises EffectsInputError: if an arm would leave no unit for training or
        validation.
    """
    mask = np.zeros(len(treatment), dtype=bool)
    for arm in (0, 1):
        units = np.flatnonzero(treatment == arm)
        count = int(np.ceil(fraction * len(units)))
        if not 0 < count < len(units):
            raise EffectsInputError(
                f"with {len(units)} units of treatment {arm} and validation fraction "
                f"{fraction:g}, the training or validation split gets no unit of "
                "that arm; add units or change the validation fraction"
            )
        mask[rng.choice(units, size=count, replace=False)] = True
    return mask


def bootstrap_ate_interval(
    ite: np.ndarray,
    level: float,
    num_samples: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Return the percentile bootstrap interval of the mean of ``ite``."""
    means = []
    for start in range(0, num_samples, BOOTSTRAP_CHUNK):
        size = min(BOOTSTRAP_CHUNK, num_samples - start)
        resampled = rng.integers(0, len(ite), size=(size, len(ite)))
        means.append(ite[resampled].mean(axis=1))
    tail = (1 - level) / 2
    lower, upper = np.quantile(np.concatenate(means), [tail, 1 - tail])
    return float(lower), float(upper)
