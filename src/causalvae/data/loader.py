"""Load and validate dSprites ``.npz`` files.

Two layouts are accepted:

- ``official``: the file published by DeepMind and the rendered grid, with
  ``latents_classes`` and ``latents_values`` of six columns (colour first). Any
  number of rows is accepted; the full grid has 737,280.
- ``subset``: five latent columns without colour, as in the public 20,000-image
  teaching subset and the files written by :func:`causalvae.data.store.save_dataset`.

``original_dataset_indices`` is optional in both and checked when present. Other
keys (such as the pickled ``metadata`` of the official file) are ignored and never
read, so loading never unpickles anything.
"""

from __future__ import annotations

import logging
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from causalvae.data.spec import (
    FACTORS,
    IMAGE_SIZE,
    NUM_IMAGES,
    classes_to_index,
    classes_to_values,
)

logger = logging.getLogger(__name__)

Layout = Literal["official", "subset"]

REQUIRED_KEYS = ("imgs", "latents_classes", "latents_values")
INDICES_KEY = "original_dataset_indices"
VALUE_TOLERANCE = 1e-5
"""Largest accepted gap between a stored value and the value of its class."""
CHECK_CHUNK_SIZE = 65_536
"""Rows checked at a time, so that checks on the full grid need little memory."""


class DSpritesFormatError(ValueError):
    """A dSprites file that is missing, unreadable or not in a supported layout."""


@dataclass(frozen=True, eq=False)
class DSprites:
    """A dSprites dataset in memory.

    :ivar images: pixels in {0, 1}, uint8 ``(num_images, 64, 64)``, row 0 at the top;
        a read-only :class:`numpy.memmap` when loaded with ``mmap=True``.
    :ivar classes: class indices, int64 ``(num_images, 5)``, columns as
        :data:`~causalvae.data.spec.FACTOR_NAMES`.
    :ivar values: factor values, float64 ``(num_images, 5)``; shape values are
        1, 2, 3.
    :ivar indices: index of each image in the full grid, int64 ``(num_images,)``.
    :ivar path: the file it was read from.
    :ivar layout: ``"official"`` (six latent columns) or ``"subset"`` (five).
    :ivar extra_keys: keys of the archive that the loader did not read.
    """

    images: np.ndarray
    classes: np.ndarray
    values: np.ndarray
    indices: np.ndarray
    path: Path
    layout: Layout = "official"
    extra_keys: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.images)

    @property
    def is_full_grid(self) -> bool:
        """Whether this is the whole grid of 737,280 images in the official order."""
        return len(self.indices) == NUM_IMAGES and bool(
            np.array_equal(self.indices, np.arange(NUM_IMAGES))
        )


def load_dsprites(path: str | Path, *, mmap: bool = False) -> DSprites:
    """Read a dSprites ``.npz`` file and check that its arrays agree.

    :param path: an official-layout or subset-layout archive.
    :param mmap: map uncompressed arrays read-only from the file instead of reading
        them into memory (compressed arrays are always read).
    :returns: the dataset, with the colour column dropped.
    :raises DSpritesFormatError: naming the file and the problem: missing file, not
        a zip archive, truncated, missing keys, wrong shapes or dtypes, class
        indices out of range, values that disagree with the classes, pixels not in
        {0, 1} or indices that disagree with the classes.
    """
    path = Path(path)
    _check_is_archive(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                name.removesuffix(".npy"): archive.getinfo(name)
                for name in archive.namelist()
            }
            keys = tuple(members)
            missing = [key for key in REQUIRED_KEYS if key not in members]
            if missing:
                raise DSpritesFormatError(
                    f"{path}: missing key(s) {', '.join(missing)}; a dSprites file "
                    f"needs {', '.join(REQUIRED_KEYS)} (found {', '.join(keys)})"
                )
            read_keys = [*REQUIRED_KEYS, INDICES_KEY]
            arrays = {
                key: _read_member(path, archive, members[key], mmap)
                for key in read_keys
                if key in members
            }
    except NotImplementedError as error:
        raise DSpritesFormatError(
            f"{path}: the archive uses a zip feature that Python cannot read "
            f"({error}), or is damaged; write it with numpy.savez"
        ) from error
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise DSpritesFormatError(
            f"{path}: the archive is damaged or truncated ({error}); "
            "download it again, or render it with 'causalvae data generate --force'"
        ) from error
    except ValueError as error:
        if isinstance(error, DSpritesFormatError):
            raise
        raise DSpritesFormatError(
            f"{path}: an array could not be read ({error}); dSprites arrays must be "
            "plain numeric .npy arrays"
        ) from error

    images = _checked_images(path, arrays["imgs"])
    classes, layout = _checked_classes(path, arrays["latents_classes"], len(images))
    values = _checked_values(path, arrays["latents_values"], classes, layout)
    indices = _checked_indices(path, arrays.get(INDICES_KEY), classes)
    ignored = tuple(key for key in keys if key not in read_keys)
    logger.info("loaded %d images (%s layout) from %s", len(images), layout, path)
    return DSprites(
        images=images,
        classes=classes,
        values=values,
        indices=indices,
        path=path,
        layout=layout,
        extra_keys=ignored,
    )


