"""IHDP files, the split of Louizos et al. (2017) and a one-replication benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae.effects import CevaeConfig, TrainingSettings
from causalvae.effects.ihdp import (
    load_ihdp_replication,
    louizos_split,
    resolve_ihdp_dir,
)
from causalvae.effects.ihdp_benchmark import (
    METHODS,
    format_ihdp_markdown,
    run_ihdp_benchmark,
)


def ihdp_dir_or_skip():
    try:
        return resolve_ihdp_dir()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_split_sizes_are_63_27_10():
    split = louizos_split(747)

    assert len(split.train) == 470
    assert len(split.validation) == 202
    assert len(split.test) == 75


def test_split_is_a_partition():
    split = louizos_split(747)

    units = np.concatenate([split.train, split.validation, split.test])
    assert np.array_equal(np.sort(units), np.arange(747))
    assert len(split.within_sample) == 672


def test_split_is_deterministic():
    first, second = louizos_split(747), louizos_split(747)

    assert np.array_equal(first.test, second.test)
    assert np.array_equal(first.train, second.train)


def test_missing_folder_named_in_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="IHDP data not found") as error:
        resolve_ihdp_dir(tmp_path / "nowhere")

    assert str(tmp_path / "nowhere") in str(error.value)


def test_missing_replication_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ihdp_npci_3\.csv"):
        load_ihdp_replication(tmp_path, 3)


def test_wrong_column_count_rejected(tmp_path):
    (tmp_path / "ihdp_npci_1.csv").write_text("1,2,3\n4,5,6\n")

    with pytest.raises(ValueError, match="has 3 columns"):
        load_ihdp_replication(tmp_path, 1)


def test_replication_loaded_and_recoded():
    data = load_ihdp_replication(ihdp_dir_or_skip(), 1)

    assert data.covariates.shape == (747, 25)
    assert data.treatment.sum() == 139
    assert set(np.unique(data.covariates[:, 13])) == {0.0, 1.0}
    assert set(np.unique(data.covariates[:, 6:])) == {0.0, 1.0}
    assert data.true_ite.mean() == pytest.approx(4.0, abs=0.1)


def test_one_replication_benchmark_runs():
    config = CevaeConfig(
        latent_dim=4,
        hidden_dim=16,
        num_layers=2,
        ite_samples=10,
        training=TrainingSettings(epochs=2),
    )

    result = run_ihdp_benchmark(ihdp_dir_or_skip(), [1], config=config)

    assert list(result.rows["method"]) == list(METHODS)
    assert np.isfinite(result.rows["out_sqrt_pehe"]).all()
    assert result.summary().loc["CEVAE", "out_sqrt_pehe_mean"] > 0
    markdown = format_ihdp_markdown(result)
    assert "| CEVAE |" in markdown
    assert "| 1 |" in markdown
