"""Figures of an untrained model: PNGs decode, sizes follow the grid, inputs checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from causalvae import figures
from causalvae.data.render import render
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.metrics import oracle
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.queries import CounterfactualResult, counterfactual


@pytest.fixture(scope="module")
def vae() -> ConditionalVAE:
    torch.manual_seed(0)
    return ConditionalVAE(ModelConfig()).eval()


@pytest.fixture(scope="module")
def units() -> tuple[torch.Tensor, torch.Tensor]:
    """Six rendered images ``(6, 64, 64)`` and their factors ``(6, 5)``."""
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, size, 6) for size in FACTOR_SIZES], axis=1)
    images = torch.from_numpy(render(factors)).float()
    return images, torch.from_numpy(factors)


def _shape_change(
    vae: ConditionalVAE, images: torch.Tensor, factors: torch.Tensor
) -> CounterfactualResult:
    targets = (factors[:, 0] + 1) % FACTOR_SIZES[0]
    return counterfactual(vae, images, {"shape": targets}, factors)


def _read_png(path: Path) -> np.ndarray:
    """Decode a PNG to ``(height, width, channels)`` floats, checking it has content."""
    assert path.is_file()
    pixels = imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[0] > 0
    assert pixels.shape[1] > 0
    assert pixels[..., :3].std() > 0, f"{path.name} is a single colour"
    return pixels


def _orange_pixels(pixels: np.ndarray) -> int:
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((red > 0.85) & (green > 0.3) & (green < 0.7) & (blue < 0.25)).sum())


def test_format_value_readable() -> None:
    assert figures.format_value("shape", 2) == "heart"
    assert figures.format_value("scale", 0) == "0.50"
    assert figures.format_value("orientation", 0) == "0°"
    assert figures.format_value("orientation", 39) == "360°"
    assert figures.format_value("pos_x", 17) == "17"


def test_format_change_marks_changed_factor() -> None:
    text = figures.format_change([0, 1, 2, 3, 4], [2, 1, 2, 3, 9])
    lines = text.splitlines()
    assert len(lines) == len(FACTOR_NAMES)
    assert lines[0] == "shape square → heart"
    assert lines[1] == "scale 0.60"
    assert lines[4] == "pos_y 4 → 9"


@pytest.mark.parametrize("batch", [1, 6])
def test_image_grid_decodes(tmp_path: Path, units, batch: int) -> None:
    images, _ = units
    titles = [f"unit {i}" for i in range(batch)]
    path = figures.save_image_grid(tmp_path / "grid.png", images[:batch], titles)
    assert path == tmp_path / "grid.png"
    _read_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_image_grid_rows_add_height(tmp_path: Path, units) -> None:
    images, _ = units
    one_row = _read_png(
        figures.save_image_grid(tmp_path / "a.png", images[:3], ncols=3)
    )
    two_rows = _read_png(figures.save_image_grid(tmp_path / "b.png", images, ncols=3))
    assert two_rows.shape[1] == one_row.shape[1]
    assert two_rows.shape[0] > 1.5 * one_row.shape[0]
    assert one_row.shape[1] > 2 * one_row.shape[0]


def test_image_grid_rejects_bad_input(tmp_path: Path, units) -> None:
    images, _ = units
    with pytest.raises(ValueError, match="shape"):
        figures.save_image_grid(tmp_path / "a.png", torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="titles"):
        figures.save_image_grid(tmp_path / "a.png", images[:2], ["only one"])
    with pytest.raises(ValueError, match="suffix"):
        figures.save_image_grid(tmp_path / "a.unknown", images[:2])
    with pytest.raises(ValueError, match="ncols"):
        figures.save_image_grid(tmp_path / "a.png", images[:2], ncols=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("batch", [1, 6])
def test_reconstructions_decode(tmp_path: Path, vae, units, batch: int) -> None:
    images, factors = units
    result = counterfactual(vae, images[:batch], {}, factors[:batch])
    path = figures.save_reconstructions(
        tmp_path / "reconstructions.png", images[:batch], result.factual_probs
    )
    pixels = _read_png(path)
    if batch > 1:
        assert pixels.shape[1] > pixels.shape[0]


def test_reconstructions_reject_mismatch(tmp_path: Path, units) -> None:
    images, _ = units
    with pytest.raises(ValueError, match="reconstructions"):
        figures.save_reconstructions(tmp_path / "r.png", images[:3], images[:2])


@pytest.mark.parametrize("batch", [1, 4])
def test_counterfactual_panel_decodes(tmp_path: Path, vae, units, batch) -> None:
    images, factors = units[0][:batch], units[1][:batch]
    result = _shape_change(vae, images, factors)
    truth = oracle(result.counterfactual_factors)
    with_truth = _read_png(
        figures.save_counterfactual_panel(tmp_path / "a.png", images, result, truth)
    )
    without = _read_png(
        figures.save_counterfactual_panel(tmp_path / "b.png", images, result)
    )

    # The ground truth adds a column, never a row.
    assert with_truth.shape[0] == without.shape[0]
    assert with_truth.shape[1] > without.shape[1]


def test_counterfactual_panel_rows_per_unit(tmp_path: Path, vae, units) -> None:
    images, factors = units
    single = figures.save_counterfactual_panel(
        tmp_path / "single.png",
        images[:1],
        _shape_change(vae, images[:1], factors[:1]),
    )
    several = figures.save_counterfactual_panel(
        tmp_path / "several.png",
        images[:4],
        _shape_change(vae, images[:4], factors[:4]),
    )
    assert _read_png(several).shape[0] > 2.4 * _read_png(single).shape[0]


def test_counterfactual_panel_custom_titles(tmp_path: Path, vae, units) -> None:
    images, factors = units[0][:2], units[1][:2]
    result = _shape_change(vae, images, factors)
    path = figures.save_counterfactual_panel(
        tmp_path / "p.png", images, result, titles=["first", "second"]
    )
    _read_png(path)
    with pytest.raises(ValueError, match="titles"):
        figures.save_counterfactual_panel(
            tmp_path / "p.png", images, result, titles=["first"]
        )


def test_counterfactual_panel_rejects_truth_mismatch(tmp_path, vae, units) -> None:
    images, factors = units[0][:3], units[1][:3]
    result = _shape_change(vae, images, factors)
    with pytest.raises(ValueError, match="truth"):
        figures.save_counterfactual_panel(
            tmp_path / "p.png", images, result, images[:2]
        )
    with pytest.raises(ValueError, match="3 units but 2 images"):
        figures.save_counterfactual_panel(tmp_path / "p.png", images[:2], result)


@pytest.mark.parametrize("batch", [1, 3])
def test_intervention_grid_outlines_truth(tmp_path: Path, vae, units, batch) -> None:
    images, factors = units[0][:batch], units[1][:batch]
    with_truth = _read_png(
        figures.save_intervention_grid(
            tmp_path / "a.png", vae, images, factors, "scale", [0, 5], oracle
        )
    )
    without = _read_png(
        figures.save_intervention_grid(
            tmp_path / "b.png", vae, images, factors, "scale", [0, 5], show="samples"
        )
    )
    assert _orange_pixels(with_truth) > 20
    assert _orange_pixels(without) == 0


def test_intervention_grid_columns_per_value(tmp_path: Path, vae, units) -> None:
    images, factors = units[0][:2], units[1][:2]
    two = figures.save_intervention_grid(
        tmp_path / "two.png", vae, images, factors, "pos_x", [0, 31]
    )
    four = figures.save_intervention_grid(
        tmp_path / "four.png", vae, images, factors, "pos_x", [0, 10, 20, 31]
    )
    narrow, wide = _read_png(two), _read_png(four)
    assert wide.shape[0] == narrow.shape[0]
    assert wide.shape[1] > narrow.shape[1]


@pytest.mark.parametrize(
    ("factor", "values", "message"),
    [
        ("colour", [0], "unknown factor"),
        ("shape", [3], "out of range"),
        ("shape", [-1], "out of range"),
        ("shape", [], "at least one"),
    ],
)
def test_intervention_grid_rejects_bad_request(
    tmp_path: Path, vae, units, factor: str, values: list[int], message: str
) -> None:
    images, factors = units[0][:1], units[1][:1]
    with pytest.raises(ValueError, match=message):
        figures.save_intervention_grid(
            tmp_path / "g.png", vae, images, factors, factor, values
        )
    assert not any(tmp_path.iterdir())


def test_intervention_grid_rejects_factor_shape(tmp_path: Path, vae, units) -> None:
    images, factors = units
    with pytest.raises(ValueError, match="factors"):
        figures.save_intervention_grid(
            tmp_path / "g.png", vae, images[:2], factors[:3], "shape", [0]
        )


HISTORY = [
    {
        "step": 0,
        "train_neg_elbo": None,
        "train_label_loss": None,
        "heldout_neg_elbo": 2800.0,
    },
    {
        "step": 50,
        "train_neg_elbo": 900.0,
        "train_label_loss": 9.0,
        "heldout_neg_elbo": 850.0,
    },
    {
        "step": 100,
        "train_neg_elbo": 120.0,
        "train_label_loss": 2.5,
        "heldout_neg_elbo": 140.0,
    },
]


@pytest.mark.parametrize("history", [HISTORY, HISTORY[:1], []])
def test_loss_curves_decode(tmp_path: Path, history: list[dict]) -> None:
    path = figures.save_loss_curves(tmp_path / "loss.png", history)
    pixels = _read_png(path)
    assert pixels.shape[1] > pixels.shape[0]


def test_loss_curves_as_svg(tmp_path: Path) -> None:
    path = figures.save_loss_curves(tmp_path / "loss.svg", HISTORY[:1])
    assert path.read_text(encoding="utf-8").lstrip().startswith("<?xml")
