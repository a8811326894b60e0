"""Figures of factor graphs: conditioning against intervening."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causalvae.exact import conditional, interventional, total_variation
from causalvae.graph import FactorGraph

logger = logging.getLogger(__name__)

DEFAULT_NUM_VALUES = 4


def plot_condition_vs_do(
    graph: FactorGraph,
    parent: str,
    child: str,
    path: str | Path,
    values: Sequence[int] | None = None,
) -> Path:
    """Plot ``p(child | parent = v)`` beside ``p(child | do(parent = v))``.

    The left panel conditions, the right panel intervenes, one line per class ``v``;
    each legend entry gives the total variation between the two. The file is written
    atomically (a temporary file in the same folder, then ``os.replace``) in the
    format of its suffix, e.g. ``.png``, ``.pdf`` or ``.svg``.

    :param values: classes of ``parent`` to plot; by default up to
        :data:`DEFAULT_NUM_VALUES` evenly spaced classes.
    :returns: the path written.
    :raises ValueError: on unknown factors, ``parent == child``, out-of-range
        classes, or a class ``v`` of probability zero (conditioning is undefined).
    """
    graph.check_factor(parent)
    graph.check_factor(child)
    if parent == child:
        raise ValueError(f"parent and child are both {parent}; choose two factors")
    if values is None:
        count = min(DEFAULT_NUM_VALUES, graph.size(parent))
        values = np.unique(np.linspace(0, graph.size(parent) - 1, count).round())
    values = [graph.check_class(parent, int(v)) for v in values]

    figure = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, sharey=True)
    classes = np.arange(graph.size(child))
    for value in values:
        conditioned = conditional(graph, [child], {parent: value})
        intervened = interventional(graph, [child], {parent: value})
        distance = total_variation(conditioned, intervened)
        label = f"{parent}={value} (TV {distance:.2f})"
        left.plot(classes, conditioned, marker=".", label=label)
        right.plot(classes, intervened, marker=".", label=label)
    left.set_title(f"conditioning: p({child} | {parent} = v)")
    right.set_title(f"intervening: p({child} | do({parent} = v))")
    for axes in (left, right):
        axes.set_xlabel(f"{child} class")
        axes.grid(alpha=0.3)
    left.set_ylabel("probability")
    left.legend(fontsize="small")
    figure.suptitle(f"graph {graph.name or 'unnamed'}: {graph.describe_edges()}")

    path = Path(path)
    _save_atomic(figure, path)
    logger.info("wrote %s", path)
    return path


def _save_atomic(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            figure.savefig(handle, format=path.suffix.lstrip(".") or "png")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
