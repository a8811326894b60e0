"""The data folder, the rendered grid file and subset files, all written atomically."""

from __future__ import annotations

import functools
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from causalvae.data import render, store
from causalvae.data.loader import load_dsprites
from causalvae.data.spec import NUM_IMAGES, classes_to_values, index_to_classes

TINY_GRID = np.arange(0, NUM_IMAGES, 24_577)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv(store.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_data_dir_argument_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(store.DATA_DIR_ENV, str(clean_env / "from_env"))
    assert store.default_data_dir(clean_env / "given") == clean_env / "given"


def test_data_dir_env_var_wins_over_xdg(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(store.DATA_DIR_ENV, str(clean_env / "from_env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert store.default_data_dir() == clean_env / "from_env"


def test_data_dir_uses_xdg_cache(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert store.default_data_dir() == clean_env / "xdg" / "causalvae"


def test_data_dir_ignores_relative_xdg(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert store.default_data_dir() == clean_env / "home" / ".cache" / "causalvae"


def test_data_dir_defaults_to_home_cache(clean_env: Path) -> None:
    assert store.default_data_dir() == clean_env / "home" / ".cache" / "causalvae"


def test_generate_writes_official_layout(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    path = store.generate_dsprites(
        tmp_path / "grid" / "tiny.npz",
        indices=TINY_GRID,
        progress=lambda done, total: calls.append((done, total)),
    )
    with np.load(path) as archive:
        assert sorted(archive.files) == ["imgs", "latents_classes", "latents_values"]
        images = archive["imgs"]
        latents_classes = archive["latents_classes"]
        latents_values = archive["latents_values"]
    classes = index_to_classes(TINY_GRID)
    assert images.dtype == np.uint8
    assert latents_classes.dtype == np.int64
    assert latents_values.dtype == np.float64
    np.testing.assert_array_equal(images, render.render(classes))
    np.testing.assert_array_equal(latents_classes[:, 0], 0)
    np.testing.assert_array_equal(latents_classes[:, 1:], classes)
    np.testing.assert_array_equal(latents_values[:, 0], 1.0)
    np.testing.assert_array_equal(latents_values[:, 1:], classes_to_values(classes))
    assert calls[-1] == (len(TINY_GRID), len(TINY_GRID))
    assert load_dsprites(path).layout == "official"


def test_generate_archive_is_uncompressed(tmp_path: Path) -> None:
    path = store.generate_dsprites(tmp_path / "tiny.npz", indices=TINY_GRID)
    with zipfile.ZipFile(path) as archive:
        methods = {info.compress_type for info in archive.infolist()}
    assert methods == {zipfile.ZIP_STORED}


def test_generate_records_renderer_version(tmp_path: Path) -> None:
    path = store.generate_dsprites(tmp_path / "tiny.npz", indices=TINY_GRID)
    record = json.loads(store.sidecar_path(path).read_text())
    assert record["renderer_version"] == render.RENDERER_VERSION
    assert record["num_images"] == len(TINY_GRID)


def test_generate_failure_leaves_no_file(tmp_path: Path) -> None:
    def fail(done: int, total: int) -> None:
        raise KeyboardInterrupt

    destination = tmp_path / "tiny.npz"
    with pytest.raises(KeyboardInterrupt):
        store.generate_dsprites(destination, indices=TINY_GRID, progress=fail)
    assert list(tmp_path.iterdir()) == []


def test_generate_failure_keeps_previous_file(tmp_path: Path) -> None:
    destination = store.generate_dsprites(tmp_path / "tiny.npz", indices=TINY_GRID)
    before = destination.read_bytes()

    def fail(done: int, total: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        store.generate_dsprites(destination, indices=TINY_GRID[:3], progress=fail)
    assert destination.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.npz"]


def test_atomic_output_uses_umask_mode(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        with store.atomic_output(tmp_path / "new" / "file.bin") as handle:
            handle.write(b"data")
    finally:
        os.umask(previous)
    written = tmp_path / "new" / "file.bin"
    assert written.read_bytes() == b"data"
    assert written.stat().st_mode & 0o777 == 0o640


def test_ensure_generates_once(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    tiny_generate = functools.partial(store.generate_dsprites, indices=TINY_GRID)

    def counting_generate(path: Path, **kwargs: object) -> Path:
        calls.append(path)
        return tiny_generate(path, **kwargs)

    monkeypatch.setattr(store, "generate_dsprites", counting_generate)
    monkeypatch.setenv(store.DATA_DIR_ENV, str(clean_env / "cache"))
    first = store.ensure_dsprites()
    second = store.ensure_dsprites()
    assert first == second == clean_env / "cache" / store.DSPRITES_FILENAME
    assert calls == [first]
    assert len(load_dsprites(first)) == len(TINY_GRID)


def test_ensure_warns_about_outdated_render(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = store.generate_dsprites(
        tmp_path / store.DSPRITES_FILENAME, indices=TINY_GRID
    )
    store.sidecar_path(path).write_text(json.dumps({"renderer_version": 0}))
    with caplog.at_level(logging.WARNING, logger="causalvae.data.store"):
        assert store.ensure_dsprites(tmp_path) == path
    assert "generate --force" in caplog.text


def test_save_dataset_round_trip(tmp_path: Path) -> None:
    classes = index_to_classes(TINY_GRID)
    images = render.render(classes)
    extra = {
        "exogenous_shape": np.linspace(0, 1, len(TINY_GRID) * 3).reshape(-1, 3),
        "graph": np.array("shape -> scale"),
        "observed": np.ones(len(TINY_GRID), dtype=bool),
    }
    path = store.save_dataset(
        tmp_path / "subset.npz", images, classes, TINY_GRID, extra
    )
    dataset = load_dsprites(path)
    assert dataset.layout == "subset"
    np.testing.assert_array_equal(dataset.images, images)
    np.testing.assert_array_equal(dataset.indices, TINY_GRID)
    assert set(dataset.extra_keys) == set(extra)
    # Every array reads back without unpickling.
    with np.load(path, allow_pickle=False) as archive:
        for key, value in extra.items():
            np.testing.assert_array_equal(archive[key], value)


def test_save_dataset_computes_indices(tmp_path: Path) -> None:
    classes = index_to_classes(TINY_GRID)
    path = store.save_dataset(tmp_path / "s.npz", render.render(classes), classes)
    np.testing.assert_array_equal(load_dsprites(path).indices, TINY_GRID)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": "255"}, "divide 0/255 images by 255"),
        ({"images": "shape"}, r"images must have shape \(n, 64, 64\)"),
        ({"indices": "wrong"}, "indices must be the grid indices of classes"),
        ({"extra": {"imgs": np.zeros(3)}}, "extra key 'imgs' is reserved"),
        ({"extra": {"notes": np.array([{"a": 1}])}}, "object arrays would need"),
        ({"extra": {"a/b": np.zeros(3)}}, "not a valid archive member name"),
    ],
)
def test_save_dataset_rejects(tmp_path: Path, change: dict, message: str) -> None:
    classes = index_to_classes(TINY_GRID)
    images = render.render(classes)
    indices = TINY_GRID.copy()
    if change.get("images") == "255":
        images = images * 255
    if change.get("images") == "shape":
        images = images[:, :, :10]
    if change.get("indices") == "wrong":
        indices[0] += 1
    with pytest.raises(ValueError, match=message):
        store.save_dataset(
            tmp_path / "bad.npz", images, classes, indices, change.get("extra")
        )
    assert not (tmp_path / "bad.npz").exists()
