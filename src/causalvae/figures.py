"""Figures of a trained model: reconstructions, interventions, counterfactuals, losses.

Every image is drawn in grey on one fixed scale, 0 (black) to 1 (white), so binary
images, samples and pixel probabilities read the same way. Figures are built with the
object-oriented :class:`~matplotlib.figure.Figure` API, so no pyplot state or backend
switch is involved, and each file is written atomically in the format of its suffix.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causalvae.checkpoint import atomic_write_bytes
from causalvae.data.spec import (
    FACTOR_NAMES,
    IMAGE_SIZE,
    SHAPE_NAMES,
    factor_values,
    get_factor,
)
from causalvae.metrics import iou
from causalvae.models import ConditionalVAE
from causalvae.queries import CounterfactualResult, counterfactual

logger = logging.getLogger(__name__)

ImageArray = torch.Tensor | np.ndarray
"""Images ``(batch, 64, 64)`` with values in [0, 1]: binary pixels or probabilities."""

TruthFunction = Callable[[torch.Tensor], ImageArray]
"""Map class indices ``(batch, 5)`` to their ground-truth images ``(batch, 64, 64)``."""

DPI = 100
PIXEL_SCALE = 2
"""Device pixels per image pixel, a whole number so that pixels stay sharp."""
CELL_GAP = 4
"""Image pixels between neighbouring cells."""
CELL_TITLE_GAP = 14
"""Extra image pixels above each row when every cell has a title: two lines at 7
points."""
MARGIN_PX = 10
LABEL_PX = 180
"""Width of the row-label margin in device pixels, enough for ``orientation 185° → 92°``
at 7 points."""
COLORBAR_PX = 90
TITLE_PX = 36
"""Height of the column titles in device pixels: two lines at 8 points."""
SUPTITLE_PX = 24
TRUTH_COLOR = "#ff7f0e"
"""Colour of ground-truth outlines drawn over the model's images (orange)."""
IMAGE_COLORMAP = "gray"


# -- text of factor classes ----------------------------------------------------------


def format_value(name: str, class_index: int) -> str:
    """Describe class ``class_index`` of factor ``name`` for a reader.

    Shapes by name, scale by its value, orientation in degrees, positions by their
    class index (0 to 31).
    """
    get_factor(name)
    class_index = int(class_index)
    if name == "shape":
        return SHAPE_NAMES[class_index]
    if name == "scale":
        return f"{factor_values(name)[class_index]:.2f}"
    if name == "orientation":
        return f"{math.degrees(factor_values(name)[class_index]):.0f}°"
    return str(class_index)


def format_change(before: Sequence[int], after: Sequence[int]) -> str:
    """Describe factors ``(5,)`` before and after a query, one line per factor.

    A factor that changed reads ``old → new``, and the others show their value once.
    """
    lines = []
    for i, name in enumerate(FACTOR_NAMES):
        old = format_value(name, int(before[i]))
        new = format_value(name, int(after[i]))
        value = old if old == new else f"{old} → {new}"
        lines.append(f"{name} {value}")
    return "\n".join(lines)


# -- shared drawing ------------------------------------------------------------------


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot save a figure to {path}: unsupported suffix {path.suffix!r}; "
            f"use one of {', '.join('.' + s for s in sorted(supported))}"
        )
    return path


def _as_images(images: ImageArray, label: str = "images") -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 3 or array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{label} must have shape (batch, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"got {array.shape}"
        )
    if len(array) == 0:
        raise ValueError(f"{label} is empty; pass at least one image")
    return array


def _as_factors(factors: torch.Tensor | np.ndarray, batch: int) -> np.ndarray:
    if isinstance(factors, torch.Tensor):
        factors = factors.detach().cpu().numpy()
    array = np.asarray(factors, dtype=np.int64)
    if array.shape != (batch, len(FACTOR_NAMES)):
        raise ValueError(
            f"factors must have shape ({batch}, {len(FACTOR_NAMES)}) to match the "
            f"images, got {array.shape}"
        )
    return array


@dataclass
class _Grid:
    """A grid of images drawn as one mosaic in a single axes.

    A single axes keeps drawing fast, because with one axes per cell the layout engine
    took most of the time of a report. Data coordinates are mosaic pixels, with the
    centre of pixel ``(row, column)`` of the mosaic at ``(column, row)``.
    """

    figure: Figure
    axes: Axes
    row_pitch: int
    column_pitch: int

    def origin(self, row: int, column: int) -> tuple[int, int]:
        """Mosaic pixel ``(x, y)`` of the top-left pixel of a cell."""
        return column * self.column_pitch, row * self.row_pitch

    def centre(self, row: int, column: int) -> tuple[float, float]:
        """Data coordinates of the centre of a cell."""
        x, y = self.origin(row, column)
        return x + (IMAGE_SIZE - 1) / 2, y + (IMAGE_SIZE - 1) / 2


