"""Factor graphs: parsing, structure, mechanisms, serialisation and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causalvae.data.spec import FACTOR_NAMES, FACTOR_SIZES
from causalvae.graph import (
    DEFAULT_SHIFT_STRENGTH,
    PRESET_NAMES,
    FactorGraph,
    FactorNode,
    GraphError,
    ShiftMechanism,
    TableMechanism,
    UniformMechanism,
    get_preset,
    load_graph,
    parse_class,
    parse_inline,
    resolve_graph,
)

SIZES = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))

EXAMPLE_TOML = """
name = "example"
description = "A hidden factor drives shape and scale; scale drives pos_y."

[hidden.mood]
size = 2
mechanism = "table"
table = [0.25, 0.75]

[factors.shape]
parents = ["mood"]
mechanism = "table"
table = [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]

[factors.scale]
parents = ["mood", "shape"]
mechanism = "shift"
strength = 0.5
width = 1.5
direction = "decreasing"

[factors.pos_y]
parents = ["scale"]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ presets


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_is_valid_and_round_trips(name: str) -> None:
    graph = get_preset(name)
    assert graph.name == name
    assert graph.description
    assert FactorGraph.from_dict(graph.to_dict()) == graph
    assert FactorGraph.from_json(graph.to_json()) == graph


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_tables_are_normalised(name: str) -> None:
    graph = get_preset(name)
    for factor in graph.names:
        table = graph.prob_table(factor)
        expected_shape = (*(graph.size(p) for p in graph.parents(factor)),)
        assert table.shape == (*expected_shape, graph.size(factor))
        np.testing.assert_allclose(table.sum(axis=-1), 1.0, atol=1e-12)


def test_preset_structures() -> None:
    assert get_preset("chain").edges == (("shape", "scale"), ("scale", "pos_y"))
    assert set(get_preset("fork").children("shape")) == {"scale", "pos_x"}
    hidden = get_preset("hidden")
    assert hidden.hidden_names == ("confounder",)
    assert set(hidden.children("confounder")) == {"shape", "scale"}
    assert hidden.parents("pos_x") == ("shape",)
    assert hidden.parents("scale") == ("confounder",)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_edges_are_unconfounded(name: str) -> None:
    # A hidden parent shared by both ends of an observed edge would make the edge's
    # interventional distribution unidentifiable from the observed factors.
    graph = get_preset(name)
    for parent, child in graph.edges:
        if graph.is_hidden(parent) or graph.is_hidden(child):
            continue
        shared = set(graph.parents(parent)) & set(graph.parents(child))
        assert not {h for h in shared if graph.is_hidden(h)}


def test_hidden_preset_condition_and_do_differ() -> None:
    from causalvae.exact import conditional, interventional, total_variation

    graph = get_preset("hidden")
    for value in (0, 2):
        seen = conditional(graph, ["scale"], {"shape": value})
        done = interventional(graph, ["scale"], {"shape": value})
        assert total_variation(seen, done) > 0.3
        seen = conditional(graph, ["pos_x"], {"shape": value})
        done = interventional(graph, ["pos_x"], {"shape": value})
        assert total_variation(seen, done) < 1e-12


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(GraphError, match="presets: chain, fork, hidden"):
        get_preset("collider")


# ------------------------------------------------------------------ structure


def test_structure_queries() -> None:
    graph = parse_inline("h[3] -> shape, scale; shape -> pos_y -> orientation")
    assert graph.hidden_names == ("h",)
    assert graph.is_hidden("h")
    assert not graph.is_hidden("shape")
    assert graph.parents("pos_y") == ("shape",)
    assert graph.children("h") == ("shape", "scale")
    assert graph.ancestors("orientation") == {"pos_y", "shape", "h"}
    assert graph.descendants("h") == {"shape", "scale", "pos_y", "orientation"}
    assert graph.descendants("orientation") == frozenset()
    assert graph.ancestors("pos_x") == frozenset()
    assert graph.is_independent("pos_x")
    assert not graph.is_independent("scale")


