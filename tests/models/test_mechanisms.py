"""Factor mechanisms p(f | parents(f)) and the order in which they are sampled."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.models.mechanisms import FactorMechanisms, topological_order

SIZES = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))


def run_in_plate(
    mechanisms: FactorMechanisms, factors: torch.Tensor | None, batch: int
) -> tuple[torch.Tensor, poutine.Trace]:
    def model() -> torch.Tensor:
        with pyro.plate("data", batch):
            return mechanisms.sample(factors, batch, torch.device("cpu"))

    trace = poutine.trace(model).get_trace()
    return trace.nodes["_RETURN"]["value"], trace


def test_mechanisms_start_uniform() -> None:
    mechanisms = FactorMechanisms({"scale": ["shape"], "pos_y": ["pos_x", "shape"]})

    for name in FACTOR_NAMES:
        table = mechanisms.tables[name]
        rows = math.prod(SIZES[p] for p in mechanisms.parents[name])
        assert table.shape == (rows, SIZES[name])
        probabilities = torch.softmax(table, dim=-1)
        torch.testing.assert_close(
            probabilities, torch.full_like(probabilities, 1 / SIZES[name])
        )


def test_mechanisms_without_parents_keep_dsprites_order() -> None:
    mechanisms = FactorMechanisms()

    assert mechanisms.order == list(FACTOR_NAMES)
    assert all(parents == [] for parents in mechanisms.parents.values())


@pytest.mark.parametrize(
    "parents",
    [
        {"shape": ["pos_y"]},
        {"scale": ["shape"], "orientation": ["scale"]},
        {"shape": ["scale", "pos_x"], "pos_x": ["pos_y"], "scale": ["pos_y"]},
        {"orientation": []},
    ],
)
def test_topological_order_puts_parents_first(parents: dict) -> None:
    order = topological_order(parents)

    assert sorted(order) == sorted(FACTOR_NAMES)
    for child, child_parents in parents.items():
        for parent in child_parents:
            assert order.index(parent) < order.index(child), (parent, child)


def test_topological_order_breaks_ties_in_dsprites_order() -> None:
    order = topological_order({"shape": ["pos_y"]})

    # Only shape waits for pos_y, so every other factor is ready at once.
    assert order == ["scale", "orientation", "pos_x", "pos_y", "shape"]


@pytest.mark.parametrize(
    ("parents", "message"),
    [
        ({"shape": ["scale"], "scale": ["shape"]}, "cycle"),
        ({"shape": ["scale"], "scale": ["pos_x"], "pos_x": ["shape"]}, "cycle"),
        ({"colour": ["shape"]}, "unknown factor 'colour'"),
        ({"shape": ["posX"]}, "unknown factor 'posX'"),
        ({"shape": ["shape"]}, "'shape' cannot be its own parent"),
    ],
    ids=["two-cycle", "three-cycle", "unknown-child", "unknown-parent", "self-loop"],
)
def test_topological_order_rejects_invalid_graphs(parents, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        topological_order(parents)


def test_mechanisms_reject_invalid_graph() -> None:
    with pytest.raises(ValueError, match="cycle"):
        FactorMechanisms({"shape": ["scale"], "scale": ["shape"]})


def test_root_logits_broadcast_over_batch() -> None:
    mechanisms = FactorMechanisms()

    logits = mechanisms.logits("orientation", {})

    assert logits.shape == (1, SIZES["orientation"])
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(1))


def test_logits_index_table_row_of_parents() -> None:
    mechanisms = FactorMechanisms({"scale": ["shape", "orientation"]})
    # Row r of the table is a distinct distribution: logit r / 10 on class r % 6.
    rows = SIZES["shape"] * SIZES["orientation"]
    table = torch.zeros(rows, SIZES["scale"])
    table[torch.arange(rows), torch.arange(rows) % 6] = torch.arange(rows) / 10
    with torch.no_grad():
        mechanisms.tables["scale"].copy_(table)
    shape = torch.tensor([2, 0, 1])
    orientation = torch.tensor([5, 39, 0])

    logits = mechanisms.logits("scale", {"shape": shape, "orientation": orientation})

    # The first parent is the most significant digit of the row index.
    expected_rows = shape * SIZES["orientation"] + orientation
    expected = torch.log_softmax(table[expected_rows], dim=-1)
    assert logits.shape == (3, SIZES["scale"])
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("batch", [1, 4])
def test_sample_observes_given_factors(batch: int) -> None:
    mechanisms = FactorMechanisms({"scale": ["shape"]})
    generator = torch.Generator().manual_seed(0)
    factors = torch.stack(
        [torch.randint(0, k, (batch,), generator=generator) for k in FACTOR_SIZES], -1
    )

    sampled, trace = run_in_plate(mechanisms, factors, batch)

    assert torch.equal(sampled, factors)
    for name in FACTOR_NAMES:
        assert trace.nodes[name]["is_observed"]
        assert trace.nodes[name]["fn"].batch_shape == (batch,)


@pytest.mark.parametrize("batch", [1, 4])
def test_sample_follows_parent_rows(batch: int) -> None:
    mechanisms = FactorMechanisms({"scale": ["shape"]})
    # Shape s makes scale 2 s almost certain.
    table = torch.full((3, 6), -30.0)
    table[torch.arange(3), 2 * torch.arange(3)] = 0.0
    with torch.no_grad():
        mechanisms.tables["scale"].copy_(table)

    sampled, trace = run_in_plate(mechanisms, None, batch)

    shape = sampled[:, FACTOR_NAMES.index("shape")]
    scale = sampled[:, FACTOR_NAMES.index("scale")]
    assert sampled.shape == (batch, 5)
    assert torch.equal(scale, 2 * shape)
    sites = [name for name in trace.nodes if name in FACTOR_NAMES]
    assert sites.index("shape") < sites.index("scale")
    for name in FACTOR_NAMES:
        assert not trace.nodes[name]["is_observed"]
        assert trace.nodes[name]["fn"].batch_shape == (batch,)


def test_sample_matches_mechanism_probabilities() -> None:
    mechanisms = FactorMechanisms()
    probabilities = torch.tensor([0.6, 0.3, 0.1])
    with torch.no_grad():
        mechanisms.tables["shape"].copy_(probabilities.log()[None])

    sampled, _ = run_in_plate(mechanisms, None, 4000)

    counts = torch.bincount(sampled[:, 0], minlength=3) / 4000
    # Binomial standard errors are at most 0.008, and the tolerance allows four.
    torch.testing.assert_close(counts, probabilities, atol=0.032, rtol=0)
