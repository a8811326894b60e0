"""Checkpoints: a folder of safetensors weights and JSON, never pickles.

Layout of a checkpoint folder::

    model.safetensors      model weights
    optimizer.safetensors  Adam moments and the torch random state (for resuming)
    config.json            resolved model, training and data configuration
    history.json           evaluations and losses so far
    state.json             step, epoch and position; written last

Each file is replaced atomically. ``state.json`` is written last and names the step
stored in the weights' metadata, so a folder caught half-written by an interruption is
detected on loading instead of silently mixing two steps.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
STATE_FILE = "state.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or inconsistent."""


def _file_mode(path: Path) -> int:
    """Mode for a new file: the existing file's, else 0o666 less the umask.

    ``tempfile.mkstemp`` creates files readable by their owner only, which would make
    reports and checkpoints private by accident.
    """
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    atomic_write_bytes(path, text.encode())


def _atomic_save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(contiguous, tmp, metadata=dict(metadata))
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer's state into tensors and a JSON-serialisable remainder."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state_dict(tensors: Mapping[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("state."):
            continue
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class Checkpoint:
    """The contents of a checkpoint folder."""

    path: Path
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    state: dict[str, Any]
    optimizer: dict[str, Any] | None
    rng_state: torch.Tensor | None


def save_checkpoint(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    config: Mapping[str, Any],
    history: list[dict[str, Any]],
    state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a checkpoint folder; see the module docstring for its layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    step = str(state.get("step", 0))
    metadata = {"step": step, "format_version": str(FORMAT_VERSION)}

    _atomic_save_tensors(folder / MODEL_FILE, model.state_dict(), metadata)
    full_state = dict(state)
    if optimizer is not None:
        tensors, meta = _optimizer_tensors(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        _atomic_save_tensors(folder / OPTIMIZER_FILE, tensors, metadata)
        full_state["optimizer"] = meta
    atomic_write_json(folder / CONFIG_FILE, dict(config))
    atomic_write_json(folder / HISTORY_FILE, history)
    full_state["format_version"] = FORMAT_VERSION
    atomic_write_json(folder / STATE_FILE, full_state)
    logger.debug("saved checkpoint at step %s to %s", step, folder)
    return folder


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {path} is missing; pass a folder written by "
            "'causalvae train'"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"checkpoint file {path} is not valid JSON: {error}"
        ) from error


def _read_tensors(path: Path, expected_step: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {path} is missing; the folder is incomplete, so "
            "retrain or copy the whole checkpoint folder again"
        )
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(
            f"checkpoint file {path} is not a readable safetensors file: {error}"
        ) from error
    if metadata.get("step") != expected_step:
        raise CheckpointError(
            f"checkpoint file {path} holds step {metadata.get('step')} but "
            f"{STATE_FILE} names step {expected_step}: the folder was caught "
            "half-written; resume from an earlier copy or retrain"
        )
    return tensors


def load_checkpoint(folder: str | Path, *, with_optimizer: bool = False) -> Checkpoint:
    """Read a checkpoint folder without unpickling anything.

    Raises :class:`CheckpointError` naming the file when a part is missing, unreadable
    or from a different step than the rest.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist; train one with "
            "'causalvae train --output FOLDER'"
        )
    state = _read_json(folder / STATE_FILE)
    step = str(state.get("step", 0))
    weights = _read_tensors(folder / MODEL_FILE, step)
    config = _read_json(folder / CONFIG_FILE)
    history = _read_json(folder / HISTORY_FILE)
    optimizer = None
    rng_state = None
    if with_optimizer and "optimizer" in state:
        tensors = _read_tensors(folder / OPTIMIZER_FILE, step)
        rng_state = tensors.pop("rng.torch", None)
        optimizer = _optimizer_state_dict(tensors, state["optimizer"])
    return Checkpoint(folder, weights, config, history, state, optimizer, rng_state)
