"""√PEHE, ATE error and the standard error, on cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from causalvae.effects import ate_error, mean_and_standard_error, sqrt_pehe


def test_sqrt_pehe_by_hand():
    # Errors 1 and -3: mean squared error (1 + 9) / 2 = 5.
    estimated = np.array([2.0, 4.0])
    true = np.array([1.0, 7.0])

    assert sqrt_pehe(estimated, true) == pytest.approx(math.sqrt(5.0))


def test_ate_error_by_hand():
    # Estimated ATE (2 + 4) / 2 = 3, true ATE (1 + 7) / 2 = 4.
    estimated = np.array([2.0, 4.0])
    true = np.array([1.0, 7.0])

    assert ate_error(estimated, true) == pytest.approx(1.0)


def test_constant_offset_is_both_errors():
    # Every unit off by 0.5: √PEHE and the ATE error are both 0.5.
    true = np.array([-1.0, 0.0, 3.0])

    assert sqrt_pehe(true + 0.5, true) == pytest.approx(0.5)
    assert ate_error(true + 0.5, true) == pytest.approx(0.5)


def test_errors_that_cancel_leave_no_ate_error():
    # Errors +2 and -2: √PEHE is 2 while the ATE is exact.
    true = np.array([1.0, 1.0])
    estimated = np.array([3.0, -1.0])

    assert sqrt_pehe(estimated, true) == pytest.approx(2.0)
    assert ate_error(estimated, true) == pytest.approx(0.0)


def test_exact_estimate_scores_zero():
    true = np.array([0.3, 1.2, -4.0])

    assert sqrt_pehe(true, true) == 0.0
    assert ate_error(true, true) == 0.0


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="same length"):
        sqrt_pehe(np.zeros(3), np.zeros(4))


def test_mean_and_standard_error_by_hand():
    # Values 1..4: mean 2.5, sample variance 5/3, standard error sqrt(5/3 / 4).
    mean, standard_error = mean_and_standard_error(np.array([1.0, 2.0, 3.0, 4.0]))

    assert mean == pytest.approx(2.5)
    assert standard_error == pytest.approx(math.sqrt(5.0 / 12.0))


def test_standard_error_of_one_value_is_nan():
    mean, standard_error = mean_and_standard_error(np.array([7.0]))

    assert mean == 7.0
    assert math.isnan(standard_error)
