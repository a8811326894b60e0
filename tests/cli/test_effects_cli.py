"""``causalvae effects`` end to end with tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causalvae.effects.ihdp import resolve_ihdp_dir

TINY_NETWORK = ("--latent-dim", 2, "--hidden-dim", 8, "--num-layers", 2)


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
        "--treatment",
        "treated",
        "--outcome",
        "y",
        "--covariates",
        "age,smoker",
        "--epochs",
        2,
        "--ite-samples",
        5,
        "--bootstrap-samples",
        50,
        *TINY_NETWORK,
        "--output-dir",
        output_dir,
    )

    assert "ATE " in result.output
    assert "95% interval" in result.output
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
        "--treatment",
        "treated",
        "--outcome",
        "y",
        "--epochs",
        2,
        "--ite-samples",
        5,
        "--bootstrap-samples",
        20,
        *TINY_NETWORK,
        "--output-dir",
        tmp_path / "out",
    )

    loud = run_cli(*arguments)
    quiet = run_cli("-q", *arguments)

    assert "training" in loud.output
    assert "epoch" in loud.output
    assert "training" not in quiet.output


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
    assert (output_dir / "ihdp_summary.md").read_text().startswith("| method |")


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


def test_dsprites_benchmark_tiny(run_cli, tmp_path):
    output_dir = tmp_path / "dsprites"

    result = run_cli(
        "-q",
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
    assert "CEVAE ATE error / difference-in-means ATE error" in result.output
    record = json.loads((output_dir / "dsprites_effects.json").read_text())
    assert set(record["ate_errors"]) == {
        "difference in means",
        "OLS with interactions",
        "CEVAE",
    }
    assert record["num_units"] == 200
