"""Files written for a fit: per-unit effects, a summary and a figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from causalvae.effects.figures import plot_ite_distribution
from causalvae.effects.files import write_csv, write_json
from causalvae.effects.validation import PANDAS_INDEX_COLUMN

if TYPE_CHECKING:
    from causalvae.effects.fit import EffectFit

ITE_FILE = "ite.csv"
SUMMARY_FILE = "summary.json"
FIGURE_FILE = "ite_distribution.png"
OUTPUT_FILES: tuple[str, ...] = (ITE_FILE, SUMMARY_FILE, FIGURE_FILE)


@dataclass(frozen=True)
class EffectOutputs:
    """Paths of the files written by :func:`write_effect_outputs`."""

    ite_csv: Path
    summary_json: Path
    figure: Path


def existing_effect_outputs(output_dir: str | Path) -> list[Path]:
    """Return the files of :data:`OUTPUT_FILES` that already exist in ``output_dir``."""
    folder = Path(output_dir)
    return [folder / name for name in OUTPUT_FILES if (folder / name).exists()]


def write_effect_outputs(
    fit: EffectFit,
    output_dir: str | Path,
    *,
    input_path: str | Path | None = None,
    overwrite: bool = False,
) -> EffectOutputs:
    """Write ``ite.csv``, ``summary.json`` and ``ite_distribution.png``, each
    atomically.

    ``ite.csv`` has one row per unit, labelled by the input table's index, with
    columns ``treatment, outcome, split, y0, y1, ite``. The label column is named
    after the index, or ``unit`` when the index has no name or is an unnamed
    index column written by pandas.

    :param input_path: file the table was read from, recorded in the summary as
        ``input``.
    :param overwrite: replace the files of an earlier run in ``output_dir``.
    :raises FileExistsError: if ``overwrite`` is false and any of the files exists.
    """
    folder = Path(output_dir)
    existing = existing_effect_outputs(folder)
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        raise FileExistsError(
            f"{str(folder)!r} already contains {names} from an earlier run; pass "
            "overwrite=True to replace them or choose another folder"
        )

    table = fit.unit_table()
    if table.index.name in (None, PANDAS_INDEX_COLUMN):
        # rename_axis copies, so the index of fit.data keeps its name.
        table = table.rename_axis("unit")
    summary = fit.summary()
    summary["input"] = None if input_path is None else str(input_path)
    return EffectOutputs(
        ite_csv=write_csv(table, folder / ITE_FILE),
        summary_json=write_json(summary, folder / SUMMARY_FILE),
        figure=plot_ite_distribution(
            fit.ite,
            fit.ate,
            fit.ate_interval,
            folder / FIGURE_FILE,
            interval_level=fit.interval_level,
            outcome_family=fit.data.outcome_family,
            treatment_name=fit.data.treatment_name,
            outcome_name=fit.data.outcome_name,
        ),
    )
