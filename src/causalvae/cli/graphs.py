"""``causalvae graph``: show, validate and query factor graphs; ``data resample``.

A graph is given as a preset name (``chain``, ``fork``, ``hidden``), a ``.toml`` or
``.json`` file, or inline edges such as ``"shape -> scale; scale -> pos_y"``. Factor
classes on the command line are class indices; ``shape`` also takes the names
square, ellipse and heart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from causalvae.cli import UserError
from causalvae.data.spec import FACTOR_NAMES, SHAPE_NAMES, factor_values
from causalvae.exact import conditional, interventional, total_variation
from causalvae.graph import (
    PRESET_NAMES,
    FactorGraph,
    TableMechanism,
    get_preset,
    load_graph,
    parse_class,
    resolve_graph,
)

logger = logging.getLogger(__name__)

GRAPH_HELP = (
    "Preset name (" + ", ".join(PRESET_NAMES) + "), .toml or .json file, or inline "
    "edges such as 'shape -> scale; scale -> pos_y'."
)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _user_errors(function: _Command) -> _Command:
    """Turn invalid graphs, values and files into :class:`UserError`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError) as error:
            raise UserError(str(error)) from error

    return wrapper  # type: ignore[return-value]


def _parse_assignments(
    graph: FactorGraph, items: Sequence[str], option: str
) -> dict[str, int]:
    """Parse ``factor=class`` items; one item may hold several, separated by commas."""
    assignment: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            factor, separator, value = part.partition("=")
            factor = factor.strip()
            if not separator or not value.strip():
                raise UserError(
                    f"invalid {option} {part.strip()!r}; write factor=class, "
                    "e.g. scale=2 or shape=heart"
                )
            if factor in assignment:
                raise UserError(f"{option} sets {factor} twice")
            assignment[factor] = parse_class(graph, factor, value)
    return assignment


# --------------------------------------------------------------------------------------
# causalvae data resample
# --------------------------------------------------------------------------------------


@click.command("resample")
@click.option("--graph", "graph_spec", required=True, help=GRAPH_HELP)
@click.option(
    "-n",
    "--num-units",
    type=click.IntRange(min=1),
    required=True,
    help="Number of units to draw.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output .npz file.",
)
@_user_errors
def resample_command(graph_spec: str, num_units: int, seed: int, output: Path) -> None:
    """Draw units from a causal factor graph and write them with their noise."""
    from causalvae.data.resample import resample, save_resampled

    if output.suffix != ".npz":
        raise UserError(f"output {output} must end in .npz")
    graph = resolve_graph(graph_spec)
    units = resample(graph, num_units, seed)
    path = save_resampled(output, units)
    size_mib = path.stat().st_size / 2**20
    click.echo(f"wrote {units.num_units} units to {path} ({size_mib:.1f} MiB)")
    click.echo(
        f"graph {graph.name or 'unnamed'}: {graph.describe_edges() or 'no edges'}"
    )
    for factor in graph.names:
        if graph.is_independent(factor):
            continue
        counts = np.bincount(units.factor(factor), minlength=graph.size(factor))
        frequencies = counts / units.num_units
        top = int(np.argmax(frequencies))
        label = "hidden " if graph.is_hidden(factor) else ""
        click.echo(
            f"  {label}{factor}: most frequent class {top} "
            f"({frequencies[top]:.1%}), {np.count_nonzero(counts)} of "
            f"{graph.size(factor)} classes seen"
        )


# --------------------------------------------------------------------------------------
# causalvae graph
# --------------------------------------------------------------------------------------


@click.group("graph")
def cli() -> None:
    """Show, validate and query causal factor graphs."""


@cli.command("presets")
def presets_command() -> None:
    """List the preset graphs."""
    for name in PRESET_NAMES:
        graph = get_preset(name)
        click.echo(f"{name}: {graph.describe_edges()}")
        click.echo(f"  {graph.description}")


@cli.command("show")
@click.argument("graph_spec", metavar="GRAPH")
@click.option(
    "--tables", is_flag=True, help="Also print p(factor | parents) for every factor."
)
@_user_errors
def show_command(graph_spec: str, tables: bool) -> None:
    """Print the parents and mechanism of every factor of GRAPH."""
    graph = resolve_graph(graph_spec)
    click.echo(f"graph {graph.name or 'unnamed'}")
    if graph.description:
        click.echo(f"  {graph.description}")
    click.echo(f"edges: {graph.describe_edges() or 'none'}")
    click.echo(f"topological order: {', '.join(graph.topological_order())}")
    for factor in graph.topological_order():
        parents = ", ".join(graph.parents(factor)) or "none"
        kind = "hidden" if graph.is_hidden(factor) else "observed"
        mechanism = graph.mechanism(factor)
        click.echo(
            f"{factor} ({kind}, {graph.size(factor)} classes): parents {parents}; "
            f"{mechanism.describe()}"
        )
        wants_table = tables or isinstance(mechanism, TableMechanism)
        if wants_table and not graph.is_independent(factor):
            _echo_table(graph, factor)


