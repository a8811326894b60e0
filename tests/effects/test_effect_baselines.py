"""Baseline estimators on data whose true effects they recover exactly or closely."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae.effects.baselines import (
    difference_in_means,
    interacted_ols,
    kernel_ridge_t_learner,
)


def test_difference_in_means_by_hand():
    treatment = np.array([1, 1, 0, 0, 0])
    outcome = np.array([4.0, 6.0, 1.0, 2.0, 3.0])

    effect = difference_in_means(treatment, outcome)

    assert effect.effect == pytest.approx(3.0)
    assert np.allclose(effect.ite(np.zeros((3, 2))), 3.0)


def test_interacted_ols_recovers_linear_effect():
    # y = 1 + x0 - 2 x1 + t (0.5 + 3 x0), without noise.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    t = rng.integers(0, 2, size=200)
    y = 1 + x[:, 0] - 2 * x[:, 1] + t * (0.5 + 3 * x[:, 0])

    effect = interacted_ols(x, t, y)

    assert effect.intercept == pytest.approx(0.5)
    assert effect.slopes == pytest.approx([3.0, 0.0], abs=1e-9)
    assert effect.ite(np.array([[1.0, 7.0]])) == pytest.approx([3.5])


def test_kernel_ridge_t_learner_fits_smooth_surfaces():
    rng = np.random.default_rng(0)

    def make(num_units):
        x = rng.uniform(-2, 2, size=(num_units, 2))
        t = rng.integers(0, 2, size=num_units)
        y = np.sin(x[:, 0]) + t * (1 + x[:, 1] ** 2) + 0.05 * rng.normal(size=num_units)
        return x, t, y

    learner = kernel_ridge_t_learner(make(300), make(100))
    x_test = rng.uniform(-1.5, 1.5, size=(50, 2))

    error = learner.ite(x_test) - (1 + x_test[:, 1] ** 2)
    assert np.sqrt(np.mean(error**2)) < 0.2
