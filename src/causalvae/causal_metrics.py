"""Causal metrics of a trained model against the exact answers of a factor graph.

The model's factor mechanisms are conditional probability tables, so its answers to
conditioning, intervention and counterfactual queries about the factors can be computed
exactly by :mod:`causalvae.exact` on :func:`learned_graph`. :func:`causal_metrics`
compares them with the answers of the true graph that generated the data, and with the
true counterfactuals of units whose exogenous noise was recorded. ``docs/graphs.md``
gives the definitions as formulas.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from causalvae import exact, queries
from causalvae.data.resample import ResampledUnits
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.graph import FactorGraph
from causalvae.learned_mechanisms import (
    copy_with_parents,
    fit_mechanisms,
    learned_graph,
)
from causalvae.metrics import iou, oracle
from causalvae.models import ConditionalVAE

__all__ = [
    "QueryPair",
    "causal_metrics",
    "copy_with_parents",
    "counterfactual_sources",
    "default_queries",
    "fit_mechanisms",
    "learned_graph",
    "select_units",
]

logger = logging.getLogger(__name__)

QueryPair = tuple[str, str]
"""``(cause, effect)``: compare ``p(effect | cause = v)`` and
``p(effect | do(cause = v))`` for every class ``v`` of the cause."""

DEFAULT_NUM_UNITS = 500

_SIZES = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))


# --------------------------------------------------------------------------------------
# Which queries are asked
# --------------------------------------------------------------------------------------


def default_queries(graph: FactorGraph) -> list[QueryPair]:
    """Return every ordered pair of distinct observed factors that take part in edges.

    A factor takes part when it is an end of an edge of ``graph``, hidden edges
    included, so the pairs cover every observed edge in both directions, longer
    paths, and observed factors that share a hidden parent.
    """
    involved = {name for edge in graph.edges for name in edge}
    observed = [name for name in FACTOR_NAMES if name in involved]
    return [
        (cause, effect) for cause in observed for effect in observed if cause != effect
    ]


def counterfactual_sources(graph: FactorGraph) -> list[str]:
    """Return the observed factors with an observed child, which counterfactuals set."""
    return [
        name
        for name in FACTOR_NAMES
        if any(not graph.is_hidden(child) for child in graph.children(name))
    ]


def _observed_descendants(graph: FactorGraph, factor: str) -> set[str]:
    return {name for name in graph.descendants(factor) if not graph.is_hidden(name)}


def _counterfactual_query(
    true_graph: FactorGraph, model_graph: FactorGraph, factor: str
) -> list[str]:
    """Return the observed descendants of ``factor`` in either graph, in order."""
    descendants = _observed_descendants(true_graph, factor)
    descendants |= _observed_descendants(model_graph, factor)
    return sorted(descendants, key=FACTOR_NAMES.index)


# --------------------------------------------------------------------------------------
# The metrics
# --------------------------------------------------------------------------------------


def causal_metrics(
    vae: ConditionalVAE,
    true_graph: FactorGraph,
    units: ResampledUnits,
    *,
    queries: Sequence[QueryPair] | None = None,
    num_units: int = DEFAULT_NUM_UNITS,
    seed: int = 0,
    image_metrics: bool = True,
    batch_size: int = 250,
) -> dict[str, Any]:
    """Compare the model's causal answers with the exact ones of ``true_graph``.

    Rung 1 and 2, for each pair ``(X, Y)`` of ``queries`` (by default
    :func:`default_queries`) and each class ``v`` of ``X`` with ``p(X = v) > 0``:
    the total variation between the model's and the exact ``p(Y | X = v)``, and
    between the model's and the exact ``p(Y | do(X = v))``, averaged with equal
    weight over pairs and classes.

    Rung 3, on the first ``num_units`` of ``units``: each unit gets ``do(X = x*)``
    with ``X`` drawn uniformly from :func:`counterfactual_sources` and ``x*``
    uniformly from the other classes of ``X``. The query ``Q`` is the joint of the
    observed descendants of ``X`` in either graph. Per unit, with ``o`` its observed
    factors and ``q*`` its true counterfactual from its recorded noise:

    - ``counterfactual_tv``: TV between the model's ``p(Q' | o, do)`` and the exact
      one given ``o`` alone, the best any model that sees only the factors can do;
    - ``counterfactual_agreement``: ``E[p_model(Q' = q* | o, do)]``, and
      ``counterfactual_agreement_ideal`` the same for the exact distribution;
    - ``counterfactual_iou``: IoU between the image of
      :func:`causalvae.queries.counterfactual` and the oracle image of the true
      counterfactual factors; ``counterfactual_iou_ideal`` is the IoU of the oracle
      image of one sample of the exact distribution, and
      ``counterfactual_iou_own_factors`` compares the model's image with the oracle
      image of the model's own counterfactual factors (decoder fidelity alone).
      ``counterfactual_sample_agreement`` is the fraction of units whose factors
      from :func:`causalvae.queries.counterfactual` equal ``q*``.

    Averages are over units. Hidden factors are never given to the model, so a
    conditional that a hidden confounder creates between observed factors is not
    represented by a model without the hidden node; its ``conditional_tv`` stays
    large while interventions and counterfactuals can still be right.

    :param units: units drawn from ``true_graph`` with recorded noise; images are
        needed only for the image metrics.
    :param num_units: number of units for the counterfactual metrics.
    :param seed: seed of the interventions, the abducted noise and the ideal sample.
    :param image_metrics: compute the IoU metrics (needs ``units.images``).
    :returns: a JSON-serialisable mapping; ``pairs`` and ``interventions`` give the
        parts of the averages.
    :raises ValueError: on units from another graph, pairs naming unknown or hidden
        factors, or missing images.
    """
    if units.graph != true_graph:
        raise ValueError(
            f"the units were drawn from graph {units.graph.name or 'unnamed'}, not "
            f"from {true_graph.name or 'unnamed'}; pass units of the true graph"
        )
    if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
        raise ValueError(f"num_units must be a positive integer, got {num_units!r}")
    pairs = list(default_queries(true_graph) if queries is None else queries)
    for cause, effect in pairs:
        for factor in (cause, effect):
            if factor not in FACTOR_NAMES:
                raise ValueError(
                    f"query factor {factor!r} is not an observed factor; choose from "
                    f"{', '.join(FACTOR_NAMES)}"
                )
        if cause == effect:
            raise ValueError(f"query pair ({cause}, {effect}) names one factor twice")
    if image_metrics and units.images is None:
        raise ValueError(
            "the units have no images; render them (render_units) or pass "
            "image_metrics=False"
        )

    model_graph = learned_graph(vae)
    result: dict[str, Any] = {
        "graph": true_graph.name,
        "num_units": min(num_units, units.num_units),
        "seed": seed,
    }
    result.update(_query_metrics(model_graph, true_graph, pairs))
    result.update(
        _counterfactual_metrics(
            vae,
            model_graph,
            true_graph,
            units,
            num_units=num_units,
            seed=seed,
            image_metrics=image_metrics,
            batch_size=batch_size,
        )
    )
    return result


def _query_metrics(
    model_graph: FactorGraph, true_graph: FactorGraph, pairs: Sequence[QueryPair]
) -> dict[str, Any]:
    per_pair: dict[str, dict[str, float]] = {}
    conditional_all, interventional_all, gap_all = [], [], []
    for cause, effect in pairs:
        marginal = exact.conditional(true_graph, [cause])
        conditional_tv, interventional_tv, gap = [], [], []
        for value in np.flatnonzero(marginal > 0):
            given = {cause: int(value)}
            true_seen = exact.conditional(true_graph, [effect], given)
            true_done = exact.interventional(true_graph, [effect], given)
            model_seen = exact.conditional(model_graph, [effect], given)
            model_done = exact.interventional(model_graph, [effect], given)
            conditional_tv.append(exact.total_variation(model_seen, true_seen))
            interventional_tv.append(exact.total_variation(model_done, true_done))
            gap.append(exact.total_variation(true_seen, true_done))
        per_pair[f"{effect} | {cause}"] = {
            "conditional_tv": float(np.mean(conditional_tv)),
            "interventional_tv": float(np.mean(interventional_tv)),
            "exact_condition_do_tv": float(np.mean(gap)),
        }
        conditional_all += conditional_tv
        interventional_all += interventional_tv
        gap_all += gap
    if not pairs:
        return {
            "num_query_pairs": 0,
            "conditional_tv": None,
            "interventional_tv": None,
            "interventional_tv_max": None,
            "exact_condition_do_tv": None,
            "pairs": {},
        }
    return {
        "num_query_pairs": len(pairs),
        "conditional_tv": float(np.mean(conditional_all)),
        "interventional_tv": float(np.mean(interventional_all)),
        "interventional_tv_max": float(np.max(interventional_all)),
        "exact_condition_do_tv": float(np.mean(gap_all)),
        "pairs": per_pair,
    }


_COUNTERFACTUAL_KEYS = (
    "counterfactual_tv",
    "counterfactual_agreement",
    "counterfactual_agreement_ideal",
    "counterfactual_sample_agreement",
    "counterfactual_iou",
    "counterfactual_iou_ideal",
    "counterfactual_iou_own_factors",
)


def _counterfactual_metrics(
    vae: ConditionalVAE,
    model_graph: FactorGraph,
    true_graph: FactorGraph,
    units: ResampledUnits,
    *,
    num_units: int,
    seed: int,
    image_metrics: bool,
    batch_size: int,
) -> dict[str, Any]:
    sources = counterfactual_sources(true_graph)
    empty: dict[str, Any] = {key: None for key in _COUNTERFACTUAL_KEYS}
    if not sources:
        return {**empty, "interventions": {}}
    count = min(num_units, units.num_units)
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=vae.device).manual_seed(seed)
    classes = units.classes[:count]

    # The intervention of each unit: a source factor and another class of it.
    chosen = rng.integers(0, len(sources), size=count)
    targets = np.zeros(count, dtype=np.int64)
    for index, factor in enumerate(sources):
        mask = chosen == index
        size = _SIZES[factor]
        current = classes[mask, FACTOR_NAMES.index(factor)]
        targets[mask] = (current + rng.integers(1, size, size=mask.sum())) % size

    per_unit: dict[str, list[np.ndarray]] = {key: [] for key in _COUNTERFACTUAL_KEYS}
    interventions: dict[str, dict[str, Any]] = {}
    for index, factor in enumerate(sources):
        selected = np.flatnonzero(chosen == index)
        if selected.size == 0:
            continue
        parts = _intervention_metrics(
            vae,
            model_graph,
            true_graph,
            units,
            selected,
            factor,
            targets[selected],
            rng=rng,
            generator=generator,
            image_metrics=image_metrics,
            batch_size=batch_size,
        )
        query = _counterfactual_query(true_graph, model_graph, factor)
        interventions[factor] = {
            "num_units": int(selected.size),
            "query": ", ".join(query),
            **{key: _mean(values) for key, values in parts.items()},
        }
        for key, values in parts.items():
            per_unit[key].append(values)
    summary = {
        key: _mean(np.concatenate(values)) if values else None
        for key, values in per_unit.items()
    }
    return {**summary, "interventions": interventions}


def _mean(values: np.ndarray | None) -> float | None:
    if values is None or len(values) == 0:
        return None
    return float(np.mean(values))


def _intervention_metrics(
    vae: ConditionalVAE,
    model_graph: FactorGraph,
    true_graph: FactorGraph,
    units: ResampledUnits,
    selected: np.ndarray,
    factor: str,
    targets: np.ndarray,
    *,
    rng: np.random.Generator,
    generator: torch.Generator,
    image_metrics: bool,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Compute the per-unit counterfactual metrics of ``selected`` under ``do``."""
    classes = units.classes[selected]
    noise = {name: values[selected] for name, values in units.noise.items()}
    do = {factor: targets}
    query = _counterfactual_query(true_graph, model_graph, factor)
    columns = [FACTOR_NAMES.index(name) for name in query]
    shape = tuple(_SIZES[name] for name in query)

    # The true counterfactual of every unit, from its recorded noise.
    truth = exact.unit_counterfactuals(true_graph, classes, noise, do)
    true_classes = np.stack([truth[name] for name in FACTOR_NAMES], axis=1)
    true_flat = np.ravel_multi_index(tuple(truth[name] for name in query), shape)

    # The exact answers given the observed factors, for the ideal model and the model.
    ideal = exact.counterfactual_distributions(true_graph, classes, do, query)
    model = _model_counterfactuals(model_graph, classes, do, query)
    ideal_flat = ideal.reshape(len(selected), -1)
    model_flat = model.reshape(len(selected), -1)
    rows = np.arange(len(selected))
    parts: dict[str, np.ndarray] = {
        "counterfactual_tv": exact.total_variations(model, ideal),
        "counterfactual_agreement": model_flat[rows, true_flat],
        "counterfactual_agreement_ideal": ideal_flat[rows, true_flat],
    }
    if not image_metrics:
        return parts

    # One sample of the ideal distribution per unit, as an image.
    cumulative = np.cumsum(ideal_flat, axis=1)
    draws = rng.random(len(selected))[:, None] * cumulative[:, -1:]
    sampled = np.minimum((cumulative < draws).sum(axis=1), cumulative.shape[1] - 1)
    ideal_classes = true_classes.copy()
    ideal_classes[:, columns] = np.stack(np.unravel_index(sampled, shape), axis=1)

    # The model's counterfactual images through the Pyro handlers.
    sample_agreement, model_iou, ideal_iou, own_iou = [], [], [], []
    for start in range(0, len(selected), batch_size):
        part = slice(start, start + batch_size)
        images = torch.from_numpy(units.images[selected[part]]).to(vae.device).float()
        factual = torch.from_numpy(classes[part]).to(vae.device)
        do_tensor = {factor: torch.from_numpy(targets[part]).to(vae.device)}
        answer = queries.counterfactual(
            vae, images, do_tensor, factual, generator=generator
        )
        answer_classes = answer.counterfactual_factors.cpu()
        predicted = answer.counterfactual_images.cpu()
        true_images = oracle(torch.from_numpy(true_classes[part]))
        ideal_images = oracle(torch.from_numpy(ideal_classes[part]))
        same = answer_classes.numpy()[:, columns] == true_classes[part][:, columns]
        sample_agreement.append(same.all(axis=1).astype(np.float64))
        model_iou.append(iou(predicted, true_images).numpy())
        ideal_iou.append(iou(ideal_images, true_images).numpy())
        own_iou.append(iou(predicted, oracle(answer_classes)).numpy())
    parts["counterfactual_sample_agreement"] = np.concatenate(sample_agreement)
    parts["counterfactual_iou"] = np.concatenate(model_iou)
    parts["counterfactual_iou_ideal"] = np.concatenate(ideal_iou)
    parts["counterfactual_iou_own_factors"] = np.concatenate(own_iou)
    return parts


def _model_counterfactuals(
    model_graph: FactorGraph,
    classes: np.ndarray,
    do: Mapping[str, np.ndarray],
    query: Sequence[str],
) -> np.ndarray:
    """Return :func:`exact.counterfactual_distributions` on the model's graph.

    The model's graph has no hidden factors, so only the query, its ancestors and the
    intervened factor matter. Zeroing the other columns lets units that agree on
    those share one computation, without changing any answer.
    """
    relevant = set(query) | set(do)
    for name in query:
        relevant |= model_graph.ancestors(name)
    reduced = classes.copy()
    for column, name in enumerate(FACTOR_NAMES):
        if name not in relevant:
            reduced[:, column] = 0
    return exact.counterfactual_distributions(model_graph, reduced, do, query)


def select_units(units: ResampledUnits, index: np.ndarray) -> ResampledUnits:
    """Return the units at ``index``, with their noise, hidden factors and images."""
    index = np.asarray(index)
    return replace(
        units,
        classes=units.classes[index],
        indices=units.indices[index],
        noise={name: values[index] for name, values in units.noise.items()},
        hidden={name: values[index] for name, values in units.hidden.items()},
        images=None if units.images is None else units.images[index],
    )
