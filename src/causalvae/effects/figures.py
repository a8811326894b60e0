"""Figures of estimated effects, drawn with matplotlib's Agg backend."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causalvae.data.store import atomic_output
from causalvae.effects.validation import ResolvedOutcomeFamily

_EFFECT_LABELS: dict[ResolvedOutcomeFamily, str] = {
    "binary": "ITE = P(y=1 | x, do(t=1)) - P(y=1 | x, do(t=0)), "
    "a difference of probabilities",
    "continuous": "ITE = E[y | x, do(t=1)] - E[y | x, do(t=0)], in units of y",
}


def format_same_precision(values: Sequence[float], significant: int = 4) -> list[str]:
    """Format numbers with one shared number of decimals.

    The decimals give the largest magnitude ``significant`` significant digits, so
    an estimate and its interval bounds read at the same precision:
    ``[2.1634, 2.1201, 2.19]`` becomes ``["2.163", "2.120", "2.190"]``.
    """
    largest = max((abs(v) for v in values if math.isfinite(v) and v != 0), default=0)
    magnitude = math.floor(math.log10(largest)) if largest else 0
    decimals = min(max(significant - 1 - magnitude, 0), 12)
    return [f"{v:.{decimals}f}" for v in values]


def draw_ite_distribution(
    ite: np.ndarray,
    ate: float,
    ate_interval: tuple[float, float],
    *,
    interval_level: float = 0.95,
    outcome_family: ResolvedOutcomeFamily = "continuous",
    treatment_name: str = "t",
    outcome_name: str = "y",
) -> Figure:
    """Draw a histogram of the ITEs with the ATE and its interval.

    The interval is drawn as a translucent band with dashed edges over the bars,
    so it stays visible when it is narrower than a bar. Figures are built without
    ``pyplot``, so no global state changes.

    :param ite: estimated effects ``(units,)``.
    :param interval_level: coverage of ``ate_interval``, such as 0.95.
    :param outcome_family: ``"binary"`` labels the effects as differences of
        probabilities.
    """
    ite = np.asarray(ite, dtype=np.float64)
    lower, upper = ate_interval
    ate_text, lower_text, upper_text = format_same_precision([ate, lower, upper])

    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(ite, bins=min(50, max(10, len(ite) // 10)), color="0.7", zorder=1)
    axes.axvspan(lower, upper, color="tab:orange", alpha=0.35, zorder=3)
    axes.axvline(
        lower,
        color="tab:orange",
        linestyle="--",
        linewidth=0.8,
        zorder=3,
        label=f"{100 * interval_level:g}% bootstrap interval of the ATE: "
        f"{lower_text} to {upper_text}",
    )
    axes.axvline(upper, color="tab:orange", linestyle="--", linewidth=0.8, zorder=3)
    # Dark and wide, so that the ATE stays visible inside a narrow interval.
    axes.axvline(ate, color="navy", linewidth=2.5, zorder=4, label=f"ATE {ate_text}")
    axes.set_xlabel(_EFFECT_LABELS[outcome_family])
    axes.set_ylabel("units")
    axes.set_title(f"Estimated effect of {treatment_name} on {outcome_name}, per unit")
    # Above the axes, the legend can cover neither the bars nor the interval.
    figure.legend(loc="outside upper center", ncols=2, fontsize="small")
    return figure


def plot_ite_distribution(
    ite: np.ndarray,
    ate: float,
    ate_interval: tuple[float, float],
    path: str | Path,
    *,
    interval_level: float = 0.95,
    outcome_family: ResolvedOutcomeFamily = "continuous",
    treatment_name: str = "t",
    outcome_name: str = "y",
) -> Path:
    """Draw the figure of :func:`draw_ite_distribution` and save it.

    The format follows the suffix of ``path`` (``.png``, ``.pdf``, ``.svg``). The
    file is written to a temporary name and renamed, so a reader never sees a
    partial file.

    :return: ``path``.
    """
    figure = draw_ite_distribution(
        ite,
        ate,
        ate_interval,
        interval_level=interval_level,
        outcome_family=outcome_family,
        treatment_name=treatment_name,
        outcome_name=outcome_name,
    )
    path = Path(path)
    suffix = path.suffix.lstrip(".") or "png"
    with atomic_output(path) as handle:
        figure.savefig(handle, format=suffix, dpi=120)
    return path
