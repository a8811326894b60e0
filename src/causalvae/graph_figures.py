"""Figures of factor graphs: conditioning against intervening, model against exact."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.exact import conditional, interventional, total_variation
from causalvae.figures import format_value
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
        label = f"{parent}={_value_label(graph, parent, value)} (TV {distance:.2f})"
        left.plot(classes, conditioned, marker=".", label=label)
        right.plot(classes, intervened, marker=".", label=label)
    left.set_title(f"conditioning: p({child} | {parent} = v)")
    right.set_title(f"intervening: p({child} | do({parent} = v))")
    for axes in (left, right):
        _label_classes(axes, graph, child)
        axes.grid(alpha=0.3)
    left.set_ylabel("probability")
    left.legend(fontsize="small")
    figure.suptitle(f"graph {graph.name or 'unnamed'}: {graph.describe_edges()}")

    path = Path(path)
    _save_atomic(figure, path)
    logger.info("wrote %s", path)
    return path


def plot_model_vs_exact(
    exact_graph: FactorGraph,
    model_graph: FactorGraph,
    cause: str,
    effect: str,
    path: str | Path,
    values: Sequence[int] | None = None,
) -> Path:
    """Plot a model's conditional and interventional answers over the exact ones.

    The left panel shows ``p(effect | cause = v)``, the right panel
    ``p(effect | do(cause = v))``. Each class ``v`` has one colour: a solid line for
    ``exact_graph`` and a dashed line with markers for ``model_graph``, with the total
    variation between them in the legend. The file is written atomically in the
    format of its suffix, as in :func:`plot_condition_vs_do`.

    :param exact_graph: the true graph, which may have hidden factors.
    :param model_graph: the model's graph, e.g.
        :func:`causalvae.learned_mechanisms.learned_graph`.
    :param values: classes of ``cause``; by default up to :data:`DEFAULT_NUM_VALUES`
        evenly spaced classes.
    :returns: the path written.
    :raises ValueError: on unknown factors, ``cause == effect``, out-of-range classes
        or a class of probability zero under either graph.
    """
    for graph in (exact_graph, model_graph):
        graph.check_factor(cause)
        graph.check_factor(effect)
    if cause == effect:
        raise ValueError(f"cause and effect are both {cause}; choose two factors")
    if values is None:
        count = min(DEFAULT_NUM_VALUES, exact_graph.size(cause))
        values = np.unique(np.linspace(0, exact_graph.size(cause) - 1, count).round())
    values = [exact_graph.check_class(cause, int(v)) for v in values]

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, sharey=True)
    classes = np.arange(exact_graph.size(effect))
    colours = [f"C{i % 10}" for i in range(len(values))]
    for value, colour in zip(values, colours, strict=True):
        given = {cause: value}
        panels = (
            (left, conditional(exact_graph, [effect], given),
             conditional(model_graph, [effect], given)),
            (right, interventional(exact_graph, [effect], given),
             interventional(model_graph, [effect], given)),
        )  # fmt: skip
        for axes, exact_answer, model_answer in panels:
            distance = total_variation(exact_answer, model_answer)
            value_text = _value_label(exact_graph, cause, value)
            axes.plot(
                classes, exact_answer, color=colour, label=f"{cause}={value_text} exact"
            )
            axes.plot(
                classes,
                model_answer,
                color=colour,
                linestyle="--",
                marker=".",
                label=f"{cause}={value_text} model (TV {distance:.3f})",
            )
    left.set_title(f"conditioning: p({effect} | {cause} = v)")
    right.set_title(f"intervening: p({effect} | do({cause} = v))")
    for axes in (left, right):
        _label_classes(axes, exact_graph, effect)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    left.set_ylabel("probability")
    figure.suptitle(
        f"model against exact, graph {exact_graph.name or 'unnamed'}: "
        f"{exact_graph.describe_edges()}"
    )

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


def _is_dsprites_factor(graph: FactorGraph, factor: str) -> bool:
    """Return whether ``factor`` has the classes of the dSprites factor of its name."""
    if factor not in FACTOR_NAMES:
        return False
    return graph.size(factor) == FACTOR_SIZES[FACTOR_NAMES.index(factor)]


def _value_label(graph: FactorGraph, factor: str, value: int) -> str:
    """Return a class as a reader knows it: a shape name, a scale or an angle."""
    if _is_dsprites_factor(graph, factor):
        return format_value(factor, value)
    return str(value)


def _label_classes(axes: Axes, graph: FactorGraph, factor: str) -> None:
    """Label the x axis with the classes of ``factor``, shapes by name."""
    if factor == "shape" and _is_dsprites_factor(graph, factor):
        classes = range(graph.size(factor))
        axes.set_xticks(list(classes), [format_value(factor, c) for c in classes])
        axes.set_xlabel("shape")
    else:
        axes.set_xlabel(f"{factor} class")
