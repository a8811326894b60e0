"""The Gumbel-max SCM: noise sites, exact abduction and the Gumbel posterior."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from scipy import stats

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE
from causalvae.pipeline import load_image_data
from causalvae.scm import NOISE_SITES, ImageSCM, refine_z, sample_gumbel_posterior
from causalvae.training import load_model

EULER_GAMMA = 0.5772156649015329
GUMBEL_STD = math.pi / math.sqrt(6)


@pytest.fixture
def observed(tiny_data_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Five held-out images of the tiny dataset with their factors."""
    data = load_image_data(tiny_data_file)
    return data.batch(data.heldout_index[:5], torch.device("cpu"))


# -- the Gumbel posterior -----------------------------------------------------------


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    batch=st.integers(1, 6),
    size=st.integers(2, 40),
    spread=st.floats(0.0, 30.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_gumbel_posterior_keeps_observed_class(batch, size, spread, seed) -> None:
    generator = torch.Generator().manual_seed(seed)
    raw = spread * torch.randn(batch, size, generator=generator)
    logits = torch.log_softmax(raw, dim=-1)
    observed = torch.randint(0, size, (batch,), generator=generator)

    noise = sample_gumbel_posterior(logits, observed, generator=generator)

    assert noise.shape == (batch, size)
    assert torch.isfinite(noise).all()
    assert torch.equal((logits + noise).argmax(-1), observed)


def test_gumbel_posterior_finite_for_rare_classes() -> None:
    # Class 1 is practically impossible: its noise is an ordinary Gumbel draw,
    # truncated far above anything that can be sampled.
    logits = torch.log_softmax(torch.tensor([[0.0, -150.0, -5.0]]), dim=-1).expand(
        2000, 3
    )
    observed = torch.zeros(2000, dtype=torch.long)

    noise = sample_gumbel_posterior(
        logits, observed, generator=torch.Generator().manual_seed(0)
    )

    assert torch.isfinite(noise).all()
    assert float(noise[:, 1].mean()) == pytest.approx(EULER_GAMMA, abs=0.1)


def test_gumbel_posterior_maximum_distribution() -> None:
    count = 20000
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0]).expand(count, 4)
    observed = torch.randint(0, 4, (count,), generator=torch.Generator().manual_seed(1))

    noise = sample_gumbel_posterior(
        logits, observed, generator=torch.Generator().manual_seed(2)
    )

    maximum = (logits + noise).max(-1).values.double().numpy()
    location = float(torch.logsumexp(logits[0], -1))
    # Mean and standard deviation of Gumbel(location, 1), with standard errors of
    # 0.009 and 0.01 over 20,000 draws.
    assert maximum.mean() == pytest.approx(location + EULER_GAMMA, abs=0.04)
    assert maximum.std() == pytest.approx(GUMBEL_STD, abs=0.04)
    assert stats.kstest(maximum, stats.gumbel_r(loc=location).cdf).pvalue > 1e-3


def test_gumbel_posterior_averages_to_prior_noise() -> None:
    # Drawing the class from its distribution and then the noise from its posterior
    # draws the noise from its prior: independent standard Gumbels.
    count = 20000
    probabilities = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probabilities.log().expand(count, 4)
    generator = torch.Generator().manual_seed(3)
    observed = torch.multinomial(
        probabilities, count, replacement=True, generator=generator
    )

    noise = sample_gumbel_posterior(logits, observed, generator=generator).double()

    for column in noise.T.numpy():
        assert column.mean() == pytest.approx(EULER_GAMMA, abs=0.04)
        assert column.std() == pytest.approx(GUMBEL_STD, abs=0.04)
        assert stats.kstest(column, stats.gumbel_r.cdf).pvalue > 1e-3
    correlation = np.corrcoef(noise.T.numpy())
    assert np.abs(correlation - np.eye(4)).max() < 0.04


def test_gumbel_posterior_follows_generator() -> None:
    logits = torch.log_softmax(torch.randn(4, 6), dim=-1)
    observed = torch.tensor([0, 5, 2, 2])

    draws = [
        sample_gumbel_posterior(
            logits, observed, generator=torch.Generator().manual_seed(seed)
        )
        for seed in (7, 7, 8)
    ]

    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


# -- the SCM ------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_scm_model_has_noise_and_value_sites(make_model, batch: int) -> None:
    vae = make_model()
    scm = ImageSCM(vae)

    trace = poutine.trace(scm.model).get_trace(batch)

    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True):
        assert trace.nodes[f"u_{name}"]["value"].shape == (batch, size)
        assert trace.nodes[name]["value"].shape == (batch,)
    assert trace.nodes["u_z"]["value"].shape == (batch, vae.z_dim)
    assert trace.nodes["u_image"]["value"].shape == (batch, IMAGE_SIZE, IMAGE_SIZE)
    for name in NOISE_SITES:
        assert not trace.nodes[name]["is_observed"], name
    output = trace.nodes["_RETURN"]["value"]
    assert torch.equal(output["z"], trace.nodes["u_z"]["value"])
    expected_image = trace.nodes["u_image"]["value"] < output["image_probs"]
    assert torch.equal(output["image"], expected_image.float())


def test_scm_factors_are_gumbel_max_of_mechanisms(make_model) -> None:
    vae = make_model(parents={"scale": ["shape"]})
    with torch.no_grad():
        vae.mechanisms.tables["scale"].copy_(torch.randn(3, 6))
    trace = poutine.trace(ImageSCM(vae).model).get_trace(4)

    output = trace.nodes["_RETURN"]["value"]
    values = {name: output["factors"][:, i] for i, name in enumerate(FACTOR_NAMES)}
    for name in FACTOR_NAMES:
        logits = vae.mechanisms.logits(name, values)
        expected = (logits + trace.nodes[f"u_{name}"]["value"]).argmax(-1)
        assert torch.equal(values[name], expected), name


def test_abduction_reproduces_observation(tiny_checkpoint: Path, observed) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed
    scm = ImageSCM(vae)

    noise = scm.abduct(images, factors, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = pyro.condition(scm.model, data=noise.as_data())(len(images))

    assert set(noise.as_data()) == set(NOISE_SITES)
    assert torch.equal(output["factors"], factors)
    assert torch.equal(output["image"], images)
    assert torch.equal(output["z"], noise.z)


def test_abduction_pixel_noise_brackets_probs(tiny_checkpoint: Path, observed) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed

    noise = ImageSCM(vae).abduct(images, factors)

    probs = vae.image_probs(noise.z, factors)
    on = images > 0.5
    assert (noise.image[on] < probs[on]).all()
    assert (noise.image[~on] >= probs[~on]).all()
    assert ((noise.image >= 0) & (noise.image <= 1)).all()


def test_abduction_uses_posterior_mean(tiny_checkpoint: Path, observed) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed

    noise = ImageSCM(vae).abduct(images, factors)

    assert torch.equal(noise.z, vae.z_posterior(images, factors).mean.detach())


def test_refine_z_raises_evidence_and_keeps_model(tiny_checkpoint: Path, observed):
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    start = vae.z_posterior(images, factors)

    refined = refine_z(vae, images, factors, start, steps=30, lr=0.1)

    def log_likelihood(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vae.image_dist(z, factors).log_prob(images).sum()

    assert refined.shape == start.mean.shape
    assert not refined.requires_grad
    assert log_likelihood(refined) > log_likelihood(start.mean.detach())
    for key, value in vae.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(parameter.requires_grad for parameter in vae.parameters())
    assert all(parameter.grad is None for parameter in vae.parameters())
