"""The main job end to end: data, training, evaluation and the report.

The CLI's ``train``, ``evaluate`` and ``demo`` commands are thin wrappers around these
functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.checkpoint import STATE_FILE, atomic_write_json, load_checkpoint
from causalvae.data.loader import load_dsprites
from causalvae.data.spec import FACTOR_NAMES
from causalvae.data.store import ensure_dsprites
from causalvae.graph import FactorGraph, get_preset
from causalvae.metrics import evaluate
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.training import (
    ImageData,
    ProgressCallback,
    TrainConfig,
    load_model,
    train,
)

logger = logging.getLogger(__name__)

DEFAULT_HELDOUT = 5000


def resolve_data_path(data: str | Path | None, data_dir: str | Path | None) -> Path:
    """Return ``data`` when given, else the cached full grid (generated if missing)."""
    if data is not None:
        return Path(data)
    return ensure_dsprites(data_dir)


def read_graph(path: str | Path) -> FactorGraph | None:
    """Read the factor graph of a resampled data file; ``None`` for plain data."""
    with np.load(path, allow_pickle=False) as archive:
        if "graph" not in archive.files:
            return None
        return FactorGraph.from_json(str(archive["graph"][()]))


def observed_parents(graph: FactorGraph | None) -> dict[str, list[str]]:
    """Parents of each observed factor among the observed factors.

    Hidden factors are never given to the model, so their edges are dropped.
    """
    if graph is None:
        return {}
    parents = {}
    for name in FACTOR_NAMES:
        visible = [p for p in graph.parents(name) if not graph.is_hidden(p)]
        if visible:
            parents[name] = visible
    return parents


def load_image_data(
    path: str | Path, *, heldout: int = DEFAULT_HELDOUT, split_seed: int = 0
) -> ImageData:
    """Load a dSprites file and split it into training and held-out images.

    A causally resampled file also brings its factor graph, stored under
    ``source["graph"]``.
    """
    dataset = load_dsprites(path)
    source: dict[str, Any] = {
        "path": str(Path(path).resolve()),
        "layout": dataset.layout,
    }
    graph = read_graph(path)
    if graph is not None:
        source["graph"] = graph.to_dict()
    return ImageData.split(
        dataset.images, dataset.classes, heldout=heldout, seed=split_seed, source=source
    )


def data_for_checkpoint(
    config: dict[str, Any], data: str | Path | None = None
) -> ImageData:
    """Reload the data a checkpoint was trained on, with the same held-out split."""
    source = config.get("data", {})
    path = Path(data) if data is not None else Path(source.get("path", ""))
    if not path.is_file():
        raise FileNotFoundError(
            f"the training data {str(path)!r} of this checkpoint was not found; "
            "pass the dSprites file with --data"
        )
    return load_image_data(
        path,
        heldout=int(source.get("heldout", DEFAULT_HELDOUT)),
        split_seed=int(source.get("split_seed", 0)),
    )


def train_model(
    data: ImageData,
    output: str | Path,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[ConditionalVAE, list[dict[str, Any]]]:
    """Train a new model, or resume the one in ``output``, and return it with history.

    On resume the model configuration comes from the checkpoint and ``model_config``
    must be ``None`` or equal to it. A new model on causally resampled data learns
    mechanisms along the observed edges of the data's factor graph unless
    ``model_config`` sets ``parents`` itself.
    """
    output = Path(output)
    if not resume and "graph" in data.source:
        model_config = model_config or ModelConfig()
        if not model_config.parents:
            graph = FactorGraph.from_dict(data.source["graph"])
            # A copy, so that the caller's configuration is left as it was.
            model_config = replace(model_config, parents=observed_parents(graph))
    if resume:
        saved = load_checkpoint(output).config["model"]
        saved_config = ModelConfig.from_dict(saved)
        if model_config is not None and model_config != saved_config:
            raise ValueError(
                f"the checkpoint in {output} was trained with {saved_config}; resume "
                "without changing the model options"
            )
        model_config = saved_config
    model = ConditionalVAE(model_config or ModelConfig())
    history = train(
        model,
        data,
        train_config,
        output=output,
        resume=resume,
        progress=progress,
        overwrite=overwrite,
    )
    return model, history


@dataclass
class DemoResult:
    """Paths of the demo's report and checkpoint, and its metrics."""

    report: Path
    checkpoint: Path
    metrics: dict[str, Any]


def run_demo(
    output: str | Path,
    *,
    data_dir: str | Path | None = None,
    minutes: float = 7.0,
    model_config: ModelConfig | None = None,
    train_overrides: dict[str, Any] | None = None,
    num_images: int = 500,
    preset: str | None = "chain",
    progress: ProgressCallback | None = None,
    say: Callable[[str], None] | None = None,
    generate_progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Generate the data if missing, train within ``minutes``, evaluate and report.

    An interrupted demo picks up its training from the last checkpoint in
    ``output/checkpoint``. With a ``preset`` graph name, the report gets a section on
    the model's causal answers on that graph
    (:func:`causalvae.causal_report.evaluate_preset`), and ``metrics.json`` gets its
    metrics under the key ``causal``; ``None`` skips it.
    """
    from causalvae.report import write_report

    if preset is not None:
        get_preset(preset)

    def tell(message: str) -> None:
        logger.info(message)
        if say is not None:
            say(message)

    output = Path(output)
    checkpoint = output / "checkpoint"
    tell("preparing the dSprites grid")
    path = ensure_dsprites(data_dir, progress=generate_progress)
    data = load_image_data(path)

    settings = {"minutes": minutes, **(train_overrides or {})}
    train_config = TrainConfig(**settings)
    resume = (checkpoint / STATE_FILE).is_file()
    tell(("resuming" if resume else "training") + f" for up to {minutes:g} minutes")
    model, history = train_model(
        data,
        checkpoint,
        model_config=None if resume else model_config,
        train_config=train_config,
        resume=resume,
        progress=progress,
    )

    tell("evaluating counterfactuals against the oracle")
    metrics = evaluate(model, data, num_images=num_images, progress=tell)
    sections = []
    if preset is not None:
        from causalvae.causal_report import evaluate_preset

        tell(f"evaluating causal answers on the {preset} graph")
        causal = evaluate_preset(model, preset, output)
        metrics["causal"] = causal.metrics
        sections.append(causal.section)
    atomic_write_json(checkpoint / "metrics.json", metrics)
    config = load_checkpoint(checkpoint).config
    tell("writing the report")
    index = write_report(
        output,
        vae=model,
        data=data,
        history=history,
        metrics=metrics,
        config=config,
        extra_sections=sections,
        section_metrics=("causal",),
    )
    return DemoResult(index, checkpoint, metrics)


def evaluate_checkpoint(
    folder: str | Path,
    *,
    data: str | Path | None = None,
    num_images: int = 500,
    refine_steps: int = 0,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint and its data with the same held-out split; compute metrics."""
    model, config = load_model(folder, device=device)
    image_data = data_for_checkpoint(config, data)
    return evaluate(
        model,
        image_data,
        num_images=num_images,
        refine_steps=refine_steps,
        seed=seed,
        progress=progress,
    )
