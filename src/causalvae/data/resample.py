"""Causally resampled dSprites: units drawn from a factor graph with recorded noise.

Each unit is drawn by ancestral sampling in the Gumbel-max structural causal model
``f := argmax(log p(f | parents(f)) + u_f)`` with ``u_f ~ Gumbel(0, 1)^K_f``. The noise
``u_f`` of every factor, hidden ones included, is stored with the unit, so its true
counterfactuals are known exactly (:func:`causalvae.exact.unit_counterfactuals`).

A file is a ``.npz`` archive without pickled objects:

==============================  ===============  =====================================
key                             dtype, shape     content
==============================  ===============  =====================================
``imgs``                        uint8 (n,64,64)  images, pixels in {0, 1}
``latents_classes``             int64 (n, 5)     classes of the five observed factors
``latents_values``              float64 (n, 5)   their values
``original_dataset_indices``    int64 (n,)       index of the image in the dSprites grid
``exogenous_<factor>``          float64 (n, K)   Gumbel noise, one key per factor
``hidden_<name>``               int64 (n,)       classes of each hidden factor
``graph``                       unicode, 0-d     the graph as JSON
==============================  ===============  =====================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from causalvae.data.spec import (
    FACTOR_NAMES,
    IMAGE_SIZE,
    classes_to_index,
    classes_to_values,
)
from causalvae.exact import propagate
from causalvae.graph import FactorGraph, GraphError

logger = logging.getLogger(__name__)

NOISE_PREFIX = "exogenous_"
HIDDEN_PREFIX = "hidden_"
_BASE_KEYS = ("imgs", "latents_classes", "latents_values", "original_dataset_indices")


@dataclass(frozen=True, eq=False)
class ResampledUnits:
    """Units drawn from a factor graph, with their exogenous noise.

    :ivar graph: the graph that generated the units.
    :ivar classes: ``(n, 5)`` int64 classes of the observed factors, in the order of
        ``FACTOR_NAMES``.
    :ivar indices: ``(n,)`` int64 index of each unit's image in the dSprites grid.
    :ivar noise: ``{factor: (n, K_f) float64}`` Gumbel noise of every factor, hidden
        ones included; ``argmax(log p(f | parents) + noise[f])`` gives each class.
    :ivar hidden: ``{name: (n,) int64}`` classes of each hidden factor.
    :ivar images: ``(n, 64, 64)`` uint8 images in {0, 1}, or ``None`` before
        rendering.
    """

    graph: FactorGraph
    classes: np.ndarray
    indices: np.ndarray
    noise: dict[str, np.ndarray]
    hidden: dict[str, np.ndarray] = field(default_factory=dict)
    images: np.ndarray | None = None

    @property
    def num_units(self) -> int:
        """Number of units ``n``."""
        return int(self.classes.shape[0])

    @property
    def values(self) -> np.ndarray:
        """``(n, 5)`` float64 factor values of the observed factors."""
        return classes_to_values(self.classes)

    def factor(self, name: str) -> np.ndarray:
        """Return the ``(n,)`` classes of factor ``name``, observed or hidden."""
        self.graph.check_factor(name)
        if name in FACTOR_NAMES:
            return self.classes[:, FACTOR_NAMES.index(name)]
        return self.hidden[name]


def resample(graph: FactorGraph, n: int, seed: int) -> ResampledUnits:
    """Draw ``n`` units from ``graph`` by ancestral sampling with recorded noise.

    The noise of each factor is drawn in the order ``graph.names`` (observed factors,
    then hidden ones) from ``numpy.random.default_rng(seed)``, so a seed gives the
    same units on every machine with the same numpy bit generator. Images are not
    rendered; :func:`save_resampled` renders them.

    :param n: number of units, at least 1.
    :param seed: seed of the random number generator.
    :raises ValueError: when ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"number of units must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    noise = {
        factor: rng.gumbel(size=(int(n), graph.size(factor))) for factor in graph.names
    }
    values = propagate(graph, noise)
    classes = np.stack([values[name] for name in FACTOR_NAMES], axis=1)
    hidden = {name: values[name] for name in graph.hidden_names}
    logger.debug("resampled %d units from graph %s (seed %d)", n, graph.name, seed)
    return ResampledUnits(
        graph=graph,
        classes=classes,
        indices=classes_to_index(classes),
        noise=noise,
        hidden=hidden,
    )


def render_units(units: ResampledUnits) -> ResampledUnits:
    """Return ``units`` with images from the procedural dSprites renderer."""
    from causalvae.data import render

    images = np.asarray(render.render(units.classes), dtype=np.uint8)
    expected = (units.num_units, IMAGE_SIZE, IMAGE_SIZE)
    if images.shape != expected:
        raise ValueError(
            f"the renderer returned images of shape {images.shape}; expected {expected}"
        )
    return replace(units, images=images)


