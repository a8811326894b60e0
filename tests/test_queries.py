"""Conditioning, interventions and counterfactuals on a model with known mechanisms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from causalvae import queries
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE
from causalvae.models import ConditionalVAE
from causalvae.pipeline import load_image_data
from causalvae.training import load_model

SHAPE = FACTOR_NAMES.index("shape")
SCALE = FACTOR_NAMES.index("scale")
SHAPE_PRIOR = torch.tensor([0.2, 0.3, 0.5])
# p(scale | shape), one row per shape. Scale 1 is likely under squares only.
SCALE_GIVEN_SHAPE = torch.tensor(
    [
        [0.05, 0.80, 0.05, 0.04, 0.03, 0.03],
        [0.05, 0.10, 0.70, 0.05, 0.05, 0.05],
        [0.05, 0.05, 0.05, 0.05, 0.75, 0.05],
    ]
)
NUM_SAMPLES = 600
# A frequency over 600 samples has a standard error of at most 0.02, and the
# tolerance allows four of them.
TOLERANCE = 0.08


@pytest.fixture
def causal_vae(make_model) -> ConditionalVAE:
    """A small model in which shape causes scale through known probabilities."""
    vae = make_model(hidden=8, layers=1, parents={"scale": ["shape"]})
    with torch.no_grad():
        vae.mechanisms.tables["shape"].copy_(SHAPE_PRIOR.log()[None])
        vae.mechanisms.tables["scale"].copy_(SCALE_GIVEN_SHAPE.log())
    vae.eval()
    return vae


@pytest.fixture
def observed(tiny_data_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Four held-out images of the tiny dataset with their factors."""
    data = load_image_data(tiny_data_file)
    return data.batch(data.heldout_index[:4], torch.device("cpu"))


def frequencies(classes: torch.Tensor, size: int) -> torch.Tensor:
    return torch.bincount(classes, minlength=size).float() / len(classes)


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("query", ["condition", "intervene", "counterfactual"])
@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ({"shap": 1}, "unknown factor 'shap'"),
        ({"color": 0}, "unknown factor 'color'"),
        ({"scale": 6}, "'scale' is out of range"),
        ({"pos_x": -1}, "'pos_x' is out of range"),
        ({"orientation": torch.tensor([3, 40])}, "'orientation' is out of range"),
        ({"shape": 1.0}, "'shape' must be a class index"),
        ({"shape": torch.tensor([0.0, 1.0])}, "'shape' must be a class index"),
    ],
    ids=["misspelled", "colour", "too-large", "negative", "tensor", "float", "floats"],
)
def test_queries_reject_invalid_assignments(
    causal_vae: ConditionalVAE, query: str, assignment: dict, message: str
) -> None:
    images = torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE)
    factors = torch.zeros(2, 5, dtype=torch.long)
    run = {
        "condition": lambda: queries.condition(causal_vae, assignment, 2),
        "intervene": lambda: queries.intervene(causal_vae, assignment, 2),
        "counterfactual": lambda: queries.counterfactual(
            causal_vae, images, assignment, factors
        ),
    }[query]

    with pytest.raises(ValueError, match=message):
        run()


def test_unknown_factor_error_lists_known_factors() -> None:
    with pytest.raises(ValueError) as error:
        queries.validate_assignment({"size": 1}, what="evidence")

    message = str(error.value)
    assert "in the evidence" in message
    for name in FACTOR_NAMES:
        assert name in message


def test_counterfactual_rejects_unbatched_image(causal_vae: ConditionalVAE) -> None:
    with pytest.raises(ValueError, match=r"images must have shape \(batch, 64, 64\)"):
        queries.counterfactual(causal_vae, torch.zeros(IMAGE_SIZE, IMAGE_SIZE), {})