def test_topological_order_puts_parents_first() -> None:
    graph = parse_inline("pos_y -> scale -> shape; orientation -> shape")
    order = graph.topological_order()
    assert sorted(order) == sorted(graph.names)
    for parent, child in graph.edges:
        assert order.index(parent) < order.index(child)


def test_unlisted_observed_factors_are_uniform_roots() -> None:
    graph = parse_inline("shape -> scale")
    for factor in ("orientation", "pos_x", "pos_y", "shape"):
        assert graph.parents(factor) == ()
        assert isinstance(graph.mechanism(factor), UniformMechanism)
        np.testing.assert_allclose(graph.prob_table(factor), 1.0 / SIZES[factor])


def test_inline_edges_get_default_shift() -> None:
    graph = parse_inline("shape -> scale")
    mechanism = graph.mechanism("scale")
    assert isinstance(mechanism, ShiftMechanism)
    assert mechanism.strength == DEFAULT_SHIFT_STRENGTH


def test_inline_chain_equals_separate_edges() -> None:
    chained = parse_inline("shape -> scale -> pos_y")
    separate = parse_inline("shape -> scale\nscale -> pos_y")
    assert chained == separate


def test_log_prob_table_shape_and_order() -> None:
    graph = parse_inline("shape -> pos_x; scale -> pos_x")
    table = graph.log_prob_table("pos_x")
    assert table.shape == (3, 6, 32)
    assert table.dtype == np.float64
    assert not table.flags.writeable
    np.testing.assert_allclose(np.exp(table).sum(axis=-1), 1.0)


def test_zero_table_entries_become_minus_infinity() -> None:
    graph = FactorGraph(
        [FactorNode("shape", 3, (), TableMechanism(np.array([0.5, 0.5, 0.0])))]
    )
    table = graph.log_prob_table("shape")
    assert table[2] == -np.inf
    assert table[0] == pytest.approx(np.log(0.5))


# ------------------------------------------------------------------ mechanisms


def test_shift_centre_moves_with_parent() -> None:
    table = ShiftMechanism(strength=1.0).probabilities([3], 6)
    modes = table.argmax(axis=-1)
    assert modes.tolist() == [0, 2, 5] or modes.tolist() == [0, 3, 5]
    assert np.all(np.diff(modes) > 0)


def test_shift_decreasing_reverses_direction() -> None:
    increasing = ShiftMechanism(strength=0.9).probabilities([6], 32)
    decreasing = ShiftMechanism(strength=0.9, direction="decreasing").probabilities(
        [6], 32
    )
    np.testing.assert_allclose(decreasing, increasing[::-1])


def test_shift_strength_zero_is_uniform() -> None:
    table = ShiftMechanism(strength=0.0).probabilities([3, 2], 6)
    np.testing.assert_allclose(table, 1.0 / 6)


def test_shift_mixes_bump_with_uniform() -> None:
    strong = ShiftMechanism(strength=1.0, width=2.0).probabilities([2], 32)
    half = ShiftMechanism(strength=0.5, width=2.0).probabilities([2], 32)
    np.testing.assert_allclose(half, 0.5 / 32 + 0.5 * strong)


@settings(max_examples=40, deadline=None)
@given(
    strength=st.floats(0.0, 1.0),
    width=st.one_of(st.none(), st.floats(0.05, 50.0)),
    parent_sizes=st.lists(st.integers(2, 6), min_size=1, max_size=3),
    size=st.integers(2, 40),
    direction=st.sampled_from(["increasing", "decreasing"]),
)
def test_shift_rows_are_distributions(
    strength: float,
    width: float | None,
    parent_sizes: list[int],
    size: int,
    direction: str,
) -> None:
    mechanism = ShiftMechanism(strength, width, direction)  # type: ignore[arg-type]
    table = mechanism.probabilities(parent_sizes, size)
    assert table.shape == (*parent_sizes, size)
    assert np.all(table >= 0)
    np.testing.assert_allclose(table.sum(axis=-1), 1.0, atol=1e-12)


