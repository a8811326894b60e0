"""End-to-end CEVAE fits on small tables whose true effect is known."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from causalvae.effects import (
    CevaeConfig,
    EffectsInputError,
    TrainingHistory,
    TrainingSettings,
    fit_effects,
    write_effect_outputs,
)
from causalvae.effects.fit import bootstrap_ate_interval, stratified_validation_mask

TRUE_ATE = 2.0

SMALL = CevaeConfig(
    latent_dim=4,
    hidden_dim=32,
    num_layers=2,
    ite_samples=20,
    training=TrainingSettings(epochs=60, learning_rate=0.01),
)


def confounded_table(num_units: int = 600, seed: int = 0) -> pd.DataFrame:
    """Hidden confounder z seen through four noisy and two binary proxies.

    ``y = 2 t + 3 z + noise``, so the ATE is 2 while treated units have higher z.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=num_units)
    columns = {f"x{j}": z + 0.5 * rng.normal(size=num_units) for j in range(4)}
    for j in range(2):
        columns[f"b{j}"] = (z + 0.5 * rng.normal(size=num_units) > 0).astype(int)
    treatment = (rng.random(num_units) < 1 / (1 + np.exp(-2 * z))).astype(int)
    columns["t"] = treatment
    columns["y"] = TRUE_ATE * treatment + 3 * z + rng.normal(size=num_units)
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def confounded_fit():
    return fit_effects(
        confounded_table(), "t", "y", config=SMALL, bootstrap_samples=200
    )


def test_ate_close_to_truth(confounded_fit):
    table = confounded_table()
    naive = table.y[table.t == 1].mean() - table.y[table.t == 0].mean()

    assert abs(confounded_fit.ate - TRUE_ATE) < 0.5
    assert abs(confounded_fit.ate - TRUE_ATE) < abs(naive - TRUE_ATE) / 3


def test_interval_brackets_estimate(confounded_fit):
    lower, upper = confounded_fit.ate_interval

    assert lower < confounded_fit.ate < upper
    assert confounded_fit.interval_level == 0.95


def test_ite_per_unit_in_row_order(confounded_fit):
    table = confounded_fit.unit_table()

    assert len(table) == 600
    assert list(table.columns) == ["treatment", "outcome", "split", "y0", "y1", "ite"]
    assert np.allclose(table["outcome"], confounded_table()["y"])
    assert np.isfinite(table["ite"]).all()
    assert confounded_fit.ate == pytest.approx(table["ite"].mean())


def test_validation_split_holds_both_arms(confounded_fit):
    treatment = confounded_fit.data.treatment
    validation = confounded_fit.is_validation

    assert 0.25 < validation.mean() < 0.35
    assert treatment[validation].sum() > 0
    assert (1 - treatment[validation]).sum() > 0


def test_outputs_written(confounded_fit, tmp_path):
    outputs = write_effect_outputs(confounded_fit, tmp_path / "out")

    written = pd.read_csv(outputs.ite_csv, index_col="unit")
    assert len(written) == 600
    assert np.allclose(written["ite"], confounded_fit.ite)
    assert outputs.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(outputs.summary_json.read_text())
    assert summary["ate"] == pytest.approx(confounded_fit.ate)
    assert summary["config"]["latent_dim"] == 4
    assert summary["interval_method"].startswith("percentile bootstrap")
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_binary_outcome_fit():
    table = confounded_table(num_units=300)
    table["y"] = (table["y"] > table["y"].median()).astype(int)
    config = CevaeConfig(
        latent_dim=2,
        hidden_dim=16,
        num_layers=2,
        ite_samples=10,
        training=TrainingSettings(epochs=5),
    )

    fit = fit_effects(table, "t", "y", config=config, bootstrap_samples=100)

    assert fit.data.outcome_family == "binary"
    assert -1 <= fit.ate <= 1
    assert ((fit.y0 >= 0) & (fit.y0 <= 1)).all()


def test_invalid_table_rejected_before_training():
    table = confounded_table(num_units=100)
    table.loc[4, "t"] = 3

    with pytest.raises(EffectsInputError, match="only 0 and 1"):
        fit_effects(table, "t", "y", config=SMALL)


def test_stratified_mask_per_arm():
    treatment = np.array([1] * 10 + [0] * 30)

    mask = stratified_validation_mask(treatment, 0.3, np.random.default_rng(0))

    assert mask[treatment == 1].sum() == 3
    assert mask[treatment == 0].sum() == 9


