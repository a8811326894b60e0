"""SVI training: the loss, budgets, history, checkpoints and resuming."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from causalvae import training
from causalvae.checkpoint import STATE_FILE, CheckpointError, load_checkpoint
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE
from causalvae.models import ConditionalVAE
from causalvae.training import (
    ImageData,
    TrainConfig,
    heldout_neg_elbo,
    neg_elbo_per_image,
    train,
)

HISTORY_KEYS = {
    "step",
    "epoch",
    "images_seen",
    "train_neg_elbo",
    "train_label_loss",
    "heldout_neg_elbo",
    "elapsed",
    "reason",
}


def states_equal(first: ConditionalVAE, second: ConditionalVAE) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the loss -----------------------------------------------------------------------


def neg_elbo_with_fixed_z(
    vae: ConditionalVAE,
    monkeypatch: pytest.MonkeyPatch,
    images: torch.Tensor,
    factors: torch.Tensor,
    z: torch.Tensor,
) -> torch.Tensor:
    """:func:`neg_elbo_per_image` with the guide's draw of ``z`` replaced by ``z``."""
    guide = ConditionalVAE.guide.__get__(vae)
    trace = poutine.trace(guide).get_trace(images, factors)
    trace.nodes["z"]["value"] = z
    monkeypatch.setattr(vae, "guide", poutine.replay(guide, trace=trace))
    return neg_elbo_per_image(vae, images, factors)


@pytest.mark.parametrize("architecture", ["geometric", "mlp"])
def test_neg_elbo_is_in_nats_per_image(
    make_model, monkeypatch: pytest.MonkeyPatch, architecture: str
) -> None:
    vae = make_model(architecture=architecture, hidden=16, precision="fp32")
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) < 0.2).float()
    factors = torch.tensor([[0, 1, 2, 3, 4], [2, 5, 39, 31, 0], [1, 0, 20, 10, 30]])
    z = torch.randn(3, vae.z_dim, generator=generator)

    batched = neg_elbo_with_fixed_z(vae, monkeypatch, images, factors, z)
    singles = [
        neg_elbo_with_fixed_z(
            vae, monkeypatch, images[i : i + 1], factors[i : i + 1], z[i : i + 1]
        )
        for i in range(3)
    ]

    # -ELBO of one unit: -(log p(f) + log p(z) + log p(x | z, f) - log q(z | x, f)),
    # with uniform mechanisms at initialisation.
    with torch.no_grad():
        log_p_factors = -sum(math.log(size) for size in FACTOR_SIZES)
        manual = -(
            log_p_factors
            + vae.z_prior(3).log_prob(z)
            + vae.image_dist(z, factors).log_prob(images)
            - vae.z_posterior(images, factors).log_prob(z)
        )
    assert batched.dim() == 0
    torch.testing.assert_close(batched.detach(), manual.mean(), rtol=1e-5, atol=1e-3)
    for single, expected in zip(singles, manual, strict=True):
        torch.testing.assert_close(single.detach(), expected, rtol=1e-5, atol=1e-3)


def test_neg_elbo_is_differentiable(make_model) -> None:
    vae = make_model()
    images = torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE)
    factors = torch.zeros(2, 5, dtype=torch.long)

    loss = neg_elbo_per_image(vae, images, factors)
    loss.backward()

    assert vae.decoder.background.grad is not None
    assert torch.isfinite(vae.decoder.background.grad)


