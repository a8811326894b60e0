"""The conditional VAE's configuration, Pyro model and guide."""

from __future__ import annotations

import json

import pytest
import torch
from pyro import poutine

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE
from causalvae.models import ConditionalVAE, ModelConfig

SITES = (*FACTOR_NAMES, "z", "image")
ARCHITECTURE_OPTIONS = {
    "geometric": {"architecture": "geometric", "hidden": 8, "layers": 2},
    "mlp": {"architecture": "mlp", "hidden": 32, "z_dim": 6},
}


@pytest.fixture(params=sorted(ARCHITECTURE_OPTIONS))
def vae(request: pytest.FixtureRequest) -> ConditionalVAE:
    torch.manual_seed(0)
    options = ARCHITECTURE_OPTIONS[request.param]
    return ConditionalVAE(ModelConfig(label_channels=4, **options))


def random_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, IMAGE_SIZE, IMAGE_SIZE, generator=generator) < 0.2
    columns = [torch.randint(0, k, (batch,), generator=generator) for k in FACTOR_SIZES]
    return images.float(), torch.stack(columns, dim=-1)


def sample_sites(trace: poutine.Trace) -> dict[str, dict]:
    """The trace's sample sites, without the plate's own subsample site."""
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and name != "data"
    }


def check_site(site: dict, batch: int, event_shape: tuple[int, ...]) -> None:
    assert site["fn"].batch_shape == (batch,), site["name"]
    assert site["fn"].event_shape == event_shape, site["name"]
    assert site["value"].shape == (batch, *event_shape), site["name"]
    plates = [(frame.name, frame.size) for frame in site["cond_indep_stack"]]
    assert plates == [("data", batch)], site["name"]


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [("geometric", (4, 64, 3)), ("mlp", (50, 1000, 2))],
)
def test_config_fills_architecture_defaults(architecture: str, expected) -> None:
    config = ModelConfig(architecture=architecture)

    assert (config.z_dim, config.hidden, config.layers) == expected


def test_config_keeps_explicit_sizes() -> None:
    config = ModelConfig(architecture="mlp", z_dim=3, hidden=7, layers=1)

    assert (config.z_dim, config.hidden, config.layers) == (3, 7, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"architecture": "conv"}, "unknown architecture 'conv'"),
        ({"precision": "fp16"}, "unknown precision 'fp16'"),
        ({"z_dim": 0}, "z_dim must be at least 1"),
        ({"hidden": -3}, "hidden must be at least 1"),
        ({"layers": 0}, "layers must be at least 1"),
    ],
)
def test_config_rejects_invalid_values(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**options)


def test_config_error_lists_architectures() -> None:
    with pytest.raises(ValueError) as error:
        ModelConfig(architecture="conv")

    assert "geometric" in str(error.value)
    assert "mlp" in str(error.value)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(architecture="mlp", hidden=32, precision="fp32"),
        ModelConfig(parents={"scale": ["shape"], "pos_x": ["shape", "scale"]}),
    ],
    ids=["default", "mlp", "parents"],
)
def test_config_round_trips_through_json(config: ModelConfig) -> None:
    data = json.loads(json.dumps(config.to_dict()))

    assert ModelConfig.from_dict(data) == config


def test_config_from_dict_rejects_unknown_keys() -> None:
    data = {**ModelConfig().to_dict(), "dropout": 0.1}

    with pytest.raises(ValueError, match="unknown model configuration keys") as error:
        ModelConfig.from_dict(data)

    assert "dropout" in str(error.value)


def test_model_rejects_unknown_parent() -> None:
    with pytest.raises(ValueError, match="unknown factor 'colour'"):
        ConditionalVAE(ModelConfig(parents={"shape": ["colour"]}))


# -- model and guide ----------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_model_observes_given_images_and_factors(vae: ConditionalVAE, batch) -> None:
    images, factors = random_batch(batch)

    trace = poutine.trace(vae.model).get_trace(images, factors)

    sites = sample_sites(trace)
    assert tuple(sites) == SITES
    for i, name in enumerate(FACTOR_NAMES):
        check_site(sites[name], batch, ())
        assert sites[name]["is_observed"]
        assert torch.equal(sites[name]["value"], factors[:, i])
    check_site(sites["z"], batch, (vae.z_dim,))
    assert not sites["z"]["is_observed"]
    check_site(sites["image"], batch, (IMAGE_SIZE, IMAGE_SIZE))
    assert sites["image"]["is_observed"]
    assert torch.equal(sites["image"]["value"], images)


@pytest.mark.parametrize("batch", [1, 3])
def test_model_samples_everything_without_data(vae: ConditionalVAE, batch) -> None:
    trace = poutine.trace(vae.model).get_trace(batch_size=batch)

    sites = sample_sites(trace)
    assert tuple(sites) == SITES
    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True):
        check_site(sites[name], batch, ())
        assert not sites[name]["is_observed"]
        assert sites[name]["value"].min() >= 0
        assert sites[name]["value"].max() < size
    check_site(sites["image"], batch, (IMAGE_SIZE, IMAGE_SIZE))
    assert not sites["image"]["is_observed"]
    assert set(sites["image"]["value"].unique().tolist()) <= {0.0, 1.0}
    returned = trace.nodes["_RETURN"]["value"]
    assert torch.equal(returned, sites["image"]["value"])


@pytest.mark.parametrize("batch", [1, 3])
def test_model_sizes_plate_from_factors(vae: ConditionalVAE, batch: int) -> None:
    _, factors = random_batch(batch)

    trace = poutine.trace(vae.model).get_trace(factors=factors)

    sites = sample_sites(trace)
    assert sites["shape"]["is_observed"]
    assert not sites["image"]["is_observed"]
    check_site(sites["image"], batch, (IMAGE_SIZE, IMAGE_SIZE))


