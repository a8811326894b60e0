"""Stochastic variational inference for the conditional VAE.

The loss is Pyro's :class:`~pyro.infer.Trace_ELBO` of the model and guide, divided by
the batch size so that every reported loss is in nats per image, plus the auxiliary
cross-entropy of the label encoder. Adam updates the model's own parameters; nothing
goes through Pyro's global parameter store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyro.infer import Trace_ELBO

from causalvae.checkpoint import (
    STATE_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from causalvae.data.spec import FACTOR_NAMES, IMAGE_SIZE
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.runtime import resolve_device

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Mapping[str, Any]], None]


@dataclass
class TrainConfig:
    """Settings of one training run, saved with its checkpoints.

    The run stops at the first budget reached among ``epochs``, ``steps`` and
    ``minutes``; at least one must be set. ``eval_every`` is in steps; the held-out
    −ELBO is also computed at the end of every epoch and of the run.
    """

    batch_size: int = 64
    learning_rate: float = 2e-3
    mechanism_learning_rate: float = 0.05
    epochs: float | None = None
    steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    aux_weight: float = 1.0
    eval_every: int = 500
    eval_images: int = 2000
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None and self.minutes is None:
            raise ValueError("set a budget: epochs, steps or minutes")
        for name in ("batch_size", "eval_every", "eval_images"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )
        for name in ("epochs", "steps", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not (math.isfinite(self.aux_weight) and self.aux_weight >= 0):
            raise ValueError(
                f"aux_weight must be a finite number >= 0, got {self.aux_weight}"
            )
        for name in ("learning_rate", "mechanism_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class ImageData:
    """Images with their factors and a train / held-out split.

    ``images`` is uint8 ``(n, 64, 64)`` in {0, 1}; ``factors`` int64 ``(n, 5)``.
    Batches are converted to floats on the fly, so the set is never held as floats.
    """

    images: np.ndarray
    factors: np.ndarray
    train_index: np.ndarray
    heldout_index: np.ndarray
    source: dict[str, Any] = field(default_factory=dict)
    _on_device: tuple[torch.Tensor, ...] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def split(
        cls,
        images: np.ndarray,
        factors: np.ndarray,
        *,
        heldout: int = 5000,
        seed: int = 0,
        source: dict[str, Any] | None = None,
    ) -> ImageData:
        """Hold out ``heldout`` random images (at most a fifth of the set).

        ``heldout_index`` is in random order; ``train_index`` is sorted.
        """
        n = len(images)
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 of shape (n, 64, 64), got {images.dtype} "
                f"{images.shape}"
            )
        if factors.shape != (n, len(FACTOR_NAMES)):
            raise ValueError(
                f"factors must have shape ({n}, 5) to match the images, "
                f"got {factors.shape}"
            )
        if n < 2:
            raise ValueError(f"need at least 2 images to split, got {n}")
        requested = heldout
        heldout = max(1, min(heldout, n // 5 if n >= 10 else 1))
        if heldout < requested:
            logger.warning(
                "holding out %d of %d images rather than the %d requested: at most "
                "a fifth of the images are held out",
                heldout,
                n,
                requested,
            )
        order = np.random.default_rng(seed).permutation(n)
        info = dict(source or {})
        info.update(num_images=n, heldout=heldout, split_seed=seed)
        # The held-out images stay in random order, so that the first k of them, which
        # the metrics and the report use, are a uniform sample and not the first
        # shapes and scales of the grid.
        return cls(images, factors, np.sort(order[heldout:]), order[:heldout], info)

    def batch(
        self, index: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(b, 64, 64)`` float32 and factors ``(b, 5)`` int64 on ``device``.

        On a GPU the whole uint8 image set is copied to the device once, when it takes
        less than half of the free device memory, and batches are gathered there.
        """
        resident = self._resident(device)
        if resident is not None:
            rows = torch.as_tensor(index, device=device)
            return resident[0][rows].float(), resident[1][rows]
        images = torch.from_numpy(self.images[index]).to(device).float()
        factors = torch.from_numpy(self.factors[index]).to(device)
        return images, factors

    def _resident(
        self, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if device.type != "cuda":
            return None
        if self._on_device is None:
            free, _ = torch.cuda.mem_get_info(device)
            if self.images.nbytes > free // 2:
                logger.info("image set too large for the GPU; copying batches instead")
                self._on_device = ()
            else:
                images = torch.from_numpy(np.ascontiguousarray(self.images)).to(device)
                factors = torch.from_numpy(self.factors).to(device)
                self._on_device = (images, factors)
        return self._on_device or None


def neg_elbo_per_image(
    model: ConditionalVAE, images: torch.Tensor, factors: torch.Tensor
) -> torch.Tensor:
    """Differentiable −ELBO of log p(image, factors) in nats per image, one particle."""
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, images, factors)
    return loss / images.shape[0]


