"""CEVAE training: divergence guard, early stopping, best weights and seeds."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pyro
import pytest
import torch
from pyro.contrib.cevae import TraceCausalEffect_ELBO

from causalvae.effects import (
    CevaeConfig,
    FittedCevae,
    TrainingDivergedError,
    TrainingSettings,
    fit_cevae_arrays,
)
from causalvae.effects.outcomes import LOC_MARGIN, JohnsonSUNet

TINY = CevaeConfig(
    latent_dim=2,
    hidden_dim=8,
    num_layers=2,
    ite_samples=4,
    training=TrainingSettings(epochs=3, batch_size=50, validation_particles=2),
)


def make_splits(num_units: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=num_units)
    x = z[:, None] + 0.5 * rng.normal(size=(num_units, 3))
    t = (rng.random(num_units) < 1 / (1 + np.exp(-z))).astype(float)
    y = t + z + 0.3 * rng.normal(size=num_units)
    cut = int(0.7 * num_units)
    return (x[:cut], t[:cut], y[:cut]), (x[cut:], t[cut:], y[cut:])


def patch_loss(monkeypatch, transform):
    """Replace the CEVAE loss by ``transform(attempt, call, loss)``.

    ``attempt`` counts the models trained so far and ``call`` the loss calls of
    the current model, both from 1.
    """
    original = TraceCausalEffect_ELBO.differentiable_loss
    calls_per_model: dict[int, int] = {}

    def patched(self, model, guide, *args, **kwargs):
        calls_per_model[id(model)] = calls_per_model.get(id(model), 0) + 1
        attempt = list(calls_per_model).index(id(model)) + 1
        loss = original(self, model, guide, *args, **kwargs)
        return transform(attempt, calls_per_model[id(model)], loss)

    monkeypatch.setattr(TraceCausalEffect_ELBO, "differentiable_loss", patched)


def test_nan_loss_retried_then_raises(monkeypatch, caplog):
    patch_loss(monkeypatch, lambda attempt, call, loss: loss * float("nan"))
    train, validation = make_splits()

    with (
        caplog.at_level(logging.WARNING, logger="causalvae.effects.model"),
        pytest.raises(TrainingDivergedError, match="diverged twice") as error,
    ):
        fit_cevae_arrays(train, validation, "continuous", config=TINY)

    attempts = error.value.attempts
    assert len(attempts) == 2
    assert attempts[0][0] == pytest.approx(1e-3)
    assert attempts[1][0] == pytest.approx(1e-4)
    assert "training loss is nan" in attempts[0][2]
    assert "retrying once with learning rate 0.0001" in caplog.text


def test_nan_in_first_attempt_only_recovers(monkeypatch):
    patch_loss(
        monkeypatch,
        lambda attempt, call, loss: loss * float("nan") if attempt == 1 else loss,
    )
    train, validation = make_splits()

    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)

    assert fitted.history.retried
    assert fitted.history.learning_rate == pytest.approx(1e-4)
    assert np.isfinite(fitted.ite(validation[0])).all()


def test_exploding_loss_raises(monkeypatch):
    # Two training steps and one validation call per epoch: from the second epoch
    # of each attempt on, the loss is a million times larger.
    patch_loss(
        monkeypatch, lambda attempt, call, loss: loss * 1e6 if call > 3 else loss
    )
    train, validation = make_splits()

    with pytest.raises(TrainingDivergedError) as error:
        fit_cevae_arrays(train, validation, "continuous", config=TINY)

    for _learning_rate, epoch, reason in error.value.attempts:
        assert epoch == 2
        assert "exceeds" in reason


def test_explosion_in_first_attempt_only_recovers(monkeypatch):
    patch_loss(
        monkeypatch,
        lambda attempt, call, loss: loss * 1e6 if attempt == 1 and call > 3 else loss,
    )
    train, validation = make_splits()

    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)

    assert fitted.history.retried
    assert fitted.history.epochs_run == 3


def test_no_divergence_without_nan():
    train, validation = make_splits()

    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)

    assert not fitted.history.retried
    assert fitted.history.epochs_run == 3
    assert np.isfinite(fitted.history.validation_loss).all()


def test_early_stop_keeps_best_weights(monkeypatch):
    # Validation losses 3, 1, 2, 4, 5, ...: epoch 2 is best, and with a patience
    # of 2 training stops after epoch 4.
    scripted = iter([3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    evaluated_weights = []

    def scripted_loss(self, model, guide, *args, **kwargs):
        evaluated_weights.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted) * len(args[0])

    monkeypatch.setattr(TraceCausalEffect_ELBO, "loss", scripted_loss)
    settings = TrainingSettings(epochs=8, batch_size=50, patience=2)
    config = CevaeConfig(latent_dim=2, hidden_dim=8, num_layers=2, training=settings)
    train, validation = make_splits()

    fitted = fit_cevae_arrays(train, validation, "continuous", config=config)

    assert fitted.history.best_epoch == 2
    assert fitted.history.epochs_run == 4
    assert fitted.history.validation_loss == [3.0, 1.0, 2.0, 4.0]
    final = fitted.cevae.model.state_dict()
    for name, value in evaluated_weights[1].items():
        assert torch.equal(final[name], value), name


def test_same_seed_same_effects():
    train, validation = make_splits()

    first = fit_cevae_arrays(train, validation, "continuous", config=TINY, seed=3)
    second = fit_cevae_arrays(train, validation, "continuous", config=TINY, seed=3)

    assert np.array_equal(first.ite(validation[0]), second.ite(validation[0]))


def test_global_random_state_untouched():
    train, validation = make_splits()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    fit_cevae_arrays(train, validation, "continuous", config=TINY, seed=5)

    assert torch.equal(torch.rand(3), expected)


def test_binary_outcome_effects_are_probability_differences():
    (x, t, y), (x_valid, t_valid, y_valid) = make_splits()
    train = (x, t, (y > 0).astype(float))
    validation = (x_valid, t_valid, (y_valid > 0).astype(float))

    fitted = fit_cevae_arrays(train, validation, "binary", config=TINY)
    ite = fitted.ite(x_valid)
    y0, y1 = fitted.potential_outcomes(x_valid)

    assert fitted.outcome_scale == 1.0
    assert ((ite >= -1) & (ite <= 1)).all()
    assert ((y0 >= 0) & (y0 <= 1) & (y1 >= 0) & (y1 <= 1)).all()


def test_covariate_shape_checked():
    train, validation = make_splits()
    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)

    with pytest.raises(ValueError, match=r"\(units, 3\)"):
        fitted.ite(np.zeros((4, 5)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("learning_rate", -1.0), ("learning_rate_decay", 0.0)],
)
def test_invalid_training_settings_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingSettings(**{field: value})


@pytest.mark.parametrize("abduction", ["per_arm", "sampled"])
@pytest.mark.parametrize("likelihood", ["normal", "johnson_su"])
def test_ite_matches_potential_outcomes(abduction, likelihood):
    train, validation = make_splits()
    config = dataclasses.replace(
        TINY, abduction=abduction, outcome_likelihood=likelihood
    )
    fitted = fit_cevae_arrays(train, validation, "continuous", config=config)

    ite = fitted.ite(validation[0], seed=4)
    y0, y1 = fitted.potential_outcomes(validation[0], seed=4)

    assert np.allclose(ite, y1 - y0, atol=1e-5)


def test_sampled_abduction_is_pyros_ite():
    train, validation = make_splits()
    config = dataclasses.replace(TINY, abduction="sampled")
    fitted = fit_cevae_arrays(train, validation, "continuous", config=config)
    x = torch.as_tensor(validation[0], dtype=torch.float32)

    ours = fitted.ite(validation[0], num_samples=1, seed=5)
    with pyro.settings.context(module_local_params=True):
        torch.manual_seed(5)
        pyros = fitted.cevae.ite(x, num_samples=1).double().numpy()

    assert np.allclose(ours, pyros * fitted.outcome_scale, atol=1e-5)


def test_per_arm_abduction_fixes_guide_treatment():
    train, validation = make_splits()
    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)
    seen = []
    guide = fitted.cevae.guide
    original = type(guide).z_dist

    def recording(self, y, t, x):
        seen.append(t.clone())
        return original(self, y, t, x)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(guide), "z_dist", recording)
        fitted.potential_outcomes(validation[0], num_samples=1)

    assert [set(t.tolist()) for t in seen] == [{0.0}, {1.0}]


def test_johnson_su_outcome_used_when_configured():
    train, validation = make_splits()
    config = dataclasses.replace(TINY, outcome_likelihood="johnson_su")

    fitted = fit_cevae_arrays(train, validation, "continuous", config=config)

    for nets in (fitted.cevae.model, fitted.cevae.guide):
        assert isinstance(nets.y0_nn, JohnsonSUNet)
        assert isinstance(nets.y1_nn, JohnsonSUNet)
    # The mean stays within the training outcomes' range widened by the margin.
    y_train = (train[2] - fitted.outcome_loc) / fitted.outcome_scale
    assert float(fitted.cevae.model.y0_nn.loc_high) == pytest.approx(
        np.arcsinh(y_train.max()) + LOC_MARGIN, rel=1e-5
    )


def test_unknown_outcome_likelihood_rejected():
    with pytest.raises(ValueError, match="johnson_su or normal"):
        CevaeConfig(outcome_likelihood="gamma")


def test_unknown_abduction_rejected():
    with pytest.raises(ValueError, match="per_arm or sampled"):
        CevaeConfig(abduction="guess")


def test_non_finite_effects_count_as_divergence(monkeypatch):
    def nan_outcomes(self, covariates, num_samples=None, seed=0):
        nan = np.full(len(covariates), np.nan)
        return nan, nan

    monkeypatch.setattr(FittedCevae, "potential_outcomes", nan_outcomes)
    train, validation = make_splits()

    with pytest.raises(TrainingDivergedError) as caught:
        fit_cevae_arrays(train, validation, "continuous", config=TINY)

    assert "effects on validation units are not finite" in str(caught.value)
    assert len(caught.value.attempts) == 2
