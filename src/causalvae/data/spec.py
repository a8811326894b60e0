"""The dSprites factor specification, as in the official file.

The official array ``latents_classes`` has six columns: color, shape, scale, orientation,
posX, posY. Color is constant, so the model and the queries use the five remaining
factors, named after their sample sites: ``shape``, ``scale``, ``orientation``,
``pos_x`` and ``pos_y``. Position y varies fastest in the stored order, then x,
orientation, scale and shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
NUM_IMAGES = 737_280
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")

OFFICIAL_LATENT_NAMES: tuple[str, ...] = (
    "color",
    "shape",
    "scale",
    "orientation",
    "posX",
    "posY",
)
OFFICIAL_LATENT_SIZES: tuple[int, ...] = (1, 3, 6, 40, 32, 32)


@dataclass(frozen=True)
class Factor:
    """One generative factor: its site name, official name and the values of its classes."""

    name: str
    official_name: str
    values: tuple[float, ...]

    @property
    def size(self) -> int:
        """Number of classes."""
        return len(self.values)


def _linspace(start: float, stop: float, num: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(start, stop, num))


FACTORS: tuple[Factor, ...] = (
    Factor("shape", "shape", (1.0, 2.0, 3.0)),
    Factor("scale", "scale", _linspace(0.5, 1.0, 6)),
    Factor("orientation", "orientation", _linspace(0.0, 2 * np.pi, 40)),
    Factor("pos_x", "posX", _linspace(0.0, 1.0, 32)),
    Factor("pos_y", "posY", _linspace(0.0, 1.0, 32)),
)
FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)
FACTOR_SIZES: tuple[int, ...] = tuple(f.size for f in FACTORS)
FACTOR_BY_NAME: dict[str, Factor] = {f.name: f for f in FACTORS}

# Index of a grid image = dot product of its five class indices with these strides.
STRIDES: tuple[int, ...] = tuple(int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(5))


def factor_values(name: str) -> np.ndarray:
    """Return the float64 values of factor ``name``, one per class."""
    return np.asarray(get_factor(name).values, dtype=np.float64)


def get_factor(name: str) -> Factor:
    """Return the factor called ``name``, or raise ``ValueError`` listing the known ones."""
    try:
        return FACTOR_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown factor {name!r}; known factors: {', '.join(FACTOR_NAMES)}"
        ) from None


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """Map class indices ``(..., 5)`` to grid indices ``(...)`` (int64)."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.shape[-1:] != (5,):
        raise ValueError(
            f"expected class indices with a last dimension of 5 ({', '.join(FACTOR_NAMES)}), "
            f"got shape {classes.shape}"
        )
    return classes @ np.asarray(STRIDES, dtype=np.int64)


def index_to_classes(index: np.ndarray) -> np.ndarray:
    """Map grid indices ``(...)`` to class indices ``(..., 5)`` (int64)."""
    index = np.asarray(index, dtype=np.int64)
    if np.any(index < 0) or np.any(index >= NUM_IMAGES):
        raise ValueError(f"grid indices must lie in [0, {NUM_IMAGES}), got {index.min()}..{index.max()}")
    return (index[..., None] // np.asarray(STRIDES)) % np.asarray(FACTOR_SIZES)


def classes_to_values(classes: np.ndarray) -> np.ndarray:
    """Map class indices ``(..., 5)`` to factor values ``(..., 5)`` (float64)."""
    classes = np.asarray(classes, dtype=np.int64)
    columns = [factor_values(f.name)[classes[..., i]] for i, f in enumerate(FACTORS)]
    return np.stack(columns, axis=-1)
