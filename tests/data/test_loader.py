"""Loading dSprites files: accepted layouts and every rejected defect."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from causalvae.data.loader import DSprites, DSpritesFormatError, load_dsprites
from causalvae.data.render import render
from causalvae.data.spec import (
    NUM_IMAGES,
    classes_to_index,
    classes_to_values,
    index_to_classes,
)

GRID_INDICES = np.arange(3, NUM_IMAGES, 18_731)


def _official_arrays(indices: np.ndarray = GRID_INDICES) -> dict[str, np.ndarray]:
    classes = index_to_classes(indices)
    latents_classes = np.zeros((len(classes), 6), dtype=np.int64)
    latents_classes[:, 1:] = classes
    latents_values = np.ones((len(classes), 6))
    latents_values[:, 1:] = classes_to_values(classes)
    return {
        "imgs": render(classes),
        "latents_classes": latents_classes,
        "latents_values": latents_values,
    }


def _subset_arrays() -> dict[str, np.ndarray]:
    classes = index_to_classes(GRID_INDICES)
    return {
        "imgs": render(classes),
        "latents_classes": classes,
        "latents_values": classes_to_values(classes),
        "original_dataset_indices": GRID_INDICES.copy(),
    }


def _write(path: Path, arrays: dict[str, Any], *, compressed: bool = False) -> Path:
    if compressed:
        np.savez_compressed(path, **arrays)
    else:
        np.savez(path, **arrays)
    return path


class _Tripwire:
    """Pickled into a file to detect unpickling: loading it raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


def _explode() -> None:
    raise AssertionError("the loader unpickled an object array")


@pytest.mark.parametrize("compressed", [False, True])
def test_official_layout_loads(tmp_path: Path, compressed: bool) -> None:
    arrays = _official_arrays()
    path = _write(tmp_path / "official.npz", arrays, compressed=compressed)
    dataset = load_dsprites(path)
    assert dataset.layout == "official"
    assert len(dataset) == len(GRID_INDICES)
    assert dataset.images.dtype == np.uint8
    assert dataset.classes.dtype == np.int64
    assert dataset.classes.shape == (len(GRID_INDICES), 5)
    assert dataset.values.shape == (len(GRID_INDICES), 5)
    np.testing.assert_array_equal(dataset.images, arrays["imgs"])
    np.testing.assert_array_equal(dataset.indices, GRID_INDICES)
    assert dataset.path == path
    assert not dataset.is_full_grid


def test_subset_layout_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "subset.npz", _subset_arrays(), compressed=True)
    dataset = load_dsprites(path)
    assert dataset.layout == "subset"
    np.testing.assert_array_equal(dataset.indices, GRID_INDICES)
    np.testing.assert_array_equal(dataset.classes, index_to_classes(GRID_INDICES))


def test_mmap_matches_in_memory(tmp_path: Path) -> None:
    path = _write(tmp_path / "official.npz", _official_arrays())
    mapped = load_dsprites(path, mmap=True)
    loaded = load_dsprites(path)
    np.testing.assert_array_equal(mapped.images, loaded.images)
    assert not mapped.images.flags.writeable


def test_pickled_metadata_is_never_read(tmp_path: Path) -> None:
    arrays = _official_arrays()
    metadata = np.empty((), dtype=object)
    metadata[()] = _Tripwire()
    path = tmp_path / "with_metadata.npz"
    np.savez(path, metadata=metadata, **arrays)
    dataset = load_dsprites(path)
    assert dataset.extra_keys == ("metadata",)


def test_extra_keys_are_ignored(tmp_path: Path) -> None:
    arrays = _subset_arrays()
    arrays["exogenous_shape"] = np.zeros((len(GRID_INDICES), 3))
    arrays["graph"] = np.array("shape -> scale")
    dataset = load_dsprites(_write(tmp_path / "extra.npz", arrays))
    assert set(dataset.extra_keys) == {"exogenous_shape", "graph"}


def test_real_subset_loads(real_dsprites_dir: Path) -> None:
    dataset = load_dsprites(real_dsprites_dir / "dsprites_subset.npz")
    assert dataset.layout == "subset"
    assert len(dataset) == 20_000
    assert dataset.extra_keys == ("metadata",)
    np.testing.assert_array_equal(dataset.indices, classes_to_index(dataset.classes))


def test_real_gif_frames_load(real_dsprites_dir: Path) -> None:
    dataset = load_dsprites(real_dsprites_dir / "gif_frames.npz")
    assert dataset.layout == "official"
    assert len(dataset) == 320


