"""The Johnson SU outcome likelihood: density, mean, sampling and its network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyro.contrib.cevae import DistributionNet
from scipy import stats

from causalvae.effects.outcomes import (
    LOC_MARGIN,
    SCALE_LIMIT,
    JohnsonSU,
    JohnsonSUNet,
    SinhTransform,
    bound_outcome_nets,
)


@given(
    loc=st.floats(-3, 3),
    scale=st.floats(0.05, 2),
    y=st.floats(-50, 50),
)
@settings(max_examples=50, deadline=None)
def test_density_is_scipys_johnson_su(loc, scale, y):
    # scipy's johnsonsu(a, b): asinh(y) = (z - a) / b with z standard Normal.
    expected = stats.johnsonsu(a=-loc / scale, b=1 / scale).logpdf(y)
    # scipy underflows to -inf far in the tails, where this density is finite.
    assume(np.isfinite(expected))

    double = torch.float64
    got = JohnsonSU(torch.tensor(loc, dtype=double), torch.tensor(scale, dtype=double))
    value = got.log_prob(torch.tensor(y, dtype=double))

    assert float(value) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.5), (1.5, 0.3), (-2.0, 1.0)])
def test_mean_matches_samples(loc, scale):
    torch.manual_seed(0)
    distribution = JohnsonSU(torch.tensor(loc), torch.tensor(scale))

    samples = distribution.sample((400_000,))

    expected = stats.johnsonsu(a=-loc / scale, b=1 / scale).mean()
    assert float(distribution.mean) == pytest.approx(expected, rel=1e-5)
    assert float(samples.mean()) == pytest.approx(expected, rel=0.02, abs=0.01)


def test_expand_keeps_parameters():
    distribution = JohnsonSU(torch.tensor([0.5]), torch.tensor([0.2]))

    expanded = distribution.expand((3, 4))

    assert expanded.batch_shape == (3, 4)
    assert torch.allclose(expanded.mean, distribution.mean.expand(3, 4))


def test_log_cosh_stable_for_large_inputs():
    u = torch.tensor([0.0, 1.0, 100.0, -400.0], dtype=torch.float64)

    value = SinhTransform().log_abs_det_jacobian(u, torch.sinh(u))

    assert torch.isfinite(value).all()
    assert torch.allclose(value[:2], torch.log(torch.cosh(u[:2])))
    assert float(value[2]) == pytest.approx(100 - np.log(2))
    assert float(value[3]) == pytest.approx(400 - np.log(2))


def test_pyro_finds_the_net_by_name():
    assert DistributionNet.get_class("johnsonsu") is JohnsonSUNet


@pytest.mark.parametrize("bias", [1e3, -1e3])
def test_net_keeps_mean_near_training_range(bias):
    net = JohnsonSUNet([4, 8])
    with torch.no_grad():
        net.fc[-1].bias.fill_(bias)
    bound_outcome_nets(torch.nn.ModuleList([net]), torch.tensor([-1.0, 0.3, 2.0]))

    loc, scale = net(torch.randn(5, 4))

    assert loc.shape == (5,)
    low, high = np.arcsinh(-1.0) - LOC_MARGIN, np.arcsinh(2.0) + LOC_MARGIN
    expected = torch.full_like(loc, high if bias > 0 else low)
    assert torch.allclose(loc, expected)
    assert torch.all(scale <= SCALE_LIMIT)
