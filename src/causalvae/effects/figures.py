"""Figures of estimated effects, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causalvae.effects.files import replace_atomically


def plot_ite_distribution(
    ite: np.ndarray,
    ate: float,
    ate_interval: tuple[float, float],
    path: str | Path,
    title: str = "Estimated individual treatment effects",
) -> Path:
    """Draw a histogram of the ITEs with the ATE and its interval, and save it.

    The format follows the suffix of ``path`` (``.png``, ``.pdf``, ``.svg``). The
    file is written to a temporary name and renamed, so a reader never sees a
    partial file. Figures are built without ``pyplot``, so no global state
    changes.

    :param ite: estimated effects ``(units,)``.
    :return: ``path``.
    """
    ite = np.asarray(ite, dtype=np.float64)
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(ite, bins=min(50, max(10, len(ite) // 10)), color="0.6")
    axes.axvspan(*ate_interval, color="tab:blue", alpha=0.2, label="ATE interval")
    axes.axvline(ate, color="tab:blue", label=f"ATE = {ate:.3g}")
    axes.set_xlabel("ITE = E[y | x, do(t=1)] - E[y | x, do(t=0)]")
    axes.set_ylabel("units")
    axes.set_title(title)
    axes.legend()

    path = Path(path)
    suffix = path.suffix.lstrip(".") or "png"
    with replace_atomically(path) as temporary:
        figure.savefig(temporary, format=suffix, dpi=120)
    return path
