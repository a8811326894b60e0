"""The true image of any combination of factors.

dSprites contains every combination, so the true image of a factor combination, such as
the counterfactual of an image, is known exactly: it is rendered here by
:mod:`causalvae.data.render`, or looked up in a loaded full grid such as the
official file.
"""

from __future__ import annotations

import numpy as np

from causalvae.data.factors import Intervention, assignment_to_classes
from causalvae.data.loader import DSprites
from causalvae.data.render import render
from causalvae.data.spec import IMAGE_SIZE, classes_to_index, validate_classes


def oracle_image(classes: np.ndarray, *, grid: DSprites | None = None) -> np.ndarray:
    """Return the true image of each factor combination.

    :param classes: class indices ``(..., 5)``, for example ``(5,)`` for one image
        or ``(batch, 5)``.
    :param grid: a loaded full grid to look the images up in; by default the images
        are rendered.
    :returns: uint8 pixels in {0, 1}, ``(..., 64, 64)``.
    :raises ValueError: when a class is out of range, or ``grid`` is not the full
        grid.
    """
    classes = validate_classes(classes)
    batch_shape = classes.shape[:-1]
    flat = classes.reshape(-1, 5)
    if grid is None:
        images = render(flat)
    else:
        if not grid.is_full_grid:
            raise ValueError(
                f"{grid.path} contains {len(grid)} images, not the full grid of the "
                "official file; pass grid=None to render the images instead"
            )
        images = np.asarray(grid.images[classes_to_index(flat)])
    return images.reshape(*batch_shape, IMAGE_SIZE, IMAGE_SIZE)


def oracle_from_assignment(
    assignment: Intervention, *, grid: DSprites | None = None
) -> np.ndarray:
    """Return the true image of a complete assignment such as ``{"shape": 2, ...}``.

    :param assignment: a class index for each of the five factors.
    :param grid: as for :func:`oracle_image`.
    :returns: uint8 pixels in {0, 1}, ``(64, 64)``.
    :raises ValueError: naming missing or unknown factors, or a class out of range.
    """
    return oracle_image(assignment_to_classes(assignment), grid=grid)
