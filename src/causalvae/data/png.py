"""Read and write single 64x64 sprite images as PNG files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from causalvae.data.spec import IMAGE_SIZE
from causalvae.data.store import atomic_output

logger = logging.getLogger(__name__)


class PNGFormatError(ValueError):
    """A file that is not a PNG image or not 64x64 pixels."""


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write one image as an 8-bit grayscale PNG, atomically.

    :param image: ``(64, 64)``: pixels in {0, 1} (uint8 or bool) are written black
        and white, and floats in ``[0, 1]`` (probabilities) as gray levels
        ``round(255 p)``.
    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises ValueError: when the shape is not ``(64, 64)`` or a pixel lies outside
        ``[0, 1]``.
    """
    image = np.asarray(image)
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected an image of shape (64, 64), got {image.shape}")
    if image.dtype.kind == "f":
        if not np.all((image >= 0) & (image <= 1)):
            raise ValueError(
                "float pixels must be probabilities in [0, 1] (NaN is not allowed); "
                "clip or rescale the image first"
            )
        gray = np.rint(image * 255).astype(np.uint8)
    elif image.dtype.kind in "biu":
        if image.size and (image.min() < 0 or image.max() > 1):
            raise ValueError(
                f"integer pixels must be 0 or 1, found {image.min()} to "
                f"{image.max()}; divide 0/255 images by 255"
            )
        gray = image.astype(np.uint8) * 255
    else:
        raise ValueError(f"expected uint8, bool or float pixels, got {image.dtype}")

    path = Path(path)
    with atomic_output(path) as handle:
        Image.fromarray(gray, mode="L").save(handle, format="PNG")
    logger.debug("wrote %s", path)
    return path


def load_png(path: str | Path, threshold: float = 0.5) -> np.ndarray:
    """Read a 64x64 PNG and binarise it.

    Colour images are converted to luminance (ITU-R 601-2 luma, as Pillow's ``L``
    mode). Transparent pixels are composited onto black, the dSprites background.

    :param threshold: a pixel is lit when its luminance in ``[0, 1]`` is greater.
    :returns: uint8 pixels in {0, 1}, ``(64, 64)``.
    :raises FileNotFoundError: when ``path`` does not exist.
    :raises PNGFormatError: when the file is not a PNG or not 64x64 pixels.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.load()
            luminance = _luminance(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise PNGFormatError(
            f"{path}: not a readable PNG image ({error}); check that the file is a "
            "complete PNG"
        ) from error
    if image_format != "PNG":
        raise PNGFormatError(
            f"{path}: a {image_format} image, not a PNG; save the image as PNG"
        )
    if luminance.shape != (IMAGE_SIZE, IMAGE_SIZE):
        height, width = luminance.shape
        raise PNGFormatError(
            f"{path}: the image is {width}x{height} pixels, but 64x64 is required; "
            "resize it to 64x64 first"
        )
    return (luminance > threshold).astype(np.uint8)


def _luminance(image: Image.Image) -> np.ndarray:
    """Return luminance in ``[0, 1]``, float64 ``(height, width)``."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale PNGs open in these modes with values up to 65535.
        return np.asarray(image, dtype=np.float64) / 65535
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255
