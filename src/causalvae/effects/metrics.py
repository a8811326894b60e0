r"""Accuracy of estimated treatment effects against known true effects.

For units :math:`i = 1, \dots, n` with true individual effects
:math:`\tau_i = \mu_1(x_i) - \mu_0(x_i)` and estimates :math:`\hat\tau_i`:

.. math::

    \sqrt{\mathrm{PEHE}} = \sqrt{\frac{1}{n} \sum_i (\hat\tau_i - \tau_i)^2},
    \qquad
    \epsilon_{\mathrm{ATE}} = \Bigl| \frac{1}{n} \sum_i \hat\tau_i
        - \frac{1}{n} \sum_i \tau_i \Bigr|.

PEHE is the precision in estimation of heterogeneous effects, the usual score of
individual effects on IHDP.
"""

from __future__ import annotations

import math

import numpy as np


def sqrt_pehe(estimated_ite: np.ndarray, true_ite: np.ndarray) -> float:
    """Return the root mean squared error of the individual effects, √PEHE."""
    estimated, true = _paired(estimated_ite, true_ite)
    return float(np.sqrt(np.mean((estimated - true) ** 2)))


def ate_error(estimated_ite: np.ndarray, true_ite: np.ndarray) -> float:
    """Return the absolute error of the average treatment effect."""
    estimated, true = _paired(estimated_ite, true_ite)
    return float(abs(estimated.mean() - true.mean()))


def mean_and_standard_error(values: np.ndarray) -> tuple[float, float]:
    """Return the mean and its standard error, ``std(ddof=1) / sqrt(n)``.

    The standard error is NaN for a single value.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"expected a non-empty 1-d array, got shape {values.shape}")
    if values.size == 1:
        return float(values[0]), math.nan
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def _paired(estimated: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    estimated = np.asarray(estimated, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if estimated.shape != true.shape or estimated.ndim != 1 or estimated.size == 0:
        raise ValueError(
            "expected two non-empty 1-d arrays of the same length, got shapes "
            f"{estimated.shape} and {true.shape}"
        )
    return estimated, true
