"""The causal section of the report: a trained image model on a preset graph.

The demo trains on the plain dSprites grid, whose factors are independent. This
section reuses its networks on causally resampled labels: a copy of the model gets
factor mechanisms along the observed edges of a preset, :func:`fit_mechanisms` fits
them to resampled units, and :func:`causal_metrics` compares the copy's answers with
the exact ones on other units.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from causalvae.causal_metrics import (
    causal_metrics,
    copy_with_parents,
    fit_mechanisms,
    learned_graph,
)
from causalvae.data.resample import render_units, resample
from causalvae.graph import FactorGraph, get_preset
from causalvae.graph_figures import plot_model_vs_exact
from causalvae.learned_mechanisms import DEFAULT_FIT_LR, DEFAULT_FIT_STEPS
from causalvae.models import ConditionalVAE
from causalvae.pipeline import observed_parents

logger = logging.getLogger(__name__)

DEFAULT_FIT_UNITS = 20_000
DEFAULT_EVAL_UNITS = 300
SHOWN_CONDITIONAL_TV = 0.05
"""A pair whose conditional TV is above this gets its own figure."""


@dataclass
class CausalEvaluation:
    """The causal metrics of a model on one preset, with the report section.

    :ivar metrics: as returned by :func:`causal_metrics`, plus ``preset``,
        ``fit_units`` and ``fit_steps``.
    :ivar figures: the figure files written.
    :ivar title: the section title.
    :ivar html: the section body, escaped HTML that links the figures by file name.
    """

    metrics: dict[str, Any]
    figures: list[Path]
    title: str
    html: str

    @property
    def section(self) -> tuple[str, str]:
        """``(title, html)`` for ``write_report(extra_sections=...)``."""
        return (self.title, self.html)


def evaluate_preset(
    vae: ConditionalVAE,
    preset: str,
    folder: str | Path,
    *,
    num_units: int = DEFAULT_FIT_UNITS,
    num_eval_units: int = DEFAULT_EVAL_UNITS,
    seed: int = 0,
    fit_steps: int = DEFAULT_FIT_STEPS,
    fit_lr: float = DEFAULT_FIT_LR,
) -> CausalEvaluation:
    """Fit a copy of ``vae`` to a preset's labels, then compute its causal metrics.

    The figures of :func:`_figure_pairs` are written into ``folder``.

    :param preset: a preset graph name, e.g. ``"chain"``.
    :param folder: where the figures go, usually the report folder.
    :param num_units: resampled units whose labels the mechanisms are fitted to.
    :param num_eval_units: other resampled units for the counterfactual metrics.
    :param seed: seed of the fitted units (the evaluated units use ``seed + 1``),
        the interventions and the abducted noise.
    :raises GraphError: listing the presets when ``preset`` is not one of them.
    """
    graph = get_preset(preset)
    folder = Path(folder)

    # Fit the mechanism tables of a copy of the model to resampled labels.
    fit_units = resample(graph, num_units, seed=seed)
    model = copy_with_parents(vae, observed_parents(graph))
    fit_mechanisms(model, fit_units.classes, steps=fit_steps, lr=fit_lr)

    # Evaluate on units the tables were not fitted to.
    eval_units = render_units(resample(graph, num_eval_units, seed=seed + 1))
    metrics = causal_metrics(
        model, graph, eval_units, num_units=num_eval_units, seed=seed
    )
    metrics = {
        "preset": preset,
        "fit_units": num_units,
        "fit_steps": fit_steps,
        **metrics,
    }

    model_graph = learned_graph(model)
    figures = []
    for cause, effect in _figure_pairs(graph, metrics["pairs"]):
        path = folder / f"causal_{preset}_{effect}_given_{cause}.png"
        figures.append(plot_model_vs_exact(graph, model_graph, cause, effect, path))
    title = f"Causal answers on the {preset} graph"
    body = _section_html(graph, metrics, figures)
    return CausalEvaluation(metrics, figures, title, body)


def causal_section(
    vae: ConditionalVAE,
    preset: str,
    folder: str | Path,
    *,
    num_units: int = DEFAULT_FIT_UNITS,
    seed: int = 0,
    num_eval_units: int = DEFAULT_EVAL_UNITS,
) -> tuple[str, str]:
    """Return ``(title, html_fragment)`` of :func:`evaluate_preset` for a report."""
    evaluation = evaluate_preset(
        vae,
        preset,
        folder,
        num_units=num_units,
        num_eval_units=num_eval_units,
        seed=seed,
    )
    return evaluation.section


def _figure_pairs(
    graph: FactorGraph, pairs: Mapping[str, Mapping[str, float]]
) -> list[tuple[str, str]]:
    """Return ``(cause, effect)`` pairs to plot, without repeats.

    They are the first observed edge, the pair whose exact conditional and
    interventional answers differ most, and the pair whose conditional the model gets
    most wrong when that error is above :data:`SHOWN_CONDITIONAL_TV`.
    """
    chosen = []
    for cause, effect in graph.edges:
        if not (graph.is_hidden(cause) or graph.is_hidden(effect)):
            chosen.append((cause, effect))
            break
    candidates = []
    if pairs:
        candidates.append(
            max(pairs, key=lambda name: pairs[name]["exact_condition_do_tv"])
        )
        worst = max(pairs, key=lambda name: pairs[name]["conditional_tv"])
        if pairs[worst]["conditional_tv"] > SHOWN_CONDITIONAL_TV:
            candidates.append(worst)
    for key in candidates:
        effect, cause = key.split(" | ")
        if (cause, effect) not in chosen:
            chosen.append((cause, effect))
    return chosen


# -- HTML ----------------------------------------------------------------------------


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return _escape(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in header)
    body = []
    for row in rows:
        cells = [f"<th>{_escape(row[0])}</th>"]
        cells += [f'<td class="number">{_number(cell)}</td>' for cell in row[1:]]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _section_html(
    graph: FactorGraph, metrics: Mapping[str, Any], figures: Sequence[Path]
) -> str:
    parts = [
        f"<p>Graph <code>{_escape(graph.name)}</code>: "
        f"<code>{_escape(graph.describe_edges())}</code>. "
        f"{_escape(graph.description)}</p>",
        "<p>A copy of the trained model gets factor mechanisms along the graph's "
        f"observed edges, fitted to the labels of {metrics['fit_units']} resampled "
        "units. "
        "Its answers, computed exactly from its tables, are compared with the exact "
        f"answers of the graph, and its counterfactuals with those of "
        f"{metrics['num_units']} other units whose noise was recorded. TV is the total "
        "variation distance. The ideal model knows the true mechanisms but, like "
        "the model, sees only the observed factors.</p>",
    ]
    if graph.hidden_names:
        hidden = ", ".join(graph.hidden_names)
        parts.append(
            f"<p>The hidden factors ({_escape(hidden)}) are never given to the "
            "model, so a dependence that they create between observed factors is "
            "not represented: the conditional TV of those pairs stays large, while "
            "interventions and counterfactuals along unconfounded edges can still "
            "be right.</p>"
        )
    parts.append(
        _table(
            ["metric", "model", "ideal model"],
            [
                [
                    "conditional TV, mean over pairs and classes",
                    metrics["conditional_tv"],
                    0.0,
                ],
                ["interventional TV, mean", metrics["interventional_tv"], 0.0],
                ["interventional TV, max", metrics["interventional_tv_max"], 0.0],
                [
                    "counterfactual TV, mean over units",
                    metrics["counterfactual_tv"],
                    0.0,
                ],
                [
                    "counterfactual agreement E[p(true counterfactual)]",
                    metrics["counterfactual_agreement"],
                    metrics["counterfactual_agreement_ideal"],
                ],
                [
                    "counterfactual sample agreement",
                    metrics["counterfactual_sample_agreement"],
                    None,
                ],
                [
                    "counterfactual image IoU against the true counterfactual",
                    metrics["counterfactual_iou"],
                    metrics["counterfactual_iou_ideal"],
                ],
                [
                    "counterfactual image IoU against its own factors",
                    metrics["counterfactual_iou_own_factors"],
                    None,
                ],
            ],
        )
    )
    pair_rows = [
        [name, p["conditional_tv"], p["interventional_tv"], p["exact_condition_do_tv"]]
        for name, p in metrics["pairs"].items()
    ]
    parts.append(
        "<h3>Query pairs</h3>"
        + _table(
            [
                "effect | cause",
                "conditional TV",
                "interventional TV",
                "exact TV(condition, do)",
            ],
            pair_rows,
        )
    )
    intervention_rows = [
        [
            f"do({factor})",
            part["num_units"],
            part["query"],
            part["counterfactual_tv"],
            part["counterfactual_agreement"],
            part["counterfactual_agreement_ideal"],
            part["counterfactual_iou"],
        ]
        for factor, part in metrics["interventions"].items()
    ]
    if intervention_rows:
        parts.append(
            "<h3>Counterfactuals</h3>"
            + _table(
                [
                    "intervention",
                    "units",
                    "query",
                    "TV",
                    "agreement",
                    "ideal agreement",
                    "IoU",
                ],
                intervention_rows,
            )
        )
    for path in figures:
        name = path.name
        parts.append(
            f'<figure><img src="{_escape(quote(name))}" alt="{_escape(name)}">'
            f"<figcaption><code>{_escape(name)}</code>: exact (solid) and model "
            "(dashed) distributions, conditioning left, intervening right."
            "</figcaption></figure>"
        )
    return "\n".join(parts)
