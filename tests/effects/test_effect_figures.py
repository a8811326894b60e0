"""The ITE histogram and the number formatting it shares with the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae.effects.figures import draw_ite_distribution, format_same_precision

ITE = np.random.default_rng(0).normal(0.1, 0.08, size=400)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2.1634, 2.1201, 2.19], ["2.163", "2.120", "2.190"]),
        ([0.01234, -0.0011, 0.0257], ["0.01234", "-0.00110", "0.02570"]),
        ([1234.5, 1200.0, 1301.2], ["1234", "1200", "1301"]),
        ([0.0, 0.0, 0.0], ["0.000", "0.000", "0.000"]),
    ],
)
def test_same_precision(values, expected):
    assert format_same_precision(values) == expected


def legend_texts(figure):
    return [text.get_text() for text in figure.legends[0].get_texts()]


def test_legend_gives_level_and_bounds():
    figure = draw_ite_distribution(ITE, 0.0978, (0.0931, 0.1069), interval_level=0.9)

    texts = legend_texts(figure)
    assert "90% bootstrap interval of the ATE: 0.09310 to 0.1069" not in texts
    assert "90% bootstrap interval of the ATE: 0.0931 to 0.1069" in texts
    assert "ATE 0.0978" in texts


def test_interval_drawn_over_bars():
    figure = draw_ite_distribution(ITE, 0.1, (0.09, 0.11))

    axes = figure.axes[0]
    bars = max(
        patch.get_zorder() for patch in axes.patches if patch.get_alpha() is None
    )
    band = [patch for patch in axes.patches if patch.get_alpha() is not None]
    assert len(band) == 1
    assert band[0].get_zorder() > bars
    assert 0 < band[0].get_alpha() < 1
    dashed = [line for line in axes.lines if line.get_linestyle() == "--"]
    assert sorted(line.get_xdata()[0] for line in dashed) == [0.09, 0.11]


def test_binary_outcome_labelled_as_probability_difference():
    figure = draw_ite_distribution(ITE, 0.1, (0.09, 0.11), outcome_family="binary")

    assert "difference of probabilities" in figure.axes[0].get_xlabel()


def test_continuous_outcome_labelled_in_outcome_units():
    figure = draw_ite_distribution(
        ITE, 0.1, (0.09, 0.11), outcome_family="continuous", outcome_name="weight"
    )

    assert "difference of probabilities" not in figure.axes[0].get_xlabel()


def test_title_names_treatment_and_outcome():
    figure = draw_ite_distribution(
        ITE, 0.1, (0.09, 0.11), treatment_name="smoking", outcome_name="death"
    )

    assert (
        figure.axes[0].get_title() == "Estimated effect of smoking on death, per unit"
    )
