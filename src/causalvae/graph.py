"""Factor graphs: causal DAGs over the dSprites factors, with one mechanism per factor.

A :class:`FactorGraph` contains the five observed factors (``shape``, ``scale``,
``orientation``, ``pos_x``, ``pos_y``) and optionally hidden factors, small categorical
variables that drive observed factors but are never given to a model. Each factor
``f`` has a mechanism, the conditional distribution ``p(f | parents(f))``, which the
structural causal model turns into ``f := argmax(log p(f | parents(f)) + u_f)`` with
``u_f ~ Gumbel(0, 1)^K_f``.

Graphs come from a TOML or JSON file (:func:`load_graph`), an inline edge list such as
``"shape -> scale; scale -> pos_y"`` (:func:`parse_inline`), a named preset
(:func:`get_preset`), or the JSON dictionary stored in a checkpoint
(:meth:`FactorGraph.from_dict`). ``docs/graphs.md`` describes the format.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES, SHAPE_NAMES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_HIDDEN_SIZE = 16
"""Maximum number of classes of a hidden factor. Exact queries enumerate hidden
configurations, so hidden factors are meant to be small."""
DEFAULT_SHIFT_STRENGTH = 0.8
ROW_SUM_TOLERANCE = 1e-6
"""Maximum allowed distance between the sum of a table row and one."""

MechanismKind = Literal["uniform", "table", "shift"]
ShiftDirection = Literal["increasing", "decreasing"]
MECHANISM_KINDS: tuple[str, ...] = ("uniform", "table", "shift")
SHIFT_DIRECTIONS: tuple[str, ...] = ("increasing", "decreasing")

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GraphError(ValueError):
    """An invalid factor graph: a cycle, an unknown factor, a malformed mechanism."""


# --------------------------------------------------------------------------------------
# Mechanisms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UniformMechanism:
    """Mechanism ``p(f = k | parents) = 1 / K`` that ignores the parents."""

    kind: ClassVar[str] = "uniform"

    def validate(
        self, factor: str, parents: Sequence[str], sizes: Sequence[int]
    ) -> None:
        """Accept every configuration: a uniform mechanism has no parameters."""

    def probabilities(self, parent_sizes: Sequence[int], size: int) -> np.ndarray:
        """Return the table ``(*parent_sizes, size)`` of ``p(f | parents)``."""
        return np.full((*parent_sizes, size), 1.0 / size, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, ``{"mechanism": "uniform"}``."""
        return {"mechanism": self.kind}

    def describe(self) -> str:
        """Return a one-line description."""
        return "uniform"


