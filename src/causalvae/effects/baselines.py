r"""Baseline effect estimators that assume no hidden confounding.

Each returns an object with ``ite(covariates) -> (units,)``:

* :func:`difference_in_means`: :math:`\hat\tau(x) = \bar y_{t=1} - \bar y_{t=0}` for
  every unit.
* :func:`interacted_ols`: ordinary least squares of
  :math:`y = a + x^\top b + t\,(c + x^\top d)`, so :math:`\hat\tau(x) = c + x^\top d`.
* :func:`kernel_ridge_t_learner`: a T-learner, one Gaussian kernel ridge regression
  per arm, :math:`\hat\tau(x) = \hat\mu_1(x) - \hat\mu_0(x)`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

logger = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(covariates (units, covariates), treatment (units,), outcome (units,))``."""

BANDWIDTH_FACTORS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Candidate squared bandwidths, as multiples of the median squared distance."""

RIDGE_PENALTIES: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""Candidate ridge penalties, per unit."""


@dataclass(frozen=True)
class ConstantEffect:
    """The same effect for every unit."""

    effect: float

    def ite(self, covariates: np.ndarray) -> np.ndarray:
        """Return ``effect`` for each row of ``covariates``."""
        return np.full(len(covariates), self.effect)


@dataclass(frozen=True)
class LinearEffect:
    """An effect linear in the covariates: ``intercept + covariates @ slopes``."""

    intercept: float
    slopes: np.ndarray

    def ite(self, covariates: np.ndarray) -> np.ndarray:
        """Return the effect of each row of ``covariates``."""
        return self.intercept + np.asarray(covariates, dtype=np.float64) @ self.slopes


@dataclass(frozen=True)
class KernelRidge:
    """Gaussian kernel ridge regression on standardised covariates."""

    support: np.ndarray
    dual_coef: np.ndarray
    offset: float
    loc: np.ndarray
    scale: np.ndarray
    gamma: float

    def predict(self, covariates: np.ndarray) -> np.ndarray:
        """Return the regression at each row of ``covariates``."""
        z = (np.asarray(covariates, dtype=np.float64) - self.loc) / self.scale
        distances = torch.cdist(
            torch.as_tensor(z, dtype=torch.float64),
            torch.as_tensor(self.support, dtype=torch.float64),
        )
        kernel = torch.exp(-self.gamma * distances**2).numpy()
        return self.offset + kernel @ self.dual_coef


@dataclass(frozen=True)
class TLearner:
    """Separate outcome regressions for control (``control``) and treated units."""

    control: KernelRidge
    treated: KernelRidge

    def ite(self, covariates: np.ndarray) -> np.ndarray:
        """Return ``treated(x) - control(x)`` for each row of ``covariates``."""
        return self.treated.predict(covariates) - self.control.predict(covariates)


def difference_in_means(treatment: np.ndarray, outcome: np.ndarray) -> ConstantEffect:
    """Estimate a constant effect as the treated minus the control mean outcome."""
    treated = treatment == 1
    return ConstantEffect(float(outcome[treated].mean() - outcome[~treated].mean()))


def interacted_ols(
    covariates: np.ndarray, treatment: np.ndarray, outcome: np.ndarray
) -> LinearEffect:
    """Fit least squares with treatment-by-covariate interactions.

    Uses the minimum-norm solution when the design is rank deficient.
    """
    x = np.asarray(covariates, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)[:, None]
    ones = np.ones_like(t)
    design = np.hstack([ones, x, t, t * x])
    coef, *_ = np.linalg.lstsq(design, outcome, rcond=None)
    num_covariates = x.shape[1]
    return LinearEffect(
        intercept=float(coef[1 + num_covariates]),
        slopes=coef[2 + num_covariates :],
    )


def kernel_ridge_t_learner(train: Split, validation: Split) -> TLearner:
    """Fit one kernel ridge regression per arm, tuned on the validation split.

    For each arm, the bandwidth and penalty with the lowest validation mean squared
    error (over :data:`BANDWIDTH_FACTORS` x :data:`RIDGE_PENALTIES`) are refitted on
    the training and validation units together.
    """
    regressions = []
    for arm in (0, 1):
        x_train, y_train = _arm(train, arm)
        x_valid, y_valid = _arm(validation, arm)
        errors = {}
        for factor in BANDWIDTH_FACTORS:
            fits = _fit_kernel_ridge(x_train, y_train, factor, RIDGE_PENALTIES)
            for penalty, fit in zip(RIDGE_PENALTIES, fits, strict=True):
                errors[factor, penalty] = np.mean((fit.predict(x_valid) - y_valid) ** 2)
        factor, penalty = min(errors, key=errors.__getitem__)
        logger.debug("arm %d: bandwidth factor %g, penalty %g", arm, factor, penalty)
        x_all = np.vstack([x_train, x_valid])
        y_all = np.concatenate([y_train, y_valid])
        regressions.append(_fit_kernel_ridge(x_all, y_all, factor, (penalty,))[0])
    return TLearner(control=regressions[0], treated=regressions[1])


def _arm(split: Split, arm: int) -> tuple[np.ndarray, np.ndarray]:
    x, t, y = split
    mask = t == arm
    return np.asarray(x, dtype=np.float64)[mask], np.asarray(y, dtype=np.float64)[mask]


def _fit_kernel_ridge(
    x: np.ndarray, y: np.ndarray, bandwidth_factor: float, penalties: Sequence[float]
) -> list[KernelRidge]:
    """Fit one regression per penalty on the same kernel matrix.

    The linear algebra runs in torch, whose thread count the package controls;
    NumPy's BLAS may start one thread per core, which was measured to run 20 times
    slower on a busy two-core machine.
    """
    loc = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - loc) / scale
    z_tensor = torch.as_tensor(z, dtype=torch.float64)
    distances = torch.cdist(z_tensor, z_tensor) ** 2
    upper = torch.triu_indices(len(z), len(z), offset=1)
    median = float(distances[upper[0], upper[1]].median())
    gamma = 1.0 / (bandwidth_factor * max(median, 1e-12))
    kernel = torch.exp(-gamma * distances)
    offset = float(y.mean())
    centred = torch.as_tensor(y - offset, dtype=torch.float64)[:, None]
    identity = torch.eye(len(z), dtype=torch.float64)
    fits = []
    for penalty in penalties:
        # Solve (K + penalty * n * I) a = y - offset by Cholesky.
        factor = torch.linalg.cholesky(kernel + penalty * len(z) * identity)
        dual_coef = torch.cholesky_solve(centred, factor)[:, 0].numpy()
        fits.append(KernelRidge(z, dual_coef, offset, loc, scale, gamma))
    return fits
