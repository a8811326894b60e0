"""Image features and the simulation of the dSprites treatment-effect benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae.effects.images import (
    EFFECT_BASE,
    EFFECT_SLOPE,
    image_features,
    simulate_dsprites_effects,
)


def square(side: int, top: int, left: int) -> np.ndarray:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[top : top + side, left : left + side] = 1
    return image


def test_moments_of_a_square_by_hand():
    # A 16 x 16 square: sqrt(area) = 16 px, both coordinate standard deviations
    # sqrt((16**2 - 1) / 12) px, centroid at column 8.5 and row 20.5.
    features = image_features(square(16, top=13, left=1)[None])[0]

    assert features[0] == pytest.approx(16 / 64)
    assert features[1] == pytest.approx(np.sqrt(255 / 12) / 64)
    assert features[2] == pytest.approx(features[1])
    assert features[3] == pytest.approx(8.5 / 64)
    assert features[4] == pytest.approx(20.5 / 64)


def test_moments_grow_with_square_side():
    images = np.stack([square(side, 10, 10) for side in (8, 12, 16)])

    features = image_features(images)

    assert np.all(np.diff(features[:, 0]) > 0)
    assert np.all(np.diff(features[:, 1]) > 0)


def test_pixels_are_the_raw_image_row_by_row():
    image = square(2, top=1, left=3)

    features = image_features(image[None], "pixels")

    assert features.shape == (1, 4096)
    assert np.flatnonzero(features[0]).tolist() == [67, 68, 131, 132]


def test_empty_image_rejected():
    with pytest.raises(ValueError, match="no lit pixel"):
        image_features(np.zeros((1, 64, 64), dtype=np.uint8))


def test_unknown_features_rejected():
    with pytest.raises(ValueError, match="moments or pixels"):
        image_features(np.ones((1, 64, 64), dtype=np.uint8), "edges")


def test_simulation_is_confounded_by_scale():
    data = simulate_dsprites_effects(2000, seed=0)
    scale_class = data.classes[:, 1]
    treated = data.treatment == 1

    # Larger sprites are treated more often.
    assert scale_class[treated].mean() > scale_class[~treated].mean() + 1
    # The true effect is linear in the scale class.
    for scale in range(6):
        effects = np.unique(data.true_ite[scale_class == scale])
        assert len(effects) == 1
    assert data.true_ite.mean() == pytest.approx(EFFECT_BASE, abs=0.1)
    # Six equally spaced scales, standardised, span -1.46 to 1.46.
    assert np.ptp(data.true_ite) == pytest.approx(2 * EFFECT_SLOPE * 1.46, abs=0.01)
    assert data.features.shape == (2000, 5)
