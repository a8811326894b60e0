"""The model's factor mechanisms as a factor graph, and fitting them to labels.

:func:`learned_graph` turns the conditional probability tables of a
:class:`~causalvae.models.ConditionalVAE` into a :class:`~causalvae.graph.FactorGraph`,
so that :mod:`causalvae.exact` computes the model's own answers exactly.
:func:`fit_mechanisms` fits only those tables to labels, which reuses a trained image
model on new labels in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.graph import FactorGraph, FactorNode, TableMechanism
from causalvae.models import ConditionalVAE

logger = logging.getLogger(__name__)

DEFAULT_FIT_STEPS = 300
DEFAULT_FIT_LR = 0.1

_SIZES = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))


def learned_graph(vae: ConditionalVAE, name: str = "learned") -> FactorGraph:
    """Build a factor graph of table mechanisms from the model's factor mechanisms.

    The graph has the five observed factors, the model's parents, and for each factor
    the table ``softmax(logits)`` of :class:`~causalvae.models.FactorMechanisms`,
    computed in float64. Its rows are already in the graph's row-major order (the
    last parent varies fastest), so a table of shape ``(prod(parent sizes), K)``
    becomes ``(*parent_sizes, K)`` by a reshape.
    """
    mechanisms = vae.mechanisms
    nodes = []
    for factor in FACTOR_NAMES:
        parents = tuple(mechanisms.parents[factor])
        logits = mechanisms.tables[factor].detach().to("cpu", torch.float64)
        table = torch.softmax(logits, dim=-1).numpy()
        shape = (*(_SIZES[parent] for parent in parents), _SIZES[factor])
        nodes.append(
            FactorNode(
                factor,
                _SIZES[factor],
                parents,
                TableMechanism(table.reshape(shape)),
            )
        )
    return FactorGraph(
        nodes, name=name, description="factor mechanisms learned by the model"
    )


def copy_with_parents(
    vae: ConditionalVAE, parents: Mapping[str, Sequence[str]]
) -> ConditionalVAE:
    """Copy the networks of ``vae`` into a new model whose mechanisms have ``parents``.

    The encoders and the decoder are copied. The mechanism tables start uniform,
    ready for :func:`fit_mechanisms`. The copy is on the model's device, in eval mode.
    """
    config = replace(vae.config, parents={k: list(v) for k, v in parents.items()})
    copy = ConditionalVAE(config).to(vae.device)
    weights = {
        key: value
        for key, value in vae.state_dict().items()
        if not key.startswith("mechanisms.")
    }
    missing, unexpected = copy.load_state_dict(weights, strict=False)
    if unexpected or any(not key.startswith("mechanisms.") for key in missing):
        raise ValueError(
            f"failed to copy the model's networks: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    copy.eval()
    return copy


def fit_mechanisms(
    vae: ConditionalVAE,
    classes: np.ndarray | torch.Tensor,
    *,
    steps: int = DEFAULT_FIT_STEPS,
    lr: float = DEFAULT_FIT_LR,
) -> list[float]:
    """Fit only the factor mechanism tables to labels by maximum likelihood.

    Maximises the term ``(1/n) Σ_units log p(factors)`` of the ELBO, with
    ``log p(factors) = Σ_f log p(f | parents(f))``, by full-batch Adam on the table
    logits. The labels enter through their counts per parent configuration and
    class, so a step costs the size of the tables, not of the data. Rows whose parent
    configuration never occurs receive no gradient and keep their values. The
    networks are left unchanged.

    :param classes: ``(n, 5)`` class indices in the order of ``FACTOR_NAMES``.
    :param steps: Adam steps, at least 1.
    :param lr: Adam learning rate, in logit units per step.
    :returns: the negative log-likelihood in nats per unit before each step and
        after the last one.
    :raises ValueError: on invalid classes, steps or learning rate.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    labels = _check_classes(classes)
    mechanisms = vae.mechanisms
    device = mechanisms.tables[FACTOR_NAMES[0]].device

    # Sufficient statistics: counts[f][row, k] = number of units with class k of f
    # at parent configuration ``row``, rows numbered as in the mechanism tables.
    counts = {}
    for factor in FACTOR_NAMES:
        row = np.zeros(len(labels), dtype=np.int64)
        for parent in mechanisms.parents[factor]:
            row = row * _SIZES[parent] + labels[:, FACTOR_NAMES.index(parent)]
        table = mechanisms.tables[factor]
        flat = row * table.shape[1] + labels[:, FACTOR_NAMES.index(factor)]
        found = np.bincount(flat, minlength=table.numel()).reshape(table.shape)
        counts[factor] = torch.as_tensor(found, dtype=torch.float32, device=device)
    num_units = float(len(labels))

    def negative_log_likelihood() -> torch.Tensor:
        total = torch.zeros((), device=device)
        for factor in FACTOR_NAMES:
            log_probs = torch.log_softmax(mechanisms.tables[factor], dim=-1)
            total = total - (counts[factor] * log_probs).sum()
        return total / num_units

    optimizer = torch.optim.Adam(mechanisms.parameters(), lr=lr)
    history = []
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = negative_log_likelihood()
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
    with torch.no_grad():
        history.append(float(negative_log_likelihood()))
    logger.info(
        "fitted mechanisms to %d units: %.4f -> %.4f nats per unit",
        len(labels),
        history[0],
        history[-1],
    )
    return history


def _check_classes(classes: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(classes, torch.Tensor):
        classes = classes.detach().cpu().numpy()
    labels = np.asarray(classes)
    if (
        labels.ndim != 2
        or labels.shape[1] != len(FACTOR_NAMES)
        or not np.issubdtype(labels.dtype, np.integer)
        or len(labels) == 0
    ):
        raise ValueError(
            f"classes must be integer class indices of shape (n, 5) with n >= 1, "
            f"got {labels.dtype} {labels.shape}"
        )
    labels = labels.astype(np.int64)
    for column, size in enumerate(FACTOR_SIZES):
        values = labels[:, column]
        if values.min() < 0 or values.max() >= size:
            raise ValueError(
                f"classes of {FACTOR_NAMES[column]} run from {values.min()} to "
                f"{values.max()}; expected 0..{size - 1}"
            )
    return labels