def test_table_rows_may_be_flat() -> None:
    graph = FactorGraph.from_dict(
        {
            "hidden": {"h": {"size": 2}},
            "factors": {
                "shape": {
                    "parents": ["h", "pos_y"],
                    "mechanism": "table",
                    "table": np.full((64, 3), 1 / 3).tolist(),
                },
                "scale": {"parents": ["h"], "mechanism": "uniform"},
            },
        }
    )
    assert graph.prob_table("shape").shape == (2, 32, 3)


def test_table_row_order_is_row_major() -> None:
    # Rows in order (h=0, pos=0), (h=0, pos=1), (h=1, pos=0), ...: the last parent
    # varies fastest.
    rows = np.zeros((2 * 32, 3))
    rows[:, 0] = 1.0
    rows[1] = [0.0, 1.0, 0.0]
    rows[32] = [0.0, 0.0, 1.0]
    graph = FactorGraph.from_dict(
        {
            "hidden": {"h": {"size": 2}},
            "factors": {
                "shape": {
                    "parents": ["h", "pos_y"],
                    "mechanism": "table",
                    "table": rows.tolist(),
                }
            },
        }
    )
    table = graph.prob_table("shape")
    assert table[0, 1].tolist() == [0.0, 1.0, 0.0]
    assert table[1, 0].tolist() == [0.0, 0.0, 1.0]
    assert table[1, 1].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------ files


def test_load_toml_file(tmp_path: Path) -> None:
    graph = load_graph(_write(tmp_path, "example.toml", EXAMPLE_TOML))
    assert graph.name == "example"
    assert graph.hidden_names == ("mood",)
    assert graph.parents("scale") == ("mood", "shape")
    np.testing.assert_allclose(graph.prob_table("mood"), [0.25, 0.75])
    np.testing.assert_allclose(graph.prob_table("shape")[1], [0.0, 0.5, 0.5])
    mechanism = graph.mechanism("scale")
    assert mechanism == ShiftMechanism(0.5, 1.5, "decreasing")
    assert isinstance(graph.mechanism("pos_y"), ShiftMechanism)


def test_toml_and_json_files_agree(tmp_path: Path) -> None:
    from_toml = load_graph(_write(tmp_path, "example.toml", EXAMPLE_TOML))
    json_path = _write(tmp_path, "example.json", from_toml.to_json())
    assert load_graph(json_path) == from_toml


def test_file_name_is_default_graph_name(tmp_path: Path) -> None:
    graph = load_graph(_write(tmp_path, "mine.toml", 'edges = "shape -> scale"\n'))
    assert graph.name == "mine"


def test_edges_key_in_file(tmp_path: Path) -> None:
    text = 'edges = "u[2] -> scale; u -> pos_x"\n[factors.pos_x]\nmechanism = "shift"\n'
    text += "strength = 0.3\n"
    graph = load_graph(_write(tmp_path, "edges.toml", text))
    assert graph.parents("pos_x") == ("u",)
    assert graph.mechanism("pos_x") == ShiftMechanism(strength=0.3)


def test_round_trip_keeps_tables_exactly() -> None:
    table = np.array([[1 / 3, 1 / 3, 1 / 3], [0.1, 0.2, 0.7], [0.0, 0.0, 1.0]])
    graph = FactorGraph.from_dict(
        {
            "hidden": {"h": {"size": 3}},
            "factors": {
                "shape": {"parents": ["h"], "mechanism": "table", "table": table}
            },
        }
    )
    restored = FactorGraph.from_json(graph.to_json())
    assert restored == graph
    assert np.array_equal(restored.prob_table("shape"), graph.prob_table("shape"))


