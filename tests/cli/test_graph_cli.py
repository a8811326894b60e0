"""End-to-end runs of ``causalvae graph`` and ``causalvae data resample``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from causalvae.cli import main
from causalvae.cli.graphs import resample_command
from causalvae.data.resample import load_resampled
from causalvae.graph import get_preset

TABLE_TOML = """
name = "tabled"

[factors.scale]
parents = ["shape"]
mechanism = "table"
table = [
  [0.5, 0.5, 0.0, 0.0, 0.0, 0.0],
  [0.0, 0.5, 0.5, 0.0, 0.0, 0.0],
  [0.0, 0.0, 0.0, 0.0, 0.5, 0.5],
]
"""


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_presets_lists_all() -> None:
    result = _run("graph", "presets")
    assert result.exit_code == 0, result.output
    for line in ("chain: shape -> scale; scale -> pos_y", "fork:", "hidden:"):
        assert line in result.output


def test_show_preset() -> None:
    result = _run("graph", "show", "hidden")
    assert result.exit_code == 0, result.output
    assert "confounder (hidden, 2 classes): parents none; uniform" in result.output
    assert "pos_x (observed, 32 classes): parents shape; shift" in result.output


def test_show_file_prints_table(tmp_path: Path) -> None:
    path = tmp_path / "tabled.toml"
    path.write_text(TABLE_TOML)
    result = _run("graph", "show", str(path))
    assert result.exit_code == 0, result.output
    assert "scale (observed, 6 classes): parents shape; table 3x6" in result.output
    assert "shape=2: 0.000 0.000 0.000 0.000 0.500 0.500" in result.output


def test_show_tables_flag() -> None:
    result = _run("graph", "show", "chain", "--tables")
    assert result.exit_code == 0, result.output
    assert "scale=5:" in result.output


def test_show_inline_graph() -> None:
    result = _run("graph", "show", "u[2] -> scale; u -> pos_y")
    assert result.exit_code == 0, result.output
    assert "u (hidden, 2 classes)" in result.output


def test_validate_good_file(tmp_path: Path) -> None:
    path = tmp_path / "tabled.toml"
    path.write_text(TABLE_TOML)
    result = _run("graph", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert "valid graph tabled (shape -> scale)" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('edges = "shape -> scale -> shape"\n', "cycle: shape -> scale -> shape"),
        ('edges = "shape -> size"\n', "unknown factor 'size'"),
        (TABLE_TOML.replace("[0.5, 0.5, 0.0", "[0.5, 0.4, 0.0", 1), "sums to 0.9"),
    ],
)
def test_validate_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = _run("graph", "validate", str(path))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_validate_missing_file(tmp_path: Path) -> None:
    result = _run("graph", "validate", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2
    assert "cannot read graph file" in result.output


def test_query_prints_both_distributions() -> None:
    result = _run(
        "graph", "query", "fork", "--do", "scale=0", "--given", "shape=heart",
        "--target", "pos_x",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[1] p(pos_x | scale=0, shape=2)" in result.output
    assert "[2] p(pos_x | do(scale=0), shape=2)" in result.output
    assert "total variation [1] vs [2]: 0.0000" in result.output


def test_query_shows_confounding() -> None:
    result = _run("graph", "query", "fork", "--do", "scale=0", "--target", "pos_x")
    assert result.exit_code == 0, result.output
    distance = float(result.output.rsplit("total variation [1] vs [2]:", 1)[1])
    assert distance > 0.3


def test_query_without_do_prints_conditional() -> None:
    result = _run(
        "graph", "query", "hidden", "--given", "scale=5", "--target", "confounder"
    )
    assert result.exit_code == 0, result.output
    assert "[1] p(confounder | scale=5)" in result.output
    assert "[2]" not in result.output


def test_query_undefined_conditional(tmp_path: Path) -> None:
    path = tmp_path / "tabled.toml"
    path.write_text(TABLE_TOML)
    result = _run("graph", "query", str(path), "--do", "scale=3", "--target", "shape")
    assert result.exit_code == 0, result.output
    assert "undefined, probability 0" in result.output
    assert "[2] p(shape | do(scale=3))" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--do", "size=2", "--target", "pos_y"], "unknown factor 'size'; known"),
        (["--do", "scale=6", "--target", "pos_y"], "scale has classes 0..5"),
        (["--do", "shape=circle", "--target", "pos_y"], "square, ellipse, heart"),
        (["--do", "scale", "--target", "pos_y"], "write factor=class"),
        (["--do", "scale=1", "--target", "scale"], "target scale is also in --do"),
        (["--do", "scale=1", "--given", "scale=2", "--target", "pos_y"], "both"),
        (["--target", "colour"], "unknown factor 'colour'"),
    ],
)
def test_query_errors(args: list[str], message: str) -> None:
    result = _run("graph", "query", "chain", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_graph_spec() -> None:
    result = _run("graph", "show", "nothing")
    assert result.exit_code == 2
    assert "not a preset, a graph file or inline edges" in result.output


def test_resample_command_writes_file(tmp_path: Path) -> None:
    output = tmp_path / "units.npz"
    result = CliRunner().invoke(
        resample_command,
        ["--graph", "hidden", "-n", "30", "--seed", "4", "-o", str(output)],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 30 units to {output}" in result.output
    assert "hidden confounder: most frequent class" in result.output
    units = load_resampled(output)
    assert units.num_units == 30
    assert units.graph == get_preset("hidden")


def test_resample_command_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        resample_command, ["--graph", "cycle", "-n", "5", "-o", str(tmp_path / "a.npz")]
    )
    assert result.exit_code == 2
    assert "not a preset" in result.output
    result = runner.invoke(
        resample_command, ["--graph", "chain", "-n", "0", "-o", str(tmp_path / "a.npz")]
    )
    assert result.exit_code == 2
    result = runner.invoke(
        resample_command, ["--graph", "chain", "-n", "5", "-o", str(tmp_path / "a.txt")]
    )
    assert result.exit_code == 2
    assert "must end in .npz" in result.output
