"""The dSprites factor specification, as in the official file.

The official array ``latents_classes`` has six columns: color, shape, scale,
orientation, posX, posY. Color is constant, so the model and the queries use the five
remaining factors, named after their sample sites: ``shape``, ``scale``,
``orientation``, ``pos_x`` and ``pos_y``. Position y varies fastest in the stored
order, then x, orientation, scale and shape.
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
    """One generative factor: site name, official name and the value of each class."""

    name: str
    official_name: str
    values: tuple[float, ...]

    @property
    def size(self) -> int:
        """Number of classes."""
        return len(self.values)


def _linspace(start: float, stop: float, num: int) -> tuple[float, ...]:
    # start + i * (stop - start) / (num - 1), in this order of operations, reproduces
    # the official latents_values bit for bit. np.linspace multiplies i by a rounded
    # step instead and is one ulp off for some classes (for example 9/31).
    step_count = num - 1
    return tuple(start + i * (stop - start) / step_count for i in range(num))


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
    """Return the factor called ``name``.

    :raises ValueError: listing the known factors when ``name`` is not one of them.
    """
    try:
        return FACTOR_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown factor {name!r}; known factors: {', '.join(FACTOR_NAMES)}"
        ) from None


def validate_classes(classes: np.ndarray) -> np.ndarray:
    """Check class indices ``(..., 5)`` and return them as int64.

    Floats are accepted when every entry is a whole number.

    :raises ValueError: when the last dimension is not 5, an entry is not a whole
        number, or a class lies outside ``[0, size)`` of its factor.
    """
    array = np.asarray(classes)
    if array.shape[-1:] != (5,):
        raise ValueError(
            "expected class indices with a last dimension of 5 "
            f"({', '.join(FACTOR_NAMES)}), got shape {array.shape}"
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(
                "class indices must be whole numbers; these look like factor values, "
                "convert them with the class index of each value"
            )
    elif array.dtype.kind not in "iu":
        raise ValueError(f"class indices must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size == 0:
        return array
    low = array.min(axis=tuple(range(array.ndim - 1)))
    high = array.max(axis=tuple(range(array.ndim - 1)))
    for column, factor in enumerate(FACTORS):
        if low[column] < 0 or high[column] >= factor.size:
            bad = low[column] if low[column] < 0 else high[column]
            raise ValueError(
                f"class index {bad} of factor {factor.name!r} is out of range; "
                f"{factor.name} takes classes 0 to {factor.size - 1}"
            )
    return array


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """Map class indices ``(..., 5)`` to grid indices ``(...)`` (int64).

    :raises ValueError: as :func:`validate_classes` does.
    """
    classes = validate_classes(classes)
    return classes @ np.asarray(STRIDES, dtype=np.int64)


def index_to_classes(index: np.ndarray) -> np.ndarray:
    """Map grid indices ``(...)`` to class indices ``(..., 5)`` (int64)."""
    index = np.asarray(index, dtype=np.int64)
    if np.any(index < 0) or np.any(index >= NUM_IMAGES):
        raise ValueError(
            f"grid indices must lie in [0, {NUM_IMAGES}), "
            f"got {index.min()}..{index.max()}"
        )
    return (index[..., None] // np.asarray(STRIDES)) % np.asarray(FACTOR_SIZES)


def classes_to_values(classes: np.ndarray) -> np.ndarray:
    """Map class indices ``(..., 5)`` to factor values ``(..., 5)`` (float64).

    :raises ValueError: as :func:`validate_classes` does.
    """
    classes = validate_classes(classes)
    columns = [factor_values(f.name)[classes[..., i]] for i, f in enumerate(FACTORS)]
    return np.stack(columns, axis=-1)
