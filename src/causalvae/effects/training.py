"""Training loop for Pyro's CEVAE with a validation split, early stopping and a
divergence guard.

``pyro.contrib.cevae.CEVAE.fit`` (Pyro 1.9) trains for a fixed number of epochs and
stops with an ``AssertionError`` on a NaN loss. This loop drives the same pieces: the
CEVAE ``model`` and ``guide`` and :class:`~pyro.contrib.cevae.TraceCausalEffect_ELBO`.
Like ``CEVAE.fit`` it uses Adam with L2 weight decay, gradient clipping and an optional
exponential learning-rate decay, but it clips the total gradient norm rather than each
element. It adds what that method lacks: the validation loss after every epoch, the
weights of the best epoch, early stopping and a typed error when the loss diverges.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import torch
from pyro.contrib.cevae import CEVAE, TraceCausalEffect_ELBO

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, float, float], None]
"""Called after each epoch with ``(epoch, train_loss, validation_loss)``; ``epoch``
counts from 1 and the losses are in nats per unit."""


@dataclass(frozen=True)
class TrainingSettings:
    """Optimisation settings of one CEVAE fit.

    :ivar epochs: maximum number of passes over the training units.
    :ivar batch_size: units per gradient step.
    :ivar learning_rate: Adam step size.
    :ivar learning_rate_decay: factor by which the learning rate has fallen after
        ``epochs`` epochs, applied smoothly per step as in ``CEVAE.fit``. The default
        1 keeps it constant, as Louizos et al. (2017) did; ``CEVAE.fit`` uses 0.1.
    :ivar weight_decay: L2 penalty added to the gradients.
    :ivar clip_norm: maximum gradient norm per step.
    :ivar patience: stop after this many epochs without a lower validation loss;
        ``None`` always runs ``epochs`` epochs. The best weights are kept either way.
    :ivar validation_particles: ELBO samples averaged per validation loss. The
        validation loss of every epoch uses the same random numbers, so that
        epochs are compared on equal terms.
    :ivar divergence_factor: a training epoch whose mean loss per unit exceeds this
        multiple of ``max(|loss of the first epoch|, 1)`` counts as diverged.
    """

    epochs: int = 300
    batch_size: int = 100
    learning_rate: float = 1e-3
    learning_rate_decay: float = 1.0
    weight_decay: float = 1e-4
    clip_norm: float = 10.0
    patience: int | None = 100
    validation_particles: int = 10
    divergence_factor: float = 1e3

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "validation_particles"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate", "clip_norm", "divergence_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0 < self.learning_rate_decay <= 1:
            raise ValueError(
                "learning_rate_decay must lie in (0, 1], got "
                f"{self.learning_rate_decay!r}; use 1 for a constant learning rate"
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(
                f"patience must be a positive integer or None, got {self.patience!r}"
            )


@dataclass
class TrainingHistory:
    """Losses of one CEVAE fit, in nats per unit.

    :ivar train_loss: mean training loss of each epoch.
    :ivar validation_loss: validation loss after each epoch.
    :ivar best_epoch: epoch (from 1) whose weights were kept.
    :ivar learning_rate: initial learning rate of the attempt that succeeded.
    :ivar retried: whether a first attempt diverged and was retried.
    :ivar seconds: wall-clock training time of the successful attempt.
    """

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    learning_rate: float = 0.0
    retried: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        """Number of epochs trained before stopping."""
        return len(self.train_loss)

    def stopped_early(self, patience: int | None) -> bool:
        """Return whether training stopped because the validation loss stopped
        improving for ``patience`` epochs, rather than at the epoch limit."""
        if patience is None:
            return False
        return self.epochs_run - self.best_epoch >= patience


class Diverged(Exception):
    """Raised inside :func:`train_cevae` when a loss or a gradient is not finite or
    a loss explodes.

    :ivar epoch: the epoch (from 1) in which it happened.
    :ivar reason: what was observed, with the value.
    """

    def __init__(self, epoch: int, reason: str) -> None:
        super().__init__(f"epoch {epoch}: {reason}")
        self.epoch = epoch
        self.reason = reason


def train_cevae(
    cevae: CEVAE,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    settings: TrainingSettings,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> TrainingHistory:
    """Train ``cevae`` in place and load the weights with the lowest validation loss.

    ``cevae.whiten`` must already be set (see
    :class:`~pyro.contrib.cevae.PreWhitener`). Each split is a tuple of covariates
    ``(units, covariates)``, treatment ``(units,)`` and outcome ``(units,)``.

    :param generator: random source for the order of the training units.
    :raises Diverged: on a non-finite loss or gradient norm, or an exploding loss.
    """
    x_train, t_train, y_train = train
    x_valid, t_valid, y_valid = validation
    num_train = x_train.shape[0]
    steps_per_epoch = math.ceil(num_train / settings.batch_size)
    elbo = TraceCausalEffect_ELBO()
    validation_elbo = TraceCausalEffect_ELBO(
        num_particles=settings.validation_particles,
        vectorize_particles=True,
        max_plate_nesting=1,
    )
    validation_seed = int(torch.randint(2**31 - 1, (1,), generator=generator))

    # Module-local parameters keep each fit's weights out of Pyro's global parameter
    # store, where a second CEVAE with the same site names would reuse the first's.
    with pyro.settings.context(module_local_params=True):
        optimizer = torch.optim.Adam(
            cevae.parameters(),
            lr=settings.learning_rate,
            weight_decay=settings.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.ExponentialLR(
            optimizer,
            gamma=settings.learning_rate_decay
            ** (1 / (settings.epochs * steps_per_epoch)),
        )
        history = TrainingHistory(learning_rate=settings.learning_rate)
        best_loss = math.inf
        best_state = copy.deepcopy(cevae.state_dict())
        reference_loss: float | None = None

        for epoch in range(1, settings.epochs + 1):
            # One pass over the training units in a random order.
            cevae.train()
            order = torch.randperm(num_train, generator=generator)
            epoch_loss = 0.0
            for start in range(0, num_train, settings.batch_size):
                batch = order[start : start + settings.batch_size]
                optimizer.zero_grad()
                loss = elbo.differentiable_loss(
                    cevae.model,
                    cevae.guide,
                    cevae.whiten(x_train[batch]),
                    t_train[batch],
                    y_train[batch],
                    size=num_train,
                )
                loss_value = float(loss.detach()) / num_train
                if not math.isfinite(loss_value):
                    raise Diverged(epoch, f"training loss is {loss_value}")
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    cevae.parameters(), settings.clip_norm
                )
                if not torch.isfinite(grad_norm):
                    raise Diverged(epoch, f"gradient norm is {float(grad_norm)}")
                optimizer.step()
                scheduler.step()
                epoch_loss += loss_value * len(batch) / num_train

            # Exploding loss: far above the scale of the first epoch's loss.
            if reference_loss is None:
                reference_loss = max(abs(epoch_loss), 1.0)
            elif epoch_loss > settings.divergence_factor * reference_loss:
                raise Diverged(
                    epoch,
                    f"training loss {epoch_loss:.4g} per unit exceeds "
                    f"{settings.divergence_factor:g} x {reference_loss:.4g}",
                )

            # Validation loss with the same random numbers in every epoch.
            cevae.eval()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(validation_seed)
                validation_loss = validation_elbo.loss(
                    cevae.model, cevae.guide, cevae.whiten(x_valid), t_valid, y_valid
                ) / len(x_valid)
            if not math.isfinite(validation_loss):
                raise Diverged(epoch, f"validation loss is {validation_loss}")
            history.train_loss.append(epoch_loss)
            history.validation_loss.append(validation_loss)
            if on_epoch is not None:
                on_epoch(epoch, epoch_loss, validation_loss)

            # Keep the best weights; stop once they are `patience` epochs old.
            if validation_loss < best_loss:
                best_loss = validation_loss
                best_state = copy.deepcopy(cevae.state_dict())
                history.best_epoch = epoch
            elif (
                settings.patience is not None
                and epoch - history.best_epoch >= settings.patience
            ):
                logger.info(
                    "early stop after epoch %d; best validation loss %.4g at epoch %d",
                    epoch,
                    best_loss,
                    history.best_epoch,
                )
                break

    cevae.load_state_dict(best_state)
    cevae.eval()
    return history
