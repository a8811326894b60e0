"""Image metrics, label accuracy up to symmetry, and the full evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from causalvae.data.render import render
from causalvae.data.spec import FACTOR_NAMES, IMAGE_SIZE, factor_values
from causalvae.metrics import (
    evaluate,
    factor_accuracy,
    iou,
    l1_255,
    oracle,
    orientation_matches,
)
from causalvae.pipeline import load_image_data
from causalvae.training import load_model

ORIENTATION = FACTOR_NAMES.index("orientation")
PER_FACTOR_KEYS = (
    "counterfactual_iou",
    "counterfactual_iou_probability_map",
    "counterfactual_iou_inferred_factors",
    "effectiveness",
    "reversibility_l1",
)


def blank(count: int = 1) -> torch.Tensor:
    return torch.zeros(count, IMAGE_SIZE, IMAGE_SIZE)


def nearest_orientation(angle: float) -> int:
    """The orientation class closest to ``angle`` radians, on the circle."""
    values = factor_values("orientation")
    gap = np.angle(np.exp(1j * (values - angle)))
    return int(np.abs(gap).argmin())


# -- pixel metrics ------------------------------------------------------------------


def test_iou_of_overlapping_blocks() -> None:
    a, b = blank(), blank()
    a[0, 0:4, 0:4] = 1  # 16 pixels
    b[0, 2:6, 0:4] = 1  # 16 pixels, 8 shared

    assert iou(a, b).tolist() == pytest.approx([8 / 24])
    assert iou(b, a).tolist() == pytest.approx([8 / 24])


def test_iou_per_image_in_batch() -> None:
    a, b = blank(4), blank(4)
    a[0, :2, :] = 1
    b[0, :2, :] = 1  # identical
    a[1, 10, 10] = 1  # disjoint
    b[1, 20, 20] = 1
    b[3, :, :] = 1  # one empty, one full

    values = iou(a, b)

    assert values.shape == (4,)
    assert values.tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_iou_of_two_empty_images_is_one() -> None:
    assert iou(blank(), blank()).tolist() == [1.0]


def test_iou_accepts_booleans_and_probability_maps() -> None:
    probs = blank()
    probs[0, 0, :8] = 0.9
    probs[0, 1, :8] = 0.2
    truth = blank()
    truth[0, :2, :8] = 1

    assert iou(probs > 0.5, truth).tolist() == pytest.approx([0.5])


def test_l1_255_known_values() -> None:
    zeros, ones = blank(3), torch.ones(3, IMAGE_SIZE, IMAGE_SIZE)
    half = blank(3)
    half[:, :32, :] = 1
    grey = torch.full((3, IMAGE_SIZE, IMAGE_SIZE), 0.5)

    assert l1_255(ones, zeros).tolist() == pytest.approx([255.0] * 3)
    assert l1_255(half, zeros).tolist() == pytest.approx([127.5] * 3)
    assert l1_255(grey, ones).tolist() == pytest.approx([127.5] * 3)
    assert l1_255(half, half).tolist() == [0.0] * 3


def test_l1_255_single_pixel() -> None:
    a = blank()
    a[0, 5, 5] = 1

    assert l1_255(a, blank()).tolist() == pytest.approx([255 / 4096])


def test_oracle_renders_factors() -> None:
    factors = torch.tensor([[0, 5, 0, 15, 15], [2, 0, 10, 0, 31]])

    images = oracle(factors)

    assert images.dtype == torch.float32
    assert torch.equal(images, torch.from_numpy(render(factors.numpy())).float())


# -- label accuracy -----------------------------------------------------------------


def test_factor_accuracy_counts_each_factor() -> None:
    true = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])
    predicted = torch.tensor([[0, 1, 2, 3, 0], [2, 2, 3, 0, 0]])

    accuracy = factor_accuracy(predicted, true)

    assert accuracy["shape"] == 0.5
    assert accuracy["scale"] == 1.0
    assert accuracy["orientation"] == 1.0
    assert accuracy["orientation_exact"] == 1.0
    assert accuracy["pos_x"] == 0.5
    assert accuracy["pos_y"] == 0.0


@pytest.mark.parametrize(
    ("shape", "true", "predicted", "expected"),
    [
        # Orientation class k is the angle 2 pi k / 39, so a quarter turn is 9.75
        # classes, a half turn 19.5 and a full turn 39.
        (0, 0, 10, True),  # square, a quarter turn and a quarter class
        (0, 0, 9, False),  # square, three quarters of a class short
        (0, 0, 20, True),  # square, a half turn
        (0, 3, 32, True),  # square, three quarter turns
        (1, 0, 19, True),  # ellipse: a half turn lies halfway between 19 and 20
        (1, 0, 20, True),
        (1, 0, 18, False),
        (1, 0, 10, False),  # an ellipse has no quarter-turn symmetry
        (1, 5, 25, True),
        (2, 0, 10, False),  # a heart has no symmetry
        (2, 0, 20, False),
        (2, 0, 39, True),  # 0 and 2 pi
        (2, 39, 0, True),
        (2, 12, 12, True),
    ],
)
def test_orientation_matches_up_to_symmetry(
    shape: int, true: int, predicted: int, expected: bool
) -> None:
    true_factors = torch.tensor([[shape, 3, true, 16, 16]])
    predicted_factors = true_factors.clone()
    predicted_factors[0, ORIENTATION] = predicted

    matches = orientation_matches(predicted_factors, true_factors)

    assert matches.tolist() == [expected]


def test_square_quarter_turn_counts_as_correct() -> None:
    quarter = nearest_orientation(math.pi / 2)
    true = torch.tensor([[0, 5, 0, 16, 16]])
    predicted = true.clone()
    predicted[0, ORIENTATION] = quarter

    accuracy = factor_accuracy(predicted, true)

    assert accuracy["orientation"] == 1.0
    assert accuracy["orientation_exact"] == 0.0


def test_heart_quarter_turn_counts_as_wrong() -> None:
    quarter = nearest_orientation(math.pi / 2)
    true = torch.tensor([[2, 5, 0, 16, 16]])
    predicted = true.clone()
    predicted[0, ORIENTATION] = quarter

    accuracy = factor_accuracy(predicted, true)

    assert accuracy["orientation"] == 0.0
    assert accuracy["orientation_exact"] == 0.0


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_full_turn_classes_count_as_same(shape: int) -> None:
    true = torch.tensor([[shape, 3, 0, 10, 20]])
    predicted = true.clone()
    predicted[0, ORIENTATION] = nearest_orientation(2 * math.pi - 1e-6)
    assert predicted[0, ORIENTATION] == 39

    accuracy = factor_accuracy(predicted, true)

    assert accuracy["orientation"] == 1.0
    assert accuracy["orientation_exact"] == 0.0


def test_orientation_accuracy_averages_over_units() -> None:
    quarter = nearest_orientation(math.pi / 2)
    true = torch.tensor([[0, 5, 0, 16, 16], [2, 5, 0, 16, 16], [1, 0, 7, 3, 3]])
    predicted = true.clone()
    predicted[:2, ORIENTATION] = quarter

    accuracy = factor_accuracy(predicted, true)

    assert accuracy["orientation"] == pytest.approx(2 / 3)
    assert accuracy["orientation_exact"] == pytest.approx(1 / 3)


# -- full evaluation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_metrics(tiny_checkpoint: Path, tiny_data_file: Path) -> dict:
    vae, _ = load_model(tiny_checkpoint)
    data = load_image_data(tiny_data_file)
    return evaluate(vae, data, num_images=6, elbo_images=12, batch_size=4)


def test_evaluate_returns_every_metric(tiny_metrics: dict) -> None:
    assert set(tiny_metrics) == {
        "num_images",
        "heldout_neg_elbo",
        "reconstruction_iou",
        "label_accuracy",
        "label_accuracy_encoder",
        *PER_FACTOR_KEYS,
        "composition_l1",
        "composition_l1_probability_map",
        "reversibility_l1_mean",
    }
    assert tiny_metrics["num_images"] == 6
    for key in PER_FACTOR_KEYS:
        assert set(tiny_metrics[key]) == set(FACTOR_NAMES), key
    for key in ("label_accuracy", "label_accuracy_encoder"):
        assert set(tiny_metrics[key]) == {*FACTOR_NAMES, "orientation_exact"}, key
    assert set(tiny_metrics["composition_l1"]) == {"1", "10"}
    assert set(tiny_metrics["composition_l1_probability_map"]) == {"1", "10"}
    json.dumps(tiny_metrics, allow_nan=False)


def test_evaluate_values_are_in_range(tiny_metrics: dict) -> None:
    fractions = [
        tiny_metrics["reconstruction_iou"],
        *tiny_metrics["label_accuracy"].values(),
        *tiny_metrics["label_accuracy_encoder"].values(),
        *tiny_metrics["counterfactual_iou"].values(),
        *tiny_metrics["counterfactual_iou_probability_map"].values(),
        *tiny_metrics["counterfactual_iou_inferred_factors"].values(),
        *tiny_metrics["effectiveness"].values(),
    ]
    distances = [
        *tiny_metrics["composition_l1"].values(),
        *tiny_metrics["composition_l1_probability_map"].values(),
        *tiny_metrics["reversibility_l1"].values(),
    ]

    assert tiny_metrics["heldout_neg_elbo"] > 0
    assert math.isfinite(tiny_metrics["heldout_neg_elbo"])
    assert all(0.0 <= value <= 1.0 for value in fractions)
    assert all(0.0 <= value <= 255.0 for value in distances)
    reversibility = list(tiny_metrics["reversibility_l1"].values())
    assert tiny_metrics["reversibility_l1_mean"] == pytest.approx(
        np.mean(reversibility)
    )


def test_evaluate_null_composition_is_exact(tiny_metrics: dict) -> None:
    # A null counterfactual reuses the unit's pixel noise, so it returns the image.
    assert tiny_metrics["composition_l1"] == {"1": 0.0, "10": 0.0}


def test_evaluate_is_reproducible(tiny_checkpoint: Path, tiny_data_file: Path) -> None:
    vae, _ = load_model(tiny_checkpoint)
    data = load_image_data(tiny_data_file)
    settings = {"num_images": 2, "elbo_images": 2, "seed": 5}
    messages: list[str] = []

    torch.manual_seed(0)
    first = evaluate(vae, data, progress=messages.append, **settings)
    torch.manual_seed(0)
    second = evaluate(vae, data, **settings)

    assert first == second
    assert messages[0] == "held-out -ELBO"
    assert any("counterfactuals on images 0-2 of 2" in m for m in messages)
