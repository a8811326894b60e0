"""The factor specification: sizes, values, strides and class validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from causalvae.data.spec import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    FACTORS,
    NUM_IMAGES,
    STRIDES,
    classes_to_index,
    classes_to_values,
    factor_values,
    get_factor,
    index_to_classes,
    validate_classes,
)


def test_factor_sizes_cover_grid() -> None:
    assert FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert int(np.prod(FACTOR_SIZES)) == NUM_IMAGES
    assert STRIDES == (245_760, 40_960, 1_024, 32, 1)


def test_values_follow_official_formula() -> None:
    for factor, (start, stop) in zip(
        FACTORS[1:], [(0.5, 1.0), (0.0, 2 * np.pi), (0.0, 1.0), (0.0, 1.0)], strict=True
    ):
        steps = factor.size - 1
        expected = [start + i * (stop - start) / steps for i in range(factor.size)]
        assert factor.values == tuple(expected)
    assert factor_values("orientation")[-1] == 2 * np.pi
    assert factor_values("shape").tolist() == [1.0, 2.0, 3.0]


def test_values_equal_real_latents_bitwise(real_dsprites_dir: Path) -> None:
    with np.load(real_dsprites_dir / "dsprites_subset.npz") as archive:
        classes = archive["latents_classes"]
        values = archive["latents_values"]
    np.testing.assert_array_equal(classes_to_values(classes), values)


def test_index_round_trip_over_grid() -> None:
    indices = np.arange(NUM_IMAGES)
    classes = index_to_classes(indices)
    assert classes.shape == (NUM_IMAGES, 5)
    np.testing.assert_array_equal(classes_to_index(classes), indices)


def test_index_order_pos_y_fastest() -> None:
    np.testing.assert_array_equal(index_to_classes(np.array(1)), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(index_to_classes(np.array(32)), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(
        index_to_classes(np.array(NUM_IMAGES - 1)), [2, 5, 39, 31, 31]
    )


def test_index_to_classes_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="grid indices must lie in"):
        index_to_classes(np.array([NUM_IMAGES]))
    with pytest.raises(ValueError, match="grid indices must lie in"):
        index_to_classes(np.array([-1]))


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([0, 0, 0, 0], "last dimension of 5"),
        ([3, 0, 0, 0, 0], "factor 'shape' is out of range; shape takes classes 0 to 2"),
        ([0, 0, 40, 0, 0], "orientation takes classes 0 to 39"),
        ([0, 0, 0, -1, 0], "class index -1 of factor 'pos_x'"),
        ([0, 0.5, 0, 0, 0], "whole numbers"),
        (["a", "b", "c", "d", "e"], "must be integers"),
    ],
)
def test_validate_classes_rejects(classes: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_classes(np.array(classes))


def test_validate_classes_accepts_whole_floats() -> None:
    checked = validate_classes(np.array([[2.0, 5.0, 39.0, 31.0, 0.0]]))
    assert checked.dtype == np.int64
    np.testing.assert_array_equal(checked, [[2, 5, 39, 31, 0]])


def test_validate_classes_accepts_empty_batch() -> None:
    assert validate_classes(np.zeros((0, 5), dtype=np.int64)).shape == (0, 5)


def test_classes_to_index_rejects_out_of_range() -> None:
    # Without the range check, pos_y = 32 would silently alias pos_x + 1.
    with pytest.raises(ValueError, match="pos_y"):
        classes_to_index(np.array([0, 0, 0, 0, 32]))


def test_get_factor_lists_known_names() -> None:
    assert get_factor("scale").size == 6
    with pytest.raises(ValueError, match="known factors: shape, scale"):
        get_factor("colour")
