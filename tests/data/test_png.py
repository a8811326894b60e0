"""Reading and writing single sprite images as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalvae.data.png import PNGFormatError, load_png, save_png
from causalvae.data.render import render


@pytest.fixture
def heart() -> np.ndarray:
    return render(np.array([[2, 5, 7, 10, 20]]))[0]


def test_binary_round_trip(tmp_path: Path, heart: np.ndarray) -> None:
    path = save_png(tmp_path / "heart.png", heart)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "L"
        assert set(np.unique(np.asarray(image)).tolist()) == {0, 255}
    np.testing.assert_array_equal(load_png(path), heart)
    assert [p.name for p in tmp_path.iterdir()] == ["heart.png"]


def test_bool_image_saves(tmp_path: Path, heart: np.ndarray) -> None:
    path = save_png(tmp_path / "heart.png", heart.astype(bool))
    np.testing.assert_array_equal(load_png(path), heart)


def test_probabilities_save_as_gray(tmp_path: Path, heart: np.ndarray) -> None:
    probabilities = heart * 0.7 + 0.1
    path = save_png(tmp_path / "probs.png", probabilities)
    with Image.open(path) as image:
        gray = np.asarray(image)
    assert set(np.unique(gray).tolist()) == {26, 204}
    np.testing.assert_array_equal(load_png(path), heart)
    np.testing.assert_array_equal(load_png(path, threshold=0.9), 0)
    np.testing.assert_array_equal(load_png(path, threshold=0.05), 1)


def test_rgba_composites_onto_black(tmp_path: Path, heart: np.ndarray) -> None:
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[..., :3] = 255
    pixels[..., 3] = heart * 255
    Image.fromarray(pixels, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_png(tmp_path / "rgba.png"), heart)


def test_rgb_uses_luminance(tmp_path: Path) -> None:
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:32, :, 1] = 255  # green: luma 0.587
    pixels[32:, :, 2] = 255  # blue: luma 0.114
    Image.fromarray(pixels, mode="RGB").save(tmp_path / "rgb.png")
    loaded = load_png(tmp_path / "rgb.png")
    assert loaded[:32].all()
    assert not loaded[32:].any()


def test_sixteen_bit_grayscale(tmp_path: Path, heart: np.ndarray) -> None:
    Image.fromarray(heart.astype(np.uint16) * 65535).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(load_png(tmp_path / "deep.png"), heart)


def test_palette_image(tmp_path: Path, heart: np.ndarray) -> None:
    Image.fromarray(heart * 255).convert("P").save(tmp_path / "palette.png")
    np.testing.assert_array_equal(load_png(tmp_path / "palette.png"), heart)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image file not found"):
        load_png(tmp_path / "missing.png")


def test_other_format_rejected(tmp_path: Path, heart: np.ndarray) -> None:
    Image.fromarray(heart * 255).save(tmp_path / "heart.bmp")
    with pytest.raises(PNGFormatError, match="a BMP image, not a PNG"):
        load_png(tmp_path / "heart.bmp")


def test_garbage_rejected(tmp_path: Path) -> None:
    (tmp_path / "noise.png").write_bytes(b"not an image")
    with pytest.raises(PNGFormatError, match="not a readable PNG image"):
        load_png(tmp_path / "noise.png")


def test_truncated_png_rejected(tmp_path: Path, heart: np.ndarray) -> None:
    whole = save_png(tmp_path / "whole.png", heart).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[:60])
    with pytest.raises(PNGFormatError, match="not a readable PNG image"):
        load_png(tmp_path / "cut.png")


def test_wrong_size_rejected(tmp_path: Path) -> None:
    Image.new("L", (32, 48)).save(tmp_path / "small.png")
    with pytest.raises(PNGFormatError, match="is 32x48 pixels, but 64x64 is required"):
        load_png(tmp_path / "small.png")


def test_threshold_outside_unit_interval_rejected(
    tmp_path: Path, heart: np.ndarray
) -> None:
    path = save_png(tmp_path / "heart.png", heart)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        load_png(path, threshold=128)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((32, 64), dtype=np.uint8), r"shape \(64, 64\)"),
        (np.full((64, 64), 255, dtype=np.uint8), "divide 0/255 images by 255"),
        (np.full((64, 64), 1.5), r"probabilities in \[0, 1\]"),
        (np.full((64, 64), np.nan), "NaN is not allowed"),
    ],
)
def test_save_rejects(tmp_path: Path, image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        save_png(tmp_path / "bad.png", image)
    assert list(tmp_path.iterdir()) == []
