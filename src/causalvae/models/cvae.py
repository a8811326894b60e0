"""The conditional VAE as a Pyro model and guide.

Generative story, one draw per image inside the plate ``data``::

    shape, scale, orientation, pos_x, pos_y ~ p(f | parents(f))   factor mechanisms
    z     ~ Normal(0, I)                                          style
    image ~ Bernoulli(decoder(z, factors))                        64×64 pixels

The guide is q(z | image, factors). A label encoder q(factors | image), trained with an
auxiliary cross-entropy loss next to the ELBO, makes unlabelled images answerable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE
from causalvae.models.mechanisms import FactorMechanisms, topological_order
from causalvae.models.networks import (
    GeometricDecoder,
    LabelEncoder,
    MLPDecoder,
    MLPEncoder,
    PooledEncoder,
)

Architecture = Literal["geometric", "mlp"]
Precision = Literal["bf16", "fp32"]
ARCHITECTURES: tuple[str, ...] = ("geometric", "mlp")
PRECISIONS: tuple[str, ...] = ("bf16", "fp32")

# Architecture defaults. ``mlp`` is the reference configuration: 1,000-unit softplus
# layers and a 50-dimensional z.
_DEFAULTS: dict[str, dict[str, int]] = {
    "geometric": {"z_dim": 4, "hidden": 64, "layers": 3},
    "mlp": {"z_dim": 50, "hidden": 1000, "layers": 2},
}


@dataclass
class ModelConfig:
    """Resolved model configuration, saved with every checkpoint.

    ``z_dim``, ``hidden`` and ``layers`` default to the architecture's values
    (geometric: 4, 64, 3; mlp: 50, 1000, 2) when left at ``None``.
    ``parents`` maps a factor to its parents in the factor graph; factors not listed
    are roots. An empty mapping means independent factors, as in dSprites.
    """

    architecture: Architecture = "geometric"
    z_dim: int | None = None
    hidden: int | None = None
    layers: int | None = None
    label_channels: int = 32
    precision: Precision = "bf16"
    parents: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; "
                f"choose one of {', '.join(ARCHITECTURES)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; "
                f"choose one of {', '.join(PRECISIONS)}"
            )
        # Reject unknown factors and cycles now rather than when a model is built.
        topological_order(self.parents)
        defaults = _DEFAULTS[self.architecture]
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
            elif getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build a configuration from :meth:`to_dict` output, rejecting unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown model configuration keys {sorted(unknown)}; "
                f"known keys: {sorted(known)}"
            )
        return cls(**dict(data))


class ConditionalVAE(nn.Module):
    """Label-conditioned VAE of dSprites images with Bernoulli pixels.

    Story per image: factors ~ mechanisms; ``z ~ Normal(0, I)``;
    ``image ~ Bernoulli(decoder(z, factors))``. Shapes: images ``(batch, 64, 64)``
    floats in [0, 1], factors ``(batch, 5)`` class indices, ``z`` ``(batch, z_dim)``.

    The networks are plain :class:`torch.nn.Module` attributes and are never registered
    in Pyro's global parameter store, so several models can live in one process.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        if c.architecture == "geometric":
            self.decoder: nn.Module = GeometricDecoder(c.z_dim, c.hidden, c.layers)
            self.encoder: nn.Module = PooledEncoder(c.z_dim)
        else:
            self.decoder = MLPDecoder(c.z_dim, c.hidden, c.layers)
            self.encoder = MLPEncoder(c.z_dim, c.hidden, c.layers)
        self.label_encoder = LabelEncoder(c.label_channels)
        self.mechanisms = FactorMechanisms(c.parents)

    @property
    def z_dim(self) -> int:
        """Dimension of the style latent ``z``."""
        return int(self.config.z_dim)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Run network forward passes in bf16 when ``config.precision`` is ``bf16``."""
        enabled = self.config.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
            yield

    # -- distributions of the generative story ---------------------------------------

    def z_prior(self, batch_size: int) -> dist.Distribution:
        """p(z) = Normal(0, I), batch shape ``(batch,)``, event shape ``(z_dim,)``."""
        loc = torch.zeros(batch_size, self.z_dim, device=self.device)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

    def image_logits(self, z: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of the pixels, ``(batch, 64, 64)`` float32."""
        with self.autocast():
            logits = self.decoder(z, factors)
        return logits.float()

    def image_probs(self, z: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``(batch, 64, 64)`` of p(image | z, factors)."""
        return torch.sigmoid(self.image_logits(z, factors))

    def image_dist(self, z: torch.Tensor, factors: torch.Tensor) -> dist.Distribution:
        """p(image | z, factors), event shape ``(64, 64)``."""
        return dist.Bernoulli(logits=self.image_logits(z, factors)).to_event(2)

    def z_posterior(self, images: torch.Tensor, factors: torch.Tensor) -> dist.Normal:
        """q(z | image, factors) as an independent Normal, event shape ``(z_dim,)``."""
        with self.autocast():
            z_loc, z_scale = self.encoder(images, factors)
        return dist.Normal(z_loc.float(), z_scale.float()).to_event(1)

    def label_logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of q(f | image) per factor, each ``(batch, K_f)``."""
        with self.autocast():
            logits = self.label_encoder(images)
        return {name: lg.float() for name, lg in zip(FACTOR_NAMES, logits, strict=True)}

    # -- Pyro model and guide --------------------------------------------------------

    def model(
        self,
        images: torch.Tensor | None = None,
        factors: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Run the generative story, observing the sites given as arguments.

        :param images: ``(batch, 64, 64)`` observed pixels, or ``None`` to sample them.
        :param factors: ``(batch, 5)`` observed class indices, or ``None`` to sample.
        :param batch_size: number of draws when neither images nor factors are given.
        :returns: the image sample ``(batch, 64, 64)``.
        """
        n = _batch_size(images, factors, batch_size)
        with pyro.plate("data", n):
            sampled = self.mechanisms.sample(factors, n, self.device)
            z = pyro.sample("z", self.z_prior(n))
            return pyro.sample("image", self.image_dist(z, sampled), obs=images)

    def guide(
        self,
        images: torch.Tensor | None = None,
        factors: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """q(z | image, factors), and q(f | image) for factors that are not observed."""
        if images is None:
            raise ValueError("the guide needs images; pass the observed images")
        n = images.shape[0]
        with pyro.plate("data", n):
            if factors is None:
                logits = self.label_logits(images)
                columns = [
                    pyro.sample(name, dist.Categorical(logits=logits[name]))
                    for name in FACTOR_NAMES
                ]
                factors = torch.stack(columns, dim=-1)
            return pyro.sample("z", self.z_posterior(images, factors))

    def label_loss(self, images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of q(factors | image) against the labels.

        Averaged over the batch and summed over the five factors.
        """
        logits = self.label_logits(images)
        losses = [
            nn.functional.cross_entropy(logits[name], factors[:, i])
            for i, name in enumerate(FACTOR_NAMES)
        ]
        return torch.stack(losses).sum()

    @torch.no_grad()
    def predict_factors(
        self,
        images: torch.Tensor,
        *,
        refine: Sequence[str] | bool = True,
        sweeps: int = 1,
        chunk_size: int = 4096,
    ) -> torch.Tensor:
        """Infer the factors of images: ``(batch, 5)`` class indices.

        Starts from the most probable factors under the label encoder q(f | image) and,
        unless ``refine`` is ``False``, improves them by analysis by synthesis: for each
        factor in ``refine`` (``True``: all five) every class is scored by
        ``log p(image | z, f) + log p(f)`` with the other factors held fixed and ``z``
        at the encoder's mean, and the best class is kept. One sweep costs
        ``sum(K_f)`` = 113 decoder passes per image for all five factors.
        """
        logits = self.label_logits(images)
        factors = torch.stack([logits[name].argmax(-1) for name in FACTOR_NAMES], -1)
        if refine is False:
            return factors
        names = list(FACTOR_NAMES) if refine is True else list(refine)
        for name in names:
            if name not in FACTOR_NAMES:
                raise ValueError(
                    f"unknown factor {name!r} to refine; "
                    f"known factors: {', '.join(FACTOR_NAMES)}"
                )
        n = images.shape[0]
        for _ in range(sweeps):
            for name in names:
                index = FACTOR_NAMES.index(name)
                size = FACTOR_SIZES[index]
                z = self.z_posterior(images, factors).mean
                candidates = factors.repeat_interleave(size, dim=0)
                candidates[:, index] = torch.arange(size, device=factors.device).repeat(
                    n
                )
                scores = torch.empty(n * size, device=factors.device)
                for start in range(0, n * size, chunk_size):
                    part = slice(start, start + chunk_size)
                    rows = torch.div(
                        torch.arange(start, min(start + chunk_size, n * size)),
                        size,
                        rounding_mode="floor",
                    ).to(factors.device)
                    likelihood = self.image_dist(z[rows], candidates[part])
                    scores[part] = likelihood.log_prob(images[rows])
                prior = self._log_prior(candidates)
                best = (scores + prior).view(n, size).argmax(-1)
                factors = factors.clone()
                factors[:, index] = best
        return factors

    def _log_prior(self, factors: torch.Tensor) -> torch.Tensor:
        """log p(factors) under the learned mechanisms, ``(batch,)``."""
        values = {name: factors[:, i] for i, name in enumerate(FACTOR_NAMES)}
        total = torch.zeros(factors.shape[0], device=factors.device)
        for i, name in enumerate(FACTOR_NAMES):
            table = self.mechanisms.logits(name, values)
            table = table.expand(factors.shape[0], -1)
            total = total + table.gather(-1, factors[:, i : i + 1]).squeeze(-1)
        return total


def _batch_size(
    images: torch.Tensor | None, factors: torch.Tensor | None, batch_size: int | None
) -> int:
    if images is not None:
        if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE) or images.dim() != 3:
            raise ValueError(
                f"images must have shape (batch, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                f"got {tuple(images.shape)}"
            )
        return images.shape[0]
    if factors is not None:
        if factors.dim() != 2 or factors.shape[-1] != len(FACTOR_SIZES):
            raise ValueError(
                f"factors must have shape (batch, {len(FACTOR_SIZES)}), "
                f"got {tuple(factors.shape)}"
            )
        return factors.shape[0]
    if batch_size is None:
        raise ValueError("pass images, factors or batch_size to size the plate")
    return batch_size
