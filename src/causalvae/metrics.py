"""Metrics of a trained model against the dSprites oracle.

Every counterfactual metric compares the model's answer with the oracle image of the
true counterfactual factors, which the dSprites grid makes exact. Pixel errors are L1
distances on a 0–255 scale: the mean absolute difference of pixels scaled to 0–255.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from causalvae import queries
from causalvae.data.render import render
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.models import ConditionalVAE
from causalvae.training import ImageData, heldout_neg_elbo

logger = logging.getLogger(__name__)

ORIENTATION = FACTOR_NAMES.index("orientation")


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of binary images ``(batch, 64, 64)``, per image.

    Two empty images have an IoU of 1.
    """
    a, b = a.bool(), b.bool()
    intersection = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0)


def l1_255(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel difference on a 0–255 scale, per image."""
    return (a.float() - b.float()).abs().flatten(1).mean(1) * 255.0


def oracle(factors: torch.Tensor) -> torch.Tensor:
    """Oracle images ``(batch, 64, 64)`` float of class indices ``(batch, 5)``."""
    return torch.from_numpy(render(factors.cpu().numpy())).float()


# Rotational symmetry period of each shape, in radians: square, ellipse, heart.
SYMMETRY_PERIODS = (np.pi / 2, np.pi, 2 * np.pi)
ORIENTATION_STEP = 2 * np.pi / (FACTOR_SIZES[ORIENTATION] - 1)


def orientation_matches(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Whether predicted orientations equal the true ones up to the shape's symmetry.

    ``predicted`` and ``true`` are factor classes ``(batch, 5)``; the shape is taken
    from ``true``. A prediction counts when its angle lies within half a class step
    (2π/39 / 2) of the true angle turned by a multiple of the shape's symmetry period
    (a quarter turn for squares, a half turn for ellipses, a full turn for hearts).
    Since neither period is a whole number of class steps, "the same image" cannot
    be required pixel for pixel.
    """
    predicted = predicted.cpu()
    true = true.cpu()
    difference = (predicted[:, ORIENTATION] - true[:, ORIENTATION]).double()
    difference = difference * ORIENTATION_STEP
    period = torch.tensor(SYMMETRY_PERIODS, dtype=torch.float64)[true[:, 0]]
    remainder = torch.remainder(difference, period)
    distance = torch.minimum(remainder, period - remainder)
    return distance <= ORIENTATION_STEP / 2 + 1e-9


def factor_accuracy(predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Accuracy per factor; orientation judged up to the shape's symmetry.

    ``orientation`` counts a prediction by :func:`orientation_matches`;
    ``orientation_exact`` requires the very class.
    """
    correct = (predicted.cpu() == true.cpu()).float().mean(0)
    result = {name: float(correct[i]) for i, name in enumerate(FACTOR_NAMES)}
    result["orientation"] = float(orientation_matches(predicted, true).float().mean())
    result["orientation_exact"] = float(correct[ORIENTATION])
    return result


def _random_targets(
    factors: torch.Tensor, index: int, rng: np.random.Generator
) -> torch.Tensor:
    """Draw, per unit, a class of factor ``index`` other than its current one."""
    size = FACTOR_SIZES[index]
    shift = torch.from_numpy(rng.integers(1, size, size=len(factors)))
    return (factors[:, index].cpu() + shift) % size


def _seeded_neg_elbo(
    vae: ConditionalVAE, data: ImageData, max_images: int | None, seed: int
) -> float:
    """Held-out −ELBO with z drawn from a generator seeded by ``seed``."""
    devices = [vae.device] if vae.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return heldout_neg_elbo(vae, data, max_images=max_images)


def evaluate(
    vae: ConditionalVAE,
    data: ImageData,
    *,
    num_images: int = 500,
    elbo_images: int | None = 5000,
    refine_steps: int = 0,
    refine_labels: bool = True,
    seed: int = 0,
    batch_size: int = 250,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compute every metric of a model on its held-out images.

    :param num_images: held-out images used for the reconstruction, label and
        counterfactual metrics.
    :param elbo_images: held-out images for the −ELBO (``None``: all of them).
    :param refine_labels: infer factors from images by the label encoder followed by
        analysis by synthesis (:meth:`ConditionalVAE.predict_factors`); ``False``
        uses the label encoder alone.
    :returns: a JSON-serialisable mapping; see ``docs/metrics.md`` for each key.
    """
    vae.eval()
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=vae.device).manual_seed(seed)
    index = data.heldout_index[:num_images]

    def say(message: str) -> None:
        logger.info(message)
        if progress is not None:
            progress(message)

    say("held-out -ELBO")
    metrics: dict[str, Any] = {
        "num_images": len(index),
        "heldout_neg_elbo": _seeded_neg_elbo(vae, data, elbo_images, seed),
    }

    recon, labels, encoder_labels, truth = [], [], [], []
    cf_iou: dict[str, list[torch.Tensor]] = {n: [] for n in FACTOR_NAMES}
    cf_iou_map: dict[str, list[torch.Tensor]] = {n: [] for n in FACTOR_NAMES}
    cf_iou_inferred: dict[str, list[torch.Tensor]] = {n: [] for n in FACTOR_NAMES}
    effective: dict[str, list[torch.Tensor]] = {n: [] for n in FACTOR_NAMES}
    reversibility: dict[str, list[torch.Tensor]] = {n: [] for n in FACTOR_NAMES}
    composition: dict[str, list[torch.Tensor]] = {
        "sample_1": [],
        "sample_10": [],
        "map_1": [],
        "map_10": [],
    }

    for start in range(0, len(index), batch_size):
        chunk = index[start : start + batch_size]
        images, factors = data.batch(chunk, vae.device)
        say(f"counterfactuals on images {start}-{start + len(chunk)} of {len(index)}")

        # Reconstruction and label inference.
        null = queries.counterfactual(
            vae, images, {}, factors, refine_steps=refine_steps, generator=generator
        )
        recon.append(iou(null.factual_probs > 0.5, images).cpu())
        labels.append(vae.predict_factors(images, refine=refine_labels).cpu())
        encoder_labels.append(vae.predict_factors(images, refine=False).cpu())
        truth.append(factors.cpu())
        inferred = labels[-1].to(vae.device)

        # Composition: null interventions applied 1 and 10 times.
        composition["sample_1"].append(l1_255(null.counterfactual_images, images).cpu())
        composition["map_1"].append(l1_255(null.counterfactual_probs, images).cpu())
        sample, mapped = null.counterfactual_images, null.counterfactual_probs > 0.5
        for _ in range(9):
            sample = queries.counterfactual(
                vae, sample, {}, factors, generator=generator
            ).counterfactual_images
            mapped = (
                queries.counterfactual(
                    vae, mapped.float(), {}, factors, generator=generator
                ).counterfactual_probs
                > 0.5
            )
        composition["sample_10"].append(l1_255(sample, images).cpu())
        composition["map_10"].append(l1_255(mapped, images).cpu())

        # Single-factor interventions against the oracle image.
        for i, name in enumerate(FACTOR_NAMES):
            targets = _random_targets(factors, i, rng).to(vae.device)
            do = {name: targets}
            result = queries.counterfactual(
                vae, images, do, factors, refine_steps=refine_steps, generator=generator
            )
            truth_images = oracle(result.counterfactual_factors)
            cf = result.counterfactual_images.cpu()
            cf_iou[name].append(iou(cf, truth_images))
            cf_iou_map[name].append(
                iou(result.counterfactual_probs.cpu() > 0.5, truth_images)
            )

            from_image = queries.counterfactual(
                vae, images, do, inferred, generator=generator
            )
            true_cf = factors.clone()
            true_cf[:, i] = targets
            cf_iou_inferred[name].append(
                iou(from_image.counterfactual_images.cpu(), oracle(true_cf))
            )

            # Effectiveness: the intervened factor read back from the counterfactual.
            read_back = vae.predict_factors(
                result.counterfactual_images, refine=[name] if refine_labels else False
            )
            if name == "orientation":
                hit = orientation_matches(read_back, result.counterfactual_factors)
            else:
                hit = read_back[:, i] == targets
            effective[name].append(hit.cpu())

            # Reversibility: restore the original factor from the counterfactual image.
            restored = queries.counterfactual(
                vae,
                result.counterfactual_images,
                {name: factors[:, i]},
                result.counterfactual_factors,
                generator=generator,
            )
            reversibility[name].append(
                l1_255(restored.counterfactual_images, images).cpu()
            )

    def mean(parts: list[torch.Tensor]) -> float:
        return float(torch.cat(parts).float().mean())

    metrics["reconstruction_iou"] = mean(recon)
    metrics["label_accuracy"] = factor_accuracy(torch.cat(labels), torch.cat(truth))
    metrics["label_accuracy_encoder"] = factor_accuracy(
        torch.cat(encoder_labels), torch.cat(truth)
    )
    metrics["counterfactual_iou"] = {n: mean(v) for n, v in cf_iou.items()}
    metrics["counterfactual_iou_probability_map"] = {
        n: mean(v) for n, v in cf_iou_map.items()
    }
    metrics["counterfactual_iou_inferred_factors"] = {
        n: mean(v) for n, v in cf_iou_inferred.items()
    }
    metrics["effectiveness"] = {n: mean(v) for n, v in effective.items()}
    metrics["composition_l1"] = {
        "1": mean(composition["sample_1"]),
        "10": mean(composition["sample_10"]),
    }
    metrics["composition_l1_probability_map"] = {
        "1": mean(composition["map_1"]),
        "10": mean(composition["map_10"]),
    }
    metrics["reversibility_l1"] = {n: mean(v) for n, v in reversibility.items()}
    metrics["reversibility_l1_mean"] = float(
        np.mean(list(metrics["reversibility_l1"].values()))
    )
    return metrics