@st.composite
def random_graphs(draw: st.DrawFn) -> dict[str, object]:
    num_hidden = draw(st.integers(0, 2))
    hidden = [f"h{i}" for i in range(num_hidden)]
    order = draw(st.permutations(list(FACTOR_NAMES)))
    names = hidden + list(order)
    parents: dict[str, list[str]] = {}
    for position, name in enumerate(names):
        candidates = names[:position]
        if candidates:
            parent_lists = st.lists(
                st.sampled_from(candidates), unique=True, max_size=2
            )
            parents[name] = draw(parent_lists)
    for hidden_name in hidden:
        later = [n for n in names if n not in hidden]
        child = draw(st.sampled_from(later))
        if hidden_name not in parents.setdefault(child, []):
            parents[child].append(hidden_name)
    factors: dict[str, object] = {}
    for name in order:
        section: dict[str, object] = {"parents": parents.get(name, [])}
        if section["parents"]:
            section["mechanism"] = "shift"
            section["strength"] = draw(st.floats(0.0, 1.0))
        factors[name] = section
    hidden_sections = {
        name: {"size": draw(st.integers(2, 4)), "parents": parents.get(name, [])}
        for name in hidden
    }
    return {"name": "random", "hidden": hidden_sections, "factors": factors}


@settings(max_examples=40, deadline=None)
@given(data=random_graphs())
def test_random_graph_round_trips(data: dict[str, object]) -> None:
    graph = FactorGraph.from_dict(data)
    restored = FactorGraph.from_json(json.dumps(graph.to_dict()))
    assert restored == graph
    assert restored.topological_order() == graph.topological_order()
    for factor in graph.names:
        np.testing.assert_array_equal(
            restored.log_prob_table(factor), graph.log_prob_table(factor)
        )


# ------------------------------------------------------------------ validation


def _table_section(parents: list[str], table: object) -> dict[str, object]:
    return {"parents": parents, "mechanism": "table", "table": table}