def _echo_table(graph: FactorGraph, factor: str) -> None:
    parents = graph.parents(factor)
    table = graph.prob_table(factor)
    for configuration in np.ndindex(table.shape[:-1]):
        label = ", ".join(
            f"{p}={c}" for p, c in zip(parents, configuration, strict=True)
        )
        row = " ".join(f"{value:.3f}" for value in table[configuration])
        click.echo(f"    {label or 'p'}: {row}")


@cli.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_user_errors
def validate_command(path: Path) -> None:
    """Check the graph file PATH and report the first error."""
    graph = load_graph(path)
    edges = graph.describe_edges() or "no edges"
    click.echo(f"{path}: valid graph {graph.name} ({edges})")


@cli.command("query")
@click.argument("graph_spec", metavar="GRAPH")
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="Factor whose distribution is printed; repeat for several.",
)
@click.option(
    "--do",
    "do_items",
    multiple=True,
    help="Intervention factor=class, e.g. scale=2; repeat for several.",
)
@click.option(
    "--given",
    "given_items",
    multiple=True,
    help="Evidence factor=class, e.g. shape=heart; repeat for several.",
)
@_user_errors
def query_command(
    graph_spec: str,
    targets: tuple[str, ...],
    do_items: tuple[str, ...],
    given_items: tuple[str, ...],
) -> None:
    """Print exact conditional and interventional distributions of targets.

    The conditional column conditions on the --do values as if they were observed,
    p(target | do values, given); the interventional column sets them,
    p(target | do(do values), given). Their total variation shows how much the two
    differ.
    """
    graph = resolve_graph(graph_spec)
    do = _parse_assignments(graph, do_items, "--do")
    given = _parse_assignments(graph, given_items, "--given")
    for factor in do:
        if factor in given:
            raise UserError(f"{factor} is in both --do and --given; keep it in one")
    for target in targets:
        graph.check_factor(target)
        if target in do or target in given:
            raise UserError(f"target {target} is also in --do or --given; drop it")

    for target in targets:
        _echo_query(graph, target, do, given)


def _echo_query(
    graph: FactorGraph, target: str, do: dict[str, int], given: dict[str, int]
) -> None:
    observed = {**do, **given}
    conditional_label = f"p({target}{_condition_text(observed)})"
    try:
        conditioned: np.ndarray | None = conditional(graph, [target], observed)
    except ValueError as error:
        logger.debug("conditional undefined: %s", error)
        conditioned = None
    columns = [(conditional_label, conditioned)]
    if do:
        do_text = "do(" + ", ".join(f"{f}={v}" for f, v in do.items()) + ")"
        given_text = ", ".join(f"{f}={v}" for f, v in given.items())
        condition = ", ".join(part for part in (do_text, given_text) if part)
        intervened = interventional(graph, [target], do, given)
        columns.append((f"p({target} | {condition})", intervened))

    click.echo(f"{target} ({graph.size(target)} classes)")
    for index, (label, values) in enumerate(columns):
        status = "" if values is not None else ": undefined, probability 0"
        click.echo(f"  [{index + 1}] {label}{status}")
    names = _class_names(target, graph.size(target))
    width = max(len("class"), *(len(name) for name in names))
    header = "".join(f"[{i + 1}]".rjust(10) for i in range(len(columns)))
    click.echo(f"  {'class':<{width}}{header}")
    for k in range(graph.size(target)):
        cells = "".join(
            ("-" if values is None else f"{values[k]:.4f}").rjust(10)
            for _, values in columns
        )
        click.echo(f"  {names[k]:<{width}}{cells}")
    if len(columns) == 2 and columns[0][1] is not None:
        distance = total_variation(columns[0][1], columns[1][1])
        click.echo(f"  total variation [1] vs [2]: {distance:.4f}")


def _condition_text(assignment: dict[str, int]) -> str:
    if not assignment:
        return ""
    return " | " + ", ".join(f"{f}={v}" for f, v in assignment.items())


def _class_names(factor: str, size: int) -> list[str]:
    if factor == "shape":
        return [f"{k} {SHAPE_NAMES[k]}" for k in range(size)]
    if factor in FACTOR_NAMES:
        values = factor_values(factor)
        return [f"{k} ({values[k]:.3g})" for k in range(size)]
    return [str(k) for k in range(size)]
