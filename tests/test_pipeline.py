"""The main job end to end: data files, training, evaluation and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from causalvae import pipeline
from causalvae.checkpoint import STATE_FILE
from causalvae.data.resample import render_units, resample, save_resampled
from causalvae.graph import parse_inline
from causalvae.models import ModelConfig
from causalvae.training import load_model


def tiny_overrides() -> dict:
    return {"batch_size": 16, "eval_images": 20, "device": "cpu"}


# -- data ---------------------------------------------------------------------------


def test_resolve_data_path_prefers_given_file(
    tiny_data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_generation(*args: object, **kwargs: object) -> Path:
        raise AssertionError("the cached grid was generated")

    monkeypatch.setattr(pipeline, "ensure_dsprites", no_generation)

    assert pipeline.resolve_data_path(str(tiny_data_file), None) == tiny_data_file


def test_resolve_data_path_falls_back_to_cache(
    tiny_data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    def cached(data_dir: object, **kwargs: object) -> Path:
        calls.append(data_dir)
        return tiny_data_file

    monkeypatch.setattr(pipeline, "ensure_dsprites", cached)

    assert pipeline.resolve_data_path(None, tmp_path) == tiny_data_file
    assert calls == [tmp_path]


@pytest.mark.parametrize(("heldout", "expected"), [(10, 10), (5000, 48)])
def test_load_image_data_splits_file(tiny_data_file: Path, heldout, expected) -> None:
    data = pipeline.load_image_data(tiny_data_file, heldout=heldout, split_seed=2)

    assert data.images.shape == (240, 64, 64)
    assert data.factors.shape == (240, 5)
    assert len(data.heldout_index) == expected
    assert data.source["path"] == str(tiny_data_file.resolve())
    assert data.source["split_seed"] == 2
    assert "graph" not in data.source
    assert pipeline.read_graph(tiny_data_file) is None


def test_data_for_checkpoint_restores_split(tiny_checkpoint: Path) -> None:
    _, config = load_model(tiny_checkpoint)
    path = Path(config["data"]["path"])

    data = pipeline.data_for_checkpoint(config)

    again = pipeline.load_image_data(path, heldout=config["data"]["heldout"])
    assert np.array_equal(data.heldout_index, again.heldout_index)
    assert len(data.heldout_index) == config["data"]["heldout"]


def test_data_for_checkpoint_reports_missing_file(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    _, config = load_model(tiny_checkpoint)
    config["data"]["path"] = str(tmp_path / "moved.npz")

    with pytest.raises(FileNotFoundError, match="pass the dSprites file with --data"):
        pipeline.data_for_checkpoint(config)


def test_data_for_checkpoint_accepts_override(
    tiny_checkpoint: Path, tiny_data_file: Path, tmp_path: Path
) -> None:
    _, config = load_model(tiny_checkpoint)
    config["data"]["path"] = str(tmp_path / "moved.npz")

    data = pipeline.data_for_checkpoint(config, tiny_data_file)

    assert len(data.images) == 240


# -- training -----------------------------------------------------------------------


def test_train_model_writes_checkpoint(
    tiny_data_file: Path, tmp_path: Path, make_train_config
) -> None:
    data = pipeline.load_image_data(tiny_data_file)
    config = ModelConfig(hidden=8, layers=1, label_channels=4)

    model, history = pipeline.train_model(
        data, tmp_path, model_config=config, train_config=make_train_config(steps=2)
    )

    loaded, saved = load_model(tmp_path)
    assert history[-1]["step"] == 2
    assert loaded.config == config
    assert saved["data"]["path"] == str(tiny_data_file.resolve())
    assert saved["train"]["steps"] == 2
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), loaded.state_dict()[key].numpy()), key


def test_train_model_resumes_with_saved_config(
    tiny_data_file: Path, tmp_path: Path, make_train_config
) -> None:
    data = pipeline.load_image_data(tiny_data_file)
    config = ModelConfig(hidden=8, layers=1, label_channels=4)
    pipeline.train_model(
        data, tmp_path, model_config=config, train_config=make_train_config(steps=2)
    )

    model, history = pipeline.train_model(
        data, tmp_path, train_config=make_train_config(steps=3), resume=True
    )

    assert model.config == config
    assert history[-1]["step"] == 3
    assert json.loads((tmp_path / STATE_FILE).read_text())["step"] == 3


def test_train_model_rejects_changed_config_on_resume(
    tiny_data_file: Path, tmp_path: Path, make_train_config
) -> None:
    data = pipeline.load_image_data(tiny_data_file)
    pipeline.train_model(
        data,
        tmp_path,
        model_config=ModelConfig(hidden=8, layers=1, label_channels=4),
        train_config=make_train_config(steps=1),
    )

    with pytest.raises(ValueError, match="resume without changing the model options"):
        pipeline.train_model(
            data,
            tmp_path,
            model_config=ModelConfig(hidden=9, layers=1, label_channels=4),
            train_config=make_train_config(steps=2),
            resume=True,
        )


def test_train_model_learns_edges_of_resampled_data(
    tmp_path: Path, make_train_config
) -> None:
    graph = parse_inline("shape -> scale; scale -> pos_y")
    path = save_resampled(
        tmp_path / "resampled.npz", render_units(resample(graph, 60, 0))
    )
    data = pipeline.load_image_data(path)
    config = ModelConfig(hidden=8, layers=1, label_channels=4)

    model, _ = pipeline.train_model(
        data,
        tmp_path / "run",
        model_config=config,
        train_config=make_train_config(steps=1),
    )

    assert "graph" in data.source
    assert model.config.parents == {"scale": ["shape"], "pos_y": ["scale"]}
    assert model.mechanisms.tables["scale"].shape == (3, 6)
    assert config.parents == {}
    loaded, _ = load_model(tmp_path / "run")
    assert loaded.config.parents == model.config.parents


def test_train_model_keeps_explicit_parents(tmp_path: Path, make_train_config) -> None:
    graph = parse_inline("shape -> scale")
    path = save_resampled(
        tmp_path / "resampled.npz", render_units(resample(graph, 60, 0))
    )
    config = ModelConfig(
        hidden=8, layers=1, label_channels=4, parents={"pos_x": ["shape"]}
    )

    model, _ = pipeline.train_model(
        pipeline.load_image_data(path),
        tmp_path / "run",
        model_config=config,
        train_config=make_train_config(steps=1),
    )

    assert model.config.parents == {"pos_x": ["shape"]}


# -- evaluation and the demo --------------------------------------------------------


def test_evaluate_checkpoint_reloads_data(tiny_checkpoint: Path) -> None:
    messages: list[str] = []

    metrics = pipeline.evaluate_checkpoint(
        tiny_checkpoint, num_images=2, progress=messages.append
    )

    assert metrics["num_images"] == 2
    assert metrics["heldout_neg_elbo"] > 0
    assert 0 <= metrics["reconstruction_iou"] <= 1
    assert messages[0] == "held-out -ELBO"


def test_run_demo_writes_report_and_resumes(
    tiny_data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("causalvae.report", reason="the HTML report is not available")
    monkeypatch.setattr(pipeline, "ensure_dsprites", lambda *a, **k: tiny_data_file)
    messages: list[str] = []
    settings = {
        "minutes": 0.01,
        "train_overrides": tiny_overrides(),
        "num_images": 2,
        "say": messages.append,
        "preset": None,
    }

    first = pipeline.run_demo(
        tmp_path,
        model_config=ModelConfig(hidden=8, layers=1, label_channels=4),
        **settings,
    )
    second = pipeline.run_demo(tmp_path, **settings)

    assert first.report == tmp_path / "index.html"
    assert first.report.is_file()
    assert "causal" not in first.metrics
    assert "training for up to 0.01 minutes" in messages
    assert "resuming for up to 0.01 minutes" in messages
    assert second.metrics["num_images"] == 2
    assert json.loads((tmp_path / "metrics.json").read_text()) == second.metrics
    saved = json.loads((second.checkpoint / "metrics.json").read_text())
    assert saved == second.metrics
    loaded, _ = load_model(second.checkpoint)
    assert loaded.config.hidden == 8


def test_run_demo_rejects_unknown_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_generation(*args: object, **kwargs: object) -> Path:
        raise AssertionError("the demo prepared data before checking its preset")

    monkeypatch.setattr(pipeline, "ensure_dsprites", no_generation)

    with pytest.raises(ValueError, match="unknown"):
        pipeline.run_demo(tmp_path, preset="spiral", minutes=0.01)
