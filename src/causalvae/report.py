"""An HTML report of a trained model: figures, metrics and configuration.

:func:`write_report` fills a folder with PNG figures, ``metrics.json`` and a
self-contained ``index.html``. The page links the figures by relative path, carries its
own CSS and loads no script or network resource, so the folder can be copied or
archived as it is.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch

from causalvae import figures
from causalvae.checkpoint import atomic_write_bytes, atomic_write_json
from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.metrics import oracle
from causalvae.models import ConditionalVAE
from causalvae.queries import counterfactual
from causalvae.training import ImageData

logger = logging.getLogger(__name__)

INDEX_FILE = "index.html"
METRICS_FILE = "metrics.json"
INTERVENTION_VALUES = 6
"""Target classes per intervention figure, spread over the factor's classes."""

# Metric key → (readable name, unit or reading direction).
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "num_images": ("evaluated images", "held-out images behind the image metrics"),
    "heldout_neg_elbo": ("held-out −ELBO", "nats per image, lower is better"),
    "reconstruction_iou": ("reconstruction IoU", "higher is better"),
    "reversibility_l1_mean": (
        "reversibility L1, mean over factors",
        "0–255 scale, lower is better",
    ),
    "counterfactual_iou": ("counterfactual IoU, sample", "higher is better"),
    "counterfactual_iou_probability_map": (
        "counterfactual IoU, map > 0.5",
        "higher is better",
    ),
    "counterfactual_iou_inferred_factors": (
        "counterfactual IoU, inferred factors",
        "higher is better",
    ),
    "label_accuracy": ("label accuracy", "higher is better"),
    "effectiveness": ("effectiveness", "higher is better"),
    "reversibility_l1": ("reversibility L1", "0–255 scale, lower is better"),
    "composition_l1": ("composition L1, sample", "0–255 scale, lower is better"),
    "composition_l1_probability_map": (
        "composition L1, map",
        "0–255 scale, lower is better",
    ),
}