@dataclass(frozen=True, eq=False)
class TableMechanism:
    """Conditional probability table ``p(f | parents)`` given row by row.

    ``table`` has shape ``(*parent_sizes, K)``: one axis per parent in the order of
    the factor's ``parents``, then the factor's own classes. Written as rows, the
    last parent varies fastest (row-major order), so a table with parents
    ``(shape, confounder)`` lists the rows ``(0, 0), (0, 1), (1, 0), ...``. Every row
    must sum to one. Zero entries make a class impossible for that configuration.
    """

    table: np.ndarray
    kind: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        array = np.array(self.table, dtype=np.float64)
        array.setflags(write=False)
        object.__setattr__(self, "table", array)

    def validate(
        self, factor: str, parents: Sequence[str], sizes: Sequence[int]
    ) -> None:
        """Check the table's shape, its entries and its row sums.

        :param factor: the factor that the table belongs to, used in messages.
        :param parents: the factor's parents, in table order.
        :param sizes: the sizes of the parents, then the factor's own size.
        :raises GraphError: on a wrong shape, a negative or non-finite entry, or a
            row that does not sum to one.
        """
        expected = tuple(sizes)
        found = self.table.shape
        if found != expected:
            parent_text = ", ".join(parents) if parents else "none"
            raise GraphError(
                f"table for {factor} has shape {found}; expected {expected} "
                f"(parents: {parent_text}; one axis per parent, then the "
                f"{expected[-1]} classes of {factor})"
            )
        if not np.all(np.isfinite(self.table)) or np.any(self.table < 0):
            raise GraphError(
                f"table for {factor} has negative or non-finite entries; "
                "probabilities must be finite and at least 0"
            )
        row_sums = self.table.sum(axis=-1)
        for configuration in np.ndindex(row_sums.shape):
            total = float(row_sums[configuration])
            if abs(total - 1.0) > ROW_SUM_TOLERANCE:
                raise GraphError(
                    f"row {_format_configuration(parents, configuration)} of the table "
                    f"for {factor} sums to {total:.6g}; each row must sum to 1"
                )

    def probabilities(self, parent_sizes: Sequence[int], size: int) -> np.ndarray:
        """Return the table ``(*parent_sizes, size)`` of ``p(f | parents)``."""
        return self.table / self.table.sum(axis=-1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form with the table as nested lists."""
        return {"mechanism": self.kind, "table": self.table.tolist()}

    def describe(self) -> str:
        """Return a one-line description."""
        return f"table {'x'.join(str(n) for n in self.table.shape)}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableMechanism):
            return NotImplemented
        return self.table.shape == other.table.shape and bool(
            np.array_equal(self.table, other.table)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ShiftMechanism:
    """A discretised bump whose centre moves with the parents' classes.

    For a factor with ``K`` classes and parents ``a_1 .. a_m`` with sizes
    ``K_1 .. K_m``, the centre is ``c = (K - 1) * r`` with
    ``r = mean_i(a_i / (K_i - 1))`` (``1 - r`` when ``direction`` is
    ``"decreasing"``), so the lowest parent classes put the bump on the lowest child
    classes. Then::

        p(f = k | a) = (1 - strength) / K + strength * b_k,
        b_k ∝ exp(-(k - c)^2 / (2 * width^2))

    ``strength`` in ``[0, 1]`` mixes the bump with the uniform distribution (0 makes
    the parents irrelevant). ``width`` is the bump's standard deviation in child
    classes and defaults to ``max(0.5, K / 10)``. Distances are linear, including for
    orientation, whose first and last classes show the same image.
    """

    strength: float = DEFAULT_SHIFT_STRENGTH
    width: float | None = None
    direction: ShiftDirection = "increasing"
    kind: ClassVar[str] = "shift"

    def validate(
        self, factor: str, parents: Sequence[str], sizes: Sequence[int]
    ) -> None:
        """Check the strength, width and direction, and that there is a parent.

        :raises GraphError: when a parameter is out of range or the factor has no
            parent to move the bump.
        """
        if not parents:
            raise GraphError(
                f"the shift mechanism of {factor} needs at least one parent; "
                "add an edge into it or use mechanism 'uniform' or 'table'"
            )
        strength = self.strength
        if isinstance(strength, bool) or not (
            isinstance(strength, int | float) and 0.0 <= strength <= 1.0
        ):
            raise GraphError(
                f"strength of the shift mechanism of {factor} is {strength!r}; "
                "it must be a number in [0, 1]"
            )
        width = self.width
        if width is not None and (
            isinstance(width, bool)
            or not isinstance(width, int | float)
            or not (math.isfinite(width) and width > 0)
        ):
            raise GraphError(
                f"width of the shift mechanism of {factor} is {width!r}; it must be a "
                "positive number of classes, or omitted for the default"
            )
        if self.direction not in SHIFT_DIRECTIONS:
            raise GraphError(
                f"direction of the shift mechanism of {factor} is {self.direction!r}; "
                f"choose one of {', '.join(SHIFT_DIRECTIONS)}"
            )

    def resolved_width(self, size: int) -> float:
        """Return the bump width for a factor with ``size`` classes."""
        return float(self.width) if self.width is not None else max(0.5, size / 10)

    def probabilities(self, parent_sizes: Sequence[int], size: int) -> np.ndarray:
        """Return the table ``(*parent_sizes, size)`` of ``p(f | parents)``."""
        relative = np.zeros(tuple(parent_sizes), dtype=np.float64)
        for axis, parent_size in enumerate(parent_sizes):
            shape = [1] * len(parent_sizes)
            shape[axis] = parent_size
            positions = np.arange(parent_size, dtype=np.float64) / (parent_size - 1)
            relative = relative + positions.reshape(shape)
        relative = relative / len(parent_sizes)
        if self.direction == "decreasing":
            relative = 1.0 - relative
        centre = relative[..., None] * (size - 1)
        classes = np.arange(size, dtype=np.float64)
        width = self.resolved_width(size)
        bump = np.exp(-((classes - centre) ** 2) / (2.0 * width**2))
        bump = bump / bump.sum(axis=-1, keepdims=True)
        return (1.0 - self.strength) / size + self.strength * bump

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form; the width is left out when it is the default."""
        result: dict[str, Any] = {"mechanism": self.kind, "strength": self.strength}
        if self.width is not None:
            result["width"] = self.width
        result["direction"] = self.direction
        return result

    def describe(self) -> str:
        """Return a one-line description."""
        width = "default" if self.width is None else f"{self.width:g}"
        return f"shift (strength {self.strength:g}, width {width}, {self.direction})"


Mechanism = UniformMechanism | TableMechanism | ShiftMechanism

_MECHANISM_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": (),
    "table": ("table",),
    "shift": ("strength", "width", "direction"),
}


