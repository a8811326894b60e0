"""Causal resampling: ancestral sampling with recorded noise, and the .npz file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from causalvae.data.render import render
from causalvae.data.resample import (
    ResampledUnits,
    load_resampled,
    resample,
    save_resampled,
)
from causalvae.data.spec import FACTOR_NAMES, classes_to_index, classes_to_values
from causalvae.exact import conditional, interventional, total_variation
from causalvae.graph import GraphError, get_preset


@pytest.fixture(scope="module")
def hidden_units() -> ResampledUnits:
    return resample(get_preset("hidden"), 2_000, seed=7)


def test_resample_shapes_and_dtypes(hidden_units: ResampledUnits) -> None:
    units = hidden_units
    assert units.num_units == 2_000
    assert units.classes.shape == (2_000, 5)
    assert units.classes.dtype == np.int64
    assert units.indices.dtype == np.int64
    np.testing.assert_array_equal(units.indices, classes_to_index(units.classes))
    assert set(units.noise) == {*FACTOR_NAMES, "confounder"}
    for factor, noise in units.noise.items():
        assert noise.shape == (2_000, units.graph.size(factor))
        assert noise.dtype == np.float64
    assert units.hidden["confounder"].shape == (2_000,)
    assert units.images is None
    np.testing.assert_array_equal(units.values, classes_to_values(units.classes))


def test_noise_reproduces_factors_exactly(hidden_units: ResampledUnits) -> None:
    units = hidden_units
    graph = units.graph
    for factor in graph.names:
        parents = graph.parents(factor)
        table = graph.log_prob_table(factor)
        logits = table[tuple(units.factor(parent) for parent in parents)]
        recomputed = np.argmax(logits + units.noise[factor], axis=1)
        np.testing.assert_array_equal(recomputed, units.factor(factor))


def test_resample_is_deterministic_per_seed() -> None:
    graph = get_preset("chain")
    first = resample(graph, 50, seed=1)
    again = resample(graph, 50, seed=1)
    other = resample(graph, 50, seed=2)
    np.testing.assert_array_equal(first.classes, again.classes)
    np.testing.assert_array_equal(first.noise["scale"], again.noise["scale"])
    assert not np.array_equal(first.classes, other.classes)


@pytest.mark.parametrize("preset", ["chain", "fork", "hidden"])
def test_empirical_distributions_match_exact(preset: str) -> None:
    graph = get_preset(preset)
    units = resample(graph, 20_000, seed=0)
    for factor in ("scale", "pos_x", "pos_y"):
        counts = np.bincount(units.factor(factor), minlength=graph.size(factor))
        exact = conditional(graph, [factor])
        assert total_variation(counts / units.num_units, exact) < 0.04, factor


def test_resampled_data_differ_from_intervention() -> None:
    # In the fork, pos_x given scale = 0 follows shape, unlike do(scale = 0).
    graph = get_preset("fork")
    units = resample(graph, 20_000, seed=0)
    rows = units.factor("scale") == 0
    empirical = np.bincount(units.factor("pos_x")[rows], minlength=32) / rows.sum()
    exact = conditional(graph, ["pos_x"], {"scale": 0})
    intervened = interventional(graph, ["pos_x"], {"scale": 0})
    assert total_variation(empirical, exact) < 0.06
    assert total_variation(empirical, intervened) > 0.3


@pytest.mark.parametrize("count", [0, -3, 2.5, True])
def test_resample_rejects_bad_count(count: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        resample(get_preset("chain"), count, seed=0)  # type: ignore[arg-type]


def test_factor_lookup_rejects_unknown(hidden_units: ResampledUnits) -> None:
    with pytest.raises(GraphError, match="unknown factor 'colour'"):
        hidden_units.factor("colour")


# ------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def saved_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    units = resample(get_preset("hidden"), 64, seed=3)
    path = tmp_path_factory.mktemp("resampled") / "units.npz"
    assert save_resampled(path, units) == path
    return path


def test_file_layout(saved_file: Path) -> None:
    with np.load(saved_file, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    expected_keys = {
        "imgs",
        "latents_classes",
        "latents_values",
        "original_dataset_indices",
        "graph",
        "hidden_confounder",
        *(f"exogenous_{factor}" for factor in (*FACTOR_NAMES, "confounder")),
    }
    assert set(arrays) == expected_keys
    assert arrays["imgs"].dtype == np.uint8
    assert arrays["imgs"].shape == (64, 64, 64)
    assert set(np.unique(arrays["imgs"])) <= {0, 1}
    assert arrays["latents_classes"].dtype == np.int64
    assert arrays["latents_values"].dtype == np.float64
    assert arrays["original_dataset_indices"].dtype == np.int64
    assert arrays["hidden_confounder"].dtype == np.int64
    assert arrays["exogenous_pos_x"].shape == (64, 32)
    assert arrays["exogenous_confounder"].dtype == np.float64
    assert arrays["graph"].shape == ()
    assert arrays["graph"].dtype.kind == "U"


def test_file_round_trip(saved_file: Path) -> None:
    expected = resample(get_preset("hidden"), 64, seed=3)
    loaded = load_resampled(saved_file)
    assert loaded.graph == expected.graph
    np.testing.assert_array_equal(loaded.classes, expected.classes)
    np.testing.assert_array_equal(loaded.indices, expected.indices)
    np.testing.assert_array_equal(
        loaded.hidden["confounder"], expected.hidden["confounder"]
    )
    for factor in expected.graph.names:
        np.testing.assert_array_equal(loaded.noise[factor], expected.noise[factor])
    assert loaded.images is not None
    np.testing.assert_array_equal(loaded.images, render(expected.classes))


def test_load_without_images(saved_file: Path) -> None:
    assert load_resampled(saved_file, load_images=False).images is None


def _rewrite(source: Path, target: Path, **changes: np.ndarray | None) -> Path:
    with np.load(source, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(target, **arrays)
    return target


def test_load_reports_missing_keys(saved_file: Path, tmp_path: Path) -> None:
    path = _rewrite(saved_file, tmp_path / "bad.npz", exogenous_scale=None)
    with pytest.raises(ValueError, match=r"missing key\(s\) exogenous_scale"):
        load_resampled(path)
    path = _rewrite(saved_file, tmp_path / "bad.npz", graph=None)
    with pytest.raises(ValueError, match=r"missing key\(s\) graph"):
        load_resampled(path)


def test_load_rejects_tampered_noise(saved_file: Path, tmp_path: Path) -> None:
    with np.load(saved_file, allow_pickle=False) as archive:
        noise = archive["exogenous_scale"].copy()
    noise[:, [0, 5]] = noise[:, [5, 0]] + 50.0
    path = _rewrite(saved_file, tmp_path / "bad.npz", exogenous_scale=noise)
    with pytest.raises(
        ValueError, match="does not reproduce latents_classes for scale"
    ):
        load_resampled(path)


def test_load_rejects_tampered_indices(saved_file: Path, tmp_path: Path) -> None:
    with np.load(saved_file, allow_pickle=False) as archive:
        indices = archive["original_dataset_indices"] + 1
    path = _rewrite(saved_file, tmp_path / "bad.npz", original_dataset_indices=indices)
    with pytest.raises(ValueError, match="indices do not match"):
        load_resampled(path)


def test_load_rejects_invalid_graph(saved_file: Path, tmp_path: Path) -> None:
    graph = np.asarray('{"edges": "shape -> shape"}', dtype=np.str_)
    path = _rewrite(saved_file, tmp_path / "bad.npz", graph=graph)
    with pytest.raises(ValueError, match="invalid graph: self-loop"):
        load_resampled(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="causalvae data resample"):
        load_resampled(tmp_path / "absent.npz")