INVALID_GRAPHS: list[tuple[str, dict[str, object], str]] = [
    (
        "cycle",
        {"edges": "shape -> scale; scale -> shape"},
        r"cycle: shape -> scale -> shape",
    ),
    (
        "long cycle",
        {"edges": "shape -> scale -> pos_x -> shape"},
        r"cycle: shape -> scale -> pos_x -> shape",
    ),
    (
        "self-loop",
        {"factors": {"scale": {"parents": ["scale"]}}},
        r"self-loop on scale",
    ),
    (
        "unknown parent",
        {"factors": {"scale": {"parents": ["colour"]}}},
        r"unknown factor 'colour'.*known factors: shape, scale, orientation, pos_x, "
        r"pos_y",
    ),
    (
        "unknown factor section",
        {"factors": {"colour": {"parents": ["shape"]}}},
        r"unknown factor 'colour'.*known factors: shape, scale",
    ),
    (
        "row sum",
        {
            "factors": {
                "shape": _table_section(
                    ["confounder"], [[0.5, 0.5, 0.0], [0.5, 0.3, 0.1]]
                )
            },
            "hidden": {"confounder": {"size": 2}},
        },
        r"row \(confounder=1\) of the table for shape sums to 0\.9",
    ),
    (
        "root row sum",
        {"factors": {"shape": _table_section([], [0.2, 0.2, 0.2])}},
        r"row \(no parents\) of the table for shape sums to 0\.6",
    ),
    (
        "table shape",
        {"factors": {"scale": _table_section(["shape"], [[0.5, 0.5]] * 3)}},
        r"table for scale has shape \(3, 2\); expected \(3, 6\)",
    ),
    (
        "negative entry",
        {"factors": {"shape": _table_section([], [1.5, -0.5, 0.0])}},
        r"negative or non-finite",
    ),
    (
        "ragged table",
        {"factors": {"shape": _table_section([], [[0.5], [0.5, 0.5]])}},
        r"nested lists of numbers",
    ),
    (
        "strength above one",
        {"factors": {"scale": {"parents": ["shape"], "strength": 1.5}}},
        r"strength of the shift mechanism of scale is 1\.5; it must be a number in "
        r"\[0, 1\]",
    ),
    (
        "negative strength",
        {"factors": {"scale": {"parents": ["shape"], "strength": -0.1}}},
        r"strength .* is -0\.1",
    ),
    (
        "boolean strength",
        {"factors": {"scale": {"parents": ["shape"], "strength": True}}},
        r"strength .* is True",
    ),
    (
        "zero width",
        {"factors": {"scale": {"parents": ["shape"], "width": 0}}},
        r"width of the shift mechanism of scale is 0",
    ),
    (
        "bad direction",
        {"factors": {"scale": {"parents": ["shape"], "direction": "up"}}},
        r"direction .* 'up'; choose one of increasing, decreasing",
    ),
    (
        "shift without parent",
        {"factors": {"scale": {"mechanism": "shift"}}},
        r"shift mechanism of scale needs at least one parent",
    ),
    (
        "hidden without children",
        {"hidden": {"confounder": {"size": 2}}},
        r"hidden factor confounder has no children",
    ),
    (
        "hidden size one",
        {"edges": "u[1] -> scale"},
        r"hidden factor u has size 1; the size must be an integer from 2 to 16",
    ),
    (
        "hidden size too large",
        {"hidden": {"u": {"size": 17}}, "edges": "u -> scale"},
        r"size must be an integer from 2 to 16",
    ),
    (
        "hidden without size",
        {"hidden": {"u": {"parents": []}}},
        r"hidden factor u has no size",
    ),
    (
        "hidden named like observed",
        {"edges": "scale[2] -> shape"},
        r"hidden factor 'scale' has the name of an observed factor",
    ),
    (
        "hidden invalid name",
        {"hidden": {"two words": {"size": 2}}},
        r"hidden factor name 'two words' is invalid",
    ),
    (
        "unknown mechanism",
        {"factors": {"scale": {"parents": ["shape"], "mechanism": "linear"}}},
        r"unknown mechanism 'linear' for scale; choose one of uniform, table, shift",
    ),
    (
        "unknown key",
        {"factors": {"scale": {"parents": ["shape"], "strenght": 0.5}}},
        r"unknown key 'strenght' in \[factors\.scale\]; allowed keys: parents, "
        r"mechanism, size$",
    ),
    (
        "key of another mechanism",
        {"factors": {"scale": {"mechanism": "uniform", "strength": 0.5}}},
        r"unknown key 'strength'",
    ),
    (
        "unknown top-level key",
        {"nodes": {}},
        r"unknown key 'nodes' in the graph",
    ),
    (
        "parents twice",
        {"edges": "shape -> scale", "factors": {"scale": {"parents": ["pos_x"]}}},
        r"parents of scale are given twice",
    ),
    (
        "duplicate edge",
        {"edges": "shape -> scale; shape -> scale"},
        r"duplicate edge shape -> scale",
    ),
    (
        "duplicate parent",
        {"factors": {"scale": {"parents": ["shape", "shape"]}}},
        r"duplicate edge shape -> scale",
    ),
    (
        "observed size",
        {"factors": {"scale": {"size": 4}}},
        r"sets a size, but the size of observed factor scale is fixed",
    ),
    ("format version", {"format_version": 2}, r"format_version 2 is not supported"),
    (
        "hidden size conflict",
        {"hidden": {"u": {"size": 3}}, "edges": "u[2] -> scale"},
        r"hidden factor u is declared with sizes 3 and 2",
    ),
    ("parents not a list", {"factors": {"scale": {"parents": "shape"}}}, r"list"),
]


@pytest.mark.parametrize(
    ("data", "message"),
    [case[1:] for case in INVALID_GRAPHS],
    ids=[case[0] for case in INVALID_GRAPHS],
)
def test_invalid_graph_raises(data: dict[str, object], message: str) -> None:
    with pytest.raises(GraphError, match=message):
        FactorGraph.from_dict(data)