# Rows of the per-factor table that are not factors.
ROW_LABELS: dict[str, str] = {"orientation_exact": "orientation, exact class"}

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th small, td small { color: #666; font-weight: normal; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; margin-top: 0.3em; }
code { font-size: 0.9em; }
"""


# -- example selection ---------------------------------------------------------------


def spread_classes(name: str, count: int = INTERVENTION_VALUES) -> list[int]:
    """Return up to ``count`` classes of factor ``name`` spread over its range.

    Orientation is periodic (class 39, 2π, draws the same image as class 0), so its
    classes are spread over one turn without repeating the start.
    """
    size = FACTOR_SIZES[FACTOR_NAMES.index(name)]
    count = min(size, count)
    if name == "orientation":
        points = np.linspace(0, size, count, endpoint=False)
    else:
        points = np.linspace(0, size - 1, count)
    return sorted({int(p) for p in np.round(points)})


def _random_targets(
    factors: torch.Tensor, index: int, rng: np.random.Generator
) -> torch.Tensor:
    # A uniformly drawn class different from each unit's current one.
    size = FACTOR_SIZES[index]
    shift = torch.from_numpy(rng.integers(1, size, size=len(factors)))
    return (factors[:, index].cpu() + shift) % size


# -- figures -------------------------------------------------------------------------


def _write_figures(
    folder: Path,
    vae: ConditionalVAE,
    images: torch.Tensor,
    factors: torch.Tensor,
    history: Sequence[Mapping[str, Any]],
    seed: int,
    truth_fn: figures.TruthFunction | None,
) -> list[tuple[str, str]]:
    """Write every figure and return ``(file name, caption)`` pairs in page order."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=vae.device).manual_seed(seed)
    written: list[tuple[str, str]] = []

    figures.save_loss_curves(folder / "loss_curves.png", history)
    written.append(
        (
            "loss_curves.png",
            "Training and held-out −ELBO (nats per image) and the label loss against "
            "the step. The held-out curve should fall and level off, and a held-out "
            "curve that rises while the training curve keeps falling means "
            "overfitting.",
        )
    )

    null = counterfactual(vae, images, {}, factors, generator=generator)
    figures.save_reconstructions(
        folder / "reconstructions.png", images, null.factual_probs
    )
    written.append(
        (
            "reconstructions.png",
            "Held-out images over the model's reconstruction probabilities: shape, "
            "size, angle and position should match, with sharp edges.",
        )
    )

    outline = " against the orange ground-truth outline" if truth_fn else ""
    for index, name in enumerate(FACTOR_NAMES):
        file_name = f"interventions_{name}.png"
        figures.save_intervention_grid(
            folder / file_name,
            vae,
            images,
            factors,
            name,
            spread_classes(name),
            truth_fn,
            generator=generator,
        )
        written.append(
            (
                file_name,
                f"Counterfactuals of each held-out image under do({name} = v), one "
                f"column per v{outline}: only {name} should change along a row, and "
                "every other factor should stay as in the original.",
            )
        )

        targets = _random_targets(factors, index, rng).to(vae.device)
        result = counterfactual(
            vae, images, {name: targets}, factors, generator=generator
        )
        truth = None if truth_fn is None else truth_fn(result.counterfactual_factors)
        file_name = f"counterfactuals_{name}.png"
        figures.save_counterfactual_panel(folder / file_name, images, result, truth)
        written.append(
            (
                file_name,
                f"Counterfactuals that move {name} to a random other class: the "
                "probability map and the sample should match the ground truth, as "
                "the IoU under it measures.",
            )
        )
    return written


# -- HTML ----------------------------------------------------------------------------


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _format_number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return _escape(value)


def _metric_header(key: str) -> str:
    name, note = METRIC_LABELS.get(key, (key.replace("_", " "), ""))
    small = f"<br><small>{_escape(note)}</small>" if note else ""
    return f"{_escape(name)}<br><small><code>{_escape(key)}</code></small>{small}"


def _row_header(key: str) -> str:
    if key in FACTOR_NAMES or key not in ROW_LABELS:
        return _escape(key)
    return f"{_escape(ROW_LABELS[key])}<br><small><code>{_escape(key)}</code></small>"


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        rows = []
        for key, inner in value.items():
            rows += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix, value)]


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: bool = True
) -> str:
    """Build a table of ready-made HTML cells. The first cell of a row is its header."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    opening = '<td class="number">' if numeric else "<td>"
    body = []
    for row in rows:
        cells = [f"<th>{row[0]}</th>"]
        cells += [f"{opening}{cell}</td>" for cell in row[1:]]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    """Sort the metrics into summary, per-factor, composition and other tables."""
    summary, per_factor, composition, other = [], [], [], []
    for key, value in metrics.items():
        is_flat_mapping = isinstance(value, Mapping) and all(
            _is_scalar(v) for v in value.values()
        )
        if _is_scalar(value):
            summary.append(key)
        elif is_flat_mapping and set(value) & set(FACTOR_NAMES):
            per_factor.append(key)
        elif is_flat_mapping and key.startswith("composition"):
            composition.append(key)
        else:
            other.append(key)

    parts = []
    if summary:
        rows = [[_metric_header(k), _format_number(metrics[k])] for k in summary]
        parts.append("<h3>Summary</h3>" + _table(["metric", "value"], rows))
    if per_factor:
        # Factors first, then any extra key such as the exact orientation accuracy.
        row_keys = list(FACTOR_NAMES)
        for key in per_factor:
            row_keys += [k for k in metrics[key] if k not in row_keys]
        rows = [
            [_row_header(row)]
            + [_format_number(metrics[k].get(row)) for k in per_factor]
            for row in row_keys
        ]
        header = ["factor"] + [_metric_header(k) for k in per_factor]
        parts.append("<h3>Per factor</h3>" + _table(header, rows))
    if composition:
        repeats: list[str] = []
        for key in composition:
            repeats += [str(k) for k in metrics[key] if str(k) not in repeats]
        rows = [
            [f"{_escape(n)} ×"]
            + [_format_number(metrics[k].get(n)) for k in composition]
            for n in repeats
        ]
        header = ["null interventions applied"] + [
            _metric_header(k) for k in composition
        ]
        parts.append("<h3>Composition</h3>" + _table(header, rows))
    if other:
        rows = []
        for key in other:
            for name, value in _flatten(metrics[key], key):
                rows.append([f"<code>{_escape(name)}</code>", _format_number(value)])
        parts.append("<h3>Other metrics</h3>" + _table(["metric", "value"], rows))
    if not parts:
        parts.append("<p>No metrics were computed.</p>")
    return "\n".join(parts)


def _config_html(config: Mapping[str, Any]) -> str:
    rows = []
    for name, value in _flatten(config, ""):
        text = value if _is_scalar(value) else json.dumps(value, default=str)
        rows.append([f"<code>{_escape(name)}</code>", _escape(text)])
    if not rows:
        return "<p>No configuration was recorded.</p>"
    return _table(["setting", "value"], rows, numeric=False)


def _training_html(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return "<p>No training history was recorded.</p>"
    last = history[-1]
    keys = ("step", "epoch", "images_seen", "heldout_neg_elbo", "elapsed")
    rows = [[f"<code>{_escape(k)}</code>", _format_number(last.get(k))] for k in keys]
    return "<p>Last evaluation of the run:</p>" + _table(["field", "value"], rows)


def _page(
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    written: Sequence[tuple[str, str]],
    extra_sections: Sequence[tuple[str, str]],
) -> str:
    figure_parts = [
        f'<figure><img src="{_escape(quote(name))}" alt="{_escape(name)}">'
        f"<figcaption><code>{_escape(name)}</code>: {_escape(caption)}</figcaption>"
        "</figure>"
        for name, caption in written
    ]
    extras = [
        f"<section><h2>{_escape(title)}</h2>\n{fragment}\n</section>"
        for title, fragment in extra_sections
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            "<title>causalvae report</title>",
            f"<style>{CSS}</style></head>",
            "<body>",
            "<h1>causalvae report</h1>",
            "<section><h2>Configuration</h2>",
            _config_html(config),
            _training_html(history),
            "</section>",
            "<section><h2>Metrics</h2>",
            f'<p>Also in <a href="{METRICS_FILE}">{METRICS_FILE}</a>.</p>',
            _metrics_html(metrics),
            "</section>",
            "<section><h2>Figures</h2>",
            *figure_parts,
            "</section>",
            *extras,
            "</body></html>",
            "",
        ]
    )


# -- entry point ---------------------------------------------------------------------


def _check_sections(extra_sections: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    sections = []
    for index, section in enumerate(extra_sections):
        if (
            not isinstance(section, tuple | list)
            or len(section) != 2
            or not all(isinstance(part, str) for part in section)
        ):
            raise ValueError(
                f"extra section {index} must be a (title, html_fragment) pair of "
                f"strings, got {section!r}"
            )
        sections.append((section[0], section[1]))
    return sections


def write_report(
    folder: str | Path,
    *,
    vae: ConditionalVAE,
    data: ImageData,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    config: Mapping[str, Any],
    num_examples: int = 6,
    seed: int = 0,
    extra_sections: Sequence[tuple[str, str]] = (),
    truth_fn: figures.TruthFunction | None = oracle,
    section_metrics: Collection[str] = (),
) -> Path:
    """Write figures, ``metrics.json`` and ``index.html`` into ``folder``.

    The figures use the first ``num_examples`` held-out images of ``data``:
    ``loss_curves.png``, ``reconstructions.png``, and per factor
    ``interventions_<factor>.png`` (targets spread over its classes) and
    ``counterfactuals_<factor>.png`` (a random other class per image).

    :param history: training records as returned by :func:`causalvae.training.train`.
    :param metrics: as returned by :func:`causalvae.metrics.evaluate`; written to
        ``metrics.json`` as given and shown as tables.
    :param config: run configuration shown on the page, nested mappings flattened.
    :param seed: seed of the counterfactual targets and the abducted noise.
    :param extra_sections: ``(title, html_fragment)`` pairs appended to the page. The
        title is escaped; the fragment is inserted as it is, so it must be trusted
        HTML.
    :param truth_fn: class indices ``(batch, 5)`` to ground-truth images; the
        dSprites oracle by default, ``None`` for figures without ground truth.
    :param section_metrics: keys of ``metrics`` that an extra section already
        shows. They are written to ``metrics.json`` but left out of the tables.
    :returns: the path of ``index.html``.
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}")
    sections = _check_sections(extra_sections)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    index = data.heldout_index[:num_examples]
    if len(index) < num_examples:
        logger.warning(
            "only %d held-out images for %d requested examples",
            len(index),
            num_examples,
        )
    was_training = vae.training
    vae.eval()
    try:
        images, factors = data.batch(index, vae.device)
        with torch.no_grad():
            written = _write_figures(
                folder, vae, images, factors, history, seed, truth_fn
            )
    finally:
        vae.train(was_training)

    atomic_write_json(folder / METRICS_FILE, dict(metrics))
    logger.info("wrote %s", folder / METRICS_FILE)
    tabled = {k: v for k, v in metrics.items() if k not in section_metrics}
    page = _page(config, tabled, history, written, sections)
    path = folder / INDEX_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    logger.info("wrote %s with %d figures", path, len(written))
    return path
