"""Parsing factor assignments such as shape=heart, and describing factor classes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from causalvae.data.factors import (
    assignment_to_classes,
    describe_factors,
    format_factors,
    parse_factor_assignment,
    parse_factor_assignments,
)
from causalvae.data.spec import FACTOR_SIZES, FACTORS, get_factor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shape=square", ("shape", 0)),
        ("shape=Ellipse", ("shape", 1)),
        (" shape = heart ", ("shape", 2)),
        ("shape=#2", ("shape", 2)),
        ("scale=0.5", ("scale", 0)),
        ("scale=1", ("scale", 5)),
        ("scale=0.82", ("scale", 3)),
        ("orientation=0", ("orientation", 0)),
        ("orientation=6.2832", ("orientation", 39)),
        ("orientation=1.6", ("orientation", 10)),
        ("orientation=90deg", ("orientation", 10)),
        ("orientation=#20", ("orientation", 20)),
        ("pos_x=12", ("pos_x", 12)),
        ("pos_y=31", ("pos_y", 31)),
        ("pos_y=#0", ("pos_y", 0)),
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, int]) -> None:
    assert parse_factor_assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shape", "write name=value"),
        ("=heart", "write name=value"),
        ("shape=", "write name=value"),
        ("colour=1", "known factors: shape, scale, orientation, pos_x, pos_y"),
        ("shape=star", "use one of square, ellipse, heart, or a class index #0 to #2"),
        ("shape=1", "use one of square, ellipse, heart"),
        ("shape=#3", "out of range; use 0 to 2"),
        ("scale=0.3", "scale takes one of 0.5, 0.6, 0.7, 0.8, 0.9, 1, or #0 to #5"),
        ("scale=1.2", "more than half a grid step"),
        ("scale=big", "invalid value 'big' for scale"),
        ("scale=nan", "invalid value 'nan'"),
        ("orientation=7", "orientation takes radians from 0 to 2π"),
        ("orientation=-20deg", "more than half a grid step"),
        ("pos_x=32", "class index 32 of pos_x .* out of range; use 0 to 31"),
        ("pos_x=0.5", "pos_x takes a whole number from 0 to 31"),
        ("pos_y=-1", "out of range"),
    ],
)
def test_parse_assignment_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_factor_assignment(text)


@given(st.data())
def test_every_grid_value_parses_to_its_class(data: st.DataObject) -> None:
    factor = data.draw(
        st.sampled_from([get_factor("scale"), get_factor("orientation")])
    )
    class_index = data.draw(st.integers(0, factor.size - 1))
    value = factor.values[class_index]
    assert parse_factor_assignment(f"{factor.name}={value!r}") == (
        factor.name,
        class_index,
    )


@given(st.data())
def test_values_within_half_step_round_to_nearest(data: st.DataObject) -> None:
    factor = data.draw(
        st.sampled_from([get_factor("scale"), get_factor("orientation")])
    )
    class_index = data.draw(st.integers(0, factor.size - 1))
    half_step = (factor.values[1] - factor.values[0]) / 2
    offset = data.draw(st.floats(-0.98 * half_step, 0.98 * half_step))
    value = factor.values[class_index] + offset
    name, parsed = parse_factor_assignment(f"{factor.name}={value!r}")
    assert name == factor.name
    # Orientation 0 and 2π share an image but are different classes.
    assert parsed == class_index


@given(st.integers(0, 39))
def test_degrees_parse_like_radians(class_index: int) -> None:
    degrees = math.degrees(FACTORS[2].values[class_index])
    assert parse_factor_assignment(f"orientation={degrees!r}deg") == (
        "orientation",
        class_index,
    )


@given(st.sampled_from(range(5)), st.data())
def test_class_index_syntax_for_every_factor(column: int, data: st.DataObject) -> None:
    class_index = data.draw(st.integers(0, FACTOR_SIZES[column] - 1))
    name = FACTORS[column].name
    assert parse_factor_assignment(f"{name}=#{class_index}") == (name, class_index)


def test_parse_assignments_from_list_and_commas() -> None:
    expected = {"shape": 2, "scale": 5, "pos_x": 3}
    assert parse_factor_assignments(["shape=heart", "scale=1,pos_x=3"]) == expected
    assert parse_factor_assignments("shape=heart,scale=1,pos_x=3,") == expected
    assert parse_factor_assignments([]) == {}


def test_parse_assignments_rejects_repeated_factor() -> None:
    with pytest.raises(ValueError, match="'shape' is given more than once"):
        parse_factor_assignments(["shape=heart", "scale=1,shape=square"])


def test_describe_factors_is_json_ready() -> None:
    description = describe_factors(np.array([2, 3, 10, 12, 31]))
    assert json.loads(json.dumps(description)) == description
    assert description["shape"] == "heart"
    assert description["classes"] == {
        "shape": 2,
        "scale": 3,
        "orientation": 10,
        "pos_x": 12,
        "pos_y": 31,
    }
    assert description["values"]["scale"] == pytest.approx(0.8)
    assert description["values"]["pos_y"] == 1.0
    assert description["label"] == format_factors(np.array([2, 3, 10, 12, 31]))


def test_format_factors_line() -> None:
    assert format_factors(np.array([0, 0, 0, 1, 2])) == "square s=0.5 θ=0° x=1 y=2"
    assert format_factors(np.array([2, 5, 20, 0, 31])) == "heart s=1.0 θ=185° x=0 y=31"
    two_lines = format_factors(np.array([2, 5, 20, 0, 31]), two_lines=True)
    assert two_lines == "heart s=1.0 θ=185°\nx=0 y=31"


def test_describe_factors_rejects_batch() -> None:
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        describe_factors(np.zeros((2, 5), dtype=np.int64))


def test_assignment_to_classes_requires_all_factors() -> None:
    complete = {"shape": 1, "scale": 2, "orientation": 3, "pos_x": 4, "pos_y": 5}
    np.testing.assert_array_equal(assignment_to_classes(complete), [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="missing factor\\(s\\) pos_x, pos_y"):
        assignment_to_classes({"shape": 1, "scale": 2, "orientation": 3})
    with pytest.raises(ValueError, match="unknown factor\\(s\\) colour"):
        assignment_to_classes({**complete, "colour": 0})
    with pytest.raises(ValueError, match="scale"):
        assignment_to_classes({**complete, "scale": 6})