def _format_configuration(parents: Sequence[str], configuration: Sequence[int]) -> str:
    if not parents:
        return "(no parents)"
    pairs = ", ".join(f"{p}={c}" for p, c in zip(parents, configuration, strict=True))
    return f"({pairs})"


# --------------------------------------------------------------------------------------
# Nodes and the graph
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorNode:
    """One factor of a graph: its name, classes, parents and mechanism."""

    name: str
    size: int
    parents: tuple[str, ...] = ()
    mechanism: Mechanism | None = None
    hidden: bool = False

    def resolved_mechanism(self) -> Mechanism:
        """Return the mechanism, or the default: shift with parents, else uniform."""
        if self.mechanism is not None:
            return self.mechanism
        return ShiftMechanism() if self.parents else UniformMechanism()


class FactorGraph:
    """A validated causal DAG over the dSprites factors and optional hidden factors.

    Observed factors that the nodes do not mention are independent and uniform.

    :param nodes: the factors with parents or non-default mechanisms, and every hidden
        factor (``hidden=True``).
    :param name: a short name, shown by the CLI and stored in data files.
    :param description: one or two sentences on what the graph models.
    :raises GraphError: on an unknown or duplicate factor, a cycle, a self-loop, a
        hidden factor without children or an invalid mechanism.
    """

    def __init__(
        self, nodes: Iterable[FactorNode], name: str = "", description: str = ""
    ) -> None:
        self.name = name
        self.description = description
        given = list(nodes)
        hidden = [node for node in given if node.hidden]
        _validate_hidden_declarations(hidden)
        self._sizes: dict[str, int] = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))
        self._sizes.update({node.name: node.size for node in hidden})
        self.hidden_names: tuple[str, ...] = tuple(node.name for node in hidden)
        self.names: tuple[str, ...] = FACTOR_NAMES + self.hidden_names

        self._nodes: dict[str, FactorNode] = {
            name: FactorNode(name, size) for name, size in self._sizes.items()
        }
        seen: set[str] = set()
        for node in given:
            self._check_node(node)
            if node.name in seen:
                raise GraphError(f"factor {node.name} is declared twice")
            seen.add(node.name)
            self._nodes[node.name] = FactorNode(
                node.name,
                self._sizes[node.name],
                tuple(node.parents),
                self._reshape_rows(node),
                node.hidden,
            )
        self._children: dict[str, list[str]] = {name: [] for name in self.names}
        for node in self._nodes.values():
            for parent in node.parents:
                self._children[parent].append(node.name)
        self._order = self._topological_sort()
        self._validate_mechanisms()
        for hidden_name in self.hidden_names:
            if not self._children[hidden_name]:
                raise GraphError(
                    f"hidden factor {hidden_name} has no children; a hidden factor "
                    "must drive at least one factor, so add an edge from it or "
                    "remove it"
                )
        self._log_tables: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- validation

    def _check_node(self, node: FactorNode) -> None:
        if node.name not in self._sizes:
            raise GraphError(
                f"unknown factor {node.name!r}; known factors: {self._known_text()}; "
                "declare hidden factors with their size"
            )
        if node.hidden != (node.name in self.hidden_names):
            raise GraphError(f"factor {node.name} is declared twice")
        if not node.hidden and node.size != self._sizes[node.name]:
            raise GraphError(
                f"factor {node.name} has {self._sizes[node.name]} classes, "
                f"not {node.size}"
            )
        seen: set[str] = set()
        for parent in node.parents:
            if parent == node.name:
                raise GraphError(
                    f"self-loop on {parent} ({parent} -> {parent}); a factor cannot "
                    "be its own parent"
                )
            if parent not in self._sizes:
                raise GraphError(
                    f"unknown factor {parent!r} (a parent of {node.name}); known "
                    f"factors: {self._known_text()}"
                )
            if parent in seen:
                raise GraphError(f"duplicate edge {parent} -> {node.name}")
            seen.add(parent)

    def _reshape_rows(self, node: FactorNode) -> Mechanism | None:
        # A table may list one row per parent configuration, (rows, K), in place of
        # one axis per parent; rows are then in row-major order.
        mechanism = node.mechanism
        parent_sizes = tuple(self._sizes[p] for p in node.parents)
        if isinstance(mechanism, TableMechanism) and len(parent_sizes) > 1:
            rows = (math.prod(parent_sizes), self._sizes[node.name])
            if mechanism.table.shape == rows:
                return TableMechanism(mechanism.table.reshape(*parent_sizes, rows[1]))
        return mechanism

    def _known_text(self) -> str:
        return ", ".join(self._sizes)

    def _topological_sort(self) -> tuple[str, ...]:
        rank = {name: i for i, name in enumerate(self.names)}
        indegree = {name: len(self._nodes[name].parents) for name in self.names}
        ready = sorted((n for n, d in indegree.items() if d == 0), key=rank.__getitem__)
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for child in self._children[name]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
                    ready.sort(key=rank.__getitem__)
        if len(order) < len(self.names):
            cycle = self._find_cycle(set(self.names) - set(order))
            raise GraphError(
                f"the graph has a cycle: {' -> '.join(cycle)}; remove one of its edges"
            )
        return tuple(order)

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        # Every factor left after Kahn's algorithm has a parent that is also left, so
        # walking parents from any of them must revisit a factor.
        start = min(remaining, key=self.names.index)
        path = [start]
        while True:
            parent = next(p for p in self._nodes[path[-1]].parents if p in remaining)
            if parent in path:
                cycle = [*path[path.index(parent) :], parent]
                return list(reversed(cycle))
            path.append(parent)

    def _validate_mechanisms(self) -> None:
        for name in self.names:
            node = self._nodes[name]
            sizes = [self._sizes[p] for p in node.parents] + [node.size]
            node.resolved_mechanism().validate(name, node.parents, sizes)

    # ---------------------------------------------------------------- structure

    def size(self, factor: str) -> int:
        """Return the number of classes of ``factor``."""
        self._require(factor)
        return self._sizes[factor]

    @property
    def sizes(self) -> dict[str, int]:
        """Number of classes of every factor, observed then hidden."""
        return dict(self._sizes)

    def is_hidden(self, factor: str) -> bool:
        """Return whether ``factor`` is a hidden factor."""
        self._require(factor)
        return self._nodes[factor].hidden

    def parents(self, factor: str) -> tuple[str, ...]:
        """Return the parents of ``factor``, in the order of its table's axes."""
        self._require(factor)
        return self._nodes[factor].parents

    def children(self, factor: str) -> tuple[str, ...]:
        """Return the children of ``factor``, in topological order."""
        self._require(factor)
        children = set(self._children[factor])
        return tuple(name for name in self._order if name in children)

    def ancestors(self, factor: str) -> frozenset[str]:
        """Return every factor with a directed path to ``factor`` (not itself)."""
        self._require(factor)
        return frozenset(self._walk(factor, lambda name: self._nodes[name].parents))

    def descendants(self, factor: str) -> frozenset[str]:
        """Return every factor reached by a directed path from ``factor``."""
        self._require(factor)
        return frozenset(self._walk(factor, lambda name: self._children[name]))

    def _walk(self, start: str, step: Callable[[str], Iterable[str]]) -> set[str]:
        found: set[str] = set()
        frontier = list(step(start))
        while frontier:
            name = frontier.pop()
            if name not in found:
                found.add(name)
                frontier.extend(step(name))
        return found

    def topological_order(self) -> tuple[str, ...]:
        """Return all factors, parents before children, ties in canonical order."""
        return self._order

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """All edges ``(parent, child)``, children in topological order."""
        return tuple(
            (parent, child)
            for child in self._order
            for parent in self._nodes[child].parents
        )

    def mechanism(self, factor: str) -> Mechanism:
        """Return the mechanism of ``factor``, defaults filled in."""
        self._require(factor)
        return self._nodes[factor].resolved_mechanism()

    def log_prob_table(self, factor: str) -> np.ndarray:
        """Return ``log p(factor | parents)``, float64 ``(*parent_sizes, K)``.

        Axes follow :meth:`parents`, then the factor's classes. Impossible classes
        are ``-inf``. The array is cached and read-only.
        """
        self._require(factor)
        if factor not in self._log_tables:
            node = self._nodes[factor]
            parent_sizes = [self._sizes[p] for p in node.parents]
            probabilities = self.mechanism(factor).probabilities(
                parent_sizes, node.size
            )
            with np.errstate(divide="ignore"):
                table = np.log(probabilities)
            table.setflags(write=False)
            self._log_tables[factor] = table
        return self._log_tables[factor]

    def prob_table(self, factor: str) -> np.ndarray:
        """Return ``p(factor | parents)`` of shape ``(*parent_sizes, K)``."""
        return np.exp(self.log_prob_table(factor))

    def is_independent(self, factor: str) -> bool:
        """Return whether ``factor`` has no parents, no children and a uniform law."""
        self._require(factor)
        node = self._nodes[factor]
        return (
            not node.parents
            and not self._children[factor]
            and isinstance(node.resolved_mechanism(), UniformMechanism)
        )

    def check_factor(self, factor: str) -> None:
        """Raise :class:`GraphError`, listing the known factors, for an unknown one."""
        self._require(factor)

    def _require(self, factor: str) -> None:
        if factor not in self._sizes:
            raise GraphError(
                f"unknown factor {factor!r}; known factors: {self._known_text()}"
            )

    def check_class(self, factor: str, value: int) -> int:
        """Return ``value`` as an int, or raise :class:`GraphError` if out of range."""
        size = self.size(factor)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise GraphError(
                f"class of {factor} must be an integer in 0..{size - 1}, got {value!r}"
            )
        if not 0 <= int(value) < size:
            raise GraphError(
                f"class {value} of {factor} is out of range; {factor} has classes "
                f"0..{size - 1}"
            )
        return int(value)

    def describe_edges(self) -> str:
        """Return the edges in inline syntax, hidden factors with their size."""
        declared: set[str] = set()

        def label(name: str) -> str:
            if name in self.hidden_names and name not in declared:
                declared.add(name)
                return f"{name}[{self._sizes[name]}]"
            return name

        return "; ".join(f"{label(p)} -> {label(c)}" for p, c in self.edges)

    # ---------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-compatible form that :meth:`from_dict` reads back.

        Observed factors without parents and with a uniform mechanism are left out.
        """
        hidden: dict[str, Any] = {}
        for name in self.hidden_names:
            hidden[name] = {"size": self._sizes[name], **self._node_dict(name)}
        factors: dict[str, Any] = {}
        for name in FACTOR_NAMES:
            node = self._nodes[name]
            if node.parents or node.mechanism is not None:
                factors[name] = self._node_dict(name)
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "description": self.description,
            "hidden": hidden,
            "factors": factors,
        }

    def _node_dict(self, name: str) -> dict[str, Any]:
        node = self._nodes[name]
        result: dict[str, Any] = {"parents": list(node.parents)}
        if node.mechanism is not None:
            result.update(node.mechanism.to_dict())
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FactorGraph:
        """Build a graph from the dictionary form (the parsed TOML or JSON file).

        :raises GraphError: on unknown keys or any invalid content.
        """
        return _graph_from_dict(data)

    def to_json(self) -> str:
        """Return :meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> FactorGraph:
        """Build a graph from the JSON string written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise GraphError(f"invalid graph JSON: {error}") from error
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FactorGraph):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        label = self.name or "unnamed"
        return f"FactorGraph({label!r}: {self.describe_edges() or 'no edges'})"


def _validate_hidden_declarations(hidden: Sequence[FactorNode]) -> None:
    names: set[str] = set()
    for node in hidden:
        if node.name in FACTOR_NAMES:
            raise GraphError(
                f"hidden factor {node.name!r} has the name of an observed factor; "
                f"observed factors are {', '.join(FACTOR_NAMES)}, so choose another "
                "name"
            )
        if not _NAME_PATTERN.match(node.name):
            raise GraphError(
                f"hidden factor name {node.name!r} is invalid; use letters, digits "
                "and underscores, starting with a letter"
            )
        if node.name in names:
            raise GraphError(f"hidden factor {node.name} is declared twice")
        names.add(node.name)
        size = node.size
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not (2 <= size <= MAX_HIDDEN_SIZE)
        ):
            raise GraphError(
                f"hidden factor {node.name} has size {size!r}; the size must be an "
                f"integer from 2 to {MAX_HIDDEN_SIZE}"
            )


# --------------------------------------------------------------------------------------
# Parsing: dictionaries, files, inline edges
# --------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = (
    "format_version",
    "name",
    "description",
    "edges",
    "hidden",
    "factors",
)
_NODE_KEYS = ("parents", "mechanism", "size")


def _graph_from_dict(data: Mapping[str, Any]) -> FactorGraph:
    if not isinstance(data, Mapping):
        raise GraphError(f"a graph must be a table of keys, got {type(data).__name__}")
    _check_keys(data, _TOP_LEVEL_KEYS, "the graph")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise GraphError(
            f"graph format_version {version!r} is not supported; this version of "
            f"causalvae reads format_version {FORMAT_VERSION}"
        )
    name = _expect_str(data.get("name", ""), "name")
    description = _expect_str(data.get("description", ""), "description")

    hidden_sizes: dict[str, int] = {}
    hidden_sections = _expect_mapping(data.get("hidden", {}), "hidden")
    for hidden_name, section in hidden_sections.items():
        section = _expect_mapping(section, f"hidden.{hidden_name}")
        if "size" not in section:
            raise GraphError(
                f"hidden factor {hidden_name} has no size; add e.g. size = 2"
            )
        hidden_sizes[hidden_name] = section["size"]

    edge_parents: dict[str, list[str]] = {}
    if "edges" in data:
        edges_text = data["edges"]
        if isinstance(edges_text, list):
            edges_text = "; ".join(_expect_str(e, "edges") for e in edges_text)
        edges_text = _expect_str(edges_text, "edges")
        hidden_sizes, edge_parents = _parse_edges(edges_text, hidden_sizes)

    factor_sections = _expect_mapping(data.get("factors", {}), "factors")
    sections: dict[str, tuple[Mapping[str, Any], str]] = {}
    for factor, section in factor_sections.items():
        where = f"factors.{factor}"
        sections[factor] = (_expect_mapping(section, where), where)
    for hidden_name, section in hidden_sections.items():
        if hidden_name in sections:
            raise GraphError(
                f"{hidden_name} appears both in [factors] and in [hidden]; declare "
                "it in one place"
            )
        sections[hidden_name] = (section, f"hidden.{hidden_name}")
    for factor in [*edge_parents, *hidden_sizes]:
        sections.setdefault(factor, ({}, "edges"))

    nodes = []
    for factor, (section, where) in sections.items():
        nodes.append(
            _node_from_section(
                factor, section, where, hidden_sizes, edge_parents.get(factor)
            )
        )
    return FactorGraph(nodes, name=name, description=description)


def _node_from_section(
    factor: str,
    section: Mapping[str, Any],
    where: str,
    hidden_sizes: Mapping[str, int],
    edge_parents: list[str] | None,
) -> FactorNode:
    if factor not in FACTOR_NAMES and factor not in hidden_sizes:
        raise GraphError(
            f"unknown factor {factor!r}; known factors: "
            f"{', '.join(FACTOR_NAMES + tuple(hidden_sizes))}; declare a hidden "
            f"factor as [hidden.{factor}] with a size"
        )
    is_hidden = factor in hidden_sizes

    # Shift parameters without a mechanism name select the shift mechanism.
    kind = section.get("mechanism")
    if kind is None and any(key in section for key in _MECHANISM_KEYS["shift"]):
        kind = "shift"
    if kind is not None and kind not in MECHANISM_KINDS:
        raise GraphError(
            f"unknown mechanism {kind!r} for {factor}; choose one of "
            f"{', '.join(MECHANISM_KINDS)}"
        )
    allowed = _NODE_KEYS + (_MECHANISM_KEYS[kind] if kind else ())
    _check_keys(section, allowed, f"[{where}]")
    if not is_hidden and "size" in section:
        raise GraphError(
            f"[{where}] sets a size, but the size of observed factor {factor} is "
            "fixed by dSprites; remove it"
        )

    if "parents" in section:
        parents = section["parents"]
        if not isinstance(parents, list) or not all(
            isinstance(p, str) for p in parents
        ):
            raise GraphError(f"parents of {factor} must be a list of factor names")
        if edge_parents:
            raise GraphError(
                f"the parents of {factor} are given twice, in edges and in [{where}]; "
                "give them in one place"
            )
    else:
        parents = edge_parents or []

    size = (
        hidden_sizes[factor] if is_hidden else FACTOR_SIZES[FACTOR_NAMES.index(factor)]
    )
    mechanism = _mechanism_from(kind, section)
    return FactorNode(factor, size, tuple(parents), mechanism, is_hidden)


def _mechanism_from(kind: str | None, section: Mapping[str, Any]) -> Mechanism | None:
    if kind is None:
        return None
    if kind == "uniform":
        return UniformMechanism()
    if kind == "table":
        if "table" not in section:
            raise GraphError("mechanism 'table' needs a key 'table' with the rows")
        try:
            return TableMechanism(np.asarray(section["table"], dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise GraphError(
                "a table must be nested lists of numbers with equal row lengths; "
                f"got {section['table']!r:.80}"
            ) from error
    return ShiftMechanism(
        strength=section.get("strength", DEFAULT_SHIFT_STRENGTH),
        width=section.get("width"),
        direction=section.get("direction", "increasing"),
    )


def _check_keys(section: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in section if key not in allowed]
    if unknown:
        raise GraphError(
            f"unknown key {unknown[0]!r} in {where}; allowed keys: {', '.join(allowed)}"
        )


def _expect_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise GraphError(f"{key} must be a string, got {value!r}")
    return value


def _expect_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GraphError(f"{key} must be a table of keys, got {value!r}")
    return value


_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[\s*(\d+)\s*\])?$")


def _parse_edges(
    text: str, declared: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Parse ``a -> b -> c; a -> d, e`` into hidden sizes and parents per child.

    ``declared`` contains the hidden factors declared elsewhere, with their sizes.
    """
    hidden: dict[str, int] = dict(declared)
    parents: dict[str, list[str]] = {}
    statements = [s.strip() for s in re.split(r"[;\n]", text) if s.strip()]
    for statement in statements:
        groups = [part.strip() for part in statement.split("->")]
        if len(groups) < 2 or not all(groups):
            raise GraphError(
                f"invalid edge statement {statement!r}; write edges as "
                "'parent -> child', e.g. 'shape -> scale; scale -> pos_y'"
            )
        names_per_group = [
            [_parse_token(token, statement, hidden) for token in group.split(",")]
            for group in groups
        ]
        for sources, targets in itertools.pairwise(names_per_group):
            for target in targets:
                for source in sources:
                    known = parents.setdefault(target, [])
                    if source in known:
                        raise GraphError(f"duplicate edge {source} -> {target}")
                    known.append(source)
    return hidden, parents


