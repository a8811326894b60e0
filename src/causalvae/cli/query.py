"""``causalvae query``: conditioning, interventions and counterfactuals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from causalvae.checkpoint import atomic_write_json
from causalvae.cli._options import user_errors
from causalvae.data.factors import (
    describe_factors,
    format_factors,
    parse_factor_assignments,
)
from causalvae.data.spec import FACTOR_NAMES

OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PNG figure and the JSON answer.",
)
CHECKPOINT = click.argument(
    "checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
SEED_OPTION = click.option("--seed", type=int, default=0, show_default=True)

POOR_RECONSTRUCTION_IOU = 0.5
"""Below this reconstruction IoU the CLI warns that a counterfactual is unreliable.
The demo's model reaches 0.99 on held-out images; 0.5 is a judgement, not a measured
bound."""


@click.group("query")
def cli() -> None:
    """Ask a trained model causal questions about images."""


def _load(checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    from causalvae.training import load_model

    return load_model(checkpoint)


def _factor_summary(factors: torch.Tensor) -> dict[str, dict[str, int]]:
    """Counts of each class per factor over samples ``(n, 5)``."""
    summary = {}
    for i, name in enumerate(FACTOR_NAMES):
        values, counts = torch.unique(factors[:, i], return_counts=True)
        summary[name] = {
            str(int(v)): int(c) for v, c in zip(values, counts, strict=True)
        }
    return summary


def _class_labels(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """Label each class index of ``counts`` as a reader knows it: shape names,
    scale values, angles in degrees and position indices."""
    from causalvae.figures import format_value

    return {
        name: {index: format_value(name, int(index)) for index in classes}
        for name, classes in counts.items()
    }


def _load_unit(
    config: dict[str, Any],
    index: int | None,
    image: Path | None,
    data: Path | None,
    threshold: float,
) -> tuple[torch.Tensor, np.ndarray | None, str]:
    """Load one image ``(1, 64, 64)``, its dataset factors if known, and a label."""
    if (index is None) == (image is None):
        raise click.UsageError("give exactly one of --index and --image")
    if image is not None:
        from causalvae.data.png import load_png

        pixels = load_png(image, threshold=threshold)
        if not pixels.any():
            raise click.BadParameter(
                f"{image} has no pixel brighter than --threshold {threshold}; sprites "
                "are white on black, so check the image or lower --threshold",
                param_hint="--image",
            )
        return torch.from_numpy(pixels).float()[None], None, str(image)
    from causalvae.data.loader import load_dsprites

    source = data or Path(config.get("data", {}).get("path", ""))
    if not Path(source).is_file():
        raise click.UsageError(
            f"the checkpoint's data file {str(source)!r} was not found; "
            "pass --data FILE"
        )
    dataset = load_dsprites(source, mmap=True)
    if not 0 <= index < len(dataset):
        raise click.BadParameter(
            f"index {index} is out of range: the dataset has {len(dataset)} images "
            f"(0 to {len(dataset) - 1})",
            param_hint="--index",
        )
    # Copies, because the arrays are read-only maps of the file.
    pixels = np.array(dataset.images[index])
    classes = np.array(dataset.classes[index])
    return torch.from_numpy(pixels).float()[None], classes, f"{source}[{index}]"


@cli.command("counterfactual")
@CHECKPOINT
@click.option("--index", type=int, default=None, help="Index of an image in the data.")
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A 64×64 PNG, binarised at --threshold.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dSprites file for --index [default: the checkpoint's training data].",
)
@click.option(
    "--factors",
    "given",
    multiple=True,
    help="Known factors of the image, e.g. 'shape=heart,scale=1'; the others are "
    "inferred from the image. Repeatable.",
)
@click.option(
    "--infer-factors",
    is_flag=True,
    help="Ignore the dataset's labels and infer every factor from the image.",
)
@click.option(
    "--do",
    "do_items",
    multiple=True,
    required=True,
    help="Intervention, e.g. 'scale=1' or 'shape=heart,pos_x=3'. Repeatable.",
)
@click.option(
    "--refine-steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="SVI steps refining z against the image.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Luminance above which a PNG pixel is on.",
)
@SEED_OPTION
@OUTPUT_OPTION
@user_errors
def counterfactual_command(
    checkpoint: Path,
    index: int | None,
    image: Path | None,
    data: Path | None,
    given: tuple[str, ...],
    infer_factors: bool,
    do_items: tuple[str, ...],
    refine_steps: int,
    threshold: float,
    seed: int,
    output: Path,
) -> None:
    """Compute what this image would have been under do(...).

    Abduction of the image's noise, action by do(...), prediction by the SCM.
    """
    from causalvae import queries
    from causalvae.figures import save_counterfactual_panel
    from causalvae.metrics import iou, oracle

    do = parse_factor_assignments(do_items)
    known = parse_factor_assignments(given)
    model, config = _load(checkpoint)
    pixels, labels, label = _load_unit(config, index, image, data, threshold)

    # Factors: the dataset's labels, overridden by --factors, the rest inferred.
    inferred = model.predict_factors(pixels)[0]
    factors = inferred.clone()
    source = {name: "inferred" for name in FACTOR_NAMES}
    if labels is not None and not infer_factors:
        factors = torch.from_numpy(labels).long()
        source = {name: "dataset" for name in FACTOR_NAMES}
    for name, value in known.items():
        factors[FACTOR_NAMES.index(name)] = value
        source[name] = "given"

    generator = torch.Generator().manual_seed(seed)
    result = queries.counterfactual(
        model, pixels, do, factors[None], refine_steps=refine_steps, generator=generator
    )
    truth = oracle(result.counterfactual_factors)
    output.mkdir(parents=True, exist_ok=True)
    panel = save_counterfactual_panel(
        output / "counterfactual.png", pixels, result, truth
    )
    answer = {
        "input": label,
        "intervention": {k: int(v) for k, v in do.items()},
        "factor_source": source,
        "factual_factors": describe_factors(result.factual_factors[0].numpy()),
        "counterfactual_factors": describe_factors(
            result.counterfactual_factors[0].numpy()
        ),
        "metrics": {
            "iou_sample_vs_oracle": float(iou(result.counterfactual_images, truth)[0]),
            "iou_probability_map_vs_oracle": float(
                iou(result.counterfactual_probs > 0.5, truth)[0]
            ),
            "reconstruction_iou": float(iou(result.factual_probs > 0.5, pixels)[0]),
        },
        "refine_steps": refine_steps,
        "seed": seed,
    }
    atomic_write_json(output / "counterfactual.json", answer)
    click.echo(f"counterfactual: {panel} and {output / 'counterfactual.json'}")
    metrics = answer["metrics"]
    click.echo(
        f"IoU against the oracle image: {metrics['iou_sample_vs_oracle']:.3f} "
        f"(sample), {metrics['iou_probability_map_vs_oracle']:.3f} (probability map "
        "> 0.5)"
    )
    reconstruction = metrics["reconstruction_iou"]
    click.echo(f"IoU of the factual reconstruction: {reconstruction:.3f}")
    if reconstruction < POOR_RECONSTRUCTION_IOU:
        click.echo(
            "warning: the model reconstructs this image poorly, so its counterfactual "
            "says little; train longer or check the checkpoint",
            err=True,
        )


def _sample_command(kind: str) -> click.Command:
    option_name = "--do" if kind == "intervene" else "--given"
    doc = {
        "intervene": "Sample images under an intervention, p(image | do(...)).",
        "condition": "Sample images given evidence on factors.",
    }[kind]

    @click.command(kind, help=doc)
    @CHECKPOINT
    @click.option(
        option_name,
        "items",
        multiple=True,
        required=True,
        help="Factor assignments, e.g. 'shape=heart,scale=1'. Repeatable.",
    )
    @click.option(
        "-n",
        "--num-samples",
        type=click.IntRange(min=1, max=400),
        default=16,
        show_default=True,
        help="Number of samples (at most 400, drawn in one figure).",
    )
    @SEED_OPTION
    @OUTPUT_OPTION
    @user_errors
    def command(
        checkpoint: Path,
        items: tuple[str, ...],
        num_samples: int,
        seed: int,
        output: Path,
    ) -> None:
        from causalvae import queries
        from causalvae.figures import format_value, save_image_grid

        assignment = parse_factor_assignments(items)
        model, _ = _load(checkpoint)
        torch.manual_seed(seed)
        run = queries.intervene if kind == "intervene" else queries.condition
        samples = run(model, assignment, num_samples)
        output.mkdir(parents=True, exist_ok=True)
        titles = [format_factors(f.numpy(), two_lines=True) for f in samples.factors]
        assigned = ", ".join(
            f"{name}={format_value(name, index)}" for name, index in assignment.items()
        )
        query = f"do({assigned})" if kind == "intervene" else f"given {assigned}"
        figure = save_image_grid(
            output / f"{kind}.png",
            samples.images,
            titles=titles,
            suptitle=f"{num_samples} samples, {query}",
        )
        counts = _factor_summary(samples.factors)
        answer = {
            "query": kind,
            "assignment": {k: int(v) for k, v in assignment.items()},
            "num_samples": num_samples,
            "factor_counts": counts,
            "class_labels": _class_labels(counts),
            "seed": seed,
        }
        atomic_write_json(output / f"{kind}.json", answer)
        click.echo(f"{kind}: {figure} and {output / f'{kind}.json'}")

    return command


cli.add_command(_sample_command("intervene"))
cli.add_command(_sample_command("condition"))