def _read_member(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, mmap: bool
) -> np.ndarray:
    """Read one ``.npy`` member, never unpickling.

    Uncompressed members are read straight from their offset in the file, which is
    several times faster than streaming them through :mod:`zipfile` for the 3 GiB
    grid, but skips the CRC check of their bytes.
    """
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(member)
            else:
                header = np.lib.format.read_array_header_2_0(member)
        except (ValueError, SyntaxError, tokenize.TokenError) as error:
            # numpy parses the header as a Python literal, so a damaged one can
            # raise any of these.
            raise DSpritesFormatError(
                f"{path}: {info.filename} has no valid .npy header ({error}); "
                "download or generate the file again"
            ) from error
        shape, fortran_order, dtype = header
        if dtype.hasobject:
            raise DSpritesFormatError(
                f"{path}: {info.filename} is an object array, which would need "
                "unpickling; dSprites arrays must be numeric"
            )
        header_size = member.tell()
        stored = info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1
        if not stored:
            member.seek(0)
            return np.lib.format.read_array(member, allow_pickle=False)

    count = int(np.prod(shape))
    if info.file_size != header_size + count * dtype.itemsize:
        raise DSpritesFormatError(
            f"{path}: {info.filename} contains {info.file_size} bytes, but its header "
            f"describes {dtype} {shape}; the archive is damaged"
        )
    offset = _member_data_offset(path, info) + header_size
    order = "F" if fortran_order else "C"
    if mmap:
        return np.memmap(
            path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order
        )
    with path.open("rb") as handle:
        handle.seek(offset)
        flat = np.fromfile(handle, dtype=dtype, count=count)
    if flat.size != count:
        raise DSpritesFormatError(
            f"{path}: {info.filename} is truncated; download it again, or render it "
            "with 'causalvae data generate --force'"
        )
    return flat.reshape(shape, order=order)


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Return where a member's bytes start: after its 30-byte local file header,
    file name and extra field."""
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        local_header = handle.read(30)
    if len(local_header) != 30 or local_header[:4] != b"PK\x03\x04":
        raise DSpritesFormatError(
            f"{path}: the local header of {info.filename} is damaged"
        )
    name_length = int.from_bytes(local_header[26:28], "little")
    extra_length = int.from_bytes(local_header[28:30], "little")
    return info.header_offset + 30 + name_length + extra_length


def _check_is_archive(path: Path) -> None:
    if not path.exists():
        raise DSpritesFormatError(
            f"{path}: file not found; pass the path of a dSprites .npz file or run "
            "`causalvae data generate`"
        )
    if not path.is_file():
        raise DSpritesFormatError(f"{path}: not a file; pass a dSprites .npz file")
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic == b"\x93NUMPY":
        raise DSpritesFormatError(
            f"{path}: a single .npy array, not an .npz archive; a dSprites file is "
            f"an .npz archive with the keys {', '.join(REQUIRED_KEYS)}"
        )
    if not zipfile.is_zipfile(path):
        raise DSpritesFormatError(
            f"{path}: not a zip archive, or truncated; a dSprites file is an .npz "
            "archive; download it again, or render it with "
            "'causalvae data generate --force'"
        )


def _checked_images(path: Path, images: np.ndarray) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DSpritesFormatError(
            f"{path}: imgs has shape {images.shape}, expected (n, 64, 64)"
        )
    if images.dtype != np.uint8:
        raise DSpritesFormatError(
            f"{path}: imgs has dtype {images.dtype}, expected uint8 pixels in {{0, 1}}"
        )
    if images.size == 0 or images.max() <= 1:
        return images
    # Only reached for invalid files: tell 0/255 images apart from other values.
    only_0_and_255 = all(
        not np.any((chunk != 0) & (chunk != 255))
        for chunk in _chunks(images, CHECK_CHUNK_SIZE)
    )
    if only_0_and_255:
        raise DSpritesFormatError(
            f"{path}: imgs stores pixels as 0/255; dSprites pixels are 0/1, so "
            "divide the images by 255 and save them again"
        )
    raise DSpritesFormatError(
        f"{path}: imgs contains pixel value {images.max()}; dSprites pixels must be "
        "0 or 1"
    )


def _chunks(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield array[start : start + size]


def _checked_classes(
    path: Path, latents_classes: np.ndarray, count: int
) -> tuple[np.ndarray, Layout]:
    array = latents_classes

    # Shape and dtype.
    if array.ndim != 2 or array.shape[1] not in (5, 6):
        raise DSpritesFormatError(
            f"{path}: latents_classes has shape {array.shape}, expected (n, 6) "
            "(official layout, colour first) or (n, 5) (subset layout)"
        )
    if len(array) != count:
        raise DSpritesFormatError(
            f"{path}: latents_classes has {len(array)} rows but imgs has {count}; "
            "the arrays must describe the same images"
        )
    if array.dtype.kind not in "iu":
        raise DSpritesFormatError(
            f"{path}: latents_classes has dtype {array.dtype}; it looks like factor "
            "values, but it must hold integer class indices (values belong in "
            "latents_values)"
        )

    # The official layout starts with the constant colour column.
    layout: Layout = "official" if array.shape[1] == 6 else "subset"
    if layout == "official":
        colour = array[:, 0]
        if colour.size and (colour.min() != 0 or colour.max() != 0):
            raise DSpritesFormatError(
                f"{path}: colour class (column 0 of latents_classes) must be 0, "
                f"found {colour.max() if colour.max() != 0 else colour.min()}"
            )
        array = array[:, 1:]
    classes = np.ascontiguousarray(array, dtype=np.int64)
    if not len(classes):
        return classes, layout

    # Ranges, reported with the first offending row.
    low = classes.min(axis=0)
    high = classes.max(axis=0)
    for column, factor in enumerate(FACTORS):
        if low[column] < 0 or high[column] >= factor.size:
            bad = low[column] if low[column] < 0 else high[column]
            row = int(np.flatnonzero(classes[:, column] == bad)[0])
            raise DSpritesFormatError(
                f"{path}: latents_classes row {row} has {factor.name} class {bad}, "
                f"outside 0 to {factor.size - 1}; class indices, not values, are "
                "expected"
            )
    return classes, layout


def _checked_values(
    path: Path, latents_values: np.ndarray, classes: np.ndarray, layout: Layout
) -> np.ndarray:
    columns = 6 if layout == "official" else 5
    expected_shape = (len(classes), columns)
    if latents_values.shape != expected_shape:
        raise DSpritesFormatError(
            f"{path}: latents_values has shape {latents_values.shape}, expected "
            f"{expected_shape} to match latents_classes"
        )
    if latents_values.dtype.kind != "f":
        raise DSpritesFormatError(
            f"{path}: latents_values has dtype {latents_values.dtype}, expected "
            "float64 factor values"
        )
    values = np.asarray(latents_values, dtype=np.float64)
    if layout == "official":
        colour = values[:, 0]
        if colour.size and np.any(colour != 1.0):
            raise DSpritesFormatError(
                f"{path}: colour value (column 0 of latents_values) must be 1.0"
            )
        values = values[:, 1:]
    values = np.ascontiguousarray(values)
    for start in range(0, len(classes), CHECK_CHUNK_SIZE):
        stop = start + CHECK_CHUNK_SIZE
        expected = classes_to_values(classes[start:stop])
        gap = np.abs(values[start:stop] - expected)
        bad = ~(gap <= VALUE_TOLERANCE)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            name = FACTORS[column].name
            raise DSpritesFormatError(
                f"{path}: latents_values row {start + row} has {name} = "
                f"{values[start + row, column]!r}, but its class "
                f"{classes[start + row, column]} has the value "
                f"{expected[row, column]!r}; the values and classes disagree"
            )
    return values


def _checked_indices(
    path: Path, stored: np.ndarray | None, classes: np.ndarray
) -> np.ndarray:
    expected = classes_to_index(classes)
    if stored is None:
        return expected
    if stored.shape != expected.shape or stored.dtype.kind not in "iu":
        raise DSpritesFormatError(
            f"{path}: {INDICES_KEY} has shape {stored.shape} and dtype "
            f"{stored.dtype}, expected integers of shape {expected.shape}"
        )
    mismatch = np.flatnonzero(stored != expected)
    if mismatch.size:
        row = int(mismatch[0])
        raise DSpritesFormatError(
            f"{path}: {INDICES_KEY}[{row}] is {stored[row]}, but the classes of "
            f"row {row} give grid index {expected[row]}; {mismatch.size} row(s) "
            "disagree"
        )
    return expected
