"""``causalvae demo`` end to end on a tiny dataset with a budget of seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causalvae import pipeline


@pytest.fixture
def tiny_grid(tiny_data_file: Path, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Serve the tiny dataset in place of the full grid and record the cache folders."""
    folders: list[object] = []

    def cached(data_dir: object = None, **kwargs: object) -> Path:
        folders.append(data_dir)
        return tiny_data_file

    monkeypatch.setattr(pipeline, "ensure_dsprites", cached)
    return folders


def test_demo_writes_report(run_cli, tiny_grid: list, tmp_path: Path) -> None:
    pytest.importorskip("causalvae.report", reason="the HTML report is not available")
    output = tmp_path / "report"

    result = run_cli(
        "demo",
        "-o",
        output,
        "--data-dir",
        tmp_path / "cache",
        "--minutes",
        0.05,
        "--num-images",
        4,
        "--hidden",
        8,
        "--layers",
        1,
    )

    assert tiny_grid == [tmp_path / "cache"]
    index = output / "index.html"
    assert index.is_file()
    assert "<html" in index.read_text().lower()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["num_images"] == 4
    assert metrics["causal"]["preset"] == "chain"
    assert (output / "checkpoint" / "metrics.json").is_file()
    config = json.loads((output / "checkpoint" / "config.json").read_text())
    assert config["model"]["hidden"] == 8
    assert config["train"]["minutes"] == 0.05
    assert "held-out -ELBO:" in result.stdout
    assert "causal answers on the chain graph" in result.stdout
    assert f"report: {index.resolve()}" in result.stdout


def test_demo_without_causal_section(run_cli, tiny_grid: list, tmp_path) -> None:
    pytest.importorskip("causalvae.report", reason="the HTML report is not available")

    result = run_cli(
        "-q",
        "demo",
        "-o",
        tmp_path,
        "--minutes",
        0.01,
        "--num-images",
        2,
        "--hidden",
        8,
        "--layers",
        1,
        "--preset",
        "none",
    )

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "causal" not in metrics
    assert "causal answers" not in result.stdout
    assert (tmp_path / "index.html").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--minutes", 0), "--minutes"),
        (("--num-images", 0), "--num-images"),
        (("--preset", "spiral"), "--preset"),
        (("--architecture", "conv"), "--architecture"),
    ],
)
def test_demo_rejects_invalid_options(
    run_cli, tiny_grid: list, tmp_path: Path, arguments: tuple, message: str
) -> None:
    result = run_cli("demo", "-o", tmp_path, *arguments, exit_code=2)

    assert message in result.output
    assert tiny_grid == []
