"""Input checks on tables of units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalvae.effects import EffectsInputError, read_table, validate_effect_data
from causalvae.effects.validation import PANDAS_INDEX_COLUMN, identifier_columns


def make_table(num_units: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "t": np.tile([0, 1], num_units // 2),
            "y": rng.normal(size=num_units),
            "a": rng.normal(size=num_units),
            "b": rng.integers(0, 2, size=num_units),
        }
    )


def test_valid_table_converts_to_arrays():
    data = validate_effect_data(make_table(), "t", "y")

    assert data.covariate_names == ("a", "b")
    assert data.covariates.shape == (40, 2)
    assert data.covariates.dtype == np.float64
    assert data.treatment.sum() == 20
    assert data.outcome_family == "continuous"
    assert data.num_units == 40


def test_covariates_can_be_named():
    data = validate_effect_data(make_table(), "t", "y", covariates=["b"])

    assert data.covariate_names == ("b",)
    assert data.covariates.shape == (40, 1)


def test_missing_column_lists_available():
    with pytest.raises(EffectsInputError, match="missing column") as error:
        validate_effect_data(make_table(), "treated", "y")

    assert "'treated'" in str(error.value)
    assert "t, y, a, b" in str(error.value)


def test_missing_covariate_rejected():
    with pytest.raises(EffectsInputError, match="'c'"):
        validate_effect_data(make_table(), "t", "y", covariates=["a", "c"])


def test_treatment_listed_as_covariate_rejected():
    with pytest.raises(EffectsInputError, match="also listed as a covariate"):
        validate_effect_data(make_table(), "t", "y", covariates=["a", "t"])


def test_treatment_equal_to_outcome_rejected():
    with pytest.raises(EffectsInputError, match="same column"):
        validate_effect_data(make_table(), "y", "y")


def test_no_covariates_rejected():
    table = make_table()[["t", "y"]]

    with pytest.raises(EffectsInputError, match="no covariate columns"):
        validate_effect_data(table, "t", "y")


def test_treatment_not_binary_names_values_and_rows():
    table = make_table()
    table.loc[3, "t"] = 2
    table.loc[7, "t"] = -1

    with pytest.raises(EffectsInputError, match="only 0 and 1") as error:
        validate_effect_data(table, "t", "y")

    message = str(error.value)
    assert "-1, 2" in message
    assert "row(s) 3, 7" in message


def test_boolean_treatment_accepted():
    table = make_table()
    table["t"] = table["t"].astype(bool)

    data = validate_effect_data(table, "t", "y")

    assert set(np.unique(data.treatment)) == {0.0, 1.0}


def test_nan_names_rows_and_columns():
    table = make_table()
    table.loc[5, "a"] = np.nan
    table.loc[9, "y"] = np.nan

    with pytest.raises(EffectsInputError, match="NaN or infinite") as error:
        validate_effect_data(table, "t", "y")

    message = str(error.value)
    assert "2 row(s)" in message
    assert "column 'a' at row(s) 5" in message
    assert "column 'y' at row(s) 9" in message


def test_infinite_value_rejected():
    table = make_table()
    table.loc[2, "a"] = -np.inf

    with pytest.raises(EffectsInputError, match="column 'a' at row\\(s\\) 2"):
        validate_effect_data(table, "t", "y")


def test_many_bad_rows_are_abbreviated():
    table = make_table()
    table.loc[:9, "a"] = np.nan

    with pytest.raises(EffectsInputError, match="0, 1, 2, 3, 4 and 5 more"):
        validate_effect_data(table, "t", "y")


def test_row_labels_come_from_index():
    table = make_table()
    table.index = [f"unit{i}" for i in range(len(table))]
    table.loc["unit4", "a"] = np.nan

    with pytest.raises(EffectsInputError, match="row\\(s\\) unit4"):
        validate_effect_data(table, "t", "y")


def test_constant_covariate_rejected():
    table = make_table()
    table["c"] = 3.0

    with pytest.raises(EffectsInputError, match="constant column\\(s\\) 'c'"):
        validate_effect_data(table, "t", "y")


def test_constant_outcome_rejected():
    table = make_table()
    table["y"] = 1.5

    with pytest.raises(EffectsInputError, match="constant column\\(s\\) 'y'"):
        validate_effect_data(table, "t", "y")


@pytest.mark.parametrize(
    ("treated", "group"), [(3, "treated"), (37, "control")], ids=["treated", "control"]
)
def test_too_few_units_in_a_group(treated, group):
    table = make_table()
    table["t"] = [1] * treated + [0] * (40 - treated)

    with pytest.raises(EffectsInputError, match=f"too few {group} units"):
        validate_effect_data(table, "t", "y")


def test_min_group_size_can_be_lowered():
    table = make_table()
    table["t"] = [1] * 3 + [0] * 37

    data = validate_effect_data(table, "t", "y", min_group_size=3)

    assert data.treatment.sum() == 3


def test_non_numeric_column_rejected():
    table = make_table()
    table["b"] = ["red", "blue"] * 20

    with pytest.raises(EffectsInputError, match="non-numeric column\\(s\\) 'b'"):
        validate_effect_data(table, "t", "y")


def test_duplicate_column_names_rejected():
    table = make_table()
    table.columns = ["t", "y", "a", "a"]

    with pytest.raises(EffectsInputError, match="duplicate column names"):
        validate_effect_data(table, "t", "y")


def test_auto_family_detects_binary_outcome():
    table = make_table()
    table["y"] = np.tile([0, 1, 1, 0], 10)

    data = validate_effect_data(table, "t", "y")

    assert data.outcome_family == "binary"


def test_binary_family_rejects_continuous_outcome():
    with pytest.raises(EffectsInputError, match="outcome family 'binary'"):
        validate_effect_data(make_table(), "t", "y", outcome_family="binary")


def test_unknown_family_rejected():
    with pytest.raises(EffectsInputError, match="unknown outcome family"):
        validate_effect_data(make_table(), "t", "y", outcome_family="poisson")


def test_non_dataframe_rejected():
    with pytest.raises(EffectsInputError, match="expected a pandas DataFrame"):
        validate_effect_data(np.zeros((4, 3)), "t", "y")


def test_read_table_missing_file(tmp_path):
    path = tmp_path / "absent.csv"

    with pytest.raises(EffectsInputError, match="not found") as error:
        read_table(path)

    assert str(path) in str(error.value)


def test_read_table_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(EffectsInputError, match="could not read"):
        read_table(path)


def test_header_only_file_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("t,y,a,b\n")

    with pytest.raises(EffectsInputError, match="no data rows") as error:
        read_table(path)

    assert "non-numeric" not in str(error.value)
    assert str(path) in str(error.value)


def test_empty_frame_has_no_rows():
    empty = make_table().iloc[:0]

    with pytest.raises(EffectsInputError, match="the table has no rows"):
        validate_effect_data(empty, "t", "y")


def test_truncated_last_row_named(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("t,y,a,b\n0,1.5,0.2,1\n1,2.5,0.3,0\n1,2.")

    with pytest.raises(EffectsInputError, match="looks truncated") as error:
        read_table(path)

    message = str(error.value)
    assert str(path) in message
    assert "row 3" in message
    assert "2 of 4 fields" in message


def test_last_row_without_newline_accepted(tmp_path):
    path = tmp_path / "complete.csv"
    path.write_text("t,y,a,b\n0,1.5,0.2,1\n1,2.5,0.3,0")

    frame = read_table(path)

    assert len(frame) == 2
    assert frame["b"].tolist() == [1, 0]


def test_short_last_row_with_newline_is_missing_data(tmp_path):
    # A final newline means the writer finished the row, so the gaps are NaN.
    path = tmp_path / "gaps.csv"
    path.write_text("t,y,a,b\n0,1.5,0.2,1\n1,2.5\n")

    frame = read_table(path)

    assert frame["a"].isna().tolist() == [False, True]


def test_index_column_becomes_row_labels(tmp_path):
    path = tmp_path / "units.csv"
    table = make_table()
    table.insert(0, "patient_id", np.arange(500, 540))
    table.to_csv(path, index=False)

    frame = read_table(path, index_column="patient_id")
    data = validate_effect_data(frame, "t", "y")

    assert "patient_id" not in frame.columns
    assert frame.index.name == "patient_id"
    assert data.covariate_names == ("a", "b")
    assert list(data.index[:2]) == [500, 501]


def test_pandas_index_detected(tmp_path):
    path = tmp_path / "units.csv"
    make_table().to_csv(path)

    frame = read_table(path)

    assert frame.index.name == PANDAS_INDEX_COLUMN
    assert list(frame.columns) == ["t", "y", "a", "b"]
    assert list(frame.index[:3]) == [0, 1, 2]


def test_missing_index_column_rejected(tmp_path):
    path = tmp_path / "units.csv"
    make_table().to_csv(path, index=False)

    with pytest.raises(EffectsInputError, match="index column 'unit_id' not found"):
        read_table(path, index_column="unit_id")


def test_repeated_index_labels_rejected(tmp_path):
    path = tmp_path / "units.csv"
    table = make_table()
    table.insert(0, "unit_id", np.arange(40) % 20)
    table.to_csv(path, index=False)

    with pytest.raises(EffectsInputError, match="repeats row labels 0, 1, 2"):
        read_table(path, index_column="unit_id")


@pytest.mark.parametrize("name", ["id", "ID", "patient_id", "index"])
def test_identifier_column_rejected_as_default_covariate(name):
    table = make_table()
    table[name] = np.arange(100, 140)

    with pytest.raises(EffectsInputError, match="look like row identifiers") as error:
        validate_effect_data(table, "t", "y")

    assert repr(name) in str(error.value)
    assert f"set_index({name!r})" in str(error.value)


def test_identifier_column_kept_when_covariates_named():
    table = make_table()
    table["id"] = np.arange(100, 140)

    data = validate_effect_data(table, "t", "y", covariates=["a", "id"])

    assert data.covariate_names == ("a", "id")


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("id", np.arange(40) % 10),  # repeated values: a category, not an ID
        ("id", np.linspace(0, 1, 40)),  # not integers
        ("width", np.arange(40)),  # not an identifier name
        ("valid", np.arange(40)),  # ends in "id" without the underscore
    ],
)
def test_identifier_detection_needs_name_and_distinct_integers(name, values):
    table = make_table()
    table[name] = values

    assert identifier_columns(table) == []


def test_yes_no_treatment_advised_to_recode():
    table = make_table()
    table["t"] = np.where(table["t"] == 1, "yes", "no")

    with pytest.raises(EffectsInputError) as error:
        validate_effect_data(table, "t", "y")

    message = str(error.value)
    assert "recode it as 0 (control) / 1 (treated)" in message
    assert "'no', 'yes'" in message or "'yes', 'no'" in message
    assert "get_dummies" not in message


def test_two_label_covariate_advised_to_recode():
    table = make_table()
    table["b"] = np.where(table["b"] == 1, "smoker", "non-smoker")

    with pytest.raises(EffectsInputError, match="recode it as one 0/1 column"):
        validate_effect_data(table, "t", "y")


def test_many_label_covariate_advised_to_use_indicators():
    table = make_table()
    table["b"] = ["red", "green", "blue", "grey"] * 10

    with pytest.raises(EffectsInputError, match="get_dummies"):
        validate_effect_data(table, "t", "y")


def test_constant_column_names_its_value():
    table = make_table()
    table["a"] = 3.5

    with pytest.raises(EffectsInputError, match=r"'a' \(every value 3.5\)"):
        validate_effect_data(table, "t", "y")


def test_column_names_recorded():
    data = validate_effect_data(make_table(), "t", "y")

    assert data.treatment_name == "t"
    assert data.outcome_name == "y"
