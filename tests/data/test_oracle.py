"""The oracle: the true image of any factor combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from causalvae.data.loader import DSprites
from causalvae.data.oracle import oracle_from_assignment, oracle_image
from causalvae.data.render import render
from causalvae.data.spec import NUM_IMAGES, classes_to_values, index_to_classes


def test_oracle_of_one_image() -> None:
    image = oracle_image(np.array([2, 5, 0, 16, 16]))
    assert image.shape == (64, 64)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, render(np.array([[2, 5, 0, 16, 16]]))[0])


@pytest.mark.parametrize("batch_shape", [(1,), (4,), (2, 3)])
def test_oracle_keeps_batch_shape(batch_shape: tuple[int, ...]) -> None:
    count = int(np.prod(batch_shape))
    classes = index_to_classes(np.arange(count) * 70_001).reshape(*batch_shape, 5)
    images = oracle_image(classes)
    assert images.shape == (*batch_shape, 64, 64)
    np.testing.assert_array_equal(
        images.reshape(count, 64, 64), render(classes.reshape(count, 5))
    )


def test_oracle_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="pos_x"):
        oracle_image(np.array([0, 0, 0, 32, 0]))


def test_oracle_looks_up_full_grid() -> None:
    # A stand-in grid whose images are all blank, without allocating 3 GiB.
    blank = np.broadcast_to(np.zeros((1, 64, 64), dtype=np.uint8), (NUM_IMAGES, 64, 64))
    grid = DSprites(
        images=blank,
        classes=np.zeros((0, 5), dtype=np.int64),
        values=np.zeros((0, 5)),
        indices=np.arange(NUM_IMAGES),
        path=Path("grid.npz"),
    )
    images = oracle_image(np.array([[0, 5, 0, 16, 16], [1, 5, 0, 16, 16]]), grid=grid)
    assert images.shape == (2, 64, 64)
    assert not images.any()


def test_oracle_rejects_partial_grid() -> None:
    classes = index_to_classes(np.arange(10))
    partial = DSprites(
        images=render(classes),
        classes=classes,
        values=classes_to_values(classes),
        indices=np.arange(10),
        path=Path("partial.npz"),
    )
    with pytest.raises(ValueError, match="not the full grid"):
        oracle_image(np.array([0, 0, 0, 0, 1]), grid=partial)


def test_oracle_from_assignment() -> None:
    assignment = {"shape": 1, "scale": 2, "orientation": 3, "pos_x": 4, "pos_y": 5}
    np.testing.assert_array_equal(
        oracle_from_assignment(assignment), oracle_image(np.array([1, 2, 3, 4, 5]))
    )
    with pytest.raises(ValueError, match="missing factor"):
        oracle_from_assignment({"shape": 1})
