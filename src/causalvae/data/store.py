"""Locations of dSprites files, and atomic writes of the rendered grid and subsets.

Every write goes to a temporary file in the destination folder, which is then
renamed over the destination with :func:`os.replace`, so readers never see a
half-written file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from causalvae import __version__
from causalvae.data import render
from causalvae.data.spec import (
    IMAGE_SIZE,
    NUM_IMAGES,
    classes_to_index,
    classes_to_values,
    index_to_classes,
    validate_classes,
)

logger = logging.getLogger(__name__)

DSPRITES_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
"""File name of the official dSprites archive, also used for the rendered grid."""

DATA_DIR_ENV = "CAUSALVAE_DATA_DIR"
CACHE_SUBDIR = "causalvae"
GENERATE_CHUNK_SIZE = 16_384
"""Images rendered and written per step by :func:`generate_dsprites`."""

RESERVED_KEYS = frozenset(
    {"imgs", "latents_classes", "latents_values", "original_dataset_indices"}
)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with counts of images."""


def default_data_dir(data_dir: str | Path | None = None) -> Path:
    """Resolve the folder that contains dSprites files.

    The first of these that is set wins: ``data_dir``, the environment variable
    ``CAUSALVAE_DATA_DIR``, ``$XDG_CACHE_HOME/causalvae`` (when ``XDG_CACHE_HOME``
    is an absolute path) and ``~/.cache/causalvae``. The folder is not created.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    # The XDG base directory specification treats relative paths as invalid.
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache and Path(xdg_cache).is_absolute():
        return Path(xdg_cache) / CACHE_SUBDIR
    return Path.home() / ".cache" / CACHE_SUBDIR


def sidecar_path(path: str | Path) -> Path:
    """Return the JSON file that records how the data file ``path`` was generated."""
    return Path(path).with_suffix(".json")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a temporary binary file that replaces ``path`` when the block succeeds.

    The parent folder is created when missing. When the block raises, the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below)
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # Temporary files are created private (0600); give the result the mode a
        # plain open() would: that of the file it replaces, else 0666 minus umask.
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_npy_member(archive: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.ascontiguousarray(array))


def _write_rendered_images(
    archive: zipfile.ZipFile,
    classes: np.ndarray,
    progress: ProgressCallback | None,
) -> None:
    """Render ``classes`` chunk by chunk straight into the ``imgs`` member."""
    total = len(classes)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (total, IMAGE_SIZE, IMAGE_SIZE),
    }
    with archive.open("imgs.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for start in range(0, total, GENERATE_CHUNK_SIZE):
            chunk = classes[start : start + GENERATE_CHUNK_SIZE]
            member.write(render.render(chunk).tobytes())
            done = start + len(chunk)
            logger.debug("rendered %d of %d images", done, total)
            if progress is not None:
                progress(done, total)


def generate_dsprites(
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    indices: np.ndarray | None = None,
) -> Path:
    """Render the dSprites grid and write it in the layout of the official file.

    The archive is an uncompressed ``.npz`` with ``imgs`` uint8
    ``(num_images, 64, 64)``, ``latents_classes`` int64 ``(num_images, 6)`` and
    ``latents_values`` float64 ``(num_images, 6)``, with the constant colour column
    first (class 0, value 1.0). A JSON sidecar next to it records the renderer
    version. Both are written atomically.

    :param path: destination ``.npz`` file; its folder is created when missing.
    :param progress: called as ``progress(done, total)`` after each chunk of images.
    :param indices: grid indices to render, in order; defaults to all 737,280,
        which takes about 3 GiB on disk.
    :returns: ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if indices is None:
        indices = np.arange(NUM_IMAGES, dtype=np.int64)
    classes = index_to_classes(np.asarray(indices, dtype=np.int64).reshape(-1))
    total = len(classes)
    latents_classes = np.zeros((total, 6), dtype=np.int64)
    latents_classes[:, 1:] = classes
    latents_values = np.ones((total, 6), dtype=np.float64)
    latents_values[:, 1:] = classes_to_values(classes)

    logger.info("rendering %d dSprites images into %s", total, path)
    with (
        atomic_output(path) as handle,
        zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        _write_npy_member(archive, "latents_classes", latents_classes)
        _write_npy_member(archive, "latents_values", latents_values)
        _write_rendered_images(archive, classes, progress)

    record = {
        "generator": "causalvae.data.render",
        "renderer_version": render.RENDERER_VERSION,
        "causalvae_version": __version__,
        "num_images": total,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    with atomic_output(sidecar_path(path)) as handle:
        handle.write(json.dumps(record, indent=2).encode() + b"\n")
    logger.info("wrote %s", path)
    return path


def ensure_dsprites(
    data_dir: str | Path | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Return the path of the dSprites file in the data folder, rendering it if missing.

    An official file placed there under :data:`DSPRITES_FILENAME` is used as is.

    :param data_dir: data folder; see :func:`default_data_dir` for the default.
    :param progress: passed to :func:`generate_dsprites` when rendering.
    """
    path = default_data_dir(data_dir) / DSPRITES_FILENAME
    if path.is_file():
        _warn_if_outdated(path)
        return path
    logger.info("%s not found; rendering the dSprites grid (about 3 GiB)", path)
    return generate_dsprites(path, progress=progress)


def _warn_if_outdated(path: Path) -> None:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return
    try:
        version = json.loads(sidecar.read_text()).get("renderer_version")
    except (OSError, ValueError, AttributeError) as error:
        logger.warning("could not read %s: %s", sidecar, error)
        return
    if version != render.RENDERER_VERSION:
        logger.warning(
            "%s was rendered by renderer version %s, the current one is %s; "
            "run `causalvae data generate --force` to render it again",
            path,
            version,
            render.RENDERER_VERSION,
        )


def save_dataset(
    path: str | Path,
    images: np.ndarray,
    classes: np.ndarray,
    indices: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
    *,
    compress: bool = True,
) -> Path:
    """Write a dataset in the layout of the public dSprites subset, atomically.

    Keys: ``imgs`` uint8 ``(n, 64, 64)``, ``latents_classes`` int64 ``(n, 5)`` and
    ``latents_values`` float64 ``(n, 5)`` without the colour column,
    ``original_dataset_indices`` int64 ``(n,)``, and each ``extra`` array under
    its own key. :func:`causalvae.data.loader.load_dsprites` reads it back.

    :param images: pixels in {0, 1}, ``(n, 64, 64)``.
    :param classes: class indices ``(n, 5)``.
    :param indices: grid indices ``(n,)``; computed from ``classes`` when omitted,
        and must agree with them when given.
    :param extra: more arrays to store, numeric, boolean or unicode (never object
        arrays, so that reading needs no unpickling).
    :param compress: deflate the archive (smaller, slower to read).
    :raises ValueError: naming the array that is invalid.
    """
    images = np.asarray(images)
    count = len(images)
    if images.shape != (count, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images must have shape (n, 64, 64), got {images.shape}")
    if images.dtype != np.uint8 and images.dtype != np.bool_:
        raise ValueError(f"images must be uint8 or bool, got dtype {images.dtype}")
    if images.size and images.max() > 1:
        raise ValueError(
            f"image pixels must be 0 or 1, found {images.max()}; "
            "divide 0/255 images by 255"
        )
    classes = validate_classes(classes)
    if classes.shape != (count, 5):
        raise ValueError(f"classes must have shape ({count}, 5), got {classes.shape}")
    expected_indices = classes_to_index(classes)
    if indices is None:
        indices = expected_indices
    indices = np.asarray(indices)
    if indices.shape != (count,) or not np.array_equal(indices, expected_indices):
        raise ValueError(
            "indices must be the grid indices of classes, shape "
            f"({count},); pass indices=None to compute them"
        )

    arrays = {
        "imgs": images.astype(np.uint8, copy=False),
        "latents_classes": classes,
        "latents_values": classes_to_values(classes),
        "original_dataset_indices": indices.astype(np.int64, copy=False),
    }
    for key, value in (extra or {}).items():
        arrays[key] = _checked_extra(key, value)

    write = np.savez_compressed if compress else np.savez
    with atomic_output(path) as handle:
        write(handle, **arrays)
    logger.info("wrote %d images to %s", count, path)
    return Path(path)


def _checked_extra(key: str, value: np.ndarray) -> np.ndarray:
    if key in RESERVED_KEYS:
        raise ValueError(
            f"extra key {key!r} is reserved; choose a name other than "
            f"{', '.join(sorted(RESERVED_KEYS))}"
        )
    if not key or "/" in key or key.startswith("."):
        raise ValueError(
            f"extra key {key!r} is not a valid archive member name; use letters, "
            "digits and underscores"
        )
    array = np.asarray(value)
    if array.dtype.kind not in "biufcU":
        raise ValueError(
            f"extra array {key!r} has dtype {array.dtype}; store numbers, booleans "
            "or unicode strings (object arrays would need unpickling to read)"
        )
    return array
