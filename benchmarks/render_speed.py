"""Time rendering the full dSprites grid and writing it with ``generate_dsprites``.

Also checks the total of lit pixels over the grid and counts the images that more
than one factor combination produces (orientation 0 and 2π, and near-symmetric
squares and ellipses).

    OMP_NUM_THREADS=1 python benchmarks/render_speed.py --output speed.json
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.data.loader import load_dsprites
from causalvae.data.render import render_packed, unpack
from causalvae.data.spec import (
    FACTOR_NAMES,
    NUM_IMAGES,
    SHAPE_NAMES,
    index_to_classes,
)
from causalvae.data.store import DSPRITES_FILENAME, generate_dsprites


def _time_render() -> tuple[float, np.ndarray]:
    classes = index_to_classes(np.arange(NUM_IMAGES))
    start = time.perf_counter()
    packed = render_packed(classes)
    return time.perf_counter() - start, packed


def _time_render_per_shape() -> dict[str, float]:
    classes = index_to_classes(np.arange(NUM_IMAGES))
    seconds = {}
    for shape, name in enumerate(SHAPE_NAMES):
        members = classes[classes[:, 0] == shape]
        start = time.perf_counter()
        render_packed(members)
        seconds[name] = time.perf_counter() - start
    return seconds


def _grid_statistics(packed: np.ndarray) -> dict[str, Any]:
    classes = index_to_classes(np.arange(NUM_IMAGES))
    lit = np.zeros(NUM_IMAGES, dtype=np.int64)
    for start in range(0, NUM_IMAGES, 65_536):
        lit[start : start + 65_536] = unpack(packed[start : start + 65_536]).sum(
            axis=(1, 2)
        )

    # Group identical images and classify each group of two or more by the factors
    # that differ between its members.
    rows = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1] * 8)))
    _, group, sizes = np.unique(rows.ravel(), return_inverse=True, return_counts=True)
    shared = np.flatnonzero(sizes[group] > 1)
    shared = shared[np.argsort(group[shared], kind="stable")]
    boundaries = np.flatnonzero(np.diff(group[shared])) + 1
    kinds: collections.Counter[str] = collections.Counter()
    for members in np.split(shared, boundaries):
        member_classes = classes[members]
        varying = [
            name
            for column, name in enumerate(FACTOR_NAMES)
            if len(set(member_classes[:, column].tolist())) > 1
        ]
        shape = SHAPE_NAMES[member_classes[0, 0]]
        orientations = sorted(set(member_classes[:, 2].tolist()))
        if varying == ["orientation"] and orientations == [0, 39]:
            kinds[f"{shape}: orientations 0 and 39"] += 1
        elif varying == ["orientation"]:
            kinds[f"{shape}: other orientations"] += 1
        else:
            kinds[f"{shape}: {'+'.join(varying)}"] += 1
    return {
        "total_lit_pixels": int(lit.sum()),
        "mean_lit_pixels": {
            name: float(lit[classes[:, 0] == shape].mean())
            for shape, name in enumerate(SHAPE_NAMES)
        },
        "distinct_images": int(sizes.size),
        "groups_of_identical_images": dict(sorted(kinds.items())),
    }


def _time_generate(folder: Path) -> dict[str, float]:
    path = folder / DSPRITES_FILENAME
    start = time.perf_counter()
    generate_dsprites(path)
    generate_seconds = time.perf_counter() - start
    size = path.stat().st_size
    start = time.perf_counter()
    load_dsprites(path)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    load_dsprites(path, mmap=True)
    mmap_seconds = time.perf_counter() - start
    return {
        "generate_seconds": generate_seconds,
        "file_bytes": size,
        "load_seconds": load_seconds,
        "load_mmap_seconds": mmap_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="JSON file to write the results to")
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="folder for the 3 GiB file written by generate [default: a temporary "
        "folder, removed afterwards]",
    )
    parser.add_argument(
        "--skip-generate", action="store_true", help="time rendering only"
    )
    args = parser.parse_args()

    render_seconds, packed = _time_render()
    print(f"render_packed, full grid: {render_seconds:.1f} s")
    results: dict[str, Any] = {"render_seconds": render_seconds}
    results["render_seconds_per_shape"] = _time_render_per_shape()
    print(f"render_packed per shape: {results['render_seconds_per_shape']}")
    results.update(_grid_statistics(packed))
    print(f"total lit pixels: {results['total_lit_pixels']}")
    print(f"mean lit pixels per shape: {results['mean_lit_pixels']}")
    print(f"distinct images: {results['distinct_images']} of {NUM_IMAGES}")
    print(f"groups of identical images: {results['groups_of_identical_images']}")
    del packed

    if not args.skip_generate:
        if args.folder is None:
            with tempfile.TemporaryDirectory() as folder:
                results.update(_time_generate(Path(folder)))
        else:
            results.update(_time_generate(args.folder))
        print(
            f"generate_dsprites: {results['generate_seconds']:.1f} s, "
            f"{results['file_bytes'] / 2**30:.2f} GiB; load_dsprites: "
            f"{results['load_seconds']:.1f} s, with mmap "
            f"{results['load_mmap_seconds']:.1f} s"
        )
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
