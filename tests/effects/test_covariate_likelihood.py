"""Bernoulli likelihood for 0/1 covariates inside Pyro's CEVAE."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from causalvae.effects import CevaeConfig, TrainingSettings, fit_cevae_arrays
from causalvae.effects.covariates import MixedCovariateModel, binary_columns, whitener

TINY = CevaeConfig(
    latent_dim=2,
    hidden_dim=8,
    num_layers=2,
    ite_samples=4,
    training=TrainingSettings(epochs=2),
)


def mixed_splits(num_units: int = 100):
    rng = np.random.default_rng(0)
    z = rng.normal(size=num_units)
    x = np.column_stack([z + rng.normal(size=num_units), (z > 0).astype(float)])
    t = (rng.random(num_units) < 0.5).astype(float)
    y = t + z
    return (x[:70], t[:70], y[:70]), (x[70:], t[70:], y[70:])


def test_binary_columns_detected():
    x = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])

    assert binary_columns(x).tolist() == [True, False, True]


def test_whitener_keeps_binary_columns():
    x = torch.tensor([[0.0, 1.0], [2.0, 0.0], [4.0, 1.0]])
    mask = torch.tensor([False, True])

    whitened = whitener(x, mask)(x)

    assert torch.equal(whitened[:, 1], x[:, 1])
    assert whitened[:, 0].mean() == 0


class FixedOutput(torch.nn.Module):
    """Stands in for the covariate network: location 0 and scale 1 everywhere."""

    def forward(self, z):
        return torch.zeros(len(z), 2), torch.ones(len(z), 2)


def test_log_prob_splits_by_column():
    # One continuous and one binary column: Normal(0, 1) at 0.5 and
    # Bernoulli(logits=0) at 1.
    mask = torch.tensor([False, True])
    with pyro.settings.context(module_local_params=True):
        model = MixedCovariateModel(
            {
                "feature_dim": 2,
                "latent_dim": 1,
                "hidden_dim": 4,
                "num_layers": 1,
                "outcome_dist": "normal",
            },
            mask,
        )
    model.x_nn = FixedOutput()

    log_prob = model.x_dist(torch.zeros(1, 1)).log_prob(torch.tensor([[0.5, 1.0]]))

    expected = dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)) + np.log(0.5)
    assert abs(log_prob.item() - float(expected)) < 1e-6


def test_fit_uses_mixed_model_for_binary_columns():
    train, validation = mixed_splits()

    fitted = fit_cevae_arrays(train, validation, "continuous", config=TINY)

    assert isinstance(fitted.cevae.model, MixedCovariateModel)
    assert fitted.cevae.model.binary_mask.tolist() == [False, True]
    assert np.isfinite(fitted.ite(validation[0])).all()


def test_normal_likelihood_can_be_kept():
    train, validation = mixed_splits()
    config = CevaeConfig(**{**TINY.__dict__, "covariate_likelihood": "normal"})

    fitted = fit_cevae_arrays(train, validation, "continuous", config=config)

    assert not isinstance(fitted.cevae.model, MixedCovariateModel)
