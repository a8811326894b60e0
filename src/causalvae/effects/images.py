r"""A semi-synthetic treatment-effect benchmark with dSprites images as proxies.

Each unit is a dSprites image whose five factors are drawn uniformly from the grid.
The sprite's scale confounds the treatment and the outcome, and only the image is
observed. With :math:`s` the scale value standardised over the six scale classes,

.. math::

    t \sim \mathrm{Bernoulli}(\sigma(\gamma s)), \qquad
    y = t\,(\tau_0 + \tau_1 s) + \beta s + \varepsilon, \quad
    \varepsilon \sim \mathcal{N}(0, \sigma_y^2),

so the true effect of unit :math:`i` is :math:`\tau_0 + \tau_1 s_i`, and the true
ATE is its mean over the units. The difference in means is biased by
:math:`\beta\,(\mathbb{E}[s \mid t=1] - \mathbb{E}[s \mid t=0])`. An estimator that
recovers the scale from the pixels can remove that bias.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from causalvae.effects.baselines import difference_in_means, interacted_ols
from causalvae.effects.fit import fit_effects
from causalvae.effects.metrics import sqrt_pehe
from causalvae.effects.model import CevaeConfig
from causalvae.effects.training import EpochCallback, TrainingSettings

logger = logging.getLogger(__name__)

ImageFeatures = Literal["moments", "pixels"]

CONFOUNDING = 1.5
"""γ: log-odds of treatment per standard deviation of scale."""
EFFECT_BASE = 1.0
"""τ0: effect at the mean scale."""
EFFECT_SLOPE = 0.5
"""τ1: change of the effect per standard deviation of scale."""
OUTCOME_SLOPE = 2.0
"""β: change of the outcome per standard deviation of scale, in both arms."""
OUTCOME_NOISE = 0.5
"""σ_y: standard deviation of the outcome noise."""

DSPRITES_CONFIG = CevaeConfig(
    latent_dim=10,
    hidden_dim=100,
    num_layers=3,
    ite_samples=100,
    training=TrainingSettings(epochs=100, patience=30),
)
"""CEVAE settings of the benchmark: smaller layers than the IHDP settings, and a
latent with room for the five factors that shape an image."""


@dataclass(frozen=True)
class DspritesEffectData:
    """Units of the benchmark.

    :ivar classes: factor classes ``(units, 5)``.
    :ivar features: image features ``(units, features)``.
    :ivar treatment: ``(units,)`` 0/1.
    :ivar outcome: ``(units,)``.
    :ivar true_ite: ``(units,)``.
    """

    classes: np.ndarray
    features: np.ndarray
    treatment: np.ndarray
    outcome: np.ndarray
    true_ite: np.ndarray


@dataclass
class DspritesBenchmarkResult:
    """ATE estimates and errors of the benchmark, in outcome units.

    :ivar estimates: estimated ATE per method.
    :ivar true_ate: mean of the true effects.
    :ivar cevae_sqrt_pehe: √PEHE of CEVAE's individual effects over all units.
    :ivar epochs_run: CEVAE's training epochs.
    :ivar stopped_early: whether CEVAE's training stopped early rather than at the
        epoch limit.
    """

    estimates: dict[str, float]
    true_ate: float
    cevae_sqrt_pehe: float
    num_units: int
    features: ImageFeatures
    seed: int
    seconds: float
    config: CevaeConfig = field(repr=False, default=DSPRITES_CONFIG)
    epochs_run: int = 0
    stopped_early: bool = True

    def ate_errors(self) -> dict[str, float]:
        """Return the absolute ATE error per method."""
        return {name: abs(ate - self.true_ate) for name, ate in self.estimates.items()}

    def to_markdown(self) -> str:
        """Return a heading, the settings, and the estimates and errors as a
        Markdown table, followed by CEVAE's √PEHE."""
        errors = self.ate_errors()
        training = self.config.training
        lines = [
            "# dSprites treatment-effect benchmark",
            "",
            f"{self.num_units} units, {self.features} features, seed {self.seed}, "
            f"1 replication. CEVAE trained for at most {training.epochs} epochs "
            f"with patience {training.patience}.",
            "",
            "| method | ATE | ATE error |",
            "|---|---|---|",
            f"| true | {self.true_ate:.3f} | 0 |",
        ]
        for name, ate in self.estimates.items():
            lines.append(f"| {name} | {ate:.3f} | {errors[name]:.3f} |")
        lines += [
            "",
            f"CEVAE's √PEHE over all units: {self.cevae_sqrt_pehe:.3f}.",
        ]
        return "\n".join(lines) + "\n"


