"""Parse factor assignments such as ``shape=heart`` and describe factor classes.

Accepted right-hand sides, per factor:

- ``shape``: a name, ``square``, ``ellipse`` or ``heart`` (any case).
- ``scale``: a value between 0.5 and 1; the nearest of the six grid values is used.
- ``orientation``: an angle in radians between 0 and 2π (``3.1416``), or in
  degrees with a ``deg`` suffix (``180deg``). The nearest of the 40 grid values is
  used. Both 0 and 2π are grid values, and they draw the same image.
- ``pos_x``, ``pos_y``: a class index from 0 (left or top) to 31 (right or
  bottom). The value of class ``k`` is ``k / 31``.
- any factor: ``#k`` selects class ``k`` directly (``shape=#2`` is the heart).

A value is rejected when it lies more than half a grid step from every grid value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from causalvae.data.spec import (
    FACTOR_NAMES,
    FACTORS,
    SHAPE_NAMES,
    Factor,
    classes_to_values,
    get_factor,
    validate_classes,
)

Intervention = dict[str, int]
"""Factor name to class index, for example ``{"shape": 2, "scale": 5}``."""

_DEGREE_SUFFIX = "deg"


def parse_factor_assignment(text: str) -> tuple[str, int]:
    """Parse one ``name=value`` assignment into a factor name and class index.

    :raises ValueError: naming the allowed factors or values when ``text`` is not a
        valid assignment.
    """
    name, separator, raw_value = text.partition("=")
    name = name.strip()
    raw_value = raw_value.strip()
    if not separator or not name or not raw_value:
        raise ValueError(
            f"invalid factor assignment {text!r}; write name=value, for example "
            "shape=heart or scale=0.8"
        )
    if name not in FACTOR_NAMES:
        raise ValueError(
            f"unknown factor {name!r} in {text!r}; known factors: "
            f"{', '.join(FACTOR_NAMES)}"
        )
    factor = get_factor(name)
    if raw_value.startswith("#"):
        return name, _parse_class_index(factor, raw_value[1:], text)
    if name == "shape":
        return name, _parse_shape(raw_value, text)
    if name in ("pos_x", "pos_y"):
        return name, _parse_class_index(factor, raw_value, text)
    return name, _parse_value(factor, raw_value, text)


def parse_factor_assignments(items: Iterable[str] | str) -> Intervention:
    """Parse assignments such as ``["shape=heart", "scale=1"]`` into an intervention.

    Each item may hold several comma-separated assignments
    (``"shape=heart,scale=1"``); a single string is treated as one item. Empty
    pieces, as left by a trailing comma, are skipped.

    :raises ValueError: when an assignment is invalid or a factor is given twice.
    """
    if isinstance(items, str):
        items = [items]
    assignment: Intervention = {}
    for item in items:
        for piece in item.split(","):
            if not piece.strip():
                continue
            name, class_index = parse_factor_assignment(piece)
            if name in assignment:
                raise ValueError(
                    f"factor {name!r} is given more than once; give each factor at "
                    "most once"
                )
            assignment[name] = class_index
    return assignment


def describe_factors(classes: np.ndarray) -> dict[str, Any]:
    """Describe one image's factors with JSON-ready Python types.

    :param classes: class indices ``(5,)``.
    :returns: ``{"shape": name, "label": one-line summary, "classes": {factor:
        index}, "values": {factor: value}}``; the label is as
        :func:`format_factors` writes it.
    """
    classes = validate_classes(classes)
    if classes.shape != (5,):
        raise ValueError(
            f"expected the classes of one image, shape (5,), got {classes.shape}"
        )
    values = classes_to_values(classes)
    return {
        "shape": SHAPE_NAMES[int(classes[0])],
        "label": format_factors(classes),
        "classes": {
            name: int(index) for name, index in zip(FACTOR_NAMES, classes, strict=True)
        },
        "values": {
            name: float(value) for name, value in zip(FACTOR_NAMES, values, strict=True)
        },
    }


def format_factors(classes: np.ndarray, two_lines: bool = False) -> str:
    """Format one image's factors as text, such as for a figure title.

    :param classes: class indices ``(5,)``.
    :param two_lines: put the position on a second line, for titles of narrow
        figure cells.
    :returns: for example ``"heart s=0.8 θ=92° x=12 y=3"``: the shape name, the
        scale value, the orientation in degrees as the figures show it, and the
        position class indices.
    """
    classes = validate_classes(classes)
    if classes.shape != (5,):
        raise ValueError(
            f"expected the classes of one image, shape (5,), got {classes.shape}"
        )
    values = classes_to_values(classes)
    separator = "\n" if two_lines else " "
    return (
        f"{SHAPE_NAMES[int(classes[0])]} s={values[1]:.1f} "
        f"θ={np.degrees(values[2]):.0f}°{separator}"
        f"x={classes[3]} y={classes[4]}"
    )


def _parse_shape(raw_value: str, text: str) -> int:
    lowered = raw_value.lower()
    if lowered in SHAPE_NAMES:
        return SHAPE_NAMES.index(lowered)
    raise ValueError(
        f"unknown shape {raw_value!r} in {text!r}; use one of "
        f"{', '.join(SHAPE_NAMES)}, or a class index #0 to #{len(SHAPE_NAMES) - 1}"
    )


def _parse_class_index(factor: Factor, raw_value: str, text: str) -> int:
    try:
        class_index = int(raw_value.strip())
    except ValueError:
        raise ValueError(
            f"invalid class index {raw_value!r} for {factor.name} in {text!r}; "
            f"{factor.name} takes a whole number from 0 to {factor.size - 1}"
        ) from None
    if not 0 <= class_index < factor.size:
        raise ValueError(
            f"class index {class_index} of {factor.name} in {text!r} is out of "
            f"range; use 0 to {factor.size - 1}"
        )
    return class_index


def _parse_value(factor: Factor, raw_value: str, text: str) -> int:
    """Return the class whose value is nearest ``raw_value``, within half a step."""
    number_text = raw_value
    degrees = factor.name == "orientation" and raw_value.lower().endswith(
        _DEGREE_SUFFIX
    )
    if degrees:
        number_text = raw_value[: -len(_DEGREE_SUFFIX)].strip()
    try:
        number = float(number_text)
    except ValueError:
        number = math.nan
    if degrees:
        number = math.radians(number)

    grid = np.asarray(factor.values)
    half_step = (grid[1] - grid[0]) / 2
    allowed = _describe_grid(factor)
    if not math.isfinite(number):
        raise ValueError(
            f"invalid value {raw_value!r} for {factor.name} in {text!r}; {allowed}"
        )
    distances = np.abs(grid - number)
    class_index = int(np.argmin(distances))
    # A small slack keeps values printed with few digits, such as 0.55, on the grid.
    if distances[class_index] > half_step * (1 + 1e-9):
        raise ValueError(
            f"{factor.name} value {raw_value!r} in {text!r} is more than half a grid "
            f"step from every grid value; {allowed}"
        )
    return class_index


def _describe_grid(factor: Factor) -> str:
    if factor.name == "orientation":
        return (
            "orientation takes radians from 0 to 2π (6.2832) in 40 steps of "
            f"{factor.values[1]:.4f}, or degrees with a deg suffix, or #0 to #39"
        )
    listed_values = ", ".join(f"{value:g}" for value in factor.values)
    return f"{factor.name} takes one of {listed_values}, or #0 to #{factor.size - 1}"


def assignment_to_classes(assignment: Intervention) -> np.ndarray:
    """Turn an assignment of all five factors into class indices ``(5,)`` int64.

    :raises ValueError: naming unknown or missing factors, or a class out of range.
    """
    unknown = sorted(set(assignment) - set(FACTOR_NAMES))
    if unknown:
        raise ValueError(
            f"unknown factor(s) {', '.join(unknown)}; known factors: "
            f"{', '.join(FACTOR_NAMES)}"
        )
    missing = [name for name in FACTOR_NAMES if name not in assignment]
    if missing:
        raise ValueError(
            f"missing factor(s) {', '.join(missing)}; give a class for each of "
            f"{', '.join(FACTOR_NAMES)}"
        )
    return validate_classes(np.array([assignment[f.name] for f in FACTORS]))
