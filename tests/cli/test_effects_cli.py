"""``causalvae effects`` end to end with tiny settings."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from causalvae.effects.ihdp import resolve_ihdp_dir

TINY_NETWORK = ("--latent-dim", 2, "--hidden-dim", 8, "--num-layers", 2)
COLUMNS = ("--treatment", "treated", "--outcome", "y")


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=120)
    frame = pd.DataFrame(
        {
            "age": z + rng.normal(size=120),
            "smoker": (z > 0).astype(int),
            "noise": rng.normal(size=120),
            "treated": (rng.random(120) < 1 / (1 + np.exp(-z))).astype(int),
            "y": z + rng.normal(size=120),
        }
    )
    frame["y"] += frame["treated"]
    path = tmp_path / "units.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_writes_outputs(run_cli, table_csv, tmp_path):
    output_dir = tmp_path / "out"

    result = run_cli(
        "-q",
        "effects",
        "fit",
        table_csv,
        *COLUMNS,
        "--covariates",
        "age,smoker",
        "--epochs",
        2,
        "--ite-samples",
        5,
        "--bootstrap-samples",
        100,
        *TINY_NETWORK,
        "--output-dir",
        output_dir,
    )

    assert "ATE " in result.output
    assert "95% bootstrap interval over units, model held fixed" in result.output
    assert str(output_dir / "ite.csv") in result.output
    ite = pd.read_csv(output_dir / "ite.csv")
    assert len(ite) == 120
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["covariates"] == ["age", "smoker"]
    assert summary["config"]["training"]["epochs"] == 2
    assert (output_dir / "ite_distribution.png").stat().st_size > 0


def test_fit_shows_progress_unless_quiet(run_cli, table_csv, tmp_path):
    arguments = (
        "effects",
        "fit",
        table_csv,
        *COLUMNS,
        "--epochs",
        2,
        "--ite-samples",
        5,
        "--bootstrap-samples",
        100,
        *TINY_NETWORK,
        "--output-dir",
        tmp_path / "out",
        "--overwrite",
    )

    loud = run_cli(*arguments)
    quiet = run_cli("-q", *arguments)

    assert "training:" in loud.output
    assert "epoch/s" in loud.output
    assert "epoch/s" not in quiet.output
    assert "warning:" in loud.output
    assert "warning:" not in quiet.output


def test_fit_missing_column_is_user_error(run_cli, table_csv, tmp_path):
    result = run_cli(
        "effects",
        "fit",
        table_csv,
        "--treatment",
        "dose",
        "--outcome",
        "y",
        "--output-dir",
        tmp_path / "out",
        exit_code=2,
    )

    assert "missing column(s) 'dose'" in result.output
    assert "Traceback" not in result.output


def test_fit_missing_file_is_user_error(run_cli, tmp_path):
    result = run_cli(
        "effects",
        "fit",
        tmp_path / "absent.csv",
        "--treatment",
        "t",
        "--outcome",
        "y",
        exit_code=2,
    )

    assert "not found" in result.output


def test_ihdp_benchmark_one_replication(run_cli, tmp_path):
    try:
        resolve_ihdp_dir()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    output_dir = tmp_path / "ihdp"

    result = run_cli(
        "-q",
        "effects",
        "benchmark",
        "ihdp",
        "--replications",
        1,
        "--epochs",
        2,
        "--ite-samples",
        5,
        "--output-dir",
        output_dir,
    )

    assert "| CEVAE |" in result.output
    assert "1 replication(s)" in result.output
    scores = pd.read_csv(output_dir / "ihdp_scores.csv")
    assert len(scores) == 4
    assert (output_dir / "ihdp_summary.md").read_text().startswith("# IHDP benchmark")


def test_ihdp_missing_data_dir_is_user_error(run_cli, tmp_path):
    result = run_cli(
        "effects",
        "benchmark",
        "ihdp",
        "--data-dir",
        tmp_path / "nowhere",
        exit_code=2,
    )

    assert "IHDP data not found" in result.output
    assert str(tmp_path / "nowhere") in result.output
    assert "--data-dir" in result.output
    assert "replications" not in result.output


def test_dsprites_benchmark_tiny(run_cli, tmp_path):
    output_dir = tmp_path / "dsprites"

    result = run_cli(
        "effects",
        "benchmark",
        "dsprites",
        "--units",
        200,
        "--epochs",
        2,
        "--output-dir",
        output_dir,
    )

    assert "| difference in means |" in result.output
    assert "CEVAE's ATE error is " in result.output
    assert "the difference in means' ATE error is " in result.output
    assert (output_dir / "dsprites_effects.md").read_text().startswith("# dSprites")
    record = json.loads((output_dir / "dsprites_effects.json").read_text())
    assert set(record["ate_errors"]) == {
        "difference in means",
        "OLS with interactions",
        "CEVAE",
    }
    assert record["num_units"] == 200
    assert record["epochs_run"] == 2
    assert record["stopped_early"] is False
    assert "warning: CEVAE ran all 2 epochs without early stopping" in result.stderr


FIT_SETTINGS = (
    *COLUMNS,
    "--epochs",
    2,
    "--ite-samples",
    5,
    "--bootstrap-samples",
    100,
    *TINY_NETWORK,
)


def test_fit_short_output_option(run_cli, table_csv, tmp_path):
    run_cli("-q", "effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path / "out")

    assert (tmp_path / "out" / "ite.csv").is_file()


def test_fit_reports_family_epochs_and_limit(run_cli, table_csv, tmp_path):
    result = run_cli("effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path / "o")

    assert (
        "outcome family: continuous (chosen by auto: not all 0 or 1)" in result.output
    )
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    best = summary["training"]["best_epoch"]
    assert f"training: best epoch {best} of 2 run (reached the epoch limit)" in (
        result.output
    )
    assert "warning: training ran all 2 epochs without early stopping" in result.output
    assert "--epochs" in result.output


def test_fit_prints_interval_at_ate_precision(run_cli, table_csv, tmp_path):
    result = run_cli("-q", "effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path)

    match = re.search(r"ATE (\S+) \(95% .*: (\S+) to (\S+)\)", result.output)
    assert match is not None, result.output
    decimals = {len(number.partition(".")[2]) for number in match.groups()}
    assert len(decimals) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert float(match.group(1)) == pytest.approx(summary["ate"], rel=1e-3)


def test_fit_bootstrap_samples_minimum(run_cli, table_csv, tmp_path):
    result = run_cli(
        "effects",
        "fit",
        table_csv,
        *COLUMNS,
        "--bootstrap-samples",
        1,
        exit_code=2,
    )

    assert "at least 100" in result.output
    assert "Traceback" not in result.output


def test_fit_summary_reproduces_run(run_cli, table_csv, tmp_path):
    run_cli(
        "-q",
        "effects",
        "fit",
        table_csv,
        *FIT_SETTINGS,
        "--covariates",
        "age,smoker",
        "--seed",
        5,
        "--validation-fraction",
        0.25,
        "--interval-level",
        0.9,
        "-o",
        tmp_path / "out",
    )

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["input"] == str(table_csv.resolve())
    assert summary["seed"] == 5
    assert summary["treatment"] == "treated"
    assert summary["outcome"] == "y"
    assert summary["covariates"] == ["age", "smoker"]
    assert summary["validation_fraction"] == 0.25
    assert summary["interval_level"] == 0.9
    assert summary["bootstrap_samples"] == 100
    assert summary["index_column"] is None


def test_fit_rejects_earlier_outputs(run_cli, table_csv, tmp_path):
    output_dir = tmp_path / "out"
    run_cli("-q", "effects", "fit", table_csv, *FIT_SETTINGS, "-o", output_dir)
    (output_dir / "summary.json").write_text("{}")

    result = run_cli(
        "effects", "fit", table_csv, *FIT_SETTINGS, "-o", output_dir, exit_code=2
    )

    assert str(output_dir) in result.output
    assert "--overwrite" in result.output
    assert "epoch/s" not in result.output
    assert (output_dir / "summary.json").read_text() == "{}"
    run_cli(
        "-q",
        "effects",
        "fit",
        table_csv,
        *FIT_SETTINGS,
        "-o",
        output_dir,
        "--overwrite",
    )
    assert json.loads((output_dir / "summary.json").read_text())["seed"] == 0


def test_fit_index_column_labels_rows(run_cli, table_csv, tmp_path):
    frame = pd.read_csv(table_csv)
    frame.insert(0, "patient_id", np.arange(1000, 1120))
    frame.to_csv(table_csv, index=False)

    run_cli(
        "-q",
        "effects",
        "fit",
        table_csv,
        *FIT_SETTINGS,
        "--index-column",
        "patient_id",
        "-o",
        tmp_path / "out",
    )

    ite = pd.read_csv(tmp_path / "out" / "ite.csv")
    assert ite.columns[0] == "patient_id"
    assert ite["patient_id"].tolist() == list(range(1000, 1120))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["index_column"] == "patient_id"
    assert "patient_id" not in summary["covariates"]


def test_fit_rejects_identifier_as_covariate(run_cli, table_csv, tmp_path):
    frame = pd.read_csv(table_csv)
    frame.insert(0, "patient_id", np.arange(1000, 1120))
    frame.to_csv(table_csv, index=False)

    result = run_cli(
        "effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path, exit_code=2
    )

    assert "column 'patient_id' looks like a row identifier" in result.output
    assert "--index-column patient_id" in result.output
    assert "--covariates" in result.output


def test_fit_detects_pandas_index(run_cli, table_csv, tmp_path):
    pd.read_csv(table_csv).to_csv(table_csv)  # writes the unnamed index column

    result = run_cli("effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path)

    assert "row labels: the unnamed first column" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["covariates"] == ["age", "smoker", "noise"]
    assert pd.read_csv(tmp_path / "ite.csv").columns[0] == "unit"


def test_fit_header_only_table(run_cli, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("age,treated,y\n")

    result = run_cli(
        "effects",
        "fit",
        path,
        *COLUMNS,
        exit_code=2,
    )

    assert "has a header but no data rows" in result.output
    assert "non-numeric" not in result.output


def test_fit_truncated_table(run_cli, table_csv, tmp_path):
    text = table_csv.read_text().rstrip("\n")
    table_csv.write_text(text[: text.rindex(",") - 3])

    result = run_cli(
        "effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path, exit_code=2
    )

    assert "looks truncated" in result.output
    assert str(table_csv) in result.output
    assert "row 120" in result.output
    assert "NaN" not in result.output


def test_fit_yes_no_treatment_before_progress_bar(run_cli, table_csv, tmp_path):
    frame = pd.read_csv(table_csv)
    frame["treated"] = np.where(frame["treated"] == 1, "yes", "no")
    frame.to_csv(table_csv, index=False)

    result = run_cli(
        "effects", "fit", table_csv, *FIT_SETTINGS, "-o", tmp_path, exit_code=2
    )

    assert "recode it as 0 (control) / 1 (treated)" in result.output
    assert "epoch/s" not in result.output


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (("effects", "fit"), "fit"),
        (("effects", "benchmark", "ihdp"), "ihdp"),
        (("effects", "benchmark", "dsprites"), "dsprites"),
    ],
)
def test_help_texts(run_cli, arguments, command):
    result = run_cli(*arguments, "--help")
    text = " ".join(result.output.split())

    assert "-o, --output-dir" in text
    assert "--overwrite" in text
    if command != "dsprites":
        assert "Initial" not in text
        assert "constant during training" in text
        assert "Guide draws per unit when computing effects" in text


@pytest.mark.parametrize("arguments", [("effects",), ("effects", "benchmark")])
def test_subcommand_descriptions_not_truncated(run_cli, arguments):
    result = run_cli(*arguments, "--help")
    commands = result.output.split("Commands:")[1]

    assert "..." not in commands
    assert len(commands.strip().splitlines()) == 2


def write_fake_ihdp(folder, num_units: int = 120):
    """Write ihdp_npci_1.csv with random values in the IHDP layout."""
    rng = np.random.default_rng(0)
    treatment = rng.integers(0, 2, num_units)
    mu0 = rng.normal(size=num_units)
    mu1 = mu0 + 4
    y = np.where(treatment == 1, mu1, mu0) + rng.normal(size=num_units)
    continuous = rng.normal(size=(num_units, 6))
    binary = rng.integers(0, 2, (num_units, 19)).astype(float)
    binary[:, 7] += 1  # x14 is coded 1/2 in the files
    table = np.column_stack([treatment, y, y, mu0, mu1, continuous, binary])
    folder.mkdir()
    np.savetxt(folder / "ihdp_npci_1.csv", table, delimiter=",")
    return folder


def test_ihdp_scores_write_integer_epochs(run_cli, tmp_path):
    data_dir = write_fake_ihdp(tmp_path / "ihdp")
    output_dir = tmp_path / "out"

    run_cli(
        "-q",
        "effects",
        "benchmark",
        "ihdp",
        "--data-dir",
        data_dir,
        "--replications",
        1,
        "--epochs",
        2,
        "--ite-samples",
        2,
        "-o",
        output_dir,
    )

    lines = (output_dir / "ihdp_scores.csv").read_text().splitlines()
    header = lines[0].split(",")
    cevae = dict(zip(header, lines[1].split(","), strict=True))
    assert cevae["method"] == "CEVAE"
    assert cevae["epochs_run"] == "2"
    assert cevae["best_epoch"] in {"1", "2"}
    summary = (output_dir / "ihdp_summary.md").read_text()
    assert "nan" not in summary
    assert "±" not in summary


def test_ihdp_rejects_earlier_outputs(run_cli, tmp_path):
    data_dir = write_fake_ihdp(tmp_path / "ihdp")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ihdp_summary.md").write_text("earlier")

    result = run_cli(
        "effects",
        "benchmark",
        "ihdp",
        "--data-dir",
        data_dir,
        "-o",
        tmp_path / "out",
        exit_code=2,
    )

    assert "ihdp_summary.md" in result.output
    assert "--overwrite" in result.output


def test_fit_outcome_likelihood_option(run_cli, table_csv, tmp_path):
    run_cli(
        "-q",
        "effects",
        "fit",
        table_csv,
        *FIT_SETTINGS,
        "--outcome-likelihood",
        "johnson_su",
        "-o",
        tmp_path / "out",
    )

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["outcome_likelihood"] == "johnson_su"
    ite = pd.read_csv(tmp_path / "out" / "ite.csv")
    assert np.isfinite(ite["ite"]).all()


def test_ihdp_warns_at_epoch_limit(run_cli, tmp_path):
    data_dir = write_fake_ihdp(tmp_path / "ihdp")
    arguments = ("effects", "benchmark", "ihdp", "--data-dir", data_dir)
    settings = ("--replications", 1, "--epochs", 2, "--ite-samples", 2)

    loud = run_cli(*arguments, *settings, "-o", tmp_path / "loud")
    quiet = run_cli("-q", *arguments, *settings, "-o", tmp_path / "quiet")

    assert "CEVAE ran all 2 epochs in 1 of 1 replication(s)" in loud.stderr
    assert "warning" not in quiet.stderr