@pytest.mark.parametrize("batch", [1, 3])
def test_guide_samples_z_given_factors(vae: ConditionalVAE, batch: int) -> None:
    images, factors = random_batch(batch)

    trace = poutine.trace(vae.guide).get_trace(images, factors)

    sites = sample_sites(trace)
    assert tuple(sites) == ("z",)
    check_site(sites["z"], batch, (vae.z_dim,))
    assert not sites["z"]["is_observed"]


@pytest.mark.parametrize("batch", [1, 3])
def test_guide_infers_missing_factors(vae: ConditionalVAE, batch: int) -> None:
    images, _ = random_batch(batch)

    trace = poutine.trace(vae.guide).get_trace(images)

    sites = sample_sites(trace)
    assert tuple(sites) == (*FACTOR_NAMES, "z")
    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True):
        check_site(sites[name], batch, ())
        assert not sites[name]["is_observed"]
        assert sites[name]["fn"].logits.shape == (batch, size)
    check_site(sites["z"], batch, (vae.z_dim,))


def test_guide_rejects_missing_images(vae: ConditionalVAE) -> None:
    with pytest.raises(ValueError, match="the guide needs images"):
        vae.guide(None, random_batch(1)[1])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"images": torch.zeros(2, 32, 32)}, r"images must have shape"),
        ({"images": torch.zeros(IMAGE_SIZE, IMAGE_SIZE)}, r"images must have shape"),
        ({"factors": torch.zeros(2, 4, dtype=torch.long)}, r"factors must have shape"),
        ({}, "pass images, factors or batch_size"),
    ],
    ids=["small-images", "unbatched-image", "four-factors", "nothing"],
)
def test_model_rejects_invalid_inputs(vae, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vae.model(**arguments)


@pytest.mark.parametrize("batch", [1, 3])
def test_distributions_have_documented_shapes(vae: ConditionalVAE, batch: int) -> None:
    images, factors = random_batch(batch)
    z = torch.randn(batch, vae.z_dim)

    probs = vae.image_probs(z, factors)
    posterior = vae.z_posterior(images, factors)
    prior = vae.z_prior(batch)
    label_logits = vae.label_logits(images)

    assert probs.shape == (batch, IMAGE_SIZE, IMAGE_SIZE)
    assert probs.dtype == torch.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    assert vae.image_dist(z, factors).event_shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert posterior.batch_shape == (batch,)
    assert posterior.event_shape == (vae.z_dim,)
    assert prior.batch_shape == (batch,)
    assert prior.event_shape == (vae.z_dim,)
    assert torch.equal(prior.mean, torch.zeros(batch, vae.z_dim))
    assert list(label_logits) == list(FACTOR_NAMES)
    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True):
        assert label_logits[name].shape == (batch, size)


@pytest.mark.parametrize("batch", [1, 3])
def test_unrefined_prediction_is_label_argmax(vae: ConditionalVAE, batch) -> None:
    images, _ = random_batch(batch)

    predicted = vae.predict_factors(images, refine=False)

    logits = vae.label_logits(images)
    assert predicted.shape == (batch, len(FACTOR_NAMES))
    for i, name in enumerate(FACTOR_NAMES):
        assert torch.equal(predicted[:, i], logits[name].argmax(-1))


@pytest.mark.parametrize("batch", [1, 3])
def test_refined_prediction_maximises_joint(vae: ConditionalVAE, batch: int) -> None:
    images, _ = random_batch(batch, seed=1)
    with torch.no_grad():
        vae.mechanisms.tables["shape"].copy_(torch.tensor([[0.0, 1.0, -1.0]]))

    refined = vae.predict_factors(images, refine=["shape"], chunk_size=2)

    # Each shape class scored by log p(image | z, f) + log p(f), z at the encoder's
    # mean for the label encoder's factors, the other factors held fixed.
    start = vae.predict_factors(images, refine=False)
    with torch.no_grad():
        z = vae.z_posterior(images, start).mean
        log_prior = torch.log_softmax(torch.tensor([0.0, 1.0, -1.0]), dim=-1)
        scores = []
        for shape in range(3):
            candidate = start.clone()
            candidate[:, 0] = shape
            likelihood = vae.image_dist(z, candidate).log_prob(images)
            scores.append(likelihood + log_prior[shape])
    expected = start.clone()
    expected[:, 0] = torch.stack(scores, dim=-1).argmax(-1)
    assert torch.equal(refined, expected)


def test_refined_prediction_rejects_unknown_factor(vae: ConditionalVAE) -> None:
    images, _ = random_batch(1)

    with pytest.raises(ValueError, match="unknown factor 'size'"):
        vae.predict_factors(images, refine=["size"])


def test_label_loss_sums_cross_entropy_over_factors(vae: ConditionalVAE) -> None:
    images, factors = random_batch(3)

    loss = vae.label_loss(images, factors)

    logits = vae.label_logits(images)
    expected = 0.0
    for i, name in enumerate(FACTOR_NAMES):
        log_probs = torch.log_softmax(logits[name], dim=-1)
        expected -= log_probs[torch.arange(3), factors[:, i]].mean()
    torch.testing.assert_close(loss, expected)


def test_networks_stay_out_of_param_store(vae: ConditionalVAE) -> None:
    import pyro

    images, factors = random_batch(2)
    poutine.trace(vae.model).get_trace(images, factors)
    poutine.trace(vae.guide).get_trace(images)

    assert list(pyro.get_param_store().keys()) == []