def image_features(images: np.ndarray, kind: ImageFeatures = "moments") -> np.ndarray:
    """Compute features of binary images.

    ``moments``: five shape statistics of the lit pixels, in units of the image
    side: square root of the lit area, the two principal standard deviations of
    the lit pixels' coordinates (major first), and the centroid column and row.
    ``pixels``: the raw pixels, 4096 values in {0, 1}, which CEVAE models as
    Bernoulli.

    :param images: ``(units, 64, 64)`` with pixels in {0, 1}.
    :return: ``(units, 5)`` or ``(units, 4096)`` float64.
    """
    images = np.asarray(images, dtype=np.float64)
    units, height, width = images.shape
    if kind == "pixels":
        return images.reshape(units, height * width)
    if kind != "moments":
        raise ValueError(f"unknown image features {kind!r}; choose moments or pixels")

    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    count = images.sum(axis=(1, 2))
    if np.any(count == 0):
        raise ValueError("an image has no lit pixel; moments are undefined for it")
    weights = images / count[:, None, None]
    mean_row = (weights * rows).sum(axis=(1, 2))
    mean_column = (weights * columns).sum(axis=(1, 2))
    d_row = rows[None] - mean_row[:, None, None]
    d_column = columns[None] - mean_column[:, None, None]
    # Covariance of the lit pixels' (column, row) coordinates, (units, 2, 2).
    covariance = np.empty((units, 2, 2))
    covariance[:, 0, 0] = (weights * d_column**2).sum(axis=(1, 2))
    covariance[:, 1, 1] = (weights * d_row**2).sum(axis=(1, 2))
    covariance[:, 0, 1] = (weights * d_column * d_row).sum(axis=(1, 2))
    covariance[:, 1, 0] = covariance[:, 0, 1]
    spreads = np.sqrt(np.linalg.eigvalsh(covariance)[:, ::-1])
    return np.column_stack(
        [
            np.sqrt(count) / width,
            spreads / width,
            mean_column / width,
            mean_row / height,
        ]
    )


def simulate_dsprites_effects(
    num_units: int, features: ImageFeatures = "moments", seed: int = 0
) -> DspritesEffectData:
    """Draw units, render their images and simulate treatment and outcome."""
    from causalvae.data.render import render
    from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, factor_values

    rng = np.random.default_rng(seed)
    classes = np.stack([rng.integers(0, size, num_units) for size in FACTOR_SIZES], 1)
    scale_values = factor_values("scale")
    scale = scale_values[classes[:, FACTOR_NAMES.index("scale")]]
    standardised = (scale - scale_values.mean()) / scale_values.std()

    treatment = rng.random(num_units) < 1 / (1 + np.exp(-CONFOUNDING * standardised))
    true_ite = EFFECT_BASE + EFFECT_SLOPE * standardised
    noise = OUTCOME_NOISE * rng.normal(size=num_units)
    outcome = treatment * true_ite + OUTCOME_SLOPE * standardised + noise
    return DspritesEffectData(
        classes=classes,
        features=image_features(render(classes), features),
        treatment=treatment.astype(np.float64),
        outcome=outcome,
        true_ite=true_ite,
    )


def run_dsprites_benchmark(
    num_units: int = 2000,
    features: ImageFeatures = "moments",
    config: CevaeConfig = DSPRITES_CONFIG,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
) -> DspritesBenchmarkResult:
    """Estimate the ATE from image features with CEVAE, next to the difference in
    means and least squares with interactions on the same features.

    :param num_units: units to simulate; 30 % of each arm is used for validation.
    :param features: image features given to the estimators.
    :param seed: seeds the simulation and CEVAE.
    """
    start = time.perf_counter()
    data = simulate_dsprites_effects(num_units, features, seed)
    # Pixels that no sprite lights (near the border) are constant, and the input
    # checks reject constant columns.
    varying = data.features[:, data.features.std(axis=0) > 0]
    names = [f"feature_{j}" for j in range(varying.shape[1])]
    table = pd.DataFrame(varying, columns=names)
    table["treatment"] = data.treatment
    table["outcome"] = data.outcome

    fit = fit_effects(
        table,
        "treatment",
        "outcome",
        outcome_family="continuous",
        config=config,
        seed=seed,
        on_epoch=on_epoch,
    )
    naive = difference_in_means(data.treatment, data.outcome)
    linear = interacted_ols(varying, data.treatment, data.outcome)
    estimates = {
        "difference in means": naive.effect,
        "OLS with interactions": float(linear.ite(varying).mean()),
        "CEVAE": fit.ate,
    }
    result = DspritesBenchmarkResult(
        estimates=estimates,
        true_ate=float(data.true_ite.mean()),
        cevae_sqrt_pehe=sqrt_pehe(fit.ite, data.true_ite),
        num_units=num_units,
        features=features,
        seed=seed,
        seconds=time.perf_counter() - start,
        config=config,
        epochs_run=fit.model.history.epochs_run,
        stopped_early=fit.stopped_early,
    )
    logger.info("dSprites effects: %s", result.ate_errors())
    return result
