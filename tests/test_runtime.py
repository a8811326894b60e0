"""CPU thread settings and device selection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from causalvae.runtime import (
    DEFAULT_THREADS,
    THREADS_ENV,
    configure_threads,
    resolve_device,
)


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start without the environment variable and put the thread count back after."""
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_threads_without_environment() -> None:
    torch.set_num_threads(2)

    assert configure_threads() == DEFAULT_THREADS
    assert torch.get_num_threads() == DEFAULT_THREADS


def test_environment_sets_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")

    assert configure_threads() == 2
    assert torch.get_num_threads() == 2


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")

    assert configure_threads(1) == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("raw", ["two", "1.5", ""])
def test_invalid_environment_value_is_named(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(THREADS_ENV, raw)

    with pytest.raises(ValueError, match="is not an integer") as error:
        configure_threads()

    assert f"{THREADS_ENV}={raw!r}" in str(error.value)


@pytest.mark.parametrize("raw", ["0", "-2"])
def test_environment_below_one_is_rejected(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(THREADS_ENV, raw)

    with pytest.raises(ValueError, match=f"threads must be at least 1, got {raw}"):
        configure_threads()


def test_argument_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        configure_threads(0)


def test_cpu_device_is_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_device_without_gpu_is_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_device_with_gpu_is_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_gpu_is_rejected(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    with pytest.raises(ValueError, match="no CUDA GPU is visible") as error:
        resolve_device(device)

    assert repr(device) in str(error.value)
    assert "--device cpu" in str(error.value)


@pytest.mark.parametrize("device", ["tpu", "gpu", "CPU", ""])
def test_unknown_device_lists_choices(device: str) -> None:
    with pytest.raises(ValueError, match="unknown device") as error:
        resolve_device(device)

    assert "auto, cpu, cuda" in str(error.value)
