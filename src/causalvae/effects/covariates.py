"""Covariate likelihoods for CEVAE: Normal for continuous columns and Bernoulli for
0/1 columns.

Pyro 1.9's :class:`pyro.contrib.cevae.Model` models every standardised covariate
as Normal with a learned scale. On 0/1 columns that scale can shrink towards its
floor of 1e-3, so the covariate term grows without bound and crowds out the
outcome in the ELBO. Louizos et al. (2017) model binary covariates as Bernoulli
instead. :class:`MixedCovariateModel` does that by overriding only
:meth:`~pyro.contrib.cevae.Model.x_dist`; every other part of Pyro's CEVAE is used
as it is.
"""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import torch
from pyro.contrib.cevae import Model, PreWhitener


class MixedCovariateModel(Model):
    """Pyro's CEVAE generative model with Bernoulli binary covariates::

        x_j ~ Bernoulli(logits=loc_j(z))        for 0/1 columns j
        x_j ~ Normal(loc_j(z), scale_j(z))      for the other columns

    :param config: the configuration dict of :class:`pyro.contrib.cevae.Model`.
    :param binary_mask: ``(covariates,)`` bool, true for the 0/1 columns.
    """

    def __init__(self, config: dict[str, object], binary_mask: torch.Tensor) -> None:
        super().__init__(config)
        self.register_buffer("binary_mask", binary_mask.bool())

    def x_dist(self, z: torch.Tensor) -> dist.Distribution:
        """Return ``p(x | z)`` with event shape ``(covariates,)``."""
        loc, scale = self.x_nn(z)
        normal = dist.Normal(loc, scale)
        # The Bernoulli also scores the continuous columns, whose values lie outside
        # its support; MaskedMixture discards those scores.
        bernoulli = dist.Bernoulli(logits=loc, validate_args=False)
        return dist.MaskedMixture(self.binary_mask, normal, bernoulli).to_event(1)


def binary_columns(covariates: np.ndarray) -> np.ndarray:
    """Return a ``(covariates,)`` bool mask, true for columns of only 0 and 1."""
    return np.isin(covariates, (0.0, 1.0)).all(axis=0)


def whitener(x_train: torch.Tensor, binary_mask: torch.Tensor) -> PreWhitener:
    """Standardise the continuous columns with the training mean and standard
    deviation, and leave the 0/1 columns as they are for the Bernoulli."""
    whiten = PreWhitener(x_train)
    with torch.no_grad():
        whiten.loc[binary_mask] = 0.0
        whiten.inv_scale[binary_mask] = 1.0
    return whiten
