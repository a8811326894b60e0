r"""A Johnson SU outcome likelihood for CEVAE, for continuous outcomes with long tails.

Pyro 1.9's continuous outcome net gives :math:`y \sim \mathcal{N}(\mu, \sigma)` with
both parameters learned per unit. Where a few units have outcomes far from the rest,
as where the outcome grows exponentially in the covariates, the fit can widen their
:math:`\sigma` instead of moving their :math:`\mu`. The gradient on :math:`\mu` is
divided by :math:`\sigma^2`, so such units stay badly fitted.

:class:`JohnsonSU` models the standardised outcome as

.. math::

    y = \sinh(u), \qquad u \sim \mathcal{N}(\mu, \sigma),

Johnson's SU family with location 0 and scale 1. Near 0, where most standardised
outcomes lie, :math:`\sinh(u) \approx u` and the likelihood is close to Normal. In
the tails, :math:`u = \operatorname{asinh}(y)` grows like :math:`\log 2|y|`, so a
large outcome is a moderate :math:`u`. Its mean has the closed form

.. math::

    \mathbb{E}[y] = \sinh(\mu)\, e^{\sigma^2 / 2},

which is what :meth:`pyro.contrib.cevae.Model.y_mean` reads for effects.

:class:`JohnsonSUNet` is the network. Pyro looks outcome nets up by class name, so
``outcome_dist="johnsonsu"`` selects it in both the model and the guide.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
from pyro.contrib.cevae import DistributionNet, FullyConnected
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

LOC_MARGIN = 0.5
"""How far :math:`\\mu` may leave the training outcomes' range, in units of
:math:`u = \\operatorname{asinh}(y)`. In the tails this lets a mean exceed the most
extreme training outcome by a factor of about :math:`e^{0.5} \\approx 1.65`."""
SCALE_LIMIT = 1.5
"""Bound on :math:`\\sigma`, which keeps :math:`e^{\\sigma^2/2}` below 3.1."""


class SinhTransform(Transform):
    """The bijection ``y = sinh(u)`` on the real line."""

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SinhTransform)

    def __hash__(self) -> int:
        return hash(SinhTransform)

    def _call(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sinh(u)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.asinh(y)

    def log_abs_det_jacobian(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return ``log cosh(u)``, computed without overflow for large ``|u|``."""
        magnitude = u.abs()
        return magnitude + torch.log1p(torch.exp(-2 * magnitude)) - math.log(2)


class JohnsonSU(dist.TransformedDistribution):
    """The distribution of ``sinh(u)`` for ``u ~ Normal(loc, scale)``.

    :param loc: :math:`\\mu`, any shape.
    :param scale: :math:`\\sigma > 0`, broadcastable with ``loc``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        base = dist.Normal(loc, scale, validate_args=validate_args)
        self.loc, self.scale = base.loc, base.scale
        super().__init__(base, [SinhTransform()], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size, _instance: JohnsonSU | None = None
    ) -> JohnsonSU:
        """Return the distribution with ``loc`` and ``scale`` expanded to
        ``batch_shape``."""
        shape = torch.Size(batch_shape)
        return JohnsonSU(self.loc.expand(shape), self.scale.expand(shape))

    @property
    def mean(self) -> torch.Tensor:
        """Mean ``sinh(loc) * exp(scale**2 / 2)``."""
        return torch.sinh(self.loc) * torch.exp(self.scale**2 / 2)


class JohnsonSUNet(DistributionNet):
    """A network giving the ``(loc, scale)`` of a :class:`JohnsonSU` outcome.

    :param sizes: layer widths, from the input to the last hidden layer; the net
        adds the two outputs.
    """

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.fc = FullyConnected([*sizes, 2])
        # Bounds of loc; bound_outcome_nets narrows them to the training outcomes.
        self.register_buffer("loc_low", torch.tensor(-10.0))
        self.register_buffer("loc_high", torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loc, scale)``, each of the batch shape of ``x``."""
        loc_scale = self.fc(x)
        loc = loc_scale[..., 0].clamp(min=self.loc_low, max=self.loc_high)
        scale = nn.functional.softplus(loc_scale[..., 1]).clamp(
            min=1e-3, max=SCALE_LIMIT
        )
        return loc, scale

    @staticmethod
    def make_dist(loc: torch.Tensor, scale: torch.Tensor) -> JohnsonSU:
        """Return the outcome distribution for the network's outputs."""
        return JohnsonSU(loc, scale)


def bound_outcome_nets(module: nn.Module, outcomes: torch.Tensor) -> None:
    """Keep the mean of every :class:`JohnsonSUNet` in ``module`` near the range of
    the standardised training ``outcomes``.

    An exponential link extrapolates steeply: without a bound, one held-out unit of
    an IHDP replication received a counterfactual mean of 146 standard deviations
    where the training outcomes spanned -2.6 to 3.5.
    """
    low = float(torch.asinh(outcomes.min())) - LOC_MARGIN
    high = float(torch.asinh(outcomes.max())) + LOC_MARGIN
    for net in module.modules():
        if isinstance(net, JohnsonSUNet):
            net.loc_low.fill_(low)
            net.loc_high.fill_(high)
