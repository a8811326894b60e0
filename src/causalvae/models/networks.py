"""Neural networks behind the conditional VAE's distributions.

Every network takes images as float tensors ``(batch, 64, 64)`` in [0, 1] and factors
as class indices ``(batch, 5)`` in the order of
:data:`causalvae.data.spec.FACTOR_NAMES`.
Decoders return Bernoulli logits ``(batch, 64, 64)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from causalvae.data.spec import FACTOR_SIZES, IMAGE_SIZE, factor_values

NUM_CLASSES_TOTAL = sum(FACTOR_SIZES)

# Sprite geometry of the dSprites renderer, in pixels: the anchor of a sprite is at
# 16 + 32 * position, and every outline at scale 1 fits in a disc of radius 14 around
# it (the square's half-diagonal is 9.6 * sqrt(2) = 13.6).
ANCHOR_OFFSET = 16.0
ANCHOR_RANGE = 32.0
WINDOW = 32
COORDINATE_UNIT = 8.0


def one_hot_factors(classes: torch.Tensor) -> torch.Tensor:
    """Concatenate the one-hot codes of the five factors: ``(batch, 113)`` floats."""
    codes = [
        F.one_hot(classes[..., i], size).to(torch.float32)
        for i, size in enumerate(FACTOR_SIZES)
    ]
    return torch.cat(codes, dim=-1)


def _mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPDecoder(nn.Module):
    """Fully connected decoder p(image | z, factors) over flattened pixels.

    The reference configuration: softplus layers of 1,000 units on the concatenation of
    ``z`` and the one-hot factors.
    """

    def __init__(self, z_dim: int, hidden: int = 1000, layers: int = 2) -> None:
        super().__init__()
        sizes = [z_dim + NUM_CLASSES_TOTAL, *[hidden] * layers, IMAGE_SIZE * IMAGE_SIZE]
        self.net = _mlp(sizes, nn.Softplus)

    def forward(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([z, one_hot_factors(classes).to(z.dtype)], dim=-1)
        return self.net(inputs).view(*z.shape[:-1], IMAGE_SIZE, IMAGE_SIZE)


class MLPEncoder(nn.Module):
    """Fully connected encoder q(z | image, factors) returning ``(z_loc, z_scale)``."""

    def __init__(self, z_dim: int, hidden: int = 1000, layers: int = 2) -> None:
        super().__init__()
        sizes = [IMAGE_SIZE * IMAGE_SIZE + NUM_CLASSES_TOTAL, *[hidden] * layers]
        self.body = nn.Sequential(_mlp(sizes, nn.Softplus), nn.Softplus())
        self.loc = nn.Linear(hidden, z_dim)
        self.scale = nn.Linear(hidden, z_dim)

    def forward(
        self, images: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flat = images.reshape(*images.shape[:-2], IMAGE_SIZE * IMAGE_SIZE)
        hidden = self.body(torch.cat([flat, one_hot_factors(classes)], dim=-1))
        return self.loc(hidden), F.softplus(self.scale(hidden)) + 1e-4


class PooledEncoder(nn.Module):
    """Small encoder q(z | image, factors): the image pooled to 16×16, then an MLP.

    In a label-conditioned model ``z`` only has to carry what the factors do not
    explain, so a cheap encoder suffices and keeps training time on the decoder.
    """

    def __init__(self, z_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(16 * 16 + NUM_CLASSES_TOTAL, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
        )
        self.loc = nn.Linear(hidden, z_dim)
        self.scale = nn.Linear(hidden, z_dim)

    def forward(
        self, images: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(images.unsqueeze(-3), 4).flatten(-3)
        hidden = self.body(torch.cat([pooled, one_hot_factors(classes)], dim=-1))
        return self.loc(hidden), F.softplus(self.scale(hidden)) + 1e-4


class GeometricDecoder(nn.Module):
    """Coordinate-based decoder behind the fixed geometric transform of a sprite.

    Each pixel centre is mapped into the sprite's own frame by undoing the translation,
    rotation and scale that the factors prescribe::

        (u, v) = R(theta)^T (x - anchor) / scale

    and a small MLP of ``(u, v)``, conditioned on the shape, the scale and ``z``,
    returns the pixel's logit. Only a ``32×32`` window around the anchor is evaluated,
    since every sprite fits inside it; pixels outside share one learned background
    logit. This builds in the equivariance of sprites to position, rotation and scale,
    which generic decoders must learn from data.
    """

    def __init__(self, z_dim: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.pixel_in = nn.Linear(2, hidden)
        self.image_in = nn.Linear(FACTOR_SIZES[0] + FACTOR_SIZES[1] + z_dim, hidden)
        self.body = _mlp([hidden] * layers + [1], nn.SiLU)
        self.background = nn.Parameter(torch.tensor(-8.0))
        self.register_buffer(
            "scale_values", torch.tensor(factor_values("scale"), dtype=torch.float32)
        )
        self.register_buffer(
            "orientation_values",
            torch.tensor(factor_values("orientation"), dtype=torch.float32),
        )
        self.register_buffer(
            "position_values", torch.tensor(factor_values("pos_x"), dtype=torch.float32)
        )
        offsets = torch.arange(WINDOW, dtype=torch.float32) - WINDOW // 2
        self.register_buffer("offsets", offsets)

    def forward(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        batch_shape = classes.shape[:-1]
        z = z.reshape(-1, z.shape[-1])
        classes = classes.reshape(-1, 5)
        n = classes.shape[0]

        # Anchor, rotation and scale of every sprite, in pixels.
        center_x = ANCHOR_OFFSET + ANCHOR_RANGE * self.position_values[classes[:, 3]]
        center_y = ANCHOR_OFFSET + ANCHOR_RANGE * self.position_values[classes[:, 4]]
        theta = self.orientation_values[classes[:, 2]]
        scale = self.scale_values[classes[:, 1]]

        # The window's rows and columns, clamped inside the image.
        col0 = (torch.round(center_x) - WINDOW // 2).clamp(0, IMAGE_SIZE - WINDOW)
        row0 = (torch.round(center_y) - WINDOW // 2).clamp(0, IMAGE_SIZE - WINDOW)
        cols = col0[:, None] + self.offsets + WINDOW // 2  # (n, W)
        rows = row0[:, None] + self.offsets + WINDOW // 2  # (n, W)

        # Pixel centres in the sprite's frame: undo translation, rotation and scale.
        dx = (cols + 0.5 - center_x[:, None])[:, None, :]  # (n, 1, W)
        dy = (rows + 0.5 - center_y[:, None])[:, :, None]  # (n, W, 1)
        cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        unit = (scale * COORDINATE_UNIT)[:, None, None]
        u = (cos * dx - sin * dy) / unit
        v = (sin * dx + cos * dy) / unit
        frame = torch.stack([u, v], dim=-1).reshape(n, WINDOW * WINDOW, 2)

        # Condition on shape, scale and z once per image; evaluate the MLP per pixel.
        condition = torch.cat(
            [
                F.one_hot(classes[:, 0], FACTOR_SIZES[0]).to(z.dtype),
                F.one_hot(classes[:, 1], FACTOR_SIZES[1]).to(z.dtype),
                z,
            ],
            dim=-1,
        )
        hidden = self.pixel_in(frame) + self.image_in(condition)[:, None, :]
        window_logits = self.body(hidden).squeeze(-1).float()

        # Scatter the window into a full image of background logits.
        flat_index = rows.long()[:, :, None] * IMAGE_SIZE + cols.long()[:, None, :]
        background = self.background.float().expand(n, IMAGE_SIZE * IMAGE_SIZE)
        logits = background.scatter(1, flat_index.reshape(n, -1), window_logits)
        return logits.reshape(*batch_shape, IMAGE_SIZE, IMAGE_SIZE)


class LabelEncoder(nn.Module):
    """Classifier q(factors | image): a small CNN with coordinate channels.

    Returns one logits tensor per factor, ``(batch, K_f)``. Two coordinate channels
    (CoordConv) make positions easy to read off.
    """

    def __init__(self, channels: int = 32, hidden: int = 256) -> None:
        super().__init__()
        grid = torch.linspace(-1.0, 1.0, IMAGE_SIZE)
        coords = torch.stack(torch.meshgrid(grid, grid, indexing="ij"))
        self.register_buffer("coords", coords)
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * channels, 2 * channels, 4, stride=2, padding=1),
            nn.SiLU(),
        )
        self.body = nn.Sequential(nn.Linear(2 * channels * 16, hidden), nn.SiLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, size) for size in FACTOR_SIZES)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        batch_shape = images.shape[:-2]
        x = images.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        coords = self.coords.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        hidden = self.body(self.features(torch.cat([x, coords], dim=1)).flatten(1))
        return [head(hidden).float().reshape(*batch_shape, -1) for head in self.heads]


def init_prior_logits() -> nn.ParameterList:
    """Uniform log-probabilities for each factor, as learnable parameters."""
    return nn.ParameterList(
        nn.Parameter(torch.full((size,), -math.log(size))) for size in FACTOR_SIZES
    )