def test_heldout_neg_elbo_weights_chunks_by_size(
    make_data, make_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_data(num_images=50, heldout=10)
    vae = make_model()

    def lit_pixels_per_image(model, images, factors) -> torch.Tensor:
        return images.sum(dim=(-2, -1)).mean()

    monkeypatch.setattr(training, "neg_elbo_per_image", lit_pixels_per_image)
    # Chunks of 3, 3, 3 and 1 images: a plain mean of chunk means would be wrong.
    value = heldout_neg_elbo(vae, data, batch_size=3)
    first_four = heldout_neg_elbo(vae, data, max_images=4, batch_size=3)

    lit = data.images[data.heldout_index].reshape(10, -1).sum(-1).astype(np.float64)
    assert value == pytest.approx(lit.mean(), rel=1e-6)
    assert first_four == pytest.approx(lit[:4].mean(), rel=1e-6)


# -- data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_images", "heldout", "expected"),
    [(100, 20, 20), (100, 5000, 20), (9, 5, 1), (2, 1, 1), (50, 0, 1)],
)
def test_split_caps_heldout_size(make_data, num_images, heldout, expected) -> None:
    data = make_data(num_images=num_images, heldout=max(heldout, 1))
    data = ImageData.split(data.images, data.factors, heldout=heldout, seed=3)

    assert len(data.heldout_index) == expected
    assert len(data.train_index) == num_images - expected
    both = np.concatenate([data.train_index, data.heldout_index])
    assert np.array_equal(np.sort(both), np.arange(num_images))
    assert data.source["num_images"] == num_images
    assert data.source["heldout"] == expected
    assert data.source["split_seed"] == 3


def test_split_warns_when_heldout_capped(make_data, caplog) -> None:
    data = make_data(num_images=100, heldout=5)

    with caplog.at_level("WARNING", logger="causalvae.training"):
        ImageData.split(data.images, data.factors, heldout=5000, seed=3)
        capped = caplog.text
        caplog.clear()
        ImageData.split(data.images, data.factors, heldout=20, seed=3)

    assert "holding out 20 of 100 images rather than the 5000 requested" in capped
    assert caplog.text == ""


def test_split_depends_on_seed_only(make_data) -> None:
    data = make_data(num_images=60)

    first = ImageData.split(data.images, data.factors, heldout=10, seed=1)
    again = ImageData.split(data.images, data.factors, heldout=10, seed=1)
    other = ImageData.split(data.images, data.factors, heldout=10, seed=2)

    assert np.array_equal(first.heldout_index, again.heldout_index)
    assert not np.array_equal(first.heldout_index, other.heldout_index)


