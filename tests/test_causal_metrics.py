"""The model's mechanisms as a graph, their fit to labels, and the causal metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from click.testing import Result

from causalvae import exact, queries
from causalvae.causal_metrics import (
    causal_metrics,
    copy_with_parents,
    counterfactual_sources,
    default_queries,
    fit_mechanisms,
    learned_graph,
    select_units,
)
from causalvae.causal_report import causal_section, evaluate_preset
from causalvae.data.resample import render_units, resample
from causalvae.data.spec import FACTOR_NAMES
from causalvae.graph import FactorGraph, GraphError, get_preset
from causalvae.models import ConditionalVAE
from causalvae.pipeline import observed_parents

ModelFactory = Callable[..., ConditionalVAE]


def model_with_tables(make_model: ModelFactory, graph: FactorGraph) -> ConditionalVAE:
    """A tiny model whose mechanism tables are the graph's log tables."""
    vae = make_model(parents=observed_parents(graph))
    with torch.no_grad():
        for factor in FACTOR_NAMES:
            table = graph.log_prob_table(factor)
            rows = torch.from_numpy(table.reshape(-1, table.shape[-1]).copy())
            vae.mechanisms.tables[factor].copy_(rows.float())
    return vae.eval()


def empirical(values: torch.Tensor, size: int) -> np.ndarray:
    counts = np.bincount(values.cpu().numpy().reshape(-1), minlength=size)
    return counts / counts.sum()


# ------------------------------------------------------------------ learned graph


