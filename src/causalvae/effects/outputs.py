"""Files written for a fit: per-unit effects, a summary and a figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from causalvae.effects.figures import plot_ite_distribution
from causalvae.effects.files import write_csv, write_json

if TYPE_CHECKING:
    from causalvae.effects.fit import EffectFit

ITE_FILE = "ite.csv"
SUMMARY_FILE = "summary.json"
FIGURE_FILE = "ite_distribution.png"


@dataclass(frozen=True)
class EffectOutputs:
    """Paths of the files written by :func:`write_effect_outputs`."""

    ite_csv: Path
    summary_json: Path
    figure: Path


def write_effect_outputs(fit: EffectFit, output_dir: str | Path) -> EffectOutputs:
    """Write ``ite.csv``, ``summary.json`` and ``ite_distribution.png``, each
    atomically.

    ``ite.csv`` has one row per unit, labelled by the input table's index, with
    columns ``treatment, outcome, split, y0, y1, ite``.
    """
    folder = Path(output_dir)
    table = fit.unit_table()
    table.index.name = table.index.name or "unit"
    return EffectOutputs(
        ite_csv=write_csv(table, folder / ITE_FILE),
        summary_json=write_json(fit.summary(), folder / SUMMARY_FILE),
        figure=plot_ite_distribution(
            fit.ite, fit.ate, fit.ate_interval, folder / FIGURE_FILE
        ),
    )