@pytest.mark.parametrize(
    ("images", "factors", "message"),
    [
        (np.zeros((4, 32, 32), np.uint8), np.zeros((4, 5), np.int64), "images must"),
        (np.zeros((4, 64, 64), np.float32), np.zeros((4, 5), np.int64), "images must"),
        (np.zeros((4, 64, 64), np.uint8), np.zeros((3, 5), np.int64), "factors must"),
        (np.zeros((4, 64, 64), np.uint8), np.zeros((4, 6), np.int64), "factors must"),
        (np.zeros((1, 64, 64), np.uint8), np.zeros((1, 5), np.int64), "at least 2"),
    ],
    ids=["small", "float", "count", "columns", "single"],
)
def test_split_rejects_invalid_arrays(images, factors, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageData.split(images, factors)


def test_batch_converts_images_to_floats(make_data) -> None:
    data = make_data(num_images=20, heldout=4)
    index = data.train_index[:3]

    images, factors = data.batch(index, torch.device("cpu"))

    assert images.dtype == torch.float32
    assert images.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert factors.dtype == torch.int64
    assert torch.equal(images, torch.from_numpy(data.images[index]).float())
    assert torch.equal(factors, torch.from_numpy(data.factors[index]))


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "set a budget"),
        ({"steps": 0}, "steps must be positive"),
        ({"epochs": -1.0}, "epochs must be positive"),
        ({"minutes": 0.0}, "minutes must be positive"),
        ({"steps": 5, "batch_size": 0}, "batch_size must be at least 1"),
        ({"steps": 5, "eval_every": 0}, "eval_every must be at least 1"),
        ({"steps": 5, "eval_images": 0}, "eval_images must be at least 1"),
        ({"steps": 5, "learning_rate": 0.0}, "learning_rate must be positive"),
        ({"steps": 5, "learning_rate": float("nan")}, "learning_rate must be positive"),
    ],
)
def test_train_config_rejects_invalid_values(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


# -- training runs ------------------------------------------------------------------


def test_training_lowers_heldout_loss(make_data, make_model, make_train_config) -> None:
    data = make_data()
    vae = make_model()
    before = heldout_neg_elbo(vae, data)

    history = train(vae, data, make_train_config(steps=30, learning_rate=1e-2))

    after = history[-1]["heldout_neg_elbo"]
    assert after < 0.8 * before
    assert history[-1]["train_neg_elbo"] < history[0]["train_neg_elbo"]


@pytest.mark.parametrize(
    ("budget", "expected_steps"),
    [
        ({"steps": 3}, 3),
        ({"epochs": 0.5}, 3),
        ({"epochs": 1.5}, 8),
        ({"steps": 4, "epochs": 3.0}, 4),
        ({"steps": 40, "epochs": 1.0}, 5),
        ({"steps": 2, "minutes": 10.0}, 2),
    ],
)
def test_training_stops_at_first_budget(
    make_data, make_model, make_train_config, budget: dict, expected_steps: int
) -> None:
    # 80 training images in batches of 16: five steps per epoch.
    data = make_data(num_images=100, heldout=20)
    settings = {"steps": None, **budget}

    history = train(make_model(), data, make_train_config(**settings))

    assert history[-1]["step"] == expected_steps
    assert history[-1]["images_seen"] == expected_steps * 16


def test_training_stops_at_minutes_budget(
    make_data, make_model, make_train_config
) -> None:
    data = make_data(num_images=100, heldout=20)
    minutes = 0.01
    started = time.perf_counter()

    history = train(make_model(), data, make_train_config(steps=None, minutes=minutes))

    wall = time.perf_counter() - started
    assert history[-1]["step"] >= 1
    assert history[-1]["elapsed"] >= minutes * 60
    # One step and one evaluation take well under a second here.
    assert wall < minutes * 60 + 5.0


def test_history_records_documented_keys(
    make_data, make_model, make_train_config
) -> None:
    data = make_data(num_images=100, heldout=20)
    progress: list[dict] = []

    history = train(
        make_model(),
        data,
        make_train_config(steps=7, eval_every=3),
        progress=lambda info: progress.append(dict(info)),
    )

    # Evaluations at steps 3 (interval), 5 (end of epoch), 6 (interval) and 7 (end).
    assert [record["step"] for record in history] == [3, 5, 6, 7]
    assert [record["reason"] for record in history] == [
        "interval",
        "epoch",
        "interval",
        "end",
    ]
    for record in history:
        assert set(record) == HISTORY_KEYS
        assert record["images_seen"] == record["step"] * 16
        assert math.isfinite(record["heldout_neg_elbo"])
        assert record["heldout_neg_elbo"] > 0
        assert record["train_neg_elbo"] > 0
        assert record["train_label_loss"] > 0
        assert record["elapsed"] >= 0
    assert [record["epoch"] for record in history] == pytest.approx(
        [48 / 80, 1.0, 1 + 16 / 80, 1 + 32 / 80]
    )
    json.dumps(history, allow_nan=False)
    assert [info["step"] for info in progress] == list(range(1, 8))
    assert [info["epoch"] for info in progress] == [0, 0, 0, 0, 0, 1, 1]
    for info in progress:
        assert set(info) == {"step", "epoch", "loss", "elapsed"}
        assert info["loss"] > 0


def test_training_leaves_param_store_empty(
    make_data, make_model, make_train_config
) -> None:
    data = make_data()
    first = make_model(seed=1)
    second = make_model(seed=2)

    train(first, data, make_train_config(steps=2))
    train(second, data, make_train_config(steps=2))

    assert list(pyro.get_param_store().keys()) == []
    assert not torch.equal(
        first.decoder.pixel_in.weight, second.decoder.pixel_in.weight
    )
    assert not states_equal(first, second)


def test_training_changes_every_network(
    make_data, make_model, make_train_config
) -> None:
    data = make_data()
    vae = make_model()
    before = {k: v.clone() for k, v in vae.state_dict().items()}

    train(vae, data, make_train_config(steps=2))

    for module in ("decoder", "encoder", "label_encoder"):
        changed = [
            not torch.equal(value, before[key])
            for key, value in vae.state_dict().items()
            if key.startswith(module + ".")
        ]
        assert any(changed), module
    assert not vae.training


def test_training_is_reproducible_with_seed(
    make_data, make_model, make_train_config
) -> None:
    data = make_data()
    first, second = make_model(seed=5), make_model(seed=5)

    train(first, data, make_train_config(steps=3, seed=7))
    train(second, data, make_train_config(steps=3, seed=7))

    assert states_equal(first, second)


def test_training_rejects_non_finite_loss(
    make_data, make_model, make_train_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def infinite_loss(*args: object) -> torch.Tensor:
        return torch.tensor(float("inf"), requires_grad=True)

    monkeypatch.setattr("causalvae.training.neg_elbo_per_image", infinite_loss)
    config = make_train_config(steps=3)

    with pytest.raises(FloatingPointError, match="diverged at step 0: the loss is inf"):
        train(make_model(), make_data(), config)


def test_training_rejects_nan_weights(make_data, make_model, make_train_config) -> None:
    model = make_model()
    with torch.no_grad():
        for parameter in model.decoder.parameters():
            parameter.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="weights are not finite"):
        train(model, make_data(), make_train_config(steps=3))


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_train_config_rejects_bad_aux_weight(weight: float) -> None:
    with pytest.raises(ValueError, match="aux_weight"):
        TrainConfig(steps=1, aux_weight=weight)


# -- checkpoints and resuming -------------------------------------------------------


def test_training_writes_checkpoint_at_each_evaluation(
    make_data, make_model, make_train_config, tmp_path: Path
) -> None:
    data = make_data(num_images=100, heldout=20)
    saved_steps: list[int] = []

    def read_saved_step(info: dict) -> None:
        if (tmp_path / STATE_FILE).is_file():
            state = json.loads((tmp_path / STATE_FILE).read_text())
            saved_steps.append(state["step"])

    history = train(
        make_model(),
        data,
        make_train_config(steps=7, eval_every=3),
        output=tmp_path,
        progress=read_saved_step,
    )

    # At step s the progress callback reads the checkpoint of the last evaluation.
    assert saved_steps == [3, 3, 5, 6]
    checkpoint = load_checkpoint(tmp_path, with_optimizer=True)
    assert checkpoint.state["step"] == 7
    assert checkpoint.history == history
    assert checkpoint.config["train"]["steps"] == 7
    assert checkpoint.config["model"]["hidden"] == 16
    assert checkpoint.optimizer is not None
    assert checkpoint.rng_state is not None


def test_resumed_run_matches_uninterrupted_run(
    make_data, make_model, make_train_config, tmp_path: Path
) -> None:
    # 80 training images in batches of 16 and evaluations every 7 steps: the run
    # stops at step 7, in the middle of its second epoch.
    data = make_data(num_images=100, heldout=20)
    settings = {"eval_every": 7, "seed": 3}
    whole = make_model(seed=1)
    whole_history = train(
        whole, data, make_train_config(steps=12, **settings), output=tmp_path / "a"
    )

    train(
        make_model(seed=1),
        data,
        make_train_config(steps=7, **settings),
        output=tmp_path / "b",
    )
    resumed = make_model(seed=99)
    resumed_history = train(
        resumed,
        data,
        make_train_config(steps=12, **settings),
        output=tmp_path / "b",
        resume=True,
    )

    assert states_equal(whole, resumed)
    assert [r["step"] for r in resumed_history] == [r["step"] for r in whole_history]
    assert [r["heldout_neg_elbo"] for r in resumed_history] == [
        r["heldout_neg_elbo"] for r in whole_history
    ]


def test_interrupted_run_resumes_from_last_checkpoint(
    make_data, make_model, make_train_config, tmp_path: Path
) -> None:
    data = make_data(num_images=100, heldout=20)
    settings = {"steps": 12, "eval_every": 7, "seed": 3}
    whole = make_model(seed=1)
    train(whole, data, make_train_config(**settings), output=tmp_path / "a")

    def interrupt(info: dict) -> None:
        if info["step"] == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            make_model(seed=1),
            data,
            make_train_config(**settings),
            output=tmp_path / "b",
            progress=interrupt,
        )
    assert load_checkpoint(tmp_path / "b").state["step"] == 7
    resumed = make_model(seed=99)
    history = train(
        resumed, data, make_train_config(**settings), output=tmp_path / "b", resume=True
    )

    assert history[-1]["step"] == 12
    assert [record["step"] for record in history] == [5, 7, 10, 12]
    assert states_equal(whole, resumed)


