"""Checkpoint folders: round trips, damaged files and the absence of pickles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from causalvae import queries
from causalvae.checkpoint import (
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    CheckpointError,
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from causalvae.data.spec import IMAGE_SIZE
from causalvae.training import load_model


def first_images(count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, IMAGE_SIZE, IMAGE_SIZE, generator=generator) < 0.1
    factors = torch.tensor([[0, 1, 2, 3, 4], [1, 5, 39, 31, 0], [2, 0, 20, 10, 30]])
    return images.float(), factors[:count]


def test_save_and_load_round_trip(make_model, tmp_path: Path) -> None:
    vae = make_model(seed=3)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    vae.decoder.background.grad = torch.tensor(1.0)
    optimizer.step()
    history = [{"step": 4, "heldout_neg_elbo": 12.5, "train_neg_elbo": None}]
    config = {"model": vae.config.to_dict(), "train": {"steps": 4}}

    save_checkpoint(
        tmp_path,
        model=vae,
        config=config,
        history=history,
        state={"step": 4, "epoch": 1, "position": 16},
        optimizer=optimizer,
    )
    checkpoint = load_checkpoint(tmp_path, with_optimizer=True)

    state = vae.state_dict()
    assert checkpoint.weights.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(checkpoint.weights[key], value), key
    assert checkpoint.config == config
    assert checkpoint.history == history
    assert checkpoint.state["step"] == 4
    assert checkpoint.state["position"] == 16
    restored = torch.optim.Adam(vae.parameters(), lr=1e-3)
    restored.load_state_dict(checkpoint.optimizer)
    original_state = optimizer.state_dict()["state"]
    restored_state = restored.state_dict()["state"]
    assert original_state.keys() == restored_state.keys()
    for index, values in original_state.items():
        for key, value in values.items():
            assert torch.equal(restored_state[index][key], value), (index, key)
    assert torch.equal(checkpoint.rng_state, torch.get_rng_state())


def test_load_without_optimizer_skips_its_file(make_model, tmp_path: Path) -> None:
    vae = make_model()
    save_checkpoint(
        tmp_path, model=vae, config={}, history=[], state={"step": 0}, optimizer=None
    )

    checkpoint = load_checkpoint(tmp_path, with_optimizer=True)

    assert not (tmp_path / OPTIMIZER_FILE).exists()
    assert checkpoint.optimizer is None
    assert checkpoint.rng_state is None


def test_save_leaves_no_temporary_files(make_model, tmp_path: Path) -> None:
    vae = make_model()
    optimizer = torch.optim.Adam(vae.parameters())

    for step in (1, 2):
        save_checkpoint(
            tmp_path,
            model=vae,
            config={},
            history=[],
            state={"step": step},
            optimizer=optimizer,
        )

    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted(
        [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE, HISTORY_FILE, STATE_FILE]
    )


def test_loaded_model_reproduces_outputs(tiny_checkpoint: Path) -> None:
    first, _ = load_model(tiny_checkpoint)
    second, _ = load_model(tiny_checkpoint)
    images, factors = first_images()
    z = torch.randn(3, first.z_dim)

    assert torch.equal(first.image_probs(z, factors), second.image_probs(z, factors))
    for name, logits in first.label_logits(images).items():
        assert torch.equal(logits, second.label_logits(images)[name])
    answers = [
        queries.counterfactual(
            vae,
            images,
            {"shape": 2},
            factors,
            generator=torch.Generator().manual_seed(11),
        )
        for vae in (first, second)
    ]
    assert torch.equal(
        answers[0].counterfactual_images, answers[1].counterfactual_images
    )
    assert torch.equal(answers[0].counterfactual_probs, answers[1].counterfactual_probs)


def test_loaded_model_matches_saved_model(make_model, tmp_path: Path) -> None:
    vae = make_model(seed=4)
    config = {"model": vae.config.to_dict()}
    save_checkpoint(tmp_path, model=vae, config=config, history=[], state={"step": 0})
    images, factors = first_images()
    z = torch.randn(3, vae.z_dim)

    loaded, _ = load_model(tmp_path)

    assert torch.equal(loaded.image_probs(z, factors), vae.image_probs(z, factors))
    posterior, loaded_posterior = (
        model.z_posterior(images, factors) for model in (vae, loaded)
    )
    assert torch.equal(posterior.mean, loaded_posterior.mean)


def test_loading_never_unpickles(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a checkpoint was unpickled")

    for module, name in [
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(module, name, forbidden)

    vae, _ = load_model(tiny_checkpoint)
    checkpoint = load_checkpoint(tiny_checkpoint, with_optimizer=True)

    assert vae.config.hidden == 16
    assert checkpoint.optimizer is not None


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "absent"

    with pytest.raises(CheckpointError, match="does not exist") as error:
        load_checkpoint(folder)

    assert str(folder) in str(error.value)


@pytest.mark.parametrize(
    "name", [MODEL_FILE, STATE_FILE, CONFIG_FILE, HISTORY_FILE, OPTIMIZER_FILE]
)
def test_missing_file_is_named(checkpoint_copy: Path, name: str) -> None:
    (checkpoint_copy / name).unlink()

    with pytest.raises(CheckpointError, match="missing") as error:
        load_checkpoint(checkpoint_copy, with_optimizer=True)

    assert str(checkpoint_copy / name) in str(error.value)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not a safetensors file at all", id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
@pytest.mark.parametrize("name", [MODEL_FILE, OPTIMIZER_FILE])
def test_damaged_tensors_are_named(checkpoint_copy: Path, name: str, damage) -> None:
    path = checkpoint_copy / name
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(
        CheckpointError, match="not a readable safetensors file"
    ) as error:
        load_checkpoint(checkpoint_copy, with_optimizer=True)

    assert str(path) in str(error.value)


@pytest.mark.parametrize("name", [STATE_FILE, CONFIG_FILE, HISTORY_FILE])
def test_invalid_json_is_named(checkpoint_copy: Path, name: str) -> None:
    path = checkpoint_copy / name
    path.write_text('{"step": 8,')

    with pytest.raises(CheckpointError, match="not valid JSON") as error:
        load_model(checkpoint_copy)

    assert str(path) in str(error.value)


def test_step_mismatch_is_named(checkpoint_copy: Path) -> None:
    state_path = checkpoint_copy / STATE_FILE
    state = json.loads(state_path.read_text())
    state["step"] = state["step"] - 4
    atomic_write_json(state_path, state)

    with pytest.raises(CheckpointError, match="half-written") as error:
        load_model(checkpoint_copy)

    message = str(error.value)
    assert str(checkpoint_copy / MODEL_FILE) in message
    assert "holds step 8" in message
    assert "names step 4" in message


def test_optimizer_from_other_step_is_named(
    checkpoint_copy: Path, tmp_path: Path, make_model
) -> None:
    # An optimizer file left from step 1 next to the rest of a step-8 checkpoint.
    vae = make_model()
    other = tmp_path / "other"
    save_checkpoint(
        other,
        model=vae,
        config={},
        history=[],
        state={"step": 1},
        optimizer=torch.optim.Adam(vae.parameters()),
    )
    (other / OPTIMIZER_FILE).replace(checkpoint_copy / OPTIMIZER_FILE)

    with pytest.raises(CheckpointError, match="holds step 1") as error:
        load_checkpoint(checkpoint_copy, with_optimizer=True)

    assert str(checkpoint_copy / OPTIMIZER_FILE) in str(error.value)


def test_config_without_model_section_is_rejected(checkpoint_copy: Path) -> None:
    atomic_write_json(checkpoint_copy / CONFIG_FILE, {"train": {}})

    with pytest.raises(CheckpointError, match="has no 'model' section") as error:
        load_model(checkpoint_copy)

    assert str(checkpoint_copy / CONFIG_FILE) in str(error.value)


def test_weights_not_matching_config_are_rejected(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / CONFIG_FILE
    config = json.loads(path.read_text())
    config["model"]["hidden"] = 24
    atomic_write_json(path, config)

    with pytest.raises(CheckpointError, match="do not match its configuration"):
        load_model(checkpoint_copy)


def test_unknown_config_key_is_rejected(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / CONFIG_FILE
    config = json.loads(path.read_text())
    config["model"]["dropout"] = 0.5
    atomic_write_json(path, config)

    with pytest.raises(ValueError, match="dropout"):
        load_model(checkpoint_copy)