def _parse_token(token: str, statement: str, hidden: dict[str, int]) -> str:
    match = _TOKEN.match(token.strip())
    if match is None:
        raise GraphError(
            f"invalid factor {token.strip()!r} in {statement!r}; use a factor name, "
            "or name[K] to declare a hidden factor with K classes"
        )
    name, size_text = match.groups()
    if size_text is not None:
        size = int(size_text)
        if hidden.setdefault(name, size) != size:
            raise GraphError(
                f"hidden factor {name} is declared with sizes {hidden[name]} and {size}"
            )
    elif name not in FACTOR_NAMES and name not in hidden:
        raise GraphError(
            f"unknown factor {name!r} in {statement!r}; known factors: "
            f"{', '.join(FACTOR_NAMES + tuple(hidden))}; declare a hidden factor "
            f"with its size at its first use, e.g. {name}[2]"
        )
    return name


def parse_inline(text: str, name: str = "", description: str = "") -> FactorGraph:
    """Build a graph from inline edges such as ``"shape -> scale; scale -> pos_y"``.

    Statements are separated by ``;`` or newlines. A statement may chain edges
    (``shape -> scale -> pos_y``) and list several factors separated by commas
    (``shape -> scale, pos_x``). A hidden factor is declared with its number of
    classes at its first use, e.g. ``confounder[2] -> scale; confounder -> pos_x``.
    Factors with parents get a shift mechanism of strength
    :data:`DEFAULT_SHIFT_STRENGTH`, and the others are uniform.

    :raises GraphError: on malformed statements, unknown factors or an invalid graph.
    """
    return _graph_from_dict(
        {"name": name, "description": description, "edges": _expect_str(text, "edges")}
    )