@torch.no_grad()
def heldout_neg_elbo(
    model: ConditionalVAE,
    data: ImageData,
    *,
    max_images: int | None = None,
    batch_size: int = 256,
) -> float:
    """Mean −ELBO over the held-out images, in nats per image."""
    index = data.heldout_index[:max_images] if max_images else data.heldout_index
    total = 0.0
    for start in range(0, len(index), batch_size):
        chunk = index[start : start + batch_size]
        images, factors = data.batch(chunk, model.device)
        total += float(neg_elbo_per_image(model, images, factors)) * len(chunk)
    return total / len(index)


def _rates(config: TrainConfig) -> tuple[float, float]:
    return config.learning_rate, config.mechanism_learning_rate


def _make_optimizer(model: ConditionalVAE, config: TrainConfig) -> torch.optim.Adam:
    """Adam with its own learning rate for the factor mechanisms' tables.

    The tables are a few hundred logits fitted from labels alone; at the networks'
    rate Adam moves each logit by about 0.002 per step, so they would need thousands
    of steps to reach a peaked distribution.
    """
    tables = list(model.mechanisms.parameters())
    table_ids = {id(p) for p in tables}
    networks = [p for p in model.parameters() if id(p) not in table_ids]
    network_rate, table_rate = _rates(config)
    return torch.optim.Adam(
        [{"params": networks, "lr": network_rate}, {"params": tables, "lr": table_rate}]
    )