def test_full_grid_property() -> None:
    empty = np.zeros((0, 64, 64), dtype=np.uint8)
    grid = DSprites(
        images=empty,
        classes=np.zeros((0, 5), dtype=np.int64),
        values=np.zeros((0, 5)),
        indices=np.arange(NUM_IMAGES),
        path=Path("grid.npz"),
    )
    assert grid.is_full_grid
    shuffled = DSprites(
        images=empty,
        classes=grid.classes,
        values=grid.values,
        indices=np.arange(NUM_IMAGES)[::-1],
        path=Path("grid.npz"),
    )
    assert not shuffled.is_full_grid


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(DSpritesFormatError, match=r"missing\.npz: file not found"):
        load_dsprites(tmp_path / "missing.npz")


def test_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(DSpritesFormatError, match="not a file"):
        load_dsprites(tmp_path)


def test_text_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("not an archive")
    with pytest.raises(DSpritesFormatError, match=r"notes\.npz: not a zip archive"):
        load_dsprites(path)


def test_npy_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((2, 64, 64), dtype=np.uint8))
    with pytest.raises(DSpritesFormatError, match=r"single \.npy array"):
        load_dsprites(path)


@pytest.mark.parametrize("keep_fraction", [0.5, 0.95])
def test_truncated_archive_rejected(tmp_path: Path, keep_fraction: float) -> None:
    whole = _write(tmp_path / "whole.npz", _official_arrays()).read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(whole[: int(len(whole) * keep_fraction)])
    with pytest.raises(DSpritesFormatError, match=r"truncated\.npz"):
        load_dsprites(path)


def test_corrupted_member_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "corrupt.npz", _official_arrays(), compressed=True)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo("imgs.npy").header_offset
    middle = offset + 200
    data[middle : middle + 50] = bytes(50)
    path.write_bytes(bytes(data))
    with pytest.raises(DSpritesFormatError, match=r"corrupt\.npz"):
        load_dsprites(path)


@pytest.mark.parametrize("key", ["imgs", "latents_classes", "latents_values"])
def test_missing_key_rejected(tmp_path: Path, key: str) -> None:
    arrays = _official_arrays()
    del arrays[key]
    path = _write(tmp_path / "partial.npz", arrays)
    with pytest.raises(DSpritesFormatError, match=f"missing key\\(s\\) {key}"):
        load_dsprites(path)


def _rejects(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    path = _write(tmp_path / "defect.npz", arrays)
    with pytest.raises(DSpritesFormatError, match=message) as caught:
        load_dsprites(path)
    assert str(path) in str(caught.value)


def test_image_shape_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["imgs"] = arrays["imgs"][:, :32]
    _rejects(tmp_path, arrays, r"imgs has shape \(40, 32, 64\), expected \(n, 64, 64\)")


def test_image_dtype_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["imgs"] = arrays["imgs"].astype(np.float32)
    _rejects(tmp_path, arrays, "imgs has dtype float32, expected uint8")


def test_images_of_0_and_255_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["imgs"] = arrays["imgs"] * 255
    _rejects(tmp_path, arrays, "stores pixels as 0/255; .* divide the images by 255")


def test_other_pixel_values_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["imgs"][0, 0, 0] = 2
    _rejects(tmp_path, arrays, "pixel value 2; dSprites pixels must be 0 or 1")


def test_values_stored_as_classes_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_classes"] = arrays["latents_values"]
    _rejects(tmp_path, arrays, "dtype float64; it looks like factor values")


def test_class_out_of_range_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_classes"][5, 3] = 40
    _rejects(tmp_path, arrays, "row 5 has orientation class 40, outside 0 to 39")


def test_colour_class_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_classes"][0, 0] = 1
    _rejects(tmp_path, arrays, "colour class")


def test_latent_columns_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_classes"] = arrays["latents_classes"][:, :4]
    _rejects(tmp_path, arrays, r"latents_classes has shape \(40, 4\)")


def test_row_count_mismatch_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_classes"] = arrays["latents_classes"][:-1]
    _rejects(tmp_path, arrays, "latents_classes has 39 rows but imgs has 40")


def test_values_shape_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_values"] = arrays["latents_values"][:, 1:]
    _rejects(
        tmp_path, arrays, r"latents_values has shape \(40, 5\), expected \(40, 6\)"
    )


def test_values_disagreeing_with_classes_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_values"][7, 2] += 0.1
    _rejects(tmp_path, arrays, "row 7 has scale = .* the values and classes disagree")


def test_colour_value_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    arrays["latents_values"][:, 0] = 0.0
    _rejects(tmp_path, arrays, "colour value")


def test_indices_disagreeing_with_classes_rejected(tmp_path: Path) -> None:
    arrays = _subset_arrays()
    arrays["original_dataset_indices"][4] += 1
    _rejects(tmp_path, arrays, r"original_dataset_indices\[4\] is .* 1 row\(s\)")


def test_object_array_rejected(tmp_path: Path) -> None:
    arrays = _official_arrays()
    objects = np.empty(len(GRID_INDICES), dtype=object)
    objects[:] = [_Tripwire() for _ in range(len(GRID_INDICES))]
    arrays["latents_values"] = objects
    _rejects(tmp_path, arrays, "object array")
