"""Exact conditional, interventional and counterfactual answers, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causalvae.data.resample import resample
from causalvae.data.spec import FACTOR_NAMES
from causalvae.exact import (
    conditional,
    counterfactual_distribution,
    counterfactual_distributions,
    gumbel_max_transition,
    interventional,
    propagate,
    total_variation,
    total_variations,
    unit_counterfactual,
    unit_counterfactuals,
)
from causalvae.graph import FactorGraph, get_preset, parse_inline


def _restricted(probabilities: list[float], size: int) -> list[float]:
    """Pad a distribution over the first classes with zeros up to ``size``."""
    return list(probabilities) + [0.0] * (size - len(probabilities))


def confounded_graph() -> FactorGraph:
    """A binary hidden factor h drives shape and scale; shape drives scale.

    Shape and scale are restricted to classes 0 and 1::

        p(h = 1) = 0.5
        p(shape = 1 | h) = 0.2, 0.8                    for h = 0, 1
        p(scale = 1 | h, shape) = 0.1, 0.5, 0.5, 0.9   for (h, shape) = 00, 01, 10, 11
    """
    shape_rows = [_restricted([0.8, 0.2], 3), _restricted([0.2, 0.8], 3)]
    scale_rows = [
        [_restricted([0.9, 0.1], 6), _restricted([0.5, 0.5], 6), [1 / 6] * 6],
        [_restricted([0.5, 0.5], 6), _restricted([0.1, 0.9], 6), [1 / 6] * 6],
    ]
    return FactorGraph.from_dict(
        {
            "name": "confounded",
            "hidden": {"h": {"size": 2}},
            "factors": {
                "shape": {"parents": ["h"], "mechanism": "table", "table": shape_rows},
                "scale": {
                    "parents": ["h", "shape"],
                    "mechanism": "table",
                    "table": scale_rows,
                },
            },
        }
    )


# ------------------------------------------------------------------ conditioning


def test_conditional_by_hand() -> None:
    # p(h = 1 | shape = 1) = 0.4 / 0.5 = 0.8, so
    # p(scale = 1 | shape = 1) = 0.2 * 0.5 + 0.8 * 0.9 = 0.82.
    graph = confounded_graph()
    answer = conditional(graph, ["scale"], {"shape": 1})
    assert answer.shape == (6,)
    assert answer[1] == pytest.approx(0.82, abs=1e-12)
    assert answer[0] == pytest.approx(0.18, abs=1e-12)
    assert answer[2:].sum() == 0.0


def test_conditional_of_hidden_factor() -> None:
    graph = confounded_graph()
    posterior = conditional(graph, ["h"], {"shape": 0, "scale": 0})
    # p(h, shape = 0, scale = 0) = 0.5 * 0.8 * 0.9 and 0.5 * 0.2 * 0.5.
    np.testing.assert_allclose(posterior, [0.36 / 0.41, 0.05 / 0.41], atol=1e-12)


def test_conditional_joint_axes_follow_query_order() -> None:
    graph = confounded_graph()
    joint = conditional(graph, ["scale", "shape"], {})
    assert joint.shape == (6, 3)
    # p(shape = 1, scale = 1) = 0.5 * 0.2 * 0.5 + 0.5 * 0.8 * 0.9 = 0.41.
    assert joint[1, 1] == pytest.approx(0.41, abs=1e-12)
    np.testing.assert_allclose(
        conditional(graph, ["shape", "scale"], {}), joint.T, atol=1e-15
    )


def test_conditional_matches_brute_force_joint() -> None:
    graph = parse_inline(
        "shape -> scale -> orientation -> pos_x -> pos_y; shape -> pos_y"
    )
    joint = np.ones((3, 6, 40, 32, 32))
    for factor in FACTOR_NAMES:
        parents = graph.parents(factor)
        table = graph.prob_table(factor)
        names = (*parents, factor)
        order = sorted(range(len(names)), key=lambda i: FACTOR_NAMES.index(names[i]))
        table = np.transpose(table, order)
        shape = [1] * 5
        for name in names:
            shape[FACTOR_NAMES.index(name)] = graph.size(name)
        joint = joint * table.reshape(shape)
    assert joint.sum() == pytest.approx(1.0)
    brute = joint[1].sum(axis=(0, 1, 2))
    brute = brute / brute.sum()
    np.testing.assert_allclose(conditional(graph, ["pos_y"], {"shape": 1}), brute)
    brute_pair = joint[:, :, :, 5, :].sum(axis=(1, 2))
    np.testing.assert_allclose(
        conditional(graph, ["shape", "pos_y"], {"pos_x": 5}),
        brute_pair / brute_pair.sum(),
    )


def test_conditional_errors() -> None:
    graph = confounded_graph()
    with pytest.raises(ValueError, match="probability zero"):
        conditional(graph, ["scale"], {"shape": 2})
    with pytest.raises(ValueError, match="both a query factor and evidence"):
        conditional(graph, ["scale"], {"scale": 1})
    with pytest.raises(ValueError, match="unknown factor 'size'"):
        conditional(graph, ["size"], {})
    with pytest.raises(ValueError, match=r"invalid evidence: class 7 of scale"):
        conditional(graph, ["shape"], {"scale": 7})
    with pytest.raises(ValueError, match="query is empty"):
        conditional(graph, [], {})
    with pytest.raises(ValueError, match="names a factor twice"):
        conditional(graph, ["shape", "shape"], {})


# ------------------------------------------------------------------ interventions


def test_interventional_by_hand() -> None:
    # do(shape = 1) cuts h -> shape: p(scale = 1) = 0.5 * 0.5 + 0.5 * 0.9 = 0.7.
    graph = confounded_graph()
    answer = interventional(graph, ["scale"], {"shape": 1})
    assert answer[1] == pytest.approx(0.7, abs=1e-12)
    assert answer[0] == pytest.approx(0.3, abs=1e-12)


def test_interventional_leaves_hidden_prior() -> None:
    graph = confounded_graph()
    np.testing.assert_allclose(
        interventional(graph, ["h"], {"shape": 1}), [0.5, 0.5], atol=1e-15
    )


def test_interventional_with_evidence() -> None:
    # p(scale = 1 | do(shape = 1), h = 0) = 0.5.
    graph = confounded_graph()
    answer = interventional(graph, ["scale"], {"shape": 1}, {"h": 0})
    assert answer[1] == pytest.approx(0.5, abs=1e-12)


def test_intervened_query_is_point_mass() -> None:
    graph = confounded_graph()
    np.testing.assert_array_equal(
        interventional(graph, ["shape"], {"shape": 2}), [0.0, 0.0, 1.0]
    )


def test_interventional_errors() -> None:
    graph = confounded_graph()
    with pytest.raises(ValueError, match=r"evidence shape=0 contradicts do\(shape=1\)"):
        interventional(graph, ["scale"], {"shape": 1}, {"shape": 0})
    with pytest.raises(ValueError, match=r"invalid do: unknown factor 'colour'"):
        interventional(graph, ["scale"], {"colour": 1})


def test_intervention_reaches_descendants_only() -> None:
    graph = parse_inline(
        "shape -> scale -> pos_y; scale -> orientation; pos_x -> shape"
    )
    descendants = {"pos_y", "orientation"}
    ancestors = {"shape", "pos_x"}
    assert graph.descendants("scale") == descendants
    assert graph.ancestors("scale") == ancestors
    for value in (0, 5):
        for factor in descendants:
            observed = conditional(graph, [factor], {})
            intervened = interventional(graph, [factor], {"scale": value})
            assert total_variation(observed, intervened) > 0.1, factor
        for factor in ancestors:
            observed = conditional(graph, [factor], {})
            intervened = interventional(graph, [factor], {"scale": value})
            np.testing.assert_allclose(intervened, observed, atol=1e-12)


def test_unit_intervention_reaches_descendants_only() -> None:
    graph = parse_inline(
        "shape -> scale -> pos_y; scale -> orientation; pos_x -> shape"
    )
    units = resample(graph, 400, seed=3)
    result = unit_counterfactuals(graph, units.classes, units.noise, {"scale": 0})
    for column, factor in enumerate(FACTOR_NAMES):
        changed = np.mean(result[factor] != units.classes[:, column])
        if factor in ("pos_y", "orientation"):
            assert changed > 0.2, factor
        elif factor == "scale":
            assert np.all(result[factor] == 0)
        else:
            assert changed == 0.0, factor


# ------------------------------------------------------------ Gumbel-max transitions


def test_transition_binary_by_hand() -> None:
    # Two classes: P(0 -> 1) = (p'_1 - p_1) / p_0 = (0.7 - 0.2) / 0.8.
    transition = gumbel_max_transition(np.log([0.8, 0.2]), np.log([0.3, 0.7]), 0)
    np.testing.assert_allclose(transition, [0.375, 0.625], atol=1e-12)


def test_transition_is_monotone_for_binary() -> None:
    # The odds of class 1 grew, so a unit at class 1 stays there.
    transition = gumbel_max_transition(np.log([0.8, 0.2]), np.log([0.3, 0.7]), 1)
    np.testing.assert_allclose(transition, [0.0, 1.0], atol=1e-12)


def test_transition_three_classes_by_hand() -> None:
    # p = (1/2, 1/4, 1/4), p' = (1/4, 1/2, 1/4), k = 0.
    # stay: 1 / (1 + max(1/2, 2) + max(1/2, 1)) / p_0 = 0.25 / 0.5 = 0.5.
    # to 1: θ in [1/2, 2], g = 1 + θ + max(θ/2, 1/2), breakpoint at 1:
    #   0.5 / (g(0.5) g(1)) + 1 / (g(1) g(2)) = 0.5 / 5 + 1 / 10 = 0.2 -> 0.4.
    # to 2: θ in [1, 2], g = 3 + θ: 1 / (4 * 5) = 0.05 -> 0.1.
    transition = gumbel_max_transition(
        np.log([0.5, 0.25, 0.25]), np.log([0.25, 0.5, 0.25]), 0
    )
    np.testing.assert_allclose(transition, [0.5, 0.4, 0.1], atol=1e-12)


def test_transition_matches_monte_carlo() -> None:
    rng = np.random.default_rng(11)
    logits = np.array([0.3, -1.0, 1.2, 0.0, -np.inf, 0.5])
    new_logits = np.array([1.5, 0.2, -0.4, -np.inf, 0.7, 0.1])
    observed = 2
    noise = rng.gumbel(size=(300_000, 6))
    noise = noise[np.argmax(logits + noise, axis=1) == observed]
    counterfactual = np.argmax(new_logits + noise, axis=1)
    empirical = np.bincount(counterfactual, minlength=6) / len(counterfactual)
    exact = gumbel_max_transition(logits, new_logits, observed)
    # Monte Carlo standard error is below 0.0015 per class with > 100,000 samples.
    np.testing.assert_allclose(exact, empirical, atol=0.006)
    assert exact[3] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    size=st.integers(2, 12),
)
def test_transition_is_distribution(data: st.DataObject, size: int) -> None:
    finite = st.floats(-6.0, 6.0)
    logits = np.array(data.draw(st.lists(finite, min_size=size, max_size=size)))
    new_logits = np.array(data.draw(st.lists(finite, min_size=size, max_size=size)))
    observed = data.draw(st.integers(0, size - 1))
    transition = gumbel_max_transition(logits, new_logits, observed)
    assert np.all(transition >= 0)
    assert transition.sum() == pytest.approx(1.0, abs=1e-9)
    # Summing over the factual class gives the new distribution back.
    p = np.exp(logits - logits.max())
    p = p / p.sum()
    p_new = np.exp(new_logits - new_logits.max())
    p_new = p_new / p_new.sum()
    rows = np.stack([gumbel_max_transition(logits, new_logits, k) for k in range(size)])
    np.testing.assert_allclose(p @ rows, p_new, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    logits=st.lists(st.floats(-6.0, 6.0), min_size=2, max_size=10),
    data=st.data(),
)
def test_transition_without_change_is_identity(
    logits: list[float], data: st.DataObject
) -> None:
    observed = data.draw(st.integers(0, len(logits) - 1))
    transition = gumbel_max_transition(np.array(logits), np.array(logits), observed)
    expected = np.zeros(len(logits))
    expected[observed] = 1.0
    np.testing.assert_allclose(transition, expected, atol=1e-12)


def test_transition_rejects_impossible_observation() -> None:
    with pytest.raises(ValueError, match="probability zero"):
        gumbel_max_transition(np.array([0.0, -np.inf]), np.array([0.0, 0.0]), 1)


# ------------------------------------------------------------------ counterfactuals


def test_counterfactual_by_hand() -> None:
    # Observed shape = 0, scale = 0; do(shape = 1).
    # Abduction: p(h = 0 | obs) = 0.36 / 0.41, p(h = 1 | obs) = 0.05 / 0.41.
    # h = 0: scale moves from (0.9, 0.1) to (0.5, 0.5): P(0 -> 1) = 0.4 / 0.9.
    # h = 1: scale moves from (0.5, 0.5) to (0.1, 0.9): P(0 -> 1) = 0.4 / 0.5.
    # p(scale' = 1) = (0.36 * 4/9 + 0.05 * 0.8) / 0.41 = 0.2 / 0.41.
    graph = confounded_graph()
    observed = {"shape": 0, "scale": 0, "orientation": 7, "pos_x": 3, "pos_y": 30}
    answer = counterfactual_distribution(graph, observed, {"shape": 1}, ["scale"])
    assert answer[1] == pytest.approx(0.2 / 0.41, abs=1e-12)
    assert answer[0] == pytest.approx(0.21 / 0.41, abs=1e-12)


def test_three_rungs_differ() -> None:
    graph = confounded_graph()
    observed = {"shape": 0, "scale": 0, "orientation": 0, "pos_x": 0, "pos_y": 0}
    seen = conditional(graph, ["scale"], {"shape": 1})[1]
    done = interventional(graph, ["scale"], {"shape": 1})[1]
    imagined = counterfactual_distribution(graph, observed, {"shape": 1}, ["scale"])[1]
    assert seen == pytest.approx(0.82)
    assert done == pytest.approx(0.7)
    assert imagined == pytest.approx(0.2 / 0.41)
    assert min(abs(seen - done), abs(done - imagined), abs(seen - imagined)) > 0.1


def test_counterfactual_of_monotone_unit_stays() -> None:
    # Observed scale = 1 under shape = 0; raising shape only raises the odds of 1.
    graph = confounded_graph()
    observed = {"shape": 0, "scale": 1, "orientation": 0, "pos_x": 0, "pos_y": 0}
    answer = counterfactual_distribution(graph, observed, {"shape": 1}, ["scale"])
    np.testing.assert_allclose(answer[:2], [0.0, 1.0], atol=1e-12)


def test_counterfactual_hidden_query_keeps_posterior() -> None:
    graph = confounded_graph()
    observed = {"shape": 0, "scale": 0, "orientation": 0, "pos_x": 0, "pos_y": 0}
    answer = counterfactual_distribution(graph, observed, {"shape": 1}, ["h"])
    np.testing.assert_allclose(answer, [0.36 / 0.41, 0.05 / 0.41], atol=1e-12)


def test_counterfactual_matches_resampled_units() -> None:
    # The chain h -> scale -> pos_x runs through the intervened factor, and h also
    # drives pos_x, so the exact distribution needs both the abduction of h (h = 0,
    # posterior 0.998) and the transition of pos_x to a bump centred at 15.5.
    graph = parse_inline("h[2] -> scale -> pos_x; h -> pos_x")
    units = resample(graph, 80_000, seed=5)
    selected = (units.factor("scale") == 0) & (units.factor("pos_x") == 0)
    assert selected.sum() > 4_000
    noise = {factor: u[selected] for factor, u in units.noise.items()}
    result = unit_counterfactuals(graph, units.classes[selected], noise, {"scale": 5})
    empirical = np.bincount(result["pos_x"], minlength=32) / selected.sum()
    observed = dict(zip(FACTOR_NAMES, units.classes[selected][0].tolist(), strict=True))
    exact = counterfactual_distribution(graph, observed, {"scale": 5}, ["pos_x"])
    # The counterfactual is spread out (no class above 0.12). The sampling error is
    # about 0.025 in total variation, and p(pos_x | do(scale = 5)) is 0.46 away.
    assert exact.max() < 0.2
    assert total_variation(exact, empirical) < 0.06
    intervened = interventional(graph, ["pos_x"], {"scale": 5})
    assert total_variation(intervened, empirical) > 0.3


def test_chained_counterfactual_matches_units() -> None:
    # do(shape) moves scale, and the new scale moves pos_y: two chained transitions.
    # Soft mechanisms (the shift's default width) keep both transitions spread out.
    graph = FactorGraph.from_dict(
        {
            "edges": "shape -> scale -> pos_y",
            "factors": {"scale": {"strength": 0.9}, "pos_y": {"strength": 0.9}},
        }
    )
    units = resample(graph, 150_000, seed=8)
    selected = (units.factor("shape") == 0) & (units.factor("scale") == 0)
    selected &= units.factor("pos_y") == 0
    assert selected.sum() > 7_000
    noise = {factor: u[selected] for factor, u in units.noise.items()}
    result = unit_counterfactuals(graph, units.classes[selected], noise, {"shape": 2})
    empirical = np.zeros((6, 32))
    np.add.at(empirical, (result["scale"], result["pos_y"]), 1.0 / selected.sum())
    observed = dict(zip(FACTOR_NAMES, units.classes[selected][0].tolist(), strict=True))
    exact = counterfactual_distribution(
        graph, observed, {"shape": 2}, ["scale", "pos_y"]
    )
    intervened = interventional(graph, ["scale", "pos_y"], {"shape": 2})
    # With 7,500 units the sampling error is about 0.025 in total variation.
    assert total_variation(exact, empirical) < 0.05
    assert total_variation(intervened, empirical) > 0.08


def test_null_intervention_returns_unit_itself() -> None:
    graph = get_preset("hidden")
    units = resample(graph, 50, seed=2)
    for unit in range(units.num_units):
        factors = dict(zip(FACTOR_NAMES, units.classes[unit].tolist(), strict=True))
        noise = {factor: u[unit] for factor, u in units.noise.items()}
        for factor in FACTOR_NAMES:
            result = unit_counterfactual(
                graph, factors, noise, {factor: factors[factor]}
            )
            assert {f: result[f] for f in FACTOR_NAMES} == factors
            assert result["confounder"] == units.hidden["confounder"][unit]


@settings(max_examples=25, deadline=None)
@given(
    preset=st.sampled_from(["chain", "fork", "hidden"]),
    seed=st.integers(0, 10_000),
    factor=st.sampled_from(list(FACTOR_NAMES)),
)
def test_null_intervention_distribution_is_point_mass(
    preset: str, seed: int, factor: str
) -> None:
    graph = get_preset(preset)
    units = resample(graph, 1, seed=seed)
    observed = dict(zip(FACTOR_NAMES, units.classes[0].tolist(), strict=True))
    query = ["scale", "pos_x", "pos_y"]
    answer = counterfactual_distribution(
        graph, observed, {factor: observed[factor]}, query
    )
    expected = np.zeros(answer.shape)
    expected[observed["scale"], observed["pos_x"], observed["pos_y"]] = 1.0
    np.testing.assert_allclose(answer, expected, atol=1e-9)


def test_counterfactual_non_descendant_keeps_factual() -> None:
    graph = get_preset("chain")
    observed = {"shape": 2, "scale": 4, "orientation": 0, "pos_x": 0, "pos_y": 20}
    answer = counterfactual_distribution(
        graph, observed, {"scale": 0}, ["shape", "scale"]
    )
    assert answer[2, 0] == pytest.approx(1.0)


def test_counterfactual_with_unobserved_factor() -> None:
    # Leaving shape out makes it latent, so the result mixes over its posterior.
    graph = get_preset("chain")
    observed = {"scale": 4, "pos_y": 20}
    answer = counterfactual_distribution(graph, observed, {"scale": 0}, ["pos_y"])
    full = counterfactual_distribution(
        graph, {**observed, "shape": 0}, {"scale": 0}, ["pos_y"]
    )
    np.testing.assert_allclose(answer, full, atol=1e-12)
    assert answer.sum() == pytest.approx(1.0)


def test_counterfactual_rejects_impossible_observation() -> None:
    graph = confounded_graph()
    observed = {"shape": 0, "scale": 3, "orientation": 0, "pos_x": 0, "pos_y": 0}
    with pytest.raises(ValueError, match="probability zero"):
        counterfactual_distribution(graph, observed, {"shape": 1}, ["scale"])
    table_graph = FactorGraph.from_dict(
        {
            "factors": {
                "scale": {
                    "parents": ["shape"],
                    "mechanism": "table",
                    "table": [_restricted([1.0], 6)] * 3,
                }
            }
        }
    )
    with pytest.raises(ValueError, match=r"p\(scale=2 \| shape=0\) = 0"):
        counterfactual_distribution(
            table_graph, {"shape": 0, "scale": 2}, {"shape": 1}, ["scale"]
        )


def test_vectorised_counterfactuals_match_single_units() -> None:
    graph = get_preset("hidden")
    units = resample(graph, 300, seed=9)
    targets = np.arange(units.num_units) % 6
    batch = counterfactual_distributions(
        graph, units.classes, {"scale": targets}, ["pos_x"]
    )
    assert batch.shape == (300, 32)
    for unit in (0, 1, 57, 299):
        observed = dict(zip(FACTOR_NAMES, units.classes[unit].tolist(), strict=True))
        single = counterfactual_distribution(
            graph, observed, {"scale": int(targets[unit])}, ["pos_x"]
        )
        np.testing.assert_allclose(batch[unit], single, atol=1e-12)


def test_vectorised_unit_counterfactuals_match_single_units() -> None:
    graph = get_preset("fork")
    units = resample(graph, 40, seed=4)
    batch = unit_counterfactuals(graph, units.classes, units.noise, {"shape": 2})
    for unit in range(units.num_units):
        factors = dict(zip(FACTOR_NAMES, units.classes[unit].tolist(), strict=True))
        noise = {factor: u[unit] for factor, u in units.noise.items()}
        single = unit_counterfactual(graph, factors, noise, {"shape": 2})
        assert single == {factor: int(values[unit]) for factor, values in batch.items()}


def test_unit_counterfactuals_reject_wrong_noise() -> None:
    graph = get_preset("chain")
    units = resample(graph, 20, seed=1)
    shifted = units.classes.copy()
    shifted[:, 1] = (shifted[:, 1] + 1) % 6
    with pytest.raises(ValueError, match="noise does not reproduce the factors"):
        unit_counterfactuals(graph, shifted, units.noise, {"shape": 0})
    missing = {k: v for k, v in units.noise.items() if k != "pos_y"}
    with pytest.raises(ValueError, match="noise is missing for pos_y"):
        unit_counterfactuals(graph, units.classes, missing, {"shape": 0})
    with pytest.raises(ValueError, match=r"do for scale has classes 9\.\.9"):
        unit_counterfactuals(graph, units.classes, units.noise, {"scale": 9})


def test_propagate_reproduces_resampled_classes() -> None:
    graph = get_preset("hidden")
    units = resample(graph, 500, seed=0)
    values = propagate(graph, units.noise)
    for column, factor in enumerate(FACTOR_NAMES):
        np.testing.assert_array_equal(values[factor], units.classes[:, column])


# ------------------------------------------------------------------ distances


def test_total_variation() -> None:
    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert total_variation(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == 0.25
    batch = total_variations(
        np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.0, 1.0], [0.5, 0.5]])
    )
    np.testing.assert_array_equal(batch, [1.0, 0.0])


def test_total_variation_errors() -> None:
    with pytest.raises(ValueError, match="must match"):
        total_variation(np.array([1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="does not sum to one"):
        total_variation(np.array([0.5, 0.0]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="negative"):
        total_variation(np.array([1.5, -0.5]), np.array([1.0, 0.0]))
