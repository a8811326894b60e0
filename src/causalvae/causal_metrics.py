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
from causalvae.graph import FactorGraph, FactorNode, TableMechanism
from causalvae.metrics import iou, oracle
from causalvae.models import ConditionalVAE

logger = logging.getLogger(__name__)

QueryPair = tuple[str, str]
"""``(cause, effect)``: compare ``p(effect | cause = v)`` and
``p(effect | do(cause = v))`` for every class ``v`` of the cause."""

DEFAULT_NUM_UNITS = 500
DEFAULT_FIT_STEPS = 300
DEFAULT_FIT_LR = 0.1

_SIZES = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))


# --------------------------------------------------------------------------------------
# The model's mechanisms as a factor graph
# --------------------------------------------------------------------------------------


def learned_graph(vae: ConditionalVAE, name: str = "learned") -> FactorGraph:
    """Return the model's factor mechanisms as a graph of table mechanisms.

    The graph has the five observed factors, the model's parents, and for each factor
    the table ``softmax(logits)`` of :class:`~causalvae.models.FactorMechanisms`,
    computed in float64. Its rows are already in the graph's row-major order (the
    last parent varies fastest), so a table of shape ``(prod(parent sizes), K)``
    becomes ``(*parent_sizes, K)`` by a reshape.
    """
    mechanisms = vae.mechanisms
    nodes = []
    for factor in FACTOR_NAMES:
        parents = tuple(mechanisms.parents[factor])
        logits = mechanisms.tables[factor].detach().to("cpu", torch.float64)
        table = torch.softmax(logits, dim=-1).numpy()
        shape = (*(_SIZES[parent] for parent in parents), _SIZES[factor])
        nodes.append(
            FactorNode(
                factor,
                _SIZES[factor],
                parents,
                TableMechanism(table.reshape(shape)),
            )
        )
    return FactorGraph(
        nodes, name=name, description="factor mechanisms learned by the model"
    )


def copy_with_parents(
    vae: ConditionalVAE, parents: Mapping[str, Sequence[str]]
) -> ConditionalVAE:
    """Return a copy of ``vae`` whose factor mechanisms have the given ``parents``.

    The encoders and the decoder are copied. The mechanism tables start uniform,
    ready for :func:`fit_mechanisms`. The copy is on the model's device, in eval mode.
    """
    config = replace(vae.config, parents={k: list(v) for k, v in parents.items()})
    copy = ConditionalVAE(config).to(vae.device)
    weights = {
        key: value
        for key, value in vae.state_dict().items()
        if not key.startswith("mechanisms.")
    }
    missing, unexpected = copy.load_state_dict(weights, strict=False)
    if unexpected or any(not key.startswith("mechanisms.") for key in missing):
        raise ValueError(
            f"cannot copy the model's networks: missing {missing}, unexpected "
            f"{unexpected}"
        )
    copy.eval()
    return copy


def fit_mechanisms(
    vae: ConditionalVAE,
    classes: np.ndarray | torch.Tensor,
    *,
    steps: int = DEFAULT_FIT_STEPS,
    lr: float = DEFAULT_FIT_LR,
) -> list[float]:
    """Fit only the factor mechanism tables to labels by maximum likelihood.

    Maximises the term ``(1/n) Σ_units log p(factors)`` of the ELBO, with
    ``log p(factors) = Σ_f log p(f | parents(f))``, by full-batch Adam on the table
    logits. The labels enter through their counts per parent configuration and
    class, so a step costs the size of the tables, not of the data. Rows whose parent
    configuration never occurs receive no gradient and keep their values. The
    networks are left unchanged.

    :param classes: ``(n, 5)`` class indices in the order of ``FACTOR_NAMES``.
    :param steps: Adam steps, at least 1.
    :param lr: Adam learning rate, in logit units per step.
    :returns: the negative log-likelihood in nats per unit before each step and
        after the last one.
    :raises ValueError: on invalid classes, steps or learning rate.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    labels = _check_classes(classes)
    mechanisms = vae.mechanisms
    device = mechanisms.tables[FACTOR_NAMES[0]].device

    # Sufficient statistics: counts[f][row, k] = number of units with class k of f
    # at parent configuration ``row``, rows numbered as in the mechanism tables.
    counts = {}
    for factor in FACTOR_NAMES:
        row = np.zeros(len(labels), dtype=np.int64)
        for parent in mechanisms.parents[factor]:
            row = row * _SIZES[parent] + labels[:, FACTOR_NAMES.index(parent)]
        table = mechanisms.tables[factor]
        flat = row * table.shape[1] + labels[:, FACTOR_NAMES.index(factor)]
        found = np.bincount(flat, minlength=table.numel()).reshape(table.shape)
        counts[factor] = torch.as_tensor(found, dtype=torch.float32, device=device)
    num_units = float(len(labels))

    def negative_log_likelihood() -> torch.Tensor:
        total = torch.zeros((), device=device)
        for factor in FACTOR_NAMES:
            log_probs = torch.log_softmax(mechanisms.tables[factor], dim=-1)
            total = total - (counts[factor] * log_probs).sum()
        return total / num_units

    optimizer = torch.optim.Adam(mechanisms.parameters(), lr=lr)
    history = []
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = negative_log_likelihood()
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
    with torch.no_grad():
        history.append(float(negative_log_likelihood()))
    logger.info(
        "fitted mechanisms to %d units: %.4f -> %.4f nats per unit",
        len(labels),
        history[0],
        history[-1],
    )
    return history


def _check_classes(classes: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(classes, torch.Tensor):
        classes = classes.detach().cpu().numpy()
    labels = np.asarray(classes)
    if (
        labels.ndim != 2
        or labels.shape[1] != len(FACTOR_NAMES)
        or not np.issubdtype(labels.dtype, np.integer)
        or len(labels) == 0
    ):
        raise ValueError(
            f"classes must be integer class indices of shape (n, 5) with n >= 1, "
            f"got {labels.dtype} {labels.shape}"
        )
    labels = labels.astype(np.int64)
    for column, size in enumerate(FACTOR_SIZES):
        values = labels[:, column]
        if values.min() < 0 or values.max() >= size:
            raise ValueError(
                f"classes of {FACTOR_NAMES[column]} run from {values.min()} to "
                f"{values.max()}; expected 0..{size - 1}"
            )
    return labels


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
    """Return the observed factors with an observed child: the counterfactual do's."""
    return [
        name
        for name in FACTOR_NAMES
        if any(not graph.is_hidden(child) for child in graph.children(name))
    ]


def _observed_descendants(graph: FactorGraph, factor: str) -> set[str]:
    return {name for name in graph.descendants(factor) if not graph.is_hidden(name)}


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
        query = sorted(
            _observed_descendants(true_graph, factor)
            | _observed_descendants(model_graph, factor),
            key=FACTOR_NAMES.index,
        )
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
    """Per-unit counterfactual metrics of the units ``selected`` under ``do(factor)``."""
    classes = units.classes[selected]
    noise = {name: values[selected] for name, values in units.noise.items()}
    do = {factor: targets}
    query = sorted(
        _observed_descendants(true_graph, factor)
        | _observed_descendants(model_graph, factor),
        key=FACTOR_NAMES.index,
    )
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
