"""Checks on a table of units before any model is built.

Every check raises :class:`~causalvae.effects.errors.EffectsInputError` with the
offending columns, rows or values and what to change.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from causalvae.effects.errors import EffectsInputError, IdentifierColumnsError

logger = logging.getLogger(__name__)

OutcomeFamily = Literal["binary", "continuous", "auto"]
ResolvedOutcomeFamily = Literal["binary", "continuous"]

DEFAULT_MIN_GROUP_SIZE = 10
"""Fewest treated and fewest control units accepted by default. With fewer, the
validation split leaves an arm with one or two units and the outcome networks of
that arm cannot be trained or checked."""

PANDAS_INDEX_COLUMN = "Unnamed: 0"
"""Name pandas gives the unnamed first column of a CSV file, which is how
``DataFrame.to_csv`` writes an index without a name."""

_IDENTIFIER_NAME = re.compile(r"(id|index|.*_id|unnamed: \d+)", re.IGNORECASE)
"""Column names that suggest a row identifier rather than a measurement."""

_TAIL_BYTES = 65536
"""Bytes read from the end of a file to find its last line."""

_MAX_LISTED = 5


@dataclass(frozen=True)
class EffectData:
    """A validated table of units as float64 arrays.

    :ivar covariates: proxies of the confounder, ``(units, covariates)``.
    :ivar treatment: 0/1 treatment indicator, ``(units,)``.
    :ivar outcome: observed (factual) outcome, ``(units,)``.
    :ivar covariate_names: column names in the order of ``covariates``.
    :ivar treatment_name: name of the treatment column.
    :ivar outcome_name: name of the outcome column.
    :ivar index: row labels of the input table, in order.
    :ivar outcome_family: ``"binary"`` for 0/1 outcomes, ``"continuous"`` otherwise.
    """

    covariates: np.ndarray
    treatment: np.ndarray
    outcome: np.ndarray
    covariate_names: tuple[str, ...]
    treatment_name: str
    outcome_name: str
    index: pd.Index
    outcome_family: ResolvedOutcomeFamily

    @property
    def num_units(self) -> int:
        """Number of rows."""
        return int(self.treatment.shape[0])


def read_table(path: str | Path, index_column: str | None = None) -> pd.DataFrame:
    """Read a CSV file with a header row into a DataFrame.

    :param index_column: column whose values label the rows, such as a unit
        identifier; it is removed from the columns and becomes the index. By
        default, an unnamed first column (``Unnamed: 0``, an index written by
        ``DataFrame.to_csv``) becomes the index, and otherwise the rows are
        numbered from 0.
    :raises EffectsInputError: if the file is missing, empty, not valid CSV, has
        no data rows, looks truncated, or if the index column is missing or
        repeats a label.
    """
    path = Path(path)
    if not path.is_file():
        raise EffectsInputError(f"input table {str(path)!r} not found; pass a CSV file")
    try:
        frame = pd.read_csv(path)
    except (
        pd.errors.EmptyDataError,
        pd.errors.ParserError,
        UnicodeDecodeError,
    ) as error:
        raise EffectsInputError(
            f"could not read {str(path)!r} as CSV with a header row: {error}"
        ) from error
    if len(frame.index) == 0:
        raise EffectsInputError(
            f"input table {str(path)!r} has a header but no data rows; "
            "add one row per unit"
        )
    _check_not_truncated(path, frame)

    detected = index_column is None and frame.columns[0] == PANDAS_INDEX_COLUMN
    if detected:
        index_column = PANDAS_INDEX_COLUMN
        logger.info(
            "using the unnamed first column of %s (an index written by pandas) "
            "as row labels",
            path,
        )
    if index_column is None:
        return frame
    if index_column not in frame.columns:
        available = ", ".join(str(c) for c in frame.columns)
        raise EffectsInputError(
            f"index column {index_column!r} not found in {str(path)!r}; "
            f"the table has: {available}"
        )
    labels = frame[index_column]
    repeated = labels[labels.duplicated(keep=False)]
    if len(repeated):
        described = (
            "the unnamed first column (an index written by pandas)"
            if detected
            else f"index column {index_column!r}"
        )
        raise EffectsInputError(
            f"{described} of {str(path)!r} repeats row labels "
            f"{_list_labels(pd.Index(repeated.unique()))}; row labels must be "
            "unique, so name a column of unique identifiers as the index column"
        )
    return frame.set_index(index_column)


def _check_not_truncated(path: Path, frame: pd.DataFrame) -> None:
    """Raise if the file's last line lacks its newline and some trailing fields.

    A file cut off while it was written or copied ends that way, and pandas would
    read the missing fields as NaN.
    """
    with path.open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(0, size - _TAIL_BYTES))
        tail = file.read()
    if tail.endswith((b"\n", b"\r")) or b"\n" not in tail:
        # A complete last line, or one too long to check from the tail.
        return
    last_line = tail.rsplit(b"\n", 1)[1].decode("utf-8", errors="replace")
    fields = next(csv.reader([last_line]), [])
    expected = len(frame.columns)
    if len(fields) < expected:
        raise EffectsInputError(
            f"{str(path)!r} looks truncated: its last data row (row "
            f"{len(frame)}) has {len(fields)} of {expected} fields and the file "
            "does not end with a newline. Check that the file was written "
            "completely, or delete that row"
        )


def validate_effect_data(
    data: pd.DataFrame,
    treatment: str,
    outcome: str,
    covariates: Sequence[str] | None = None,
    outcome_family: OutcomeFamily = "auto",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> EffectData:
    """Check a table of units and convert it to arrays.

    :param data: one row per unit.
    :param treatment: name of the 0/1 treatment column (booleans are accepted).
    :param outcome: name of the outcome column.
    :param covariates: names of the covariate columns; default: every other column.
    :param outcome_family: ``"binary"`` (0/1 outcome), ``"continuous"``, or
        ``"auto"``, which picks ``"binary"`` when every outcome is 0 or 1.
    :param min_group_size: fewest treated and fewest control units accepted.
    :raises EffectsInputError: on a table without rows, missing or non-numeric
        columns, a column that looks like a row identifier when ``covariates`` is
        not given, NaN or infinite values, a treatment other than 0/1, constant
        columns, or too few treated or control units.
    """
    if outcome_family not in ("binary", "continuous", "auto"):
        raise EffectsInputError(
            f"unknown outcome family {outcome_family!r}; "
            "choose one of binary, continuous, auto"
        )
    covariate_names = _resolve_columns(data, treatment, outcome, covariates)
    if len(data.index) == 0:
        raise EffectsInputError("the table has no rows; add one row per unit")
    if covariates is None:
        identifiers = identifier_columns(data[covariate_names])
        if identifiers:
            raise IdentifierColumnsError(
                f"column(s) {', '.join(map(repr, identifiers))} look like row "
                "identifiers (distinct integers under an identifier name) and would "
                "become covariates. Make such a column the index, as in "
                f"data.set_index({identifiers[0]!r}), or name the covariates",
                identifiers,
            )
    used = [treatment, outcome, *covariate_names]

    # Types first, so that the later checks can compare numbers.
    _check_numeric(data, used, treatment)
    frame = data[used].astype(np.float64)
    _check_finite(frame)

    treatment_values = frame[treatment].to_numpy()
    _check_binary_treatment(treatment_values, data.index, treatment)
    _check_group_sizes(treatment_values, treatment, min_group_size)
    _check_not_constant(frame, [outcome, *covariate_names])

    outcome_values = frame[outcome].to_numpy()
    family = _resolve_outcome_family(outcome_values, outcome, outcome_family)
    logger.info(
        "validated %d units (%d treated), %d covariates, %s outcome",
        len(frame),
        int(treatment_values.sum()),
        len(covariate_names),
        family,
    )
    return EffectData(
        covariates=frame[list(covariate_names)].to_numpy(),
        treatment=treatment_values,
        outcome=outcome_values,
        covariate_names=tuple(str(name) for name in covariate_names),
        treatment_name=str(treatment),
        outcome_name=str(outcome),
        index=data.index,
        outcome_family=family,
    )


def _resolve_columns(
    data: pd.DataFrame,
    treatment: str,
    outcome: str,
    covariates: Sequence[str] | None,
) -> list[str]:
    """Return the covariate names after checking that every named column exists."""
    if not isinstance(data, pd.DataFrame):
        raise EffectsInputError(
            f"expected a pandas DataFrame, got {type(data).__name__}; "
            "wrap arrays with pandas.DataFrame(...)"
        )
    if data.columns.has_duplicates:
        duplicated = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        raise EffectsInputError(
            f"duplicate column names {duplicated}; rename them so each is unique"
        )
    if treatment == outcome:
        raise EffectsInputError(
            f"treatment and outcome are the same column {treatment!r}; "
            "name two different columns"
        )
    if covariates is None:
        covariates = [c for c in data.columns if c not in (treatment, outcome)]
    else:
        covariates = list(covariates)

    missing = [c for c in (treatment, outcome, *covariates) if c not in data.columns]
    if missing:
        available = ", ".join(str(c) for c in data.columns)
        raise EffectsInputError(
            f"missing column(s) {', '.join(map(repr, missing))}; "
            f"the table has: {available}"
        )
    if len(set(covariates)) != len(covariates):
        repeated = sorted({str(c) for c in covariates if covariates.count(c) > 1})
        raise EffectsInputError(f"covariate(s) listed twice: {', '.join(repeated)}")
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name in covariates:
            raise EffectsInputError(
                f"the {role} column {name!r} is also listed as a covariate; "
                "remove it from the covariates"
            )
    if not covariates:
        raise EffectsInputError(
            "no covariate columns; name at least one column besides the treatment "
            "and the outcome"
        )
    return covariates


def identifier_columns(data: pd.DataFrame) -> list[str]:
    """Return the columns that look like row identifiers rather than covariates.

    A column looks like one when its name is ``id``, ``index``, ends in ``_id``
    (in any case) or is pandas' name for an unnamed index column, and its values
    are distinct integers.
    """
    found = []
    for name in data.columns:
        if not _IDENTIFIER_NAME.fullmatch(str(name)):
            continue
        values = data[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(
            values
        ):
            continue
        numbers = values.to_numpy(dtype=np.float64)
        is_integer = np.isfinite(numbers).all() and (numbers == np.round(numbers)).all()
        if is_integer and values.is_unique:
            found.append(str(name))
    return found


def _check_numeric(data: pd.DataFrame, columns: list[str], treatment: str) -> None:
    non_numeric = [
        c
        for c in columns
        if not (
            pd.api.types.is_numeric_dtype(data[c])
            or pd.api.types.is_bool_dtype(data[c])
        )
    ]
    if not non_numeric:
        return

    # Two labels, such as yes/no, make one 0/1 column, and get_dummies would make
    # two.
    parts = []
    for column in non_numeric:
        labels = data[column].dropna().unique()
        listed_labels = ", ".join(repr(str(label)) for label in labels[:_MAX_LISTED])
        if column == treatment:
            advice = "recode it as 0 (control) / 1 (treated)"
        elif len(labels) == 2:
            advice = "recode it as one 0/1 column"
        else:
            advice = "encode it as 0/1 indicator columns (pandas.get_dummies)"
        parts.append(
            f"{column!r} ({data[column].dtype}, values {listed_labels}): {advice}"
        )
    raise EffectsInputError(f"non-numeric column(s) {'; '.join(parts)}")


def _check_finite(frame: pd.DataFrame) -> None:
    finite = np.isfinite(frame.to_numpy())
    if finite.all():
        return
    bad_rows = ~finite.all(axis=1)
    parts = []
    for position, column in enumerate(frame.columns):
        rows = frame.index[~finite[:, position]]
        if len(rows):
            parts.append(f"column {column!r} at row(s) {_list_labels(rows)}")
    raise EffectsInputError(
        f"{int(bad_rows.sum())} row(s) contain NaN or infinite values: "
        f"{'; '.join(parts)}. Drop or impute these rows"
    )


def _check_binary_treatment(values: np.ndarray, index: pd.Index, name: str) -> None:
    invalid = ~np.isin(values, (0.0, 1.0))
    if invalid.any():
        distinct = np.unique(values[invalid])[:_MAX_LISTED]
        raise EffectsInputError(
            f"treatment column {name!r} must contain only 0 and 1; found "
            f"{', '.join(f'{v:g}' for v in distinct)} at row(s) "
            f"{_list_labels(index[invalid])}. Recode it as 0 (control) / 1 (treated)"
        )


def _check_group_sizes(values: np.ndarray, name: str, min_group_size: int) -> None:
    treated = int((values == 1).sum())
    control = int((values == 0).sum())
    for group, count in (("treated", treated), ("control", control)):
        if count < min_group_size:
            raise EffectsInputError(
                f"too few {group} units in {name!r}: {count} (treated {treated}, "
                f"control {control}); at least {min_group_size} of each are needed"
            )


def _check_not_constant(frame: pd.DataFrame, columns: list[str]) -> None:
    constant = [c for c in columns if frame[c].nunique() <= 1]
    if constant:
        described = ", ".join(
            f"{c!r} (every value {frame[c].iloc[0]:g})" for c in constant
        )
        raise EffectsInputError(
            f"constant column(s) {described} carry no information; drop them"
        )


def _resolve_outcome_family(
    values: np.ndarray, name: str, requested: OutcomeFamily
) -> ResolvedOutcomeFamily:
    is_binary = bool(np.isin(values, (0.0, 1.0)).all())
    if requested == "auto":
        return "binary" if is_binary else "continuous"
    if requested == "binary" and not is_binary:
        distinct = np.unique(values[~np.isin(values, (0.0, 1.0))])[:_MAX_LISTED]
        raise EffectsInputError(
            f"outcome family 'binary' needs an outcome {name!r} of 0 and 1; found "
            f"{', '.join(f'{v:g}' for v in distinct)}. Use outcome family "
            "'continuous' or recode the outcome"
        )
    return requested


def _list_labels(labels: pd.Index) -> str:
    listed = ", ".join(str(label) for label in labels[:_MAX_LISTED])
    if len(labels) > _MAX_LISTED:
        listed += f" and {len(labels) - _MAX_LISTED} more"
    return listed