# -- interventions and conditioning --------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 5])
@pytest.mark.parametrize(("name", "value"), [("shape", 2), ("pos_x", 31), ("scale", 0)])
def test_intervention_sets_factor_in_every_sample(
    causal_vae: ConditionalVAE, num_samples: int, name: str, value: int
) -> None:
    samples = queries.intervene(causal_vae, {name: value}, num_samples)

    assert samples.factors.shape == (num_samples, 5)
    assert torch.equal(
        samples.factors[:, FACTOR_NAMES.index(name)],
        torch.full((num_samples,), value),
    )
    assert samples.image_probs.shape == (num_samples, IMAGE_SIZE, IMAGE_SIZE)
    assert samples.images.shape == (num_samples, IMAGE_SIZE, IMAGE_SIZE)
    assert set(samples.images.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("num_samples", [1, 5])
def test_condition_keeps_evidence_in_every_sample(
    causal_vae: ConditionalVAE, num_samples: int
) -> None:
    samples = queries.condition(causal_vae, {"scale": 1, "pos_y": 7}, num_samples)

    assert samples.factors.shape == (num_samples, 5)
    assert (samples.factors[:, SCALE] == 1).all()
    assert (samples.factors[:, FACTOR_NAMES.index("pos_y")] == 7).all()
    assert samples.images.shape == (num_samples, IMAGE_SIZE, IMAGE_SIZE)


def test_intervening_on_cause_shifts_effect(causal_vae: ConditionalVAE) -> None:
    samples = queries.intervene(causal_vae, {"shape": 0}, NUM_SAMPLES)

    scale = frequencies(samples.factors[:, SCALE], 6)
    torch.testing.assert_close(scale, SCALE_GIVEN_SHAPE[0], atol=TOLERANCE, rtol=0)


def test_conditioning_on_effect_shifts_cause(causal_vae: ConditionalVAE) -> None:
    samples = queries.condition(causal_vae, {"scale": 1}, NUM_SAMPLES)

    # Bayes' rule: p(shape | scale=1) is proportional to p(shape) p(scale=1 | shape).
    joint = SHAPE_PRIOR * SCALE_GIVEN_SHAPE[:, 1]
    posterior = joint / joint.sum()
    shape = frequencies(samples.factors[:, SHAPE], 3)
    assert posterior[0] > 0.7
    torch.testing.assert_close(shape, posterior, atol=TOLERANCE, rtol=0)


def test_intervening_on_effect_leaves_cause_at_prior(
    causal_vae: ConditionalVAE,
) -> None:
    samples = queries.intervene(causal_vae, {"scale": 1}, NUM_SAMPLES)

    shape = frequencies(samples.factors[:, SHAPE], 3)
    torch.testing.assert_close(shape, SHAPE_PRIOR, atol=TOLERANCE, rtol=0)


def test_empty_intervention_is_observational(
    causal_vae: ConditionalVAE,
) -> None:
    samples = queries.intervene(causal_vae, {}, NUM_SAMPLES)

    shape = frequencies(samples.factors[:, SHAPE], 3)
    marginal = SHAPE_PRIOR @ SCALE_GIVEN_SHAPE
    scale = frequencies(samples.factors[:, SCALE], 6)
    torch.testing.assert_close(shape, SHAPE_PRIOR, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(scale, marginal, atol=TOLERANCE, rtol=0)


def test_condition_on_shape_keeps_roots_uniform(
    causal_vae: ConditionalVAE,
) -> None:
    samples = queries.condition(causal_vae, {"shape": 2}, NUM_SAMPLES)

    scale = frequencies(samples.factors[:, SCALE], 6)
    pos_x = samples.factors[:, FACTOR_NAMES.index("pos_x")].float()
    torch.testing.assert_close(scale, SCALE_GIVEN_SHAPE[2], atol=TOLERANCE, rtol=0)
    # Uniform on 0..31: mean 15.5 and standard error 9.2 / sqrt(600) = 0.38.
    assert float(pos_x.mean()) == pytest.approx(15.5, abs=1.6)


# -- counterfactuals ----------------------------------------------------------------


def test_counterfactual_recomputes_descendants(
    causal_vae: ConditionalVAE,
) -> None:
    generator = torch.Generator().manual_seed(0)
    count = 200
    columns = [torch.randint(0, k, (count,), generator=generator) for k in FACTOR_SIZES]
    factors = torch.stack(columns, dim=-1)
    images = torch.zeros(count, IMAGE_SIZE, IMAGE_SIZE)
    target = (factors[:, SHAPE] + 1) % 3

    result = queries.counterfactual(
        causal_vae, images, {"shape": target}, factors, generator=generator
    )

    counterfactual = result.counterfactual_factors
    assert torch.equal(result.factual_factors, factors)
    assert torch.equal(counterfactual[:, SHAPE], target)
    # Non-descendants of shape keep their values.
    assert torch.equal(counterfactual[:, 2:], factors[:, 2:])
    # Scale is the Gumbel-max of its new mechanism row with the unit's own noise.
    new_logits = SCALE_GIVEN_SHAPE.log()[target]
    expected_scale = (new_logits + result.noise.factors["u_scale"]).argmax(-1)
    assert torch.equal(counterfactual[:, SCALE], expected_scale)
    assert not torch.equal(counterfactual[:, SCALE], factors[:, SCALE])


def test_counterfactual_on_effect_keeps_cause(causal_vae: ConditionalVAE) -> None:
    factors = torch.tensor([[0, 1, 3, 4, 5], [2, 4, 0, 0, 0], [1, 2, 39, 31, 31]])
    images = torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)

    result = queries.counterfactual(causal_vae, images, {"scale": 5}, factors)

    expected = factors.clone()
    expected[:, SCALE] = 5
    assert torch.equal(result.counterfactual_factors, expected)


def test_counterfactual_decodes_abducted_style(
    causal_vae: ConditionalVAE, observed
) -> None:
    images, factors = observed

    result = queries.counterfactual(causal_vae, images, {"pos_x": 3}, factors)

    moved = factors.clone()
    moved[:, FACTOR_NAMES.index("pos_x")] = 3
    # Style z is abducted once and reused, so the counterfactual is the decoder at z.
    expected = causal_vae.image_probs(result.noise.z, moved)
    assert torch.equal(result.counterfactual_probs, expected)
    assert torch.equal(
        result.factual_probs, causal_vae.image_probs(result.noise.z, factors)
    )
    on = result.noise.image < result.counterfactual_probs
    assert torch.equal(result.counterfactual_images, on.float())


@pytest.mark.parametrize("batch", [1, 4])
def test_null_counterfactual_returns_observation(
    tiny_checkpoint: Path, observed, batch: int
) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed[0][:batch], observed[1][:batch]

    result = queries.counterfactual(vae, images, {}, factors)

    assert torch.equal(result.counterfactual_images, images)
    assert torch.equal(result.counterfactual_factors, factors)
    assert torch.equal(result.counterfactual_probs, result.factual_probs)


def test_counterfactual_per_unit_targets(tiny_checkpoint: Path, observed) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed
    targets = torch.tensor([0, 10, 20, 31])

    result = queries.counterfactual(vae, images, {"pos_y": targets}, factors)

    assert torch.equal(result.counterfactual_factors[:, 4], targets)
    assert torch.equal(result.counterfactual_factors[:, :4], factors[:, :4])


@pytest.mark.parametrize("batch", [1, 4])
def test_counterfactual_infers_missing_factors(
    tiny_checkpoint: Path, observed, batch: int
) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images = observed[0][:batch]

    result = queries.counterfactual(vae, images, {"shape": 1})

    inferred = vae.predict_factors(images)
    assert torch.equal(result.factual_factors, inferred)
    assert (result.counterfactual_factors[:, SHAPE] == 1).all()
    assert torch.equal(result.counterfactual_factors[:, 1:], inferred[:, 1:])
    assert result.counterfactual_images.shape == (batch, IMAGE_SIZE, IMAGE_SIZE)


def test_counterfactual_follows_generator(tiny_checkpoint: Path, observed) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed

    results = [
        queries.counterfactual(
            vae,
            images,
            {"scale": 0},
            factors,
            generator=torch.Generator().manual_seed(s),
        )
        for s in (3, 3, 4)
    ]

    assert torch.equal(results[0].noise.image, results[1].noise.image)
    assert torch.equal(
        results[0].counterfactual_images, results[1].counterfactual_images
    )
    assert not torch.equal(results[0].noise.image, results[2].noise.image)


def test_refined_counterfactual_keeps_parameters(
    tiny_checkpoint: Path, observed
) -> None:
    vae, _ = load_model(tiny_checkpoint)
    images, factors = observed
    frozen = vae.decoder.background
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    flags = {name: p.requires_grad for name, p in vae.named_parameters()}

    refined = queries.counterfactual(vae, images, {"shape": 0}, factors, refine_steps=3)
    plain = queries.counterfactual(vae, images, {"shape": 0}, factors)

    for key, value in vae.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert {name: p.requires_grad for name, p in vae.named_parameters()} == flags
    assert not frozen.requires_grad
    assert all(p.grad is None for p in vae.parameters())
    assert not torch.equal(refined.noise.z, plain.noise.z)
    assert torch.equal(refined.counterfactual_factors, plain.counterfactual_factors)
