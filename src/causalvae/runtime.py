"""Process-wide compute settings: CPU threads and the torch device."""

from __future__ import annotations

import logging
import os
from typing import Literal

import torch

logger = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]

THREADS_ENV = "CAUSALVAE_THREADS"
DEFAULT_THREADS = 1
"""Default CPU thread count. On small shared CPUs one OpenMP thread was measured to run
the small operations of these models faster than two (``benchmarks/threads.py``)."""


def configure_threads(threads: int | None = None) -> int:
    """Set the number of CPU threads that PyTorch uses and return it.

    ``threads`` wins over the ``CAUSALVAE_THREADS`` environment variable, which wins
    over :data:`DEFAULT_THREADS`.
    """
    if threads is None:
        raw = os.environ.get(THREADS_ENV)
        if raw is None:
            threads = DEFAULT_THREADS
        else:
            try:
                threads = int(raw)
            except ValueError as error:
                raise ValueError(
                    f"{THREADS_ENV}={raw!r} is not an integer; set it to a thread "
                    "count such as 1 or 2"
                ) from error
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    logger.debug("using %d CPU thread(s)", threads)
    return threads


def resolve_device(device: DeviceName | str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu`` or ``cuda`` into a :class:`torch.device`.

    ``auto`` picks CUDA when a GPU is visible and the CPU otherwise. Asking for ``cuda``
    on a machine without one raises ``ValueError``.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or str(device).startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was requested but no CUDA GPU is visible; "
                "use --device cpu or --device auto"
            )
        return torch.device(device)
    raise ValueError(f"unknown device {device!r}; choose one of auto, cpu, cuda")