def test_graph_error_is_value_error() -> None:
    assert issubclass(GraphError, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shape -> ", r"invalid edge statement 'shape ->'"),
        ("shape", r"invalid edge statement 'shape'"),
        ("shape -> sc ale", r"invalid factor 'sc ale'"),
        ("shpe -> scale", r"unknown factor 'shpe'.*e\.g\. shpe\[2\]"),
        ("u[2] -> scale; u[3] -> pos_x", r"declared with sizes 2 and 3"),
    ],
)
def test_invalid_inline_raises(text: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        parse_inline(text)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", "[factors.scale\n")
    with pytest.raises(GraphError, match=r"invalid TOML in .*broken\.toml"):
        load_graph(path)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.json", "{")
    with pytest.raises(GraphError, match=r"invalid JSON in .*broken\.json"):
        load_graph(path)


def test_file_errors_name_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "cycle.toml", 'edges = "shape -> scale -> shape"\n')
    with pytest.raises(GraphError, match=r"cycle\.toml: the graph has a cycle"):
        load_graph(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="cannot read graph file"):
        load_graph(tmp_path / "absent.toml")


def test_unsupported_extension_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "graph.yaml", "edges: shape -> scale\n")
    with pytest.raises(GraphError, match=r"unsupported extension '\.yaml'"):
        load_graph(path)


def test_direct_construction_rejects_duplicates() -> None:
    node = FactorNode("scale", 6, ("shape",))
    with pytest.raises(GraphError, match="declared twice"):
        FactorGraph([node, node])


def test_unknown_factor_in_lookup_lists_known() -> None:
    graph = get_preset("hidden")
    with pytest.raises(GraphError, match=r"known factors: .*confounder"):
        graph.parents("mood")


# ------------------------------------------------------------------ resolving


def test_resolve_graph_sources(tmp_path: Path) -> None:
    assert resolve_graph("fork") == get_preset("fork")
    path = _write(tmp_path, "example.toml", EXAMPLE_TOML)
    assert resolve_graph(str(path)).name == "example"
    assert resolve_graph("shape -> scale").edges == (("shape", "scale"),)
    with pytest.raises(GraphError, match="not a preset, a graph file or inline"):
        resolve_graph("nothing")


@pytest.mark.parametrize(
    ("factor", "text", "expected"),
    [
        ("shape", "heart", 2),
        ("shape", "Square", 0),
        ("shape", "1", 1),
        ("pos_x", "31", 31),
    ],
)
def test_parse_class(factor: str, text: str, expected: int) -> None:
    assert parse_class(get_preset("chain"), factor, text) == expected


@pytest.mark.parametrize(
    ("factor", "text", "message"),
    [
        ("shape", "circle", r"or one of square, ellipse, heart"),
        ("scale", "6", r"class 6 of scale is out of range; scale has classes 0\.\.5"),
        ("scale", "-1", r"out of range"),
        ("scale", "big", r"use a class index 0\.\.5"),
        ("colour", "1", r"unknown factor 'colour'"),
    ],
)
def test_parse_class_errors(factor: str, text: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        parse_class(get_preset("chain"), factor, text)


# ------------------------------------------------------------------ figures


def test_plot_condition_vs_do_writes_png(tmp_path: Path) -> None:
    from causalvae.graph_figures import plot_condition_vs_do

    path = tmp_path / "figures" / "fork.png"
    assert plot_condition_vs_do(get_preset("fork"), "scale", "pos_x", path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["fork.png"]


def test_plot_condition_vs_do_errors(tmp_path: Path) -> None:
    from causalvae.graph_figures import plot_condition_vs_do

    graph = parse_inline("shape -> scale")
    with pytest.raises(ValueError, match="both scale"):
        plot_condition_vs_do(graph, "scale", "scale", tmp_path / "a.png")
    with pytest.raises(ValueError, match="out of range"):
        plot_condition_vs_do(graph, "scale", "shape", tmp_path / "a.png", values=[6])
    with pytest.raises(ValueError, match="not supported"):
        plot_condition_vs_do(graph, "scale", "shape", tmp_path / "a.unknown")
    assert list(tmp_path.iterdir()) == []
