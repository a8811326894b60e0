"""Learned factor mechanisms log p(f | parents(f)) as conditional probability tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES

SIZE_BY_NAME = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))


def topological_order(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Order the five factors so that every parent comes before its children.

    Ties keep the dSprites order. Raises ``ValueError`` for unknown factors and cycles.
    """
    for child, child_parents in parents.items():
        for name in (child, *child_parents):
            if name not in SIZE_BY_NAME:
                raise ValueError(
                    f"unknown factor {name!r} in the factor graph; "
                    f"known factors: {', '.join(FACTOR_NAMES)}"
                )
        if child in child_parents:
            raise ValueError(f"factor {child!r} cannot be its own parent")
    order: list[str] = []
    remaining = list(FACTOR_NAMES)
    while remaining:
        ready = [
            name
            for name in remaining
            if all(parent in order for parent in parents.get(name, ()))
        ]
        if not ready:
            raise ValueError(f"the factor graph has a cycle among {remaining}")
        order.append(ready[0])
        remaining.remove(ready[0])
    return order


class FactorMechanisms(nn.Module):
    """One categorical mechanism p(f | parents(f)) per factor, with learned logits.

    ``parents`` maps a factor to its parents; factors not listed are roots. Each table
    holds logits of shape ``(prod(parent sizes), K_f)``, starting uniform.
    """

    def __init__(self, parents: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__()
        parents = {k: list(v) for k, v in (parents or {}).items() if v}
        self.order = topological_order(parents)
        self.parents: dict[str, list[str]] = {
            name: parents.get(name, []) for name in FACTOR_NAMES
        }
        tables = {}
        for name in FACTOR_NAMES:
            rows = math.prod(SIZE_BY_NAME[p] for p in self.parents[name])
            size = SIZE_BY_NAME[name]
            tables[name] = nn.Parameter(torch.full((rows, size), -math.log(size)))
        self.tables = nn.ParameterDict(tables)

    def logits(self, name: str, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Log-probabilities of factor ``name`` given its parents' classes.

        ``values`` maps factor names to classes ``(batch,)``.

        :returns: ``(batch, K_f)`` normalised log-probabilities, or ``(1, K_f)`` for a
            root factor (broadcasts over the batch).
        """
        table = torch.log_softmax(self.tables[name], dim=-1)
        parent_names = self.parents[name]
        if not parent_names:
            return table
        row = torch.zeros_like(values[parent_names[0]])
        for parent in parent_names:
            row = row * SIZE_BY_NAME[parent] + values[parent]
        return table[row]

    def sample_sites(
        self, factors: torch.Tensor | None, batch_size: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Sample (or observe) every factor site in topological order.

        Must run inside the plate ``data``. ``factors`` ``(batch, 5)`` makes every site
        observed. Returns each factor's classes ``(batch,)`` by name; under parallel
        enumeration the values carry enumeration dimensions instead.
        """
        values: dict[str, torch.Tensor] = {}
        for name in self.order:
            index = FACTOR_NAMES.index(name)
            observed = None if factors is None else factors[:, index]
            logits = self.logits(name, values).to(device)
            if logits.dim() == 2 and logits.shape[0] == 1:
                logits = logits.expand(batch_size, -1)
            values[name] = pyro.sample(
                name, dist.Categorical(logits=logits), obs=observed
            ).long()
        return values

    def sample(
        self, factors: torch.Tensor | None, batch_size: int, device: torch.device
    ) -> torch.Tensor:
        """Like :meth:`sample_sites`, stacked into classes ``(batch, 5)``."""
        values = self.sample_sites(factors, batch_size, device)
        return torch.stack([values[name] for name in FACTOR_NAMES], dim=-1)