def _epoch_order(train_index: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    # Seeded by (seed, epoch) alone, so a resumed run draws the same batches.
    return np.random.default_rng([seed, epoch]).permutation(train_index)


def train(
    model: ConditionalVAE,
    data: ImageData,
    config: TrainConfig,
    *,
    output: str | Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Fit ``model`` to ``data`` by SVI and return the history of evaluations.

    :param output: checkpoint folder, written at every evaluation and at the end.
    :param resume: continue from the checkpoint in ``output`` (model, optimizer, random
        state, position in the data and history), with ``config`` as the new budget.
    :param progress: called after every step with ``step``, ``epoch``, ``loss`` (running
        mean of the training −ELBO, nats per image) and ``elapsed`` seconds.
    :param overwrite: replace a checkpoint already in ``output``; without it, and
        without ``resume``, an existing checkpoint raises ``FileExistsError``.
    """
    has_checkpoint = output is not None and (Path(output) / STATE_FILE).is_file()
    if has_checkpoint and not resume and not overwrite:
        raise FileExistsError(
            f"{output} already contains a checkpoint. Pass resume=True (--resume "
            "on the command line) to continue it, overwrite=True (--overwrite) to "
            "replace it, or choose another folder"
        )
    device = resolve_device(config.device)
    model.to(device)
    optimizer = _make_optimizer(model, config)
    history: list[dict[str, Any]] = []
    step, epoch, position, elapsed_before = 0, 0, 0, 0.0
    torch.manual_seed(config.seed)

    if resume:
        if output is None:
            raise ValueError("resume needs the checkpoint folder passed as output")
        checkpoint = load_checkpoint(output, with_optimizer=True)
        model.load_state_dict(checkpoint.weights)
        if checkpoint.optimizer is not None:
            optimizer.load_state_dict(checkpoint.optimizer)
            for group, lr in zip(optimizer.param_groups, _rates(config), strict=True):
                group["lr"] = lr
        if checkpoint.rng_state is not None:
            torch.set_rng_state(checkpoint.rng_state)
        history = checkpoint.history
        step = int(checkpoint.state["step"])
        epoch = int(checkpoint.state["epoch"])
        position = int(checkpoint.state["position"])
        elapsed_before = float(checkpoint.state.get("elapsed", 0.0))
        logger.info("resuming from step %d (epoch %d) in %s", step, epoch, output)

    run_config = {
        "model": model.config.to_dict(),
        "train": asdict(config),
        "data": data.source,
    }
    n_train = len(data.train_index)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    max_steps = config.steps
    if config.epochs is not None:
        epoch_steps = math.ceil(config.epochs * steps_per_epoch)
        max_steps = epoch_steps if max_steps is None else min(max_steps, epoch_steps)
    deadline = None if config.minutes is None else config.minutes * 60.0

    def checkpoint_now() -> None:
        if output is not None:
            state = {
                "step": step,
                "epoch": epoch,
                "position": position,
                "elapsed": elapsed_before + (time.perf_counter() - start),
            }
            save_checkpoint(
                output,
                model=model,
                config=run_config,
                history=history,
                state=state,
                optimizer=optimizer,
            )

    def evaluate(reason: str) -> None:
        model.eval()
        value = heldout_neg_elbo(model, data, max_images=config.eval_images)
        model.train()
        record = {
            "step": step,
            "epoch": epoch + position / n_train,
            "images_seen": step * config.batch_size,
            "train_neg_elbo": running if running_count else None,
            "train_label_loss": running_label if running_count else None,
            "heldout_neg_elbo": value,
            "elapsed": elapsed_before + (time.perf_counter() - start),
            "reason": reason,
        }
        history.append(record)
        logger.info(
            "step %d: held-out -ELBO %.2f nats/image, train %.2f",
            step,
            value,
            running if running_count else float("nan"),
        )
        checkpoint_now()

    start = time.perf_counter()
    running, running_label, running_count = 0.0, 0.0, 0
    order = _epoch_order(data.train_index, config.seed, epoch)
    model.train()
    while True:
        elapsed = elapsed_before + (time.perf_counter() - start)
        if max_steps is not None and step >= max_steps:
            break
        if deadline is not None and elapsed >= deadline:
            break

        # One SVI step on the next minibatch of this epoch's order.
        batch_index = order[position : position + config.batch_size]
        images, factors = data.batch(batch_index, device)
        diverged = f"training diverged at step {step}"
        remedy = "lower the learning rate (--learning-rate) or use --precision fp32"
        try:
            elbo_loss = neg_elbo_per_image(model, images, factors)
        except ValueError as error:
            # NaN weights make Pyro's distribution checks raise before any loss exists.
            if all(torch.isfinite(p).all() for p in model.parameters()):
                raise
            raise FloatingPointError(
                f"{diverged}: the weights are not finite; {remedy}"
            ) from error
        label_loss = model.label_loss(images, factors)
        loss = elbo_loss + config.aux_weight * label_loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{diverged}: the loss is {loss.item()}; {remedy}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        # Running means over about the last 20 steps, for the progress bar and history.
        weight = max(1.0 / (running_count + 1), 0.05)
        running += weight * (elbo_loss.detach().item() - running)
        running_label += weight * (label_loss.detach().item() - running_label)
        running_count += 1
        position += len(batch_index)
        if progress is not None:
            progress(
                {"step": step, "epoch": epoch, "loss": running, "elapsed": elapsed}
            )

        if position >= n_train:
            epoch, position = epoch + 1, 0
            order = _epoch_order(data.train_index, config.seed, epoch)
            evaluate("epoch")
        elif step % config.eval_every == 0:
            evaluate("interval")

    if not history or history[-1]["step"] != step:
        evaluate("end")
    else:
        # Record the final elapsed time, so a resumed run sees the budget as spent.
        checkpoint_now()
    model.eval()
    return history


def build_model(config: Mapping[str, Any]) -> ConditionalVAE:
    """Instantiate a model from the ``model`` section of a run configuration."""
    return ConditionalVAE(ModelConfig.from_dict(config))


def load_model(
    folder: str | Path, *, device: str = "cpu"
) -> tuple[ConditionalVAE, dict[str, Any]]:
    """Load a trained model and its run configuration from a checkpoint folder."""
    checkpoint = load_checkpoint(folder)
    if "model" not in checkpoint.config:
        raise CheckpointError(
            f"{Path(folder) / 'config.json'} has no 'model' section; it was not "
            "written by causalvae"
        )
    model = build_model(checkpoint.config["model"])
    try:
        model.load_state_dict(checkpoint.weights)
    except RuntimeError as error:
        raise CheckpointError(
            f"the weights in {folder} do not match its configuration: {error}"
        ) from error
    model.to(resolve_device(device))
    model.eval()
    config = dict(checkpoint.config)
    config["history"] = checkpoint.history
    return model, config
