"""The HTML report: files written, figures linked, metrics shown, text escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from causalvae.data.render import render
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.report import spread_classes, write_report
from causalvae.training import ImageData

HOSTILE = "<script>alert('x')</script>"

METRICS: dict[str, Any] = {
    "num_images": 2,
    "heldout_neg_elbo": 2841.25,
    "reconstruction_iou": 0.125,
    "label_accuracy": {
        **{name: 0.5 for name in FACTOR_NAMES},
        "orientation_exact": 0.25,
    },
    "counterfactual_iou": {name: 0.3 for name in FACTOR_NAMES},
    "counterfactual_iou_probability_map": {name: 0.2 for name in FACTOR_NAMES},
    "counterfactual_iou_inferred_factors": {name: 0.1 for name in FACTOR_NAMES},
    "effectiveness": {name: 0.4 for name in FACTOR_NAMES},
    "composition_l1": {"1": 3.5, "10": 7.25},
    "composition_l1_probability_map": {"1": 2.0, "10": 4.0},
    "reversibility_l1": {name: 5.0 for name in FACTOR_NAMES},
    "reversibility_l1_mean": 5.0,
    "nested_extra": {"level": {"value": float("nan")}},
    "causal": {"interventional_tv": {"shape": 0.0375}},
}

HISTORY = [
    {"step": 0, "heldout_neg_elbo": 2900.0, "train_neg_elbo": None},
    {
        "step": 4,
        "epoch": 1.0,
        "images_seen": 64,
        "train_neg_elbo": 2850.0,
        "train_label_loss": 9.5,
        "heldout_neg_elbo": 2841.25,
        "elapsed": 1.5,
        "reason": "end",
    },
]

EXPECTED_FIGURES = (
    ["loss_curves.png", "reconstructions.png"]
    + [f"interventions_{name}.png" for name in FACTOR_NAMES]
    + [f"counterfactuals_{name}.png" for name in FACTOR_NAMES]
)


def _tiny_data() -> ImageData:
    rng = np.random.default_rng(1)
    factors = np.stack([rng.integers(0, size, 12) for size in FACTOR_SIZES], axis=1)
    return ImageData.split(render(factors), factors, heldout=2, seed=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, ConditionalVAE]:
    folder = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    vae = ConditionalVAE(ModelConfig())
    vae.train()
    config = {"model": vae.config.to_dict(), "data": {"note": HOSTILE}}
    path = write_report(
        folder,
        vae=vae,
        data=_tiny_data(),
        history=HISTORY,
        metrics=METRICS,
        config=config,
        num_examples=2,
        extra_sections=[("Graph <checks>", "<p id='extra'>extra fragment</p>")],
        section_metrics=("causal",),
    )
    return path, vae


@pytest.fixture(scope="module")
def page(written) -> str:
    return written[0].read_text(encoding="utf-8")


def test_report_returns_index(written) -> None:
    path, _ = written
    assert path.name == "index.html"
    assert path.is_file()


def test_report_writes_every_figure(written) -> None:
    folder = written[0].parent
    for name in EXPECTED_FIGURES:
        pixels = imread(folder / name)
        assert pixels.shape[0] > 0, name
        assert pixels[..., :3].std() > 0, f"{name} is a single colour"
    written_pngs = sorted(p.name for p in folder.glob("*.png"))
    assert written_pngs == sorted(EXPECTED_FIGURES)


def test_report_leaves_no_temporary_files(written) -> None:
    folder = written[0].parent
    names = {p.name for p in folder.iterdir()}
    assert names == {*EXPECTED_FIGURES, "metrics.json", "index.html"}


def test_report_links_every_figure(written, page: str) -> None:
    sources = re.findall(r'<img src="([^"]+)"', page)
    existing = sorted(p.name for p in written[0].parent.glob("*.png"))
    assert sorted(sources) == existing


def test_report_shows_every_tabled_metric_key(page: str) -> None:
    def keys(mapping: dict[str, Any]) -> list[str]:
        found = []
        for key, value in mapping.items():
            found.append(key)
            if isinstance(value, dict):
                found += keys(value)
        return found

    tabled = {k: v for k, v in METRICS.items() if k != "causal"}
    for key in keys(tabled):
        assert key in page, key


def test_report_metrics_json_round_trips(written) -> None:
    stored = json.loads((written[0].parent / "metrics.json").read_text())
    assert stored.keys() == METRICS.keys()
    assert stored["counterfactual_iou"] == METRICS["counterfactual_iou"]
    assert stored["heldout_neg_elbo"] == METRICS["heldout_neg_elbo"]
    assert np.isnan(stored["nested_extra"]["level"]["value"])


def test_report_escapes_config_text(page: str) -> None:
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_report_is_self_contained(page: str) -> None:
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert "<style>" in page


def test_report_extra_section(page: str) -> None:
    assert "<h2>Graph &lt;checks&gt;</h2>" in page
    assert "<p id='extra'>extra fragment</p>" in page


def test_report_leaves_section_metrics_out_of_tables(written, page: str) -> None:
    saved = json.loads((written[0].parent / "metrics.json").read_text())

    assert saved["causal"] == {"interventional_tv": {"shape": 0.0375}}
    assert "interventional_tv" not in page
    assert "nested_extra" in page


def test_report_shows_numbers(page: str) -> None:
    assert "2841.2" in page
    assert "0.125" in page
    assert "7.250" in page


def test_report_restores_training_mode(written) -> None:
    _, vae = written
    assert vae.training


def test_report_rejects_bad_arguments(tmp_path: Path) -> None:
    vae = ConditionalVAE(ModelConfig())
    common = {"vae": vae, "data": _tiny_data(), "history": [], "metrics": {}}
    with pytest.raises(ValueError, match="num_examples"):
        write_report(tmp_path, **common, config={}, num_examples=0)
    with pytest.raises(ValueError, match="extra section 0"):
        write_report(tmp_path, **common, config={}, extra_sections=[("title",)])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("shape", [0, 1, 2]),
        ("scale", [0, 1, 2, 3, 4, 5]),
        ("pos_x", [0, 6, 12, 19, 25, 31]),
        ("orientation", [0, 7, 13, 20, 27, 33]),
    ],
)
def test_spread_classes(name: str, expected: list[int]) -> None:
    assert spread_classes(name) == expected
