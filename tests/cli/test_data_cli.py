"""End-to-end runs of ``causalvae data generate``, ``info`` and ``show``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from causalvae.cli import main
from causalvae.data import store
from causalvae.data.spec import NUM_IMAGES, index_to_classes

TINY_GRID = np.arange(0, NUM_IMAGES, 9_973)


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def tiny_generate(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make ``generate`` render 74 images instead of the full grid."""
    calls: list[Path] = []
    original = functools.partial(store.generate_dsprites, indices=TINY_GRID)

    def generate(path: Path, **kwargs: object) -> Path:
        calls.append(path)
        return original(path, **kwargs)

    monkeypatch.setattr(store, "generate_dsprites", generate)
    return calls


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    return store.generate_dsprites(tmp_path / "tiny.npz", indices=TINY_GRID)


def test_generate_prints_path(tmp_path: Path, tiny_generate: list[Path]) -> None:
    result = _run("data", "generate", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    expected = tmp_path / store.DSPRITES_FILENAME
    assert result.stdout.strip().splitlines()[-1] == str(expected)
    assert expected.is_file()
    assert tiny_generate == [expected]


def test_generate_skips_existing_unless_forced(
    tmp_path: Path, tiny_generate: list[Path]
) -> None:
    _run("data", "generate", "--data-dir", str(tmp_path))
    again = _run("-q", "data", "generate", "--data-dir", str(tmp_path))
    assert again.exit_code == 0
    assert "already exists; pass --force" in again.stderr
    assert len(tiny_generate) == 1
    forced = _run("-q", "data", "generate", "--data-dir", str(tmp_path), "--force")
    assert forced.exit_code == 0
    assert len(tiny_generate) == 2


def test_generate_quiet_hides_progress(
    tmp_path: Path, tiny_generate: list[Path]
) -> None:
    loud = _run("data", "generate", "--data-dir", str(tmp_path / "a"))
    quiet = _run("-q", "data", "generate", "--data-dir", str(tmp_path / "b"))
    assert "img" in loud.stderr
    assert quiet.stderr == ""


def test_generate_uses_env_data_dir(
    tmp_path: Path, tiny_generate: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(store.DATA_DIR_ENV, str(tmp_path / "env"))
    result = _run("-q", "data", "generate")
    assert result.exit_code == 0, result.output
    assert tiny_generate == [tmp_path / "env" / store.DSPRITES_FILENAME]


def test_generate_reports_unwritable_folder(
    tmp_path: Path, tiny_generate: list[Path]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("-q", "data", "generate", "--data-dir", str(blocker / "sub"))
    assert result.exit_code == 2
    assert "could not write" in result.stderr
    assert "--data-dir" in result.stderr


def test_info_summarises_file(tiny_file: Path) -> None:
    result = _run("data", "info", str(tiny_file))
    assert result.exit_code == 0, result.output
    assert "layout: official (6 latent columns)" in result.stdout
    assert f"images: {len(TINY_GRID)}" in result.stdout
    assert "full grid: no" in result.stdout
    assert "orientation" in result.stdout


def test_info_json(tiny_file: Path) -> None:
    result = _run("data", "info", "--json", str(tiny_file))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["num_images"] == len(TINY_GRID)
    assert summary["full_grid"] is False
    assert sum(summary["factors"]["shape"]["counts"]) == len(TINY_GRID)


def test_info_describes_resampled_file(tmp_path: Path) -> None:
    path = tmp_path / "hidden.npz"
    resampled = _run(
        "data", "resample", "--graph", "hidden", "-n", "200", "-o", str(path)
    )
    assert resampled.exit_code == 0, resampled.output

    text = _run("data", "info", str(path))
    summary = json.loads(_run("data", "info", "--json", str(path)).stdout)

    assert "causally resampled from graph hidden" in text.stdout
    assert "hidden factors: confounder;" in text.stdout
    assert "ignored keys" not in text.stdout
    assert summary["resampled"]["graph"] == "hidden"
    assert summary["resampled"]["hidden_factors"] == ["confounder"]
    assert summary["ignored_keys"] == []


def test_info_plain_file_is_not_resampled(tiny_file: Path) -> None:
    summary = json.loads(_run("data", "info", "--json", str(tiny_file)).stdout)

    assert summary["resampled"] is None


def test_info_rejects_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.npz"
    broken.write_text("nothing here")
    result = _run("data", "info", str(broken))
    assert result.exit_code == 2
    assert "broken.npz: not a zip archive" in result.stderr


def test_show_writes_png(tiny_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "grid.png"
    result = _run(
        "data",
        "show",
        "--file",
        str(tiny_file),
        "--where",
        "shape=heart",
        "-n",
        "4",
        "--seed",
        "3",
        "-o",
        str(output),
    )
    assert result.exit_code == 0, result.output
    hearts = int((index_to_classes(TINY_GRID)[:, 0] == 2).sum())
    assert f"wrote 4 of {hearts} matching images" in result.stdout
    with Image.open(output) as image:
        assert image.format == "PNG"


def test_show_uses_data_dir(tiny_file: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tiny_file.rename(data_dir / store.DSPRITES_FILENAME)
    output = tmp_path / "grid.png"
    result = _run("data", "show", "--data-dir", str(data_dir), "-o", str(output))
    assert result.exit_code == 0, result.output
    assert output.is_file()


def test_show_without_matches_fails(tiny_file: Path, tmp_path: Path) -> None:
    result = _run(
        "data",
        "show",
        "--file",
        str(tiny_file),
        "--where",
        "shape=heart,scale=0.5,orientation=0,pos_x=0",
        "--where",
        "pos_y=0",
        "-o",
        str(tmp_path / "none.png"),
    )
    assert result.exit_code == 2
    assert "no image in" in result.stderr


def test_show_rejects_bad_filter(tiny_file: Path, tmp_path: Path) -> None:
    result = _run(
        "data",
        "show",
        "--file",
        str(tiny_file),
        "--where",
        "shape=star",
        "-o",
        str(tmp_path / "x.png"),
    )
    assert result.exit_code == 2
    assert "unknown shape 'star'" in result.stderr


def test_show_rejects_file_and_data_dir(tiny_file: Path, tmp_path: Path) -> None:
    result = _run(
        "data",
        "show",
        "--file",
        str(tiny_file),
        "--data-dir",
        str(tmp_path),
        "-o",
        str(tmp_path / "x.png"),
    )
    assert result.exit_code == 2
    assert "either --file or --data-dir" in result.stderr


def test_show_without_data_suggests_generate(tmp_path: Path) -> None:
    result = _run("data", "show", "--data-dir", str(tmp_path), "-o", "x.png")
    assert result.exit_code == 2
    assert "causalvae data generate" in result.stderr