def _draw_grid(
    cells: Sequence[np.ndarray | None],
    ncols: int,
    *,
    column_titles: Sequence[str] | None = None,
    cell_titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    colorbar: bool = False,
    suptitle: str | None = None,
) -> _Grid:
    """Draw images row-major in a grid of ``ncols`` columns, leaving ``None`` blank.

    Margins are fixed in device pixels, so the figure's size follows from the number
    of rows and columns alone.
    """
    nrows = math.ceil(len(cells) / ncols)
    row_gap = CELL_GAP + (CELL_TITLE_GAP if cell_titles is not None else 0)
    row_pitch = IMAGE_SIZE + row_gap
    column_pitch = IMAGE_SIZE + CELL_GAP

    # Blank cells and the gaps between cells are NaN, which imshow leaves transparent.
    mosaic = np.full(
        (nrows * row_pitch - row_gap, ncols * column_pitch - CELL_GAP), np.nan
    )
    for index, cell in enumerate(cells):
        if cell is not None:
            row, column = divmod(index, ncols)
            y, x = row * row_pitch, column * column_pitch
            mosaic[y : y + IMAGE_SIZE, x : x + IMAGE_SIZE] = cell

    # Figure geometry in device pixels.
    grid_width = mosaic.shape[1] * PIXEL_SCALE
    grid_height = mosaic.shape[0] * PIXEL_SCALE
    left = LABEL_PX if row_labels is not None else MARGIN_PX
    right = COLORBAR_PX if colorbar else MARGIN_PX
    top = MARGIN_PX
    top += TITLE_PX if column_titles is not None else 0
    top += CELL_TITLE_GAP * PIXEL_SCALE if cell_titles is not None else 0
    top += SUPTITLE_PX if suptitle else 0
    width, height = left + grid_width + right, top + grid_height + MARGIN_PX
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes(
        (left / width, MARGIN_PX / height, grid_width / width, grid_height / height)
    )
    axes.set_axis_off()
    mosaic_image = axes.imshow(
        mosaic, cmap=IMAGE_COLORMAP, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    grid = _Grid(figure, axes, row_pitch, column_pitch)

    # Text around the cells is placed in mosaic pixels and drawn outside the axes.
    if column_titles is not None:
        for column, title in enumerate(column_titles[:ncols]):
            x, _ = grid.centre(0, column)
            axes.text(x, -2, title, ha="center", va="bottom", fontsize=8)
    if cell_titles is not None:
        for index, title in enumerate(cell_titles[: len(cells)]):
            x, y = grid.centre(*divmod(index, ncols))
            top_edge = y - IMAGE_SIZE / 2
            axes.text(x, top_edge - 1, title, ha="center", va="bottom", fontsize=7)
    if row_labels is not None:
        for row, label in enumerate(row_labels[:nrows]):
            _, y = grid.centre(row, 0)
            axes.text(-4, y, label, ha="right", va="center", fontsize=7)
    if colorbar:
        bar_axes = figure.add_axes(
            (
                (left + grid_width + 20) / width,
                MARGIN_PX / height,
                14 / width,
                grid_height / height,
            )
        )
        bar = figure.colorbar(mosaic_image, cax=bar_axes)
        bar.set_label("pixel probability", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if suptitle:
        figure.text(
            0.5,
            1 - (MARGIN_PX / 2) / height,
            suptitle,
            ha="center",
            va="top",
            fontsize=9,
        )
    return grid


def _draw_outline(grid: _Grid, row: int, column: int, truth: np.ndarray) -> None:
    # An image without pixels on both sides of 0.5 has no outline to draw.
    if not truth.min() < 0.5 < truth.max():
        return
    x, y = grid.origin(row, column)
    grid.axes.contour(
        np.arange(IMAGE_SIZE) + x,
        np.arange(IMAGE_SIZE) + y,
        truth,
        levels=[0.5],
        colors=TRUTH_COLOR,
        linewidths=1.0,
    )


def _label_cell(grid: _Grid, row: int, column: int, text: str) -> None:
    # Small text in the cell's bottom-left corner on a dark box, readable over shapes.
    x, y = grid.origin(row, column)
    grid.axes.text(
        x + 1,
        y + IMAGE_SIZE - 2,
        text,
        ha="left",
        va="bottom",
        fontsize=7,
        color="white",
        bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0},
    )


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".").lower(), dpi=DPI)
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("wrote %s", path)
    return path


