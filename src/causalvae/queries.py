"""Causal queries on a trained model: conditioning, interventions and counterfactuals.

All three go through Pyro's effect handlers: ``pyro.condition`` with exact discrete
inference (:func:`pyro.infer.infer_discrete`) for conditioning, ``pyro.do`` on the SCM
for interventions, and abduction, ``pyro.do`` and ``pyro.condition`` on the abducted
noise for counterfactuals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.infer import config_enumerate, infer_discrete

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.models import ConditionalVAE
from causalvae.scm import ImageSCM, Noise

logger = logging.getLogger(__name__)

Intervention = Mapping[str, int]
"""Factor name → class index, e.g. ``{"shape": 2, "pos_x": 12}``."""


def validate_assignment(
    assignment: Mapping[str, int | torch.Tensor], *, what: str = "intervention"
) -> None:
    """Reject unknown factor names and out-of-range classes with a ``ValueError``.

    A misspelled factor would otherwise be a silent no-op in ``pyro.do`` and
    ``pyro.condition``, which ignore names that match no site.
    """
    for name, value in assignment.items():
        if name not in FACTOR_NAMES:
            raise ValueError(
                f"unknown factor {name!r} in the {what}; "
                f"known factors: {', '.join(FACTOR_NAMES)}"
            )
        size = FACTOR_SIZES[FACTOR_NAMES.index(name)]
        values = torch.as_tensor(value)
        if values.is_floating_point():
            raise ValueError(
                f"{what} value for {name!r} must be a class index (integer), "
                f"got {value!r}"
            )
        if values.numel() and (values.min() < 0 or values.max() >= size):
            raise ValueError(
                f"{what} value for {name!r} is out of range: classes run from 0 "
                f"to {size - 1}, got {value!r}"
            )


def _as_site_data(
    assignment: Mapping[str, int | torch.Tensor], batch: int, device: torch.device
) -> dict[str, torch.Tensor]:
    data = {}
    for name, value in assignment.items():
        tensor = torch.as_tensor(value, dtype=torch.long, device=device)
        data[name] = tensor.expand(batch) if tensor.dim() == 0 else tensor
    return data


@dataclass
class QuerySamples:
    """Samples from a query: factors ``(n, 5)``, image probabilities and images
    ``(n, 64, 64)``."""

    factors: torch.Tensor
    image_probs: torch.Tensor
    images: torch.Tensor


@dataclass
class CounterfactualResult:
    """A counterfactual for a batch of units.

    ``factual_factors`` and ``counterfactual_factors`` are ``(batch, 5)``;
    ``factual_probs`` (the reconstruction), ``counterfactual_probs`` and
    ``counterfactual_images`` (a sample sharing each unit's pixel noise) are
    ``(batch, 64, 64)``.
    """

    factual_factors: torch.Tensor
    counterfactual_factors: torch.Tensor
    factual_probs: torch.Tensor
    counterfactual_probs: torch.Tensor
    counterfactual_images: torch.Tensor
    noise: Noise


def _factor_model(vae: ConditionalVAE, n: int) -> dict[str, torch.Tensor]:
    with pyro.plate("data", n):
        return vae.mechanisms.sample_sites(None, n, vae.device)


@torch.no_grad()
def condition(
    vae: ConditionalVAE, evidence: Intervention, num_samples: int = 16
) -> QuerySamples:
    """Sample p(factors, image | evidence) for evidence on factors.

    The factors are drawn from their exact posterior under the learned mechanisms by
    variable elimination (``infer_discrete``), then ``z`` from its prior and the image
    from the decoder.
    """
    validate_assignment(evidence, what="evidence")
    data = _as_site_data(evidence, num_samples, vae.device)
    conditioned = pyro.condition(lambda: _factor_model(vae, num_samples), data=data)
    sampler = infer_discrete(config_enumerate(conditioned), first_available_dim=-2)
    values = sampler()
    factors = torch.stack(
        [values[name].reshape(num_samples) for name in FACTOR_NAMES], dim=-1
    )
    z = vae.z_prior(num_samples).sample()
    probs = vae.image_probs(z, factors)
    return QuerySamples(factors, probs, torch.bernoulli(probs))


def _check_intervened(trace: poutine.Trace, do: Mapping[str, object]) -> None:
    for name in do:
        if name not in trace.nodes:
            raise ValueError(
                f"the intervention on {name!r} reached no site of the model; "
                f"sites: {', '.join(n for n in trace.nodes if not n.startswith('_'))}"
            )


@torch.no_grad()
def intervene(
    vae: ConditionalVAE, do: Intervention, num_samples: int = 16
) -> QuerySamples:
    """Sample p(factors, image | do(...)) from the SCM under ``pyro.do``."""
    validate_assignment(do)
    scm = ImageSCM(vae)
    data = _as_site_data(do, num_samples, vae.device)
    trace = poutine.trace(pyro.do(scm.model, data=data)).get_trace(num_samples)
    _check_intervened(trace, data)
    out = trace.nodes["_RETURN"]["value"]
    return QuerySamples(out["factors"], out["image_probs"], out["image"])


@torch.no_grad()
def counterfactual(
    vae: ConditionalVAE,
    images: torch.Tensor,
    do: Intervention,
    factors: torch.Tensor | None = None,
    *,
    refine_steps: int = 0,
    generator: torch.Generator | None = None,
) -> CounterfactualResult:
    """Answer "what would these images have been under do(...)?".

    :param images: ``(batch, 64, 64)`` observed binary images.
    :param do: the intervention, factor name → class index (or a ``(batch,)`` tensor).
    :param factors: ``(batch, 5)`` the units' factors; inferred from the images by
        q(factors | image) when ``None``.
    :param refine_steps: per-query SVI steps refining z against the image.
    """
    validate_assignment(do)
    if images.dim() != 3 or images.shape[-2:] != (64, 64):
        raise ValueError(
            f"images must have shape (batch, 64, 64), got {tuple(images.shape)}"
        )
    images = images.to(vae.device).float()
    n = images.shape[0]
    if factors is None:
        factors = vae.predict_factors(images)
    factors = factors.to(vae.device).long()
    scm = ImageSCM(vae)

    # Abduction: the noise of each unit given its image and factors.
    noise = scm.abduct(images, factors, refine_steps=refine_steps, generator=generator)
    factual_probs = vae.image_probs(noise.z, factors)

    # Action: replace the mechanisms of the intervened factors.
    data = _as_site_data(do, n, vae.device)
    intervened = pyro.do(scm.model, data=data)

    # Prediction: run the intervened SCM on the abducted noise.
    predicted = pyro.condition(intervened, data=noise.as_data())
    trace = poutine.trace(predicted).get_trace(n)
    _check_intervened(trace, data)
    out = trace.nodes["_RETURN"]["value"]
    return CounterfactualResult(
        factual_factors=factors,
        counterfactual_factors=out["factors"],
        factual_probs=factual_probs,
        counterfactual_probs=out["image_probs"],
        counterfactual_images=out["image"],
        noise=noise,
    )