def test_stratified_mask_rejects_empty_split():
    treatment = np.array([1] * 2 + [0] * 30)

    with pytest.raises(EffectsInputError, match="validation fraction"):
        stratified_validation_mask(treatment, 0.6, np.random.default_rng(0))


def test_bootstrap_interval_of_constant_is_a_point():
    lower, upper = bootstrap_ate_interval(
        np.full(50, 1.5), 0.9, 100, np.random.default_rng(0)
    )

    assert lower == pytest.approx(1.5)
    assert upper == pytest.approx(1.5)


def test_bootstrap_interval_width_matches_standard_error():
    # For the mean of 2000 standard normals the 95 % interval is about
    # +-1.96 / sqrt(2000) = +-0.044.
    values = np.random.default_rng(1).normal(size=2000)

    lower, upper = bootstrap_ate_interval(values, 0.95, 1000, np.random.default_rng(2))

    assert upper - lower == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.15)


def test_too_few_bootstrap_samples_rejected():
    with pytest.raises(ValueError, match="at least 100, got 1"):
        fit_effects(confounded_table(100), "t", "y", config=SMALL, bootstrap_samples=1)


def test_summary_records_settings(confounded_fit, tmp_path):
    outputs = write_effect_outputs(
        confounded_fit, tmp_path / "out", input_path=tmp_path / "units.csv"
    )

    summary = json.loads(outputs.summary_json.read_text())
    assert summary["seed"] == 0
    assert summary["treatment"] == "t"
    assert summary["outcome"] == "y"
    assert summary["covariates"] == ["x0", "x1", "x2", "x3", "b0", "b1"]
    assert summary["index_column"] is None
    assert summary["validation_fraction"] == 0.3
    assert summary["bootstrap_samples"] == 200
    assert summary["interval_level"] == 0.95
    assert summary["min_group_size"] == 10
    assert summary["input"] == str(tmp_path / "units.csv")


def test_named_index_labels_outputs(confounded_fit, tmp_path):
    index = pd.Index(np.arange(1000, 1600), name="patient_id")
    data = dataclasses.replace(confounded_fit.data, index=index)
    fit = dataclasses.replace(confounded_fit, data=data)

    outputs = write_effect_outputs(fit, tmp_path / "out")

    written = pd.read_csv(outputs.ite_csv)
    assert written.columns[0] == "patient_id"
    assert written["patient_id"].iloc[0] == 1000
    assert json.loads(outputs.summary_json.read_text())["index_column"] == "patient_id"


def test_outputs_not_overwritten_by_default(confounded_fit, tmp_path):
    write_effect_outputs(confounded_fit, tmp_path / "out")
    (tmp_path / "out" / "summary.json").write_text("{}")

    with pytest.raises(FileExistsError, match="overwrite=True") as error:
        write_effect_outputs(confounded_fit, tmp_path / "out")

    assert "summary.json" in str(error.value)
    assert (tmp_path / "out" / "summary.json").read_text() == "{}"
    write_effect_outputs(confounded_fit, tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ate"] == (
        pytest.approx(confounded_fit.ate)
    )


def with_history(fit, epochs_run: int, best_epoch: int, patience: int | None):
    """``fit`` with a replaced training history and patience."""
    history = TrainingHistory(train_loss=[1.0] * epochs_run, best_epoch=best_epoch)
    training = dataclasses.replace(fit.model.config.training, patience=patience)
    config = dataclasses.replace(fit.model.config, training=training)
    model = dataclasses.replace(fit.model, history=history, config=config)
    return dataclasses.replace(fit, model=model)


@pytest.mark.parametrize(
    ("epochs_run", "best_epoch", "patience", "stopped_early"),
    [
        (50, 10, 40, True),  # 40 epochs without improvement: early stop
        (60, 30, 40, False),  # ran to the limit while still improving recently
        (60, 60, None, False),  # no patience, so never an early stop
    ],
)
def test_stopped_early(confounded_fit, epochs_run, best_epoch, patience, stopped_early):
    fit = with_history(confounded_fit, epochs_run, best_epoch, patience)

    assert fit.stopped_early is stopped_early
    assert fit.summary()["training"]["stopped_early"] is stopped_early