# -- public figures ------------------------------------------------------------------


def save_image_grid(
    path: str | Path,
    images: ImageArray,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    suptitle: str | None = None,
) -> Path:
    """Draw images ``(batch, 64, 64)`` in a grid of ``ncols`` columns and save it.

    :param titles: one title per image, or ``None`` for none.
    :param suptitle: a title over the whole grid, or ``None`` for none.
    :param ncols: columns of the grid, at most the number of images.
    :returns: the path written.
    """
    path = _check_path(path)
    array = _as_images(images)
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    if titles is not None and len(titles) != len(array):
        raise ValueError(
            f"got {len(titles)} titles for {len(array)} images; pass one per image"
        )
    grid = _draw_grid(
        list(array), min(ncols, len(array)), cell_titles=titles, suptitle=suptitle
    )
    return _save(grid.figure, path)


def save_reconstructions(
    path: str | Path, images: ImageArray, probs: ImageArray, ncols: int = 8
) -> Path:
    """Save originals ``(batch, 64, 64)`` over their reconstructions.

    Rows alternate between up to ``ncols`` originals and the reconstruction
    probabilities ``(batch, 64, 64)`` of the same images.
    """
    path = _check_path(path)
    originals = _as_images(images)
    reconstructions = _as_images(probs, "probs")
    if len(reconstructions) != len(originals):
        raise ValueError(
            f"got {len(reconstructions)} reconstructions for {len(originals)} images"
        )
    ncols = max(1, min(ncols, len(originals)))

    cells: list[np.ndarray | None] = []
    labels = []
    for start in range(0, len(originals), ncols):
        for rows, label in (
            (originals, "original"),
            (reconstructions, "reconstructed"),
        ):
            chunk: list[np.ndarray | None] = list(rows[start : start + ncols])
            cells += chunk + [None] * (ncols - len(chunk))
            labels.append(label)
    grid = _draw_grid(cells, ncols, row_labels=labels, colorbar=True)
    return _save(grid.figure, path)


def save_counterfactual_panel(
    path: str | Path,
    images: ImageArray,
    result: CounterfactualResult,
    truth: ImageArray | None = None,
    *,
    titles: Sequence[str] | None = None,
) -> Path:
    """Save one row per unit: original, counterfactual map, sample and ground truth.

    :param images: ``(batch, 64, 64)`` the units' observed images.
    :param result: the counterfactual of those images.
    :param truth: ``(batch, 64, 64)`` ground-truth images of the counterfactual
        factors (the dSprites oracle); adds a fourth column with the sample's IoU
        against it.
    :param titles: one row label per unit replacing the default, which lists the
        factors before → after.
    :returns: the path written.
    """
    path = _check_path(path)
    originals = _as_images(images)
    batch = len(originals)
    maps = _as_images(result.counterfactual_probs, "result.counterfactual_probs")
    samples = _as_images(result.counterfactual_images, "result.counterfactual_images")
    if len(maps) != batch:
        raise ValueError(
            f"the counterfactual result has {len(maps)} units but {batch} images "
            "were passed; pass the images the result was computed from"
        )
    truths = None if truth is None else _as_images(truth, "truth")
    if truths is not None and len(truths) != batch:
        raise ValueError(f"got {len(truths)} truth images for {batch} units")
    before = _as_factors(result.factual_factors, batch)
    after = _as_factors(result.counterfactual_factors, batch)
    if titles is not None and len(titles) != batch:
        raise ValueError(f"got {len(titles)} titles for {batch} units")

    columns = ["original", "counterfactual\nprobability", "counterfactual\nsample"]
    if truths is not None:
        columns.append("ground truth")
    cells: list[np.ndarray | None] = []
    for i in range(batch):
        cells += [originals[i], maps[i], samples[i]]
        if truths is not None:
            cells.append(truths[i])
    labels = (
        list(titles)
        if titles is not None
        else [format_change(before[i], after[i]) for i in range(batch)]
    )
    grid = _draw_grid(
        cells, len(columns), column_titles=columns, row_labels=labels, colorbar=True
    )

    if truths is not None:
        scores = iou(torch.from_numpy(samples > 0.5), torch.from_numpy(truths > 0.5))
        for i in range(batch):
            _label_cell(grid, i, 3, f"IoU {float(scores[i]):.2f}")
    return _save(grid.figure, path)