def test_learned_graph_matches_tables(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    model_graph = learned_graph(model_with_tables(make_model, graph))

    assert model_graph.parents("scale") == ("shape",)
    assert model_graph.parents("pos_y") == ("scale",)
    assert model_graph.hidden_names == ()
    for factor in FACTOR_NAMES:
        np.testing.assert_allclose(
            model_graph.prob_table(factor), graph.prob_table(factor), atol=1e-6
        )


def test_learned_graph_row_order_with_two_parents(make_model: ModelFactory) -> None:
    # With parents (shape, scale), row = 6 * shape + scale: the last parent is fastest.
    vae = make_model(parents={"pos_x": ["shape", "scale"]})
    with torch.no_grad():
        vae.mechanisms.tables["pos_x"].zero_()
        vae.mechanisms.tables["pos_x"][2 * 6 + 1, 7] = 20.0
    model_graph = learned_graph(vae)

    table = model_graph.prob_table("pos_x")
    assert table.shape == (3, 6, 32)
    assert table[2, 1, 7] > 0.99
    assert table[1, 2, 7] < 0.1
    values = {"shape": torch.tensor([2]), "scale": torch.tensor([1])}
    logits = vae.mechanisms.logits("pos_x", values)
    np.testing.assert_allclose(logits.exp().detach().numpy()[0], table[2, 1], atol=1e-6)


def test_true_tables_give_zero_distances(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    vae = model_with_tables(make_model, graph)
    units = resample(graph, 120, seed=3)

    metrics = causal_metrics(vae, graph, units, num_units=120, image_metrics=False)

    assert metrics["num_query_pairs"] == 6
    assert metrics["conditional_tv"] < 1e-5
    assert metrics["interventional_tv"] < 1e-5
    assert metrics["interventional_tv_max"] < 1e-5
    assert metrics["counterfactual_tv"] < 1e-5
    assert metrics["counterfactual_agreement"] == pytest.approx(
        metrics["counterfactual_agreement_ideal"], abs=1e-6
    )
    assert metrics["exact_condition_do_tv"] > 0.1
    assert set(metrics["interventions"]) == {"shape", "scale"}
    assert metrics["interventions"]["shape"]["query"] == "scale, pos_y"
    assert metrics["counterfactual_iou"] is None


def test_uniform_tables_are_far_from_chain(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    vae = make_model(parents=observed_parents(graph)).eval()
    units = resample(graph, 60, seed=4)

    metrics = causal_metrics(vae, graph, units, num_units=60, image_metrics=False)

    assert metrics["interventional_tv"] > 0.1
    assert metrics["counterfactual_tv"] > 0.2
    gap = (
        metrics["counterfactual_agreement_ideal"] - metrics["counterfactual_agreement"]
    )
    assert gap > 0.02


# ------------------------------------------------------------------ fitting


def test_fit_mechanisms_recovers_table(make_model: ModelFactory) -> None:
    graph = get_preset("fork")
    units = resample(graph, 30_000, seed=0)
    vae = make_model(parents=observed_parents(graph))
    decoder_before = [p.clone() for p in vae.decoder.parameters()]

    history = fit_mechanisms(vae, units.classes, steps=200, lr=0.1)

    assert history[-1] < history[0]
    model_graph = learned_graph(vae)
    for factor in ("shape", "scale", "pos_x"):
        learned = model_graph.prob_table(factor)
        true = graph.prob_table(factor)
        distances = 0.5 * np.abs(learned - true).sum(axis=-1)
        assert distances.max() < 0.06, factor
    for before, after in zip(decoder_before, vae.decoder.parameters(), strict=True):
        assert torch.equal(before, after)


def test_fit_loss_is_elbo_factor_term(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    classes = resample(graph, 500, seed=1).classes
    vae = make_model(parents=observed_parents(graph))
    history = fit_mechanisms(vae, classes, steps=5, lr=0.1)

    factors = torch.from_numpy(classes)
    trace = pyro.poutine.trace(vae.model).get_trace(factors=factors)
    trace.compute_log_prob()
    log_p = sum(trace.nodes[name]["log_prob"] for name in FACTOR_NAMES)
    assert history[-1] == pytest.approx(float(-log_p.mean().detach()), rel=1e-5)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (np.zeros((3, 4), dtype=np.int64), r"shape \(n, 5\)"),
        (np.full((3, 5), 0.5), r"integer class indices"),
        (np.array([[0, 6, 0, 0, 0]]), r"classes of scale run from 6 to 6"),
    ],
)
def test_fit_mechanisms_rejects_bad_classes(
    make_model: ModelFactory, classes: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_mechanisms(make_model(), classes, steps=1)


def test_copy_with_parents_keeps_networks(make_model: ModelFactory) -> None:
    vae = make_model()
    copy = copy_with_parents(vae, {"scale": ["shape"]})

    assert copy.mechanisms.parents["scale"] == ["shape"]
    assert vae.mechanisms.parents["scale"] == []
    assert copy.mechanisms.tables["scale"].shape == (3, 6)
    for name, value in vae.decoder.state_dict().items():
        assert torch.equal(copy.decoder.state_dict()[name], value)


# ------------------------------------------------------------------ queries


def test_default_queries_cover_hidden_siblings() -> None:
    pairs = default_queries(get_preset("hidden"))
    assert ("shape", "scale") in pairs
    assert ("scale", "shape") in pairs
    assert ("shape", "pos_x") in pairs
    assert len(pairs) == 6
    assert counterfactual_sources(get_preset("hidden")) == ["shape"]
    assert counterfactual_sources(get_preset("chain")) == ["shape", "scale"]


def test_hidden_confounding_shows_in_conditionals_only(
    make_model: ModelFactory,
) -> None:
    # The model has no confounder, so p(scale | shape) is wrong, but every
    # intervention and counterfactual on the observed factors is right.
    graph = get_preset("hidden")
    vae = make_model(parents=observed_parents(graph))
    fit_mechanisms(vae, resample(graph, 200_000, seed=2).classes, steps=300)
    units = resample(graph, 150, seed=3)

    metrics = causal_metrics(vae, graph, units, num_units=150, image_metrics=False)

    assert metrics["pairs"]["scale | shape"]["conditional_tv"] > 0.15
    assert metrics["pairs"]["scale | shape"]["interventional_tv"] < 0.02
    assert metrics["pairs"]["pos_x | shape"]["conditional_tv"] < 0.02
    assert metrics["interventional_tv"] < 0.02
    assert metrics["counterfactual_tv"] < 0.05


def test_causal_metrics_argument_errors(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    vae = make_model(parents=observed_parents(graph))
    units = resample(graph, 10, seed=0)
    with pytest.raises(ValueError, match="drawn from graph fork"):
        causal_metrics(vae, graph, resample(get_preset("fork"), 10, seed=0))
    with pytest.raises(ValueError, match="not an observed factor"):
        causal_metrics(vae, graph, units, queries=[("shape", "confounder")])
    with pytest.raises(ValueError, match="the units have no images"):
        causal_metrics(vae, graph, units)
    with pytest.raises(ValueError, match="num_units must be a positive integer"):
        causal_metrics(vae, graph, units, num_units=0, image_metrics=False)


# ------------------------------------------------------------------ Pyro handlers


def test_pyro_handlers_agree_with_exact(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    vae = make_model(parents=observed_parents(graph)).eval()
    fit_mechanisms(vae, resample(graph, 5_000, seed=0).classes, steps=100)
    model_graph = learned_graph(vae)
    # With 2,000 samples, an empirical distribution over 32 classes is about 0.05 in
    # total variation from its own distribution, and a wrong answer more than 0.2.
    n = 2_000

    done = queries.intervene(vae, {"scale": 5}, num_samples=n).factors
    expected = exact.interventional(model_graph, ["pos_y"], {"scale": 5})
    assert exact.total_variation(empirical(done[:, 4], 32), expected) < 0.08
    expected = exact.interventional(model_graph, ["shape"], {"scale": 5})
    assert exact.total_variation(empirical(done[:, 0], 3), expected) < 0.05

    seen = queries.condition(vae, {"scale": 5}, num_samples=n).factors
    expected = exact.conditional(model_graph, ["shape"], {"scale": 5})
    assert exact.total_variation(empirical(seen[:, 0], 3), expected) < 0.05

    observed = {"shape": 0, "scale": 1, "orientation": 3, "pos_x": 4, "pos_y": 10}
    factors = torch.tensor([[observed[name] for name in FACTOR_NAMES]] * n)
    images = torch.zeros(n, 64, 64)
    answer = queries.counterfactual(vae, images, {"shape": 2}, factors)
    cf = answer.counterfactual_factors
    expected = exact.counterfactual_distribution(
        model_graph, observed, {"shape": 2}, ["scale", "pos_y"]
    )
    joint = np.zeros((6, 32))
    np.add.at(joint, (cf[:, 1].numpy(), cf[:, 4].numpy()), 1.0 / n)
    assert exact.total_variation(joint.sum(axis=1), expected.sum(axis=1)) < 0.05
    assert exact.total_variation(joint, expected) < 0.15


def test_intervention_reaches_descendants_only(make_model: ModelFactory) -> None:
    graph = get_preset("chain")
    vae = model_with_tables(make_model, graph)
    n = 1_000

    low = queries.intervene(vae, {"scale": 0}, num_samples=n).factors
    high = queries.intervene(vae, {"scale": 5}, num_samples=n).factors
    # pos_y descends from scale and follows it.
    assert low[:, 4].float().mean() < 10
    assert high[:, 4].float().mean() > 21
    # shape is an ancestor: its distribution stays p(shape), uniform in the chain.
    for samples in (low, high):
        assert exact.total_variation(empirical(samples[:, 0], 3), np.ones(3) / 3) < 0.06

    units = resample(graph, 200, seed=6)
    factors = torch.from_numpy(units.classes)
    images = torch.zeros(200, 64, 64)
    answer = queries.counterfactual(vae, images, {"scale": 5}, factors)
    cf = answer.counterfactual_factors
    for column in (0, 2, 3):
        assert torch.equal(cf[:, column], factors[:, column]), FACTOR_NAMES[column]
    assert bool((cf[:, 1] == 5).all())
    moved = factors[:, 1] != 5
    assert (cf[moved, 4] != factors[moved, 4]).float().mean() > 0.5


# ------------------------------------------------------------------ report


def test_causal_section_html_and_figures(
    make_model: ModelFactory, tmp_path: Path
) -> None:
    vae = make_model()
    evaluation = evaluate_preset(
        vae, "hidden", tmp_path, num_units=2_000, num_eval_units=40, seed=1
    )
    metrics = evaluation.metrics

    assert metrics["preset"] == "hidden"
    assert metrics["num_units"] == 40
    assert 0 <= metrics["counterfactual_iou"] <= 1
    # The first observed edge, then the pair where conditioning and intervening differ
    # most. Only the hidden confounder links that pair, so the model also gets its
    # conditional most wrong, and the figure is not repeated.
    assert [path.name for path in evaluation.figures] == [
        "causal_hidden_pos_x_given_shape.png",
        "causal_hidden_scale_given_shape.png",
    ]
    title, body = evaluation.section
    assert title == "Causal answers on the hidden graph"
    assert f"{metrics['interventional_tv']:.3f}" in body
    assert f"{metrics['counterfactual_agreement_ideal']:.3f}" in body
    assert "hidden factors (confounder) are never given" in body
    for source in re.findall(r'<img src="([^"]+)"', body):
        assert (tmp_path / source).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"<img ", body)) == 2


def test_causal_section_tuple(make_model: ModelFactory, tmp_path: Path) -> None:
    title, body = causal_section(
        make_model(), "chain", tmp_path, num_units=500, seed=0, num_eval_units=10
    )
    assert title == "Causal answers on the chain graph"
    assert "<table>" in body
    assert "<script" not in body
    with pytest.raises(GraphError, match="presets: chain, fork, hidden"):
        causal_section(make_model(), "collider", tmp_path, num_units=10, seed=0)


def test_select_units_keeps_noise() -> None:
    units = render_units(resample(get_preset("hidden"), 30, seed=0))
    index = np.array([3, 7, 11])
    chosen = select_units(units, index)
    assert chosen.num_units == 3
    np.testing.assert_array_equal(chosen.classes, units.classes[index])
    np.testing.assert_array_equal(
        chosen.noise["confounder"], units.noise["confounder"][index]
    )
    np.testing.assert_array_equal(chosen.images, units.images[index])
    np.testing.assert_array_equal(
        chosen.hidden["confounder"], units.hidden["confounder"][index]
    )


def test_demo_rejects_unknown_preset(tmp_path: Path) -> None:
    from causalvae.pipeline import run_demo

    # The preset is checked before any data is generated or any model trained.
    with pytest.raises(GraphError, match="unknown preset 'collider'"):
        run_demo(tmp_path, preset="collider", data_dir=tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_demo_cli_lists_presets(run_cli: Callable[..., Result]) -> None:
    result = run_cli("demo", "--preset", "collider", exit_code=2)
    assert "'chain', 'fork', 'hidden', 'none'" in result.output
