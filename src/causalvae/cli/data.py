"""``causalvae data``: generate, inspect and show dSprites files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from causalvae.data import store
from causalvae.data.factors import format_factors, parse_factor_assignments
from causalvae.data.loader import DSprites, DSpritesFormatError, load_dsprites
from causalvae.data.spec import FACTOR_NAMES, FACTORS

DATA_DIR_DEFAULT = (
    "$CAUSALVAE_DATA_DIR, else $XDG_CACHE_HOME/causalvae, else ~/.cache/causalvae"
)


def _is_quiet(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("quiet"))


def _user_error(message: str) -> click.ClickException:
    from causalvae.cli import UserError

    return UserError(message)


def _load(path: Path) -> DSprites:
    try:
        return load_dsprites(path, mmap=True)
    except DSpritesFormatError as error:
        raise _user_error(str(error)) from error


@click.group("data")
def cli() -> None:
    """Generate, inspect and show dSprites data."""


@cli.command("generate")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default=DATA_DIR_DEFAULT,
    help="Folder to write the dSprites file into.",
)
@click.option(
    "--force", is_flag=True, help="Render the grid again even when the file exists."
)
@click.pass_context
def generate(ctx: click.Context, data_dir: Path | None, force: bool) -> None:
    """Render the dSprites grid into the data folder and print its path.

    The grid contains 737,280 images and takes about 3 GiB on disk.
    """
    from tqdm.auto import tqdm

    path = store.default_data_dir(data_dir) / store.DSPRITES_FILENAME
    if path.exists() and not force:
        click.echo(f"{path} already exists; pass --force to render it again", err=True)
        click.echo(str(path))
        return

    with tqdm(unit="img", disable=_is_quiet(ctx), dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            store.generate_dsprites(path, progress=progress)
        except OSError as error:
            raise _user_error(
                f"could not write {path}: {error}; choose another folder with "
                "--data-dir"
            ) from error
    click.echo(str(path))


@cli.command("info")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(file: Path, as_json: bool) -> None:
    """Check a dSprites FILE and summarise its contents."""
    dataset = _load(file)
    summary = _summarise(dataset)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"file: {summary['path']}")
    columns = 6 if summary["layout"] == "official" else 5
    click.echo(f"layout: {summary['layout']} ({columns} latent columns)")
    click.echo(f"images: {summary['num_images']}")
    click.echo(f"full grid: {'yes' if summary['full_grid'] else 'no'}")
    click.echo(f"distinct factor combinations: {summary['distinct_combinations']}")
    click.echo(f"mean lit pixels per image: {summary['mean_lit_pixels']:.1f}")
    if summary["resampled"] is not None:
        resampled = summary["resampled"]
        click.echo(f"causally resampled from graph {resampled['graph']}")
        click.echo(f"  edges: {resampled['edges']}")
        hidden = ", ".join(resampled["hidden_factors"]) or "none"
        click.echo(f"  hidden factors: {hidden}; exogenous noise stored per factor")
    if summary["ignored_keys"]:
        click.echo(f"ignored keys: {', '.join(summary['ignored_keys'])}")
    click.echo("factor        classes present   images per class (min to max)")
    for name, factor_summary in summary["factors"].items():
        present = f"{factor_summary['present']}/{factor_summary['size']}"
        spread = f"{factor_summary['min_count']} to {factor_summary['max_count']}"
        click.echo(f"{name:<13} {present:<17} {spread}")


def _summarise(dataset: DSprites) -> dict[str, Any]:
    count = len(dataset)
    factors = {}
    for column, factor in enumerate(FACTORS):
        counts = np.bincount(dataset.classes[:, column], minlength=factor.size)
        factors[factor.name] = {
            "size": factor.size,
            "present": int(np.count_nonzero(counts)),
            "min_count": int(counts.min()),
            "max_count": int(counts.max()),
            "counts": counts.tolist(),
        }
    lit = 0
    for start in range(0, count, 65_536):
        chunk = dataset.images[start : start + 65_536]
        lit += int(chunk.sum(dtype=np.int64))
    resampled, ignored = _resampled_summary(dataset)
    return {
        "path": str(dataset.path),
        "layout": dataset.layout,
        "num_images": count,
        "full_grid": dataset.is_full_grid,
        "distinct_combinations": int(np.unique(dataset.indices).size),
        "mean_lit_pixels": lit / count if count else 0.0,
        "ignored_keys": ignored,
        "resampled": resampled,
        "factors": factors,
    }


def _resampled_summary(dataset: DSprites) -> tuple[dict[str, Any] | None, list[str]]:
    """Describe the graph of a file written by ``data resample``, and return the
    keys that neither the loader nor the resampled format reads."""
    from causalvae.data.resample import HIDDEN_PREFIX, NOISE_PREFIX, load_resampled

    extra = list(dataset.extra_keys)
    if "graph" not in extra:
        return None, extra
    units = load_resampled(dataset.path, load_images=False)
    known = {"graph"}
    known |= {NOISE_PREFIX + name for name in units.graph.names}
    known |= {HIDDEN_PREFIX + name for name in units.graph.hidden_names}
    summary = {
        "graph": units.graph.name or "unnamed",
        "edges": units.graph.describe_edges(),
        "hidden_factors": list(units.graph.hidden_names),
    }
    return summary, [key for key in extra if key not in known]


@cli.command("show")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dSprites file to draw from [default: the file in the data folder].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default=DATA_DIR_DEFAULT,
    help="Folder containing the dSprites file, used when --file is not given.",
)
@click.option(
    "--where",
    "conditions",
    multiple=True,
    metavar="FACTOR=VALUE",
    help="Keep images whose factor matches, e.g. shape=heart, scale=0.8, "
    "orientation=90deg, pos_x=12 (class index) or pos_y=#3; repeatable.",
)
@click.option(
    "-n",
    "--num",
    type=click.IntRange(min=1, max=400),
    default=16,
    show_default=True,
    help="Number of images to draw.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for choosing images at random among the matches.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="PNG file to write the grid of images to.",
)
def show(
    file: Path | None,
    data_dir: Path | None,
    conditions: tuple[str, ...],
    num: int,
    seed: int,
    output: Path,
) -> None:
    """Draw random images that match --where filters into a PNG grid."""
    if file is not None and data_dir is not None:
        raise _user_error("give either --file or --data-dir, not both")
    if file is None:
        file = store.default_data_dir(data_dir) / store.DSPRITES_FILENAME
        if not file.exists():
            raise _user_error(
                f"no dSprites file at {file}; run `causalvae data generate` or pass "
                "--file"
            )
    try:
        filters = parse_factor_assignments(conditions)
    except ValueError as error:
        raise _user_error(str(error)) from error

    dataset = _load(file)
    keep = np.ones(len(dataset), dtype=bool)
    for name, class_index in filters.items():
        keep &= dataset.classes[:, FACTOR_NAMES.index(name)] == class_index
    matches = np.flatnonzero(keep)
    if matches.size == 0:
        raise _user_error(
            f"no image in {file} matches {', '.join(conditions)}; loosen the filters"
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(matches, size=min(num, matches.size), replace=False))

    images = np.asarray(dataset.images[chosen])
    titles = [format_factors(classes) for classes in dataset.classes[chosen]]
    _save_grid(output, images, titles)
    click.echo(f"wrote {len(chosen)} of {matches.size} matching images to {output}")


def _save_grid(output: Path, images: np.ndarray, titles: list[str]) -> None:
    """Save images ``(n, 64, 64)`` with one title each as a PNG grid figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(images)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(1.9 * columns, 2.0 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for position, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if position < count:
            axis.imshow(
                images[position], cmap="gray", vmin=0, vmax=1, interpolation="nearest"
            )
            axis.set_title(titles[position], fontsize=6)
    figure.tight_layout()
    try:
        with store.atomic_output(output) as handle:
            figure.savefig(handle, format="png", dpi=100)
    except OSError as error:
        raise _user_error(f"could not write {output}: {error}") from error


def _attach_resample() -> None:
    """Add ``data resample``, which lives beside the other factor-graph commands."""
    from causalvae.cli.graphs import resample_command

    cli.add_command(resample_command, name="resample")


_attach_resample()