@torch.no_grad()
def save_intervention_grid(
    path: str | Path,
    vae: ConditionalVAE,
    images: torch.Tensor,
    factors: torch.Tensor,
    factor_name: str,
    values: Sequence[int],
    truth_fn: TruthFunction | None = None,
    *,
    show: Literal["probs", "samples"] = "probs",
    generator: torch.Generator | None = None,
) -> Path:
    """Save counterfactuals of each unit under ``do(factor_name = v)`` for each ``v``.

    Rows are the units, the first column their original image and then one column per
    class in ``values``. With ``truth_fn`` the ground truth of each counterfactual is
    outlined in orange over the model's image.

    :param images: ``(batch, 64, 64)`` observed images.
    :param factors: ``(batch, 5)`` the units' class indices.
    :param values: classes of ``factor_name`` to intervene to.
    :param truth_fn: class indices ``(batch, 5)`` to ground-truth images, e.g.
        :func:`causalvae.metrics.oracle`.
    :param show: draw the counterfactual probability maps or binary samples.
    :returns: the path written.
    """
    path = _check_path(path)
    factor = get_factor(factor_name)
    originals = _as_images(images)
    unit_factors = _as_factors(factors, len(originals))
    if len(values) == 0:
        raise ValueError(f"pass at least one class of {factor_name} to intervene to")
    for value in values:
        if not 0 <= int(value) < factor.size:
            raise ValueError(
                f"class {value} of {factor_name} is out of range; "
                f"classes run from 0 to {factor.size - 1}"
            )
    if show not in ("probs", "samples"):
        raise ValueError(f"show must be 'probs' or 'samples', got {show!r}")

    # One counterfactual query per target class, over all units at once.
    columns: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    for value in values:
        result = counterfactual(
            vae, images, {factor_name: int(value)}, factors, generator=generator
        )
        drawn = (
            result.counterfactual_probs
            if show == "probs"
            else result.counterfactual_images
        )
        columns.append(_as_images(drawn))
        if truth_fn is not None:
            truths.append(_as_images(truth_fn(result.counterfactual_factors), "truth"))

    batch, width = len(originals), len(values) + 1
    cells: list[np.ndarray | None] = []
    for i in range(batch):
        cells.append(originals[i])
        cells += [column[i] for column in columns]
    titles = ["original"] + [
        f"do({factor_name} =\n{format_value(factor_name, int(v))})" for v in values
    ]
    labels = [format_change(row, row) for row in unit_factors]
    legend = "grey: model probability" if show == "probs" else "grey: model sample"
    if truth_fn is not None:
        legend += ", orange outline: ground truth"
    grid = _draw_grid(
        cells,
        width,
        column_titles=titles,
        row_labels=labels,
        colorbar=True,
        suptitle=legend,
    )
    for j, truth in enumerate(truths):
        for i in range(batch):
            _draw_outline(grid, i, j + 1, truth[i])
    return _save(grid.figure, path)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list, list]:
    steps, values = [], []
    for record in history:
        value = record.get(key)
        if value is not None and math.isfinite(float(value)):
            steps.append(record.get("step", len(steps)))
            values.append(float(value))
    return steps, values


def _plot_series(
    ax: Axes, history: Sequence[Mapping[str, Any]], series: Sequence[tuple[str, str]]
) -> None:
    plotted: list[float] = []
    for key, label in series:
        steps, values = _series(history, key)
        if values:
            ax.plot(steps, values, marker=".", label=label)
            plotted += values
    if not plotted:
        ax.text(
            0.5,
            0.5,
            "no values recorded",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return
    # A log scale only helps when the losses span an order of magnitude.
    if min(plotted) > 0 and max(plotted) / min(plotted) > 10:
        ax.set_yscale("log")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def save_loss_curves(path: str | Path, history: Sequence[Mapping[str, Any]]) -> Path:
    """Plot the training history against the optimisation step.

    The left panel shows the training (running mean) and held-out −ELBO in nats per
    image, the right panel the label encoder's cross-entropy summed over the five
    factors. Records without a value (``None``) are skipped.

    :param history: records as returned by :func:`causalvae.training.train`.
    :returns: the path written.
    """
    path = _check_path(path)
    # Fixed margins, because the constrained layout engine made this figure two to
    # three times slower to draw.
    figure = Figure(figsize=(10, 3.8), dpi=DPI)
    FigureCanvasAgg(figure)
    elbo_ax, label_ax = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    _plot_series(
        elbo_ax,
        history,
        [("train_neg_elbo", "training"), ("heldout_neg_elbo", "held-out")],
    )
    elbo_ax.set_title("−ELBO")
    elbo_ax.set_ylabel("nats per image")
    _plot_series(label_ax, history, [("train_label_loss", "training")])
    label_ax.set_title("label loss")
    label_ax.set_ylabel("cross-entropy (nats, summed over factors)")
    for ax in (elbo_ax, label_ax):
        ax.set_xlabel("step")
    return _save(figure, path)
