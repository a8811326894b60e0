r"""Pyro's CEVAE fitted on arrays, with outcome scaling and one retry on divergence.

The generative model is that of :class:`pyro.contrib.cevae.Model` (Louizos et al.,
2017)::

    z ~ Normal(0, I)        latent confounder, (units, latent_dim)
    x ~ p(x | z)            covariates, proxies of z
    t ~ Bernoulli(f(z))     treatment
    y ~ p(y | t, z)         outcome: Johnson SU or Normal for continuous, Bernoulli
                            for binary

and the individual treatment effect of a unit with covariates ``x`` is

.. math::

    \mathrm{ITE}(x) = \mathbb{E}[y \mid x, do(t=1)] - \mathbb{E}[y \mid x, do(t=0)],

estimated from draws of the guide's ``q(z | x, t, y)``, with ``y`` drawn from
``q(y | t, x)`` and ``t`` set to each arm in turn (or drawn from ``q(t | x)``, as
:meth:`pyro.contrib.cevae.CEVAE.ite` does; see :class:`CevaeConfig`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.contrib.cevae import CEVAE

from causalvae.effects.covariates import (
    MixedCovariateModel,
    binary_columns,
    whitener,
)
from causalvae.effects.errors import TrainingDivergedError
from causalvae.effects.outcomes import JohnsonSUNet, bound_outcome_nets
from causalvae.effects.training import (
    Diverged,
    EpochCallback,
    TrainingHistory,
    TrainingSettings,
    train_cevae,
)
from causalvae.effects.validation import ResolvedOutcomeFamily

logger = logging.getLogger(__name__)

CovariateLikelihood = Literal["mixed", "normal"]
Abduction = Literal["per_arm", "sampled"]
OutcomeLikelihood = Literal["johnson_su", "normal"]

PREDICTION_BATCH_SIZE = 1024
"""Units per batch when computing effects, which bounds memory at
``ite_samples x 1024 x hidden_dim`` floats per layer."""


@dataclass(frozen=True)
class CevaeConfig:
    """Network shape, training settings and sampling of one CEVAE fit.

    The network defaults are those of ``pyro.contrib.cevae.CEVAE`` in Pyro 1.9,
    which match the sizes of Louizos et al. (2017): a 20-dimensional latent and
    3 hidden layers of 200 ELU units.

    :ivar latent_dim: dimension of the latent confounder ``z``.
    :ivar hidden_dim: units per hidden layer.
    :ivar num_layers: hidden layers per network.
    :ivar ite_samples: Monte Carlo samples of ``z`` per unit when computing effects.
    :ivar covariate_likelihood: ``"mixed"`` models covariates whose values are all 0
        or 1 as Bernoulli, as Louizos et al. (2017) do, and the others as Normal;
        ``"normal"`` keeps Pyro's Normal for every covariate.
    :ivar outcome_likelihood: for a continuous outcome, ``"normal"`` keeps Pyro's
        Normal; ``"johnson_su"`` models the standardised outcome as ``sinh`` of a
        Normal (:mod:`causalvae.effects.outcomes`), which fits outcomes with long
        tails but biases effects slightly where the outcome is Normal.
    :ivar abduction: the treatment fed to the guide when inferring ``z`` for an
        effect. ``"per_arm"`` feeds ``t = 0`` to estimate ``E[y | do(t=0)]`` and
        ``t = 1`` for ``E[y | do(t=1)]``, as the code released with Louizos et al.
        (2017) does; ``"sampled"`` draws ``t ~ q(t | x)`` once for both, as
        Pyro's :meth:`~pyro.contrib.cevae.CEVAE.ite` does.
    :ivar retry_learning_rate_factor: the learning rate of the single retry after a
        diverged fit is the first one times this factor.
    :ivar training: optimisation settings.
    """

    latent_dim: int = 20
    hidden_dim: int = 200
    num_layers: int = 3
    ite_samples: int = 100
    covariate_likelihood: CovariateLikelihood = "mixed"
    outcome_likelihood: OutcomeLikelihood = "normal"
    abduction: Abduction = "per_arm"
    retry_learning_rate_factor: float = 0.1
    training: TrainingSettings = field(default_factory=TrainingSettings)

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden_dim", "num_layers", "ite_samples"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.covariate_likelihood not in ("mixed", "normal"):
            raise ValueError(
                f"unknown covariate_likelihood {self.covariate_likelihood!r}; "
                "choose mixed or normal"
            )
        if self.outcome_likelihood not in ("johnson_su", "normal"):
            raise ValueError(
                f"unknown outcome_likelihood {self.outcome_likelihood!r}; choose "
                "johnson_su or normal"
            )
        if self.abduction not in ("per_arm", "sampled"):
            raise ValueError(
                f"unknown abduction {self.abduction!r}; choose per_arm or sampled"
            )
        if not 0 < self.retry_learning_rate_factor < 1:
            raise ValueError(
                "retry_learning_rate_factor must lie in (0, 1), got "
                f"{self.retry_learning_rate_factor!r}"
            )


@dataclass
class FittedCevae:
    """A trained CEVAE and the scaling that maps its outcome back to data units.

    Continuous outcomes are modelled as ``(y - outcome_loc) / outcome_scale``;
    binary outcomes are modelled as they are (``outcome_loc = 0``,
    ``outcome_scale = 1``), so their effects are differences of probabilities.

    :ivar cevae: the trained Pyro module; its ``whiten`` standardises continuous
        covariates with the mean and standard deviation of the training units.
    :ivar outcome_family: ``"binary"`` or ``"continuous"``.
    :ivar outcome_loc: mean of the training outcomes (0 for binary outcomes).
    :ivar outcome_scale: standard deviation of the training outcomes (1 for binary).
    :ivar config: settings the model was trained with.
    :ivar history: losses per epoch.
    """

    cevae: CEVAE
    outcome_family: ResolvedOutcomeFamily
    outcome_loc: float
    outcome_scale: float
    config: CevaeConfig
    history: TrainingHistory

    def ite(
        self, covariates: np.ndarray, num_samples: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Estimate the individual treatment effect of each unit, in outcome units.

        With ``config.abduction == "sampled"`` this averages calls of Pyro's
        :meth:`~pyro.contrib.cevae.CEVAE.ite`; with ``"per_arm"`` it is the
        difference of :meth:`potential_outcomes`.

        :param covariates: ``(units, covariates)`` in the columns used for fitting.
        :param num_samples: draws from the guide per unit; default
            ``config.ite_samples``.
        :param seed: seed of the draws; the global random state is left unchanged.
        :return: ``(units,)`` float64.
        """
        if self.config.abduction == "per_arm":
            y0, y1 = self.potential_outcomes(covariates, num_samples, seed)
            return y1 - y0
        x = self._as_tensor(covariates)
        num_samples = num_samples or self.config.ite_samples
        total = torch.zeros(len(x), dtype=torch.float64)
        # NOTE: Pyro 1.9's CEVAE.ite hides t and y with poutine.block, which also
        # hides them from its particle plate. One call therefore draws t ~ q(t | x)
        # and y ~ q(y | t, x) once per unit and averages over z alone, and that
        # single draw moved IHDP scores more than 100 times as many z samples did.
        # Averaging single-sample calls averages over all three. Batches are split
        # here because CEVAE.ite's DataLoader would draw from the global generator.
        with _seeded(seed), pyro.settings.context(module_local_params=True):
            for _ in range(num_samples):
                draw = [
                    self.cevae.ite(batch, num_samples=1)
                    for batch in torch.split(x, PREDICTION_BATCH_SIZE)
                ]
                total += torch.cat(draw).double()
        return (total / num_samples).numpy() * self.outcome_scale

    def potential_outcomes(
        self, covariates: np.ndarray, num_samples: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimate ``E[y | x, do(t=0)]`` and ``E[y | x, do(t=1)]`` per unit.

        Abduction draws ``z`` from the guide ``q(z | x, t, y)``, with ``y`` drawn
        from ``q(y | t, x)``; the model's outcome mean is then read under
        ``do(t)``, and the means are averaged over ``num_samples`` draws.
        ``config.abduction`` sets the ``t`` fed to the guide: ``"per_arm"`` feeds
        the arm being estimated, ``"sampled"`` draws one ``t ~ q(t | x)`` shared by
        both arms, as :meth:`pyro.contrib.cevae.CEVAE.ite` does. With the same
        ``seed`` and ``num_samples``, ``y1 - y0`` equals :meth:`ite` up to float
        rounding.

        :return: two ``(units,)`` float64 arrays in outcome units.
        """
        x = self.cevae.whiten(self._as_tensor(covariates))
        num_samples = num_samples or self.config.ite_samples
        per_arm = self.config.abduction == "per_arm"
        totals = {t: torch.zeros(len(x), dtype=torch.float64) for t in (0, 1)}
        with (
            _seeded(seed),
            pyro.settings.context(module_local_params=True),
            torch.no_grad(),
        ):
            for _ in range(num_samples):
                means: dict[int, list[torch.Tensor]] = {0: [], 1: []}
                for batch in torch.split(x, PREDICTION_BATCH_SIZE):
                    shared = None if per_arm else self._abduct(batch, None)
                    for treatment in (0, 1):
                        trace = self._abduct(batch, treatment) if per_arm else shared
                        # Action and prediction: the outcome mean under do(t).
                        intervention = {"t": torch.tensor(float(treatment))}
                        with poutine.do(data=intervention):
                            mean = poutine.replay(self.cevae.model.y_mean, trace)(batch)
                        means[treatment].append(mean)
                for treatment in (0, 1):
                    totals[treatment] += torch.cat(means[treatment]).double()
        y0, y1 = (
            (totals[t] / num_samples).numpy() * self.outcome_scale + self.outcome_loc
            for t in (0, 1)
        )
        return y0, y1

    def _abduct(self, x: torch.Tensor, treatment: int | None) -> poutine.Trace:
        """Trace one draw of the guide for whitened ``x``, with ``t`` fixed to
        ``treatment`` or, for ``None``, drawn from ``q(t | x)``. The ``t`` and
        ``y`` sites are hidden, so replaying the trace reuses only ``z``."""
        fixed = (
            {} if treatment is None else {"t": torch.full((len(x),), float(treatment))}
        )
        with (
            poutine.trace() as guide_trace,
            poutine.block(hide=["y", "t"]),
            poutine.condition(data=fixed),
        ):
            self.cevae.guide(x)
        return guide_trace.trace

    def _as_tensor(self, covariates: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(covariates, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.cevae.feature_dim:
            raise ValueError(
                f"expected covariates of shape (units, {self.cevae.feature_dim}), "
                f"got {tuple(x.shape)}"
            )
        return x


def fit_cevae_arrays(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray, np.ndarray],
    outcome_family: ResolvedOutcomeFamily,
    config: CevaeConfig | None = None,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
) -> FittedCevae:
    """Fit a CEVAE on a training split, stopping early on a validation split.

    Each split is ``(covariates (units, covariates), treatment (units,), outcome
    (units,))``, already validated. Continuous covariates are standardised with the
    training units' mean and standard deviation (Pyro's ``PreWhitener``), and 0/1
    covariates are kept as they are (see :mod:`causalvae.effects.covariates`). A
    continuous outcome is standardised the same way. If the loss diverges, the fit
    is repeated once from the same initial weights with the learning rate times
    ``config.retry_learning_rate_factor``.

    :param seed: seeds weights, batch order and samples; the global random state is
        left unchanged.
    :raises TrainingDivergedError: if both attempts diverge.
    """
    config = config or CevaeConfig()
    x_train, _, y_train = train
    if outcome_family == "continuous":
        outcome_loc = float(np.mean(y_train))
        outcome_scale = float(np.std(y_train))
    else:
        outcome_loc, outcome_scale = 0.0, 1.0
    tensors = [
        _split_tensors(split, outcome_loc, outcome_scale)
        for split in (train, validation)
    ]

    # 0/1 covariates get a Bernoulli likelihood unless configured otherwise.
    binary_mask = torch.zeros(x_train.shape[1], dtype=torch.bool)
    if config.covariate_likelihood == "mixed":
        binary_mask = torch.as_tensor(
            binary_columns(np.vstack([x_train, validation[0]]))
        )

    learning_rate = config.training.learning_rate
    failures: list[tuple[float, int, str]] = []
    for attempt in range(2):
        settings = _with_learning_rate(config.training, learning_rate)
        start = time.perf_counter()
        try:
            cevae, history = _train_once(
                tensors, binary_mask, outcome_family, config, settings, seed, on_epoch
            )
            fitted = FittedCevae(
                cevae, outcome_family, outcome_loc, outcome_scale, config, history
            )
            # A finite loss can still leave weights that give non-finite effects.
            y0, y1 = fitted.potential_outcomes(validation[0], num_samples=2)
            if not (np.isfinite(y0).all() and np.isfinite(y1).all()):
                raise Diverged(
                    history.best_epoch, "effects on validation units are not finite"
                )
        except Diverged as error:
            failures.append((learning_rate, error.epoch, error.reason))
            logger.warning(
                "CEVAE training diverged at learning rate %g (%s)", learning_rate, error
            )
            learning_rate *= config.retry_learning_rate_factor
            if attempt == 0:
                logger.warning("retrying once with learning rate %g", learning_rate)
            continue
        history.retried = attempt > 0
        history.seconds = time.perf_counter() - start
        logger.info(
            "CEVAE trained for %d epochs in %.1f s; best epoch %d",
            history.epochs_run,
            history.seconds,
            history.best_epoch,
        )
        return fitted

    details = "; ".join(
        f"learning rate {lr:g}: epoch {epoch}, {reason}"
        for lr, epoch, reason in failures
    )
    raise TrainingDivergedError(
        f"CEVAE training diverged twice ({details}). Lower the learning rate, reduce "
        "hidden_dim, or look for extreme covariate or outcome values",
        failures,
    )


def _train_once(
    tensors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    binary_mask: torch.Tensor,
    outcome_family: ResolvedOutcomeFamily,
    config: CevaeConfig,
    settings: TrainingSettings,
    seed: int,
    on_epoch: EpochCallback | None,
) -> tuple[CEVAE, TrainingHistory]:
    # Pyro's modules read the module-local setting when they are built.
    with _seeded(seed), pyro.settings.context(module_local_params=True):
        network = {
            "feature_dim": len(binary_mask),
            "outcome_dist": _outcome_dist(outcome_family, config),
            "latent_dim": config.latent_dim,
            "hidden_dim": config.hidden_dim,
            "num_layers": config.num_layers,
        }
        cevae = CEVAE(**network, num_samples=config.ite_samples)
        if binary_mask.any():
            cevae.model = MixedCovariateModel(network, binary_mask)
        cevae.whiten = whitener(tensors[0][0], binary_mask)
        bound_outcome_nets(cevae, tensors[0][2])
        generator = torch.Generator().manual_seed(seed)
        history = train_cevae(
            cevae, tensors[0], tensors[1], settings, generator, on_epoch
        )
    return cevae, history


def _outcome_dist(outcome_family: ResolvedOutcomeFamily, config: CevaeConfig) -> str:
    """Return the outcome net's name, as ``DistributionNet.get_class`` looks it up."""
    if outcome_family == "binary":
        return "bernoulli"
    if config.outcome_likelihood == "johnson_su":
        return JohnsonSUNet.__name__.lower().removesuffix("net")
    return "normal"


def _split_tensors(
    split: tuple[np.ndarray, np.ndarray, np.ndarray], loc: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, t, y = split
    return (
        torch.as_tensor(np.asarray(x, dtype=np.float32)),
        torch.as_tensor(np.asarray(t, dtype=np.float32)),
        torch.as_tensor(
            ((np.asarray(y, dtype=np.float64) - loc) / scale).astype(np.float32)
        ),
    )


def _with_learning_rate(
    settings: TrainingSettings, learning_rate: float
) -> TrainingSettings:
    return dataclasses.replace(settings, learning_rate=learning_rate)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator inside the block and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