def _extra_arrays(units: ResampledUnits) -> dict[str, np.ndarray]:
    extra: dict[str, np.ndarray] = {}
    for factor in units.graph.names:
        extra[NOISE_PREFIX + factor] = np.asarray(units.noise[factor], dtype=np.float64)
    for name in units.graph.hidden_names:
        extra[HIDDEN_PREFIX + name] = np.asarray(units.hidden[name], dtype=np.int64)
    extra["graph"] = np.asarray(units.graph.to_json(), dtype=np.str_)
    return extra


def save_resampled(path: str | Path, units: ResampledUnits) -> Path:
    """Write ``units`` to a ``.npz`` file, rendering images first if there are none.

    The write is atomic (:func:`causalvae.data.store.save_dataset`): a temporary file
    in the same folder replaces ``path`` once it is complete.

    :returns: the path written.
    """
    from causalvae.data.store import save_dataset

    if units.images is None:
        units = render_units(units)
    path = save_dataset(
        path,
        np.asarray(units.images, dtype=np.uint8),
        units.classes,
        units.indices,
        extra=_extra_arrays(units),
    )
    logger.info("wrote %d resampled units to %s", units.num_units, path)
    return path


def load_resampled(path: str | Path, load_images: bool = True) -> ResampledUnits:
    """Read units written by :func:`save_resampled` and check them.

    The check recomputes every factor from the stored noise and compares it with the
    stored classes, so a file whose noise and factors disagree is rejected.

    :param load_images: read ``imgs`` too; ``False`` leaves ``images`` as ``None``.
    :raises FileNotFoundError: when ``path`` does not exist.
    :raises ValueError: on missing keys, wrong shapes or inconsistent contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"resampled data file {path} not found; create it with "
            "'causalvae data resample'"
        )
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        _require_keys(path, keys, [*_BASE_KEYS, "graph"])
        try:
            graph = FactorGraph.from_json(str(archive["graph"][()]))
        except GraphError as error:
            raise ValueError(f"{path}: invalid graph: {error}") from error
        _require_keys(
            path,
            keys,
            [NOISE_PREFIX + f for f in graph.names]
            + [HIDDEN_PREFIX + h for h in graph.hidden_names],
        )
        classes = archive["latents_classes"].astype(np.int64)
        indices = archive["original_dataset_indices"].astype(np.int64)
        noise = {f: archive[NOISE_PREFIX + f].astype(np.float64) for f in graph.names}
        hidden = {
            h: archive[HIDDEN_PREFIX + h].astype(np.int64) for h in graph.hidden_names
        }
        images = archive["imgs"] if load_images else None

    units = ResampledUnits(graph, classes, indices, noise, hidden, images)
    _check_consistent(path, units)
    return units


def _require_keys(path: Path, keys: set[str], required: list[str]) -> None:
    missing = [key for key in required if key not in keys]
    if missing:
        raise ValueError(
            f"{path} is missing key(s) {', '.join(missing)}; it is not a resampled "
            "dSprites file, so write it again with 'causalvae data resample'"
        )


def _check_consistent(path: Path, units: ResampledUnits) -> None:
    n = units.num_units
    if units.classes.shape != (n, 5):
        raise ValueError(
            f"{path}: latents_classes has shape {units.classes.shape}; expected (n, 5)"
        )
    if units.indices.shape != (n,):
        raise ValueError(
            f"{path}: original_dataset_indices has shape {units.indices.shape}; "
            f"expected ({n},)"
        )
    if units.images is not None and units.images.shape != (n, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{path}: imgs has shape {units.images.shape}; "
            f"expected ({n}, {IMAGE_SIZE}, {IMAGE_SIZE})"
        )
    try:
        values = propagate(units.graph, units.noise)
    except ValueError as error:
        raise ValueError(f"{path}: invalid exogenous noise: {error}") from error
    if values[FACTOR_NAMES[0]].shape != (n,):
        raise ValueError(
            f"{path}: the exogenous noise has {values[FACTOR_NAMES[0]].shape[0]} rows "
            f"but latents_classes has {n}"
        )
    for column, factor in enumerate(FACTOR_NAMES):
        if not np.array_equal(values[factor], units.classes[:, column]):
            raise ValueError(
                f"{path}: the exogenous noise does not reproduce latents_classes for "
                f"{factor}; the file is corrupt or was edited"
            )
    for name in units.graph.hidden_names:
        if not np.array_equal(values[name], units.hidden[name]):
            raise ValueError(
                f"{path}: the exogenous noise does not reproduce hidden_{name}"
            )
    if not np.array_equal(units.indices, classes_to_index(units.classes)):
        raise ValueError(
            f"{path}: original_dataset_indices do not match latents_classes"
        )
