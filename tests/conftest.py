"""Shared fixtures: tiny dSprites files, a tiny trained checkpoint and a CLI runner.

Everything here is sized for a small shared CPU: a few hundred rendered images, models
with a handful of hidden units and training runs of a few steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from click.testing import CliRunner, Result

from causalvae.data.render import render
from causalvae.data.spec import FACTOR_SIZES
from causalvae.data.store import save_dataset
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.training import ImageData, TrainConfig

# One thread keeps the suite from competing with itself and with other processes.
torch.set_num_threads(1)

TINY_NUM_IMAGES = 240
TINY_MODEL_OPTIONS: dict[str, int] = {"hidden": 16, "layers": 2, "label_channels": 4}
"""Keyword arguments of :class:`ModelConfig` for models that only need to run."""

CliInvoker = Callable[..., Result]


def random_classes(num_images: int, seed: int) -> np.ndarray:
    """Uniformly random class indices ``(num_images, 5)`` on the dSprites grid."""
    rng = np.random.default_rng(seed)
    columns = [rng.integers(0, size, num_images) for size in FACTOR_SIZES]
    return np.stack(columns, axis=1).astype(np.int64)


def write_tiny_dataset(
    path: Path, num_images: int = TINY_NUM_IMAGES, seed: int = 0
) -> Path:
    """Render ``num_images`` random grid images and save them as a dSprites file."""
    classes = random_classes(num_images, seed)
    return save_dataset(path, render(classes), classes)


def tiny_image_data(
    num_images: int = 100, heldout: int = 20, seed: int = 0
) -> ImageData:
    """Random rendered images split into training and held-out sets, in memory."""
    classes = random_classes(num_images, seed)
    return ImageData.split(render(classes), classes, heldout=heldout, seed=seed)


def tiny_model(seed: int = 0, **options: object) -> ConditionalVAE:
    """A small untrained model. ``options`` override :data:`TINY_MODEL_OPTIONS`."""
    torch.manual_seed(seed)
    return ConditionalVAE(ModelConfig(**{**TINY_MODEL_OPTIONS, **options}))


def tiny_train_config(**overrides: object) -> TrainConfig:
    """Training settings for runs of a few steps on :func:`tiny_image_data`."""
    settings = {
        "batch_size": 16,
        "steps": 4,
        "eval_every": 100,
        "eval_images": 20,
        "device": "cpu",
    }
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(autouse=True)
def _seeded_and_clean_pyro() -> None:
    """Seed every random generator and start each test with an empty parameter store."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()


@pytest.fixture
def make_model() -> Callable[..., ConditionalVAE]:
    """Factory of small untrained models, :func:`tiny_model`."""
    return tiny_model


@pytest.fixture
def make_data() -> Callable[..., ImageData]:
    """Factory of in-memory image sets, :func:`tiny_image_data`."""
    return tiny_image_data


@pytest.fixture
def make_train_config() -> Callable[..., TrainConfig]:
    """Factory of short training settings, :func:`tiny_train_config`."""
    return tiny_train_config


@pytest.fixture(scope="session")
def tiny_data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dSprites file of 240 random grid images (48 of them held out on loading)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="session")
def tiny_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, tiny_data_file: Path
) -> Path:
    """A checkpoint folder trained for 8 steps on :func:`tiny_data_file`.

    Shared by the whole session, so a test that changes a checkpoint works on
    :func:`checkpoint_copy` instead.
    """
    from causalvae.pipeline import load_image_data, train_model

    folder = tmp_path_factory.mktemp("checkpoint") / "run"
    torch.manual_seed(0)
    train_model(
        load_image_data(tiny_data_file),
        folder,
        model_config=ModelConfig(**TINY_MODEL_OPTIONS),
        train_config=tiny_train_config(steps=8, eval_every=4, eval_images=48),
    )
    return folder


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`tiny_checkpoint` that a test may change."""
    import shutil

    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint"))


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> CliInvoker:
    """Invoke ``causalvae`` in-process and check its exit code.

    ``run_cli("train", "--steps", 3, exit_code=0)`` returns click's ``Result``; a
    different exit code fails the test with the command's output.
    """
    from causalvae.cli import main

    monkeypatch.delenv("CAUSALVAE_THREADS", raising=False)
    runner = CliRunner()

    def invoke(*args: object, exit_code: int = 0) -> Result:
        arguments = [str(argument) for argument in args]
        result = runner.invoke(main, arguments, catch_exceptions=False)
        assert result.exit_code == exit_code, (
            f"causalvae {' '.join(arguments)} exited with {result.exit_code}, "
            f"expected {exit_code}; output:\n{result.output}"
        )
        return result

    return invoke
