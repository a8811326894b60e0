"""The structural causal model built on a trained conditional VAE.

Exogenous noise and mechanisms, one site per node of the graph::

    u_f     ~ Gumbel(0, 1)^K_f                    for each factor f
    u_z     ~ Normal(0, I)
    u_image ~ Uniform(0, 1)^(64×64)

    f     := argmax(log p(f | parents(f)) + u_f)  Gumbel-max mechanism
    z     := u_z
    image := 1[u_image < decoder(z, factors)]    Bernoulli pixels as thresholded noise

The Gumbel-max mechanism draws f with probability p(f | parents(f)), so this SCM has the
same observational distribution as the VAE's model (Oberst and Sontag, 2019).
Abduction of the noise of one observed unit is exact for ``u_f`` and ``u_image`` and
amortized (the encoder, optionally refined by SVI) for ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.models import ConditionalVAE

NOISE_SITES: tuple[str, ...] = (
    *(f"u_{name}" for name in FACTOR_NAMES),
    "u_z",
    "u_image",
)


@dataclass
class Noise:
    """Exogenous noise of a batch of units.

    ``factors`` maps ``u_<factor>`` to Gumbel noise ``(batch, K_f)``; ``z`` is
    ``(batch, z_dim)``; ``image`` is uniform pixel noise ``(batch, 64, 64)``.
    """

    factors: dict[str, torch.Tensor]
    z: torch.Tensor
    image: torch.Tensor

    def as_data(self) -> dict[str, torch.Tensor]:
        """Return the noise as a ``pyro.condition`` data mapping keyed by site name."""
        return {**self.factors, "u_z": self.z, "u_image": self.image}


class ImageSCM:
    """Gumbel-max SCM of factors and images around a :class:`ConditionalVAE`."""

    def __init__(self, vae: ConditionalVAE) -> None:
        self.vae = vae

    @property
    def device(self) -> torch.device:
        """Device of the underlying model."""
        return self.vae.device

    def model(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Run the SCM forward; return the factors, ``z`` and the image probabilities.

        Sites: ``u_<factor>``, ``<factor>``, ``u_z``, ``z``, ``u_image``,
        ``image_probs`` and ``image``, all inside the plate ``data``.
        """
        mechanisms = self.vae.mechanisms
        device = self.device
        values: dict[str, torch.Tensor] = {}
        with pyro.plate("data", batch_size):
            # Factors in topological order, each a Gumbel-max of its log-probabilities.
            for name in mechanisms.order:
                size = FACTOR_SIZES[FACTOR_NAMES.index(name)]
                gumbel = dist.Gumbel(
                    torch.zeros(size, device=device), torch.ones(size, device=device)
                )
                u = pyro.sample(f"u_{name}", gumbel.to_event(1))
                logits = mechanisms.logits(name, values)
                value = torch.argmax(logits + u, dim=-1)
                values[name] = pyro.deterministic(name, value, event_dim=0).long()
            factors = torch.stack([values[n] for n in FACTOR_NAMES], dim=-1)

            # Style and pixels.
            u_z = pyro.sample("u_z", self.vae.z_prior(batch_size))
            z = pyro.deterministic("z", u_z, event_dim=1)
            probs = self.vae.image_probs(z, factors)
            pyro.deterministic("image_probs", probs, event_dim=2)
            uniform = dist.Uniform(torch.zeros_like(probs), torch.ones_like(probs))
            u_image = pyro.sample("u_image", uniform.to_event(2))
            image = pyro.deterministic("image", (u_image < probs).to(probs.dtype), 2)
        return {"factors": factors, "z": z, "image_probs": probs, "image": image}

    # -- abduction ------------------------------------------------------------------

    def abduct(
        self,
        images: torch.Tensor,
        factors: torch.Tensor,
        *,
        refine_steps: int = 0,
        refine_lr: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> Noise:
        """Infer the exogenous noise of observed units.

        :param images: ``(batch, 64, 64)`` observed binary images.
        :param factors: ``(batch, 5)`` observed or inferred factor classes.
        :param refine_steps: SVI steps refining q(z) against each image (0: the
            encoder's posterior mean alone).
        :returns: the units' noise; the factual image is reproduced exactly by the SCM
            run on it.
        """
        # Factor noise: exact Gumbel-max posterior given each observed class.
        values = {name: factors[:, i] for i, name in enumerate(FACTOR_NAMES)}
        factor_noise = {}
        for name in FACTOR_NAMES:
            logits = self.vae.mechanisms.logits(name, values).detach()
            logits = logits.expand(factors.shape[0], -1)
            factor_noise[f"u_{name}"] = sample_gumbel_posterior(
                logits, values[name], generator=generator
            )

        # Style: the encoder's posterior mean, optionally refined by SVI.
        with torch.no_grad():
            posterior = self.vae.z_posterior(images, factors)
        z = posterior.mean
        if refine_steps > 0:
            z = refine_z(
                self.vae, images, factors, posterior, steps=refine_steps, lr=refine_lr
            )

        # Pixel noise: exact, uniform below the probability where the pixel is on and
        # above it where it is off.
        with torch.no_grad():
            probs = self.vae.image_probs(z, factors)
        uniform = torch.rand(images.shape, device=images.device, generator=generator)
        u_image = torch.where(
            images > 0.5, uniform * probs, probs + uniform * (1 - probs)
        )
        return Noise(factor_noise, z.detach(), u_image)


def sample_gumbel_posterior(
    logits: torch.Tensor,
    observed: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample Gumbel noise ``u`` given that ``argmax(logits + u)`` equals ``observed``.

    Top-down construction (Maddison, Tarlow and Minka, 2014): the maximum of the
    perturbed logits is Gumbel with location ``logsumexp(logits)`` and is attained at
    the observed class; every other perturbed logit is a Gumbel with its own location
    truncated below that maximum.

    :param logits: ``(batch, K)`` log-probabilities.
    :param observed: ``(batch,)`` observed classes.
    :returns: noise ``(batch, K)`` in float64. Single precision can round a
        truncated logit up to the maximum, so that a class of log-probability near
        -65 would tie with the observed one.
    """
    logits = logits.double()

    def gumbel(shape: torch.Size) -> torch.Tensor:
        uniform = torch.rand(
            shape, device=logits.device, dtype=torch.float64, generator=generator
        )
        return -torch.log(-torch.log(uniform.clamp(min=1e-300)))

    maximum = torch.logsumexp(logits, dim=-1, keepdim=True) + gumbel(
        (*logits.shape[:-1], 1)
    )
    others = logits + gumbel(logits.shape)
    # -log(exp(-maximum) + exp(-others)), in a form that cannot overflow when a class
    # has a log-probability far below the others.
    truncated = -torch.logaddexp(-maximum, -others)
    perturbed = truncated.scatter(-1, observed[..., None], maximum)
    return perturbed - logits


def refine_z(
    vae: ConditionalVAE,
    images: torch.Tensor,
    factors: torch.Tensor,
    start: dist.Distribution,
    *,
    steps: int,
    lr: float = 0.05,
) -> torch.Tensor:
    """Refine q(z) per image by SVI against the image, starting from the encoder.

    Fits an independent Normal q(z) for each image by maximising
    ``E_q[log p(image | z, factors)] - KL(q(z) || p(z))`` with Adam, and returns
    its mean ``(batch, z_dim)``.
    """
    z_loc = start.mean.detach().clone().requires_grad_(True)
    z_log_scale = start.stddev.detach().log().clone().requires_grad_(True)
    n = images.shape[0]

    def model() -> None:
        with pyro.plate("data", n):
            z = pyro.sample("z", vae.z_prior(n))
            pyro.sample("image", vae.image_dist(z, factors), obs=images)

    def guide() -> None:
        with pyro.plate("data", n):
            pyro.sample("z", dist.Normal(z_loc, z_log_scale.exp()).to_event(1))

    optimizer = torch.optim.Adam([z_loc, z_log_scale], lr=lr)
    elbo = Trace_ELBO()
    frozen = [p for p in vae.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss = elbo.differentiable_loss(model, guide)
                loss.backward()
                optimizer.step()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return z_loc.detach()
