"""Shapes and geometry of the networks behind the conditional VAE."""

from __future__ import annotations

import pytest
import torch

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE, factor_values
from causalvae.models.networks import (
    NUM_CLASSES_TOTAL,
    GeometricDecoder,
    LabelEncoder,
    MLPDecoder,
    MLPEncoder,
    PooledEncoder,
    init_prior_logits,
    one_hot_factors,
)

Z_DIM = 3
POS_X = FACTOR_NAMES.index("pos_x")
POS_Y = FACTOR_NAMES.index("pos_y")


def random_factors(batch: int, generator: torch.Generator) -> torch.Tensor:
    columns = [
        torch.randint(0, size, (batch,), generator=generator) for size in FACTOR_SIZES
    ]
    return torch.stack(columns, dim=-1)


def random_images(batch: int, generator: torch.Generator) -> torch.Tensor:
    return (
        torch.rand(batch, IMAGE_SIZE, IMAGE_SIZE, generator=generator) < 0.2
    ).float()


def probability_centroid(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid ``(x, y)`` in pixels of probability maps ``(batch, 64, 64)``."""
    centres = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    mass = probs.sum(dim=(-2, -1))
    x = (probs.sum(dim=-2) * centres).sum(-1) / mass
    y = (probs.sum(dim=-1) * centres).sum(-1) / mass
    return x, y


def test_one_hot_factors_marks_each_class() -> None:
    factors = torch.tensor([[2, 5, 39, 0, 31], [0, 0, 0, 0, 0]])

    codes = one_hot_factors(factors)

    assert codes.shape == (2, NUM_CLASSES_TOTAL)
    assert codes.dtype == torch.float32
    assert torch.equal(codes.sum(-1), torch.full((2,), 5.0))
    offsets = torch.tensor([0, *torch.tensor(FACTOR_SIZES).cumsum(0)[:-1].tolist()])
    hot = codes[0].nonzero().squeeze(-1)
    assert torch.equal(hot, offsets + factors[0])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "decoder",
    [
        pytest.param(
            lambda: GeometricDecoder(Z_DIM, hidden=8, layers=2), id="geometric"
        ),
        pytest.param(lambda: MLPDecoder(Z_DIM, hidden=8, layers=2), id="mlp"),
    ],
)
def test_decoder_returns_logits_per_pixel(decoder, batch: int) -> None:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(batch, Z_DIM, generator=generator)

    logits = decoder()(z, random_factors(batch, generator))

    assert logits.shape == (batch, IMAGE_SIZE, IMAGE_SIZE)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "decoder",
    [
        pytest.param(
            lambda: GeometricDecoder(Z_DIM, hidden=8, layers=2), id="geometric"
        ),
        pytest.param(lambda: MLPDecoder(Z_DIM, hidden=8, layers=2), id="mlp"),
    ],
)
def test_decoder_keeps_leading_batch_dims(decoder) -> None:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, Z_DIM, generator=generator)
    factors = random_factors(6, generator).reshape(2, 3, 5)
    network = decoder()

    logits = network(z, factors)

    assert logits.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    flat = network(z.reshape(6, Z_DIM), factors.reshape(6, 5))
    torch.testing.assert_close(logits.reshape(6, IMAGE_SIZE, IMAGE_SIZE), flat)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "encoder",
    [
        pytest.param(lambda: PooledEncoder(Z_DIM, hidden=8), id="pooled"),
        pytest.param(lambda: MLPEncoder(Z_DIM, hidden=8, layers=2), id="mlp"),
    ],
)
def test_encoder_returns_location_and_positive_scale(encoder, batch: int) -> None:
    generator = torch.Generator().manual_seed(2)
    images = random_images(batch, generator)

    z_loc, z_scale = encoder()(images, random_factors(batch, generator))

    assert z_loc.shape == (batch, Z_DIM)
    assert z_scale.shape == (batch, Z_DIM)
    assert (z_scale > 0).all()


@pytest.mark.parametrize("batch_shape", [(1,), (3,), (2, 2)])
def test_label_encoder_returns_logits_per_factor(batch_shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(3)
    count = int(torch.tensor(batch_shape).prod())
    images = random_images(count, generator).reshape(
        *batch_shape, IMAGE_SIZE, IMAGE_SIZE
    )

    logits = LabelEncoder(channels=4, hidden=8)(images)

    assert len(logits) == len(FACTOR_SIZES)
    for factor_logits, size in zip(logits, FACTOR_SIZES, strict=True):
        assert factor_logits.shape == (*batch_shape, size)
        assert factor_logits.dtype == torch.float32


def test_init_prior_logits_are_uniform() -> None:
    logits = init_prior_logits()

    assert [len(p) for p in logits] == list(FACTOR_SIZES)
    for parameter in logits:
        assert parameter.requires_grad
        probabilities = torch.softmax(parameter, dim=-1)
        torch.testing.assert_close(
            probabilities, torch.full_like(probabilities, 1 / len(parameter))
        )


def bump_decoder() -> GeometricDecoder:
    """A geometric decoder whose sprite is a sharp bump centred on the anchor.

    The pixel logit is ``4 - 2 (g(2u) + g(2v))`` with ``g(t) = silu(t) + silu(-t)``,
    which is about ``4 - 4 (|u| + |v|)`` in the sprite's frame (units of 8 pixels
    times the scale): positive where ``|u| + |v| < 1`` and strongly negative at the
    window's edges. The background logit is -40, so pixels outside the window are off.
    """
    decoder = GeometricDecoder(Z_DIM, hidden=4, layers=2)
    with torch.no_grad():
        decoder.pixel_in.weight.copy_(
            2 * torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        )
        decoder.pixel_in.bias.zero_()
        decoder.image_in.weight.zero_()
        decoder.image_in.bias.zero_()
        decoder.body[0].weight.copy_(torch.eye(4))
        decoder.body[0].bias.zero_()
        decoder.body[2].weight.fill_(-2.0)
        decoder.body[2].bias.fill_(4.0)
        decoder.background.fill_(-40.0)
    return decoder


@pytest.mark.parametrize("batch", [1, 3])
def test_geometric_decoder_centres_sprite_on_anchor(batch: int) -> None:
    generator = torch.Generator().manual_seed(4)
    factors = random_factors(batch, generator)

    with torch.no_grad():
        probs = torch.sigmoid(bump_decoder()(torch.zeros(batch, Z_DIM), factors))

    # The anchor sits at 16 + 32 * value pixels, and position class k has value k / 31.
    positions = torch.tensor(factor_values("pos_x"), dtype=torch.float32)
    anchor_x = 16 + 32 * positions[factors[:, POS_X]]
    anchor_y = 16 + 32 * positions[factors[:, POS_Y]]
    x, y = probability_centroid(probs)
    torch.testing.assert_close(x, anchor_x, atol=0.05, rtol=0)
    torch.testing.assert_close(y, anchor_y, atol=0.05, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("shift", [1, 7])
def test_geometric_decoder_moves_sprite_with_pos_x(batch: int, shift: int) -> None:
    torch.manual_seed(4)
    decoder = GeometricDecoder(Z_DIM, hidden=16, layers=2)
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(batch, Z_DIM, generator=generator)
    factors = random_factors(batch, generator)
    factors[:, POS_X] = torch.randint(0, 32 - shift, (batch,), generator=generator)
    moved = factors.clone()
    moved[:, POS_X] += shift

    with torch.no_grad():
        probs = torch.sigmoid(decoder(z, factors))
        moved_probs = torch.sigmoid(decoder(z, moved))

    # An untrained decoder fills its whole 32x32 window, which starts at the anchor
    # rounded to a whole pixel, so the centroid follows the anchor to within a pixel.
    positions = torch.tensor(factor_values("pos_x"), dtype=torch.float32)
    expected_dx = 32 * (positions[moved[:, POS_X]] - positions[factors[:, POS_X]])
    x, y = probability_centroid(probs)
    moved_x, moved_y = probability_centroid(moved_probs)
    assert (moved_x > x).all()
    torch.testing.assert_close(moved_x - x, expected_dx, atol=1.0, rtol=0)
    torch.testing.assert_close(moved_y, y, atol=0.1, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("shift", [1, 7])
def test_geometric_decoder_translates_bump_with_pos_x(batch: int, shift: int) -> None:
    generator = torch.Generator().manual_seed(6)
    factors = random_factors(batch, generator)
    factors[:, POS_X] = torch.randint(0, 32 - shift, (batch,), generator=generator)
    moved = factors.clone()
    moved[:, POS_X] += shift
    decoder = bump_decoder()

    with torch.no_grad():
        z = torch.zeros(batch, Z_DIM)
        probs = torch.sigmoid(decoder(z, factors))
        moved_probs = torch.sigmoid(decoder(z, moved))

    x, y = probability_centroid(probs)
    moved_x, moved_y = probability_centroid(moved_probs)
    expected_dx = torch.full_like(x, 32 * shift / 31)
    torch.testing.assert_close(moved_x - x, expected_dx, atol=0.05, rtol=0)
    torch.testing.assert_close(moved_y, y, atol=0.01, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_geometric_decoder_outside_window_is_background(batch: int) -> None:
    torch.manual_seed(6)
    decoder = GeometricDecoder(Z_DIM, hidden=8, layers=2)
    generator = torch.Generator().manual_seed(7)
    factors = random_factors(batch, generator)
    # Top-left sprite: the 32x32 window covers rows and columns 0 to 31 at most.
    factors[:, POS_X] = 0
    factors[:, POS_Y] = 0

    with torch.no_grad():
        logits = decoder(torch.randn(batch, Z_DIM, generator=generator), factors)

    background = decoder.background.detach()
    assert torch.equal(logits[:, 32:, :], background.expand(batch, 32, IMAGE_SIZE))
    assert torch.equal(logits[:, :, 32:], background.expand(batch, IMAGE_SIZE, 32))