def test_resume_applies_new_learning_rate(
    make_data, make_model, make_train_config, tmp_path: Path
) -> None:
    data = make_data()
    train(make_model(), data, make_train_config(steps=2), output=tmp_path)

    train(
        make_model(),
        data,
        make_train_config(steps=3, learning_rate=5e-4, mechanism_learning_rate=0.01),
        output=tmp_path,
        resume=True,
    )

    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["step"] == 3
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [5e-4, 0.01]


def test_mechanism_tables_get_their_own_rate(make_model, make_train_config) -> None:
    from causalvae.training import _make_optimizer

    model = make_model()
    optimizer = _make_optimizer(model, make_train_config(mechanism_learning_rate=0.2))
    networks, tables = optimizer.param_groups

    assert tables["lr"] == 0.2
    assert {id(p) for p in tables["params"]} == {
        id(p) for p in model.mechanisms.parameters()
    }
    assert len(networks["params"]) + len(tables["params"]) == len(
        list(model.parameters())
    )


def test_resume_needs_output(make_data, make_model, make_train_config) -> None:
    with pytest.raises(ValueError, match="resume needs the checkpoint folder"):
        train(make_model(), make_data(), make_train_config(), resume=True)


def test_resume_without_checkpoint_fails(
    make_data, make_model, make_train_config, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match=r"state\.json"):
        train(
            make_model(),
            make_data(),
            make_train_config(),
            output=tmp_path,
            resume=True,
        )


# -- loading ------------------------------------------------------------------------


def test_load_model_restores_configuration(tiny_checkpoint: Path) -> None:
    vae, config = training.load_model(tiny_checkpoint)

    assert isinstance(vae, ConditionalVAE)
    assert not vae.training
    assert vae.config.hidden == 16
    assert vae.config.label_channels == 4
    assert config["train"]["steps"] == 8
    assert config["history"][-1]["step"] == 8
    assert set(config) >= {"model", "train", "data", "history"}
    assert vae.mechanisms.order == list(FACTOR_NAMES)


def test_split_heldout_order_is_random() -> None:
    # A grid in stored order: shape varies slowest, so sorted held-out indices would
    # start with squares only.
    n = 3000
    factors = np.zeros((n, 5), dtype=np.int64)
    factors[:, 0] = np.arange(n) * 3 // n
    images = np.zeros((n, 64, 64), dtype=np.uint8)

    data = ImageData.split(images, factors, heldout=300, seed=0)
    first_shapes = set(factors[data.heldout_index[:30], 0].tolist())

    assert first_shapes == {0, 1, 2}
    assert not np.all(np.diff(data.heldout_index) > 0)
    assert np.all(np.diff(data.train_index) > 0)