def load_graph(path: str | Path) -> FactorGraph:
    """Read a graph from a ``.toml`` or ``.json`` file.

    :raises GraphError: when the file is missing, cannot be parsed or is invalid.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise GraphError(
            f"cannot read graph file {path}: unsupported extension {path.suffix!r}; "
            "use .toml or .json"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise GraphError(f"cannot read graph file {path}: {error.strerror}") from error
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise GraphError(f"invalid JSON in {path}: {error}") from error
    else:
        data = _parse_toml(text, path)
    try:
        graph = _graph_from_dict(data)
    except GraphError as error:
        raise GraphError(f"{path}: {error}") from error
    if not graph.name:
        graph.name = path.stem
    logger.debug(
        "loaded graph %s from %s: %s", graph.name, path, graph.describe_edges()
    )
    return graph


def _parse_toml(text: str, path: Path) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError as error:  # Python 3.10
        raise GraphError(
            f"cannot read {path}: TOML needs Python 3.11 or later; use a .json file"
        ) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GraphError(f"invalid TOML in {path}: {error}") from error


# --------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------

# Sharp mechanisms on the edges that counterfactuals follow nearly fix a unit's
# counterfactual given its factors. ``chain`` maps shape to scale by a table, because a
# shift would split ellipses between scales 2 and 3, which lie six pos_y classes apart.
_SHARP_SHIFT: dict[str, Any] = {"mechanism": "shift", "strength": 0.98, "width": 0.3}

_PRESET_DICTS: dict[str, dict[str, Any]] = {
    "chain": {
        "name": "chain",
        "description": (
            "Chain shape -> scale -> pos_y: squares mostly have scale 1, ellipses "
            "scale 3 and hearts scale 5, and larger sprites sit lower. Conditioning "
            "on scale changes the belief about shape, but intervening on scale does "
            "not."
        ),
        "factors": {
            "scale": {
                "parents": ["shape"],
                "mechanism": "table",
                "table": [
                    [0.01, 0.95, 0.01, 0.01, 0.01, 0.01],
                    [0.01, 0.01, 0.01, 0.95, 0.01, 0.01],
                    [0.01, 0.01, 0.01, 0.01, 0.01, 0.95],
                ],
            },
            "pos_y": {"parents": ["scale"], **_SHARP_SHIFT},
        },
    },
    "fork": {
        "name": "fork",
        "description": (
            "Confounded fork: shape drives both scale and pos_x, which have no "
            "causal link, so conditioning on scale moves pos_x but intervening "
            "does not."
        ),
        "factors": {
            "scale": {"parents": ["shape"], **_SHARP_SHIFT},
            "pos_x": {"parents": ["shape"], **_SHARP_SHIFT},
        },
    },
    "hidden": {
        "name": "hidden",
        "description": (
            "A binary hidden confounder drives shape and scale, which have no causal "
            "link, and shape drives pos_x. Conditioning on shape moves scale but "
            "intervening does not. The effect of shape on pos_x is unconfounded, so "
            "its interventions and counterfactuals are identifiable from the "
            "observed factors."
        ),
        "hidden": {"confounder": {"size": 2}},
        "factors": {
            "shape": {"parents": ["confounder"], "mechanism": "shift", "strength": 0.9},
            "scale": {"parents": ["confounder"], "mechanism": "shift", "strength": 0.9},
            "pos_x": {"parents": ["shape"], **_SHARP_SHIFT},
        },
    },
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESET_DICTS)
PresetName = Literal["chain", "fork", "hidden"]


def get_preset(name: PresetName | str) -> FactorGraph:
    """Return the preset graph called ``name``.

    :raises GraphError: listing the presets when ``name`` is not one of them.
    """
    if name not in _PRESET_DICTS:
        raise GraphError(f"unknown preset {name!r}; presets: {', '.join(PRESET_NAMES)}")
    return _graph_from_dict(_PRESET_DICTS[name])


def resolve_graph(spec: str | Path) -> FactorGraph:
    """Return the graph named by ``spec``: a preset, a file path or inline edges.

    :raises GraphError: when ``spec`` is none of these or the graph is invalid.
    """
    text = str(spec)
    if text in _PRESET_DICTS:
        return get_preset(text)
    path = Path(text)
    if path.suffix.lower() in (".toml", ".json") or path.exists():
        return load_graph(path)
    if "->" in text:
        return parse_inline(text)
    raise GraphError(
        f"{text!r} is not a preset, a graph file or inline edges; presets: "
        f"{', '.join(PRESET_NAMES)}; files end in .toml or .json; inline edges look "
        "like 'shape -> scale; scale -> pos_y'"
    )


def parse_class(graph: FactorGraph, factor: str, text: str) -> int:
    """Parse a class index of ``factor`` from text; ``shape`` also accepts its names.

    :raises GraphError: on an unknown factor, a non-integer or an out-of-range class.
    """
    graph.check_factor(factor)
    cleaned = text.strip()
    if factor == "shape" and cleaned.lower() in SHAPE_NAMES:
        return SHAPE_NAMES.index(cleaned.lower())
    try:
        value = int(cleaned)
    except ValueError:
        allowed = f"0..{graph.size(factor) - 1}"
        if factor == "shape":
            allowed += f" or one of {', '.join(SHAPE_NAMES)}"
        raise GraphError(
            f"invalid class {text!r} for {factor}; use a class index {allowed}"
        ) from None
    return graph.check_class(factor, value)
