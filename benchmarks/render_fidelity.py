"""Compare the procedural renderer with original dSprites pixels.

Renders the factors of every image in the original files and counts the pixels that
differ. Prints, per file and per shape, the share of images that match exactly, the
maximum number of differing pixels and their histogram, and optionally writes the
same as JSON.

    python benchmarks/render_fidelity.py --output fidelity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.data.render import RENDERER_VERSION, render
from causalvae.data.spec import SHAPE_NAMES

DEFAULT_REAL_DIR = (
    Path(__file__).resolve().parents[1].parent / "shared/data/dsprites-real"
)
# File name and the column of latents_classes where the five factors start.
REAL_FILES = (("dsprites_subset.npz", 0), ("gif_frames.npz", 1))


def _summarise(differing: np.ndarray) -> dict[str, Any]:
    values, counts = np.unique(differing, return_counts=True)
    return {
        "images": int(differing.size),
        "identical_fraction": float((differing == 0).mean()) if differing.size else 1.0,
        "max_differing_pixels": int(differing.max()) if differing.size else 0,
        "histogram": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
    }


def compare(real_dir: Path) -> dict[str, Any]:
    """Return fidelity statistics for every original file found in ``real_dir``."""
    results: dict[str, Any] = {"renderer_version": RENDERER_VERSION, "files": {}}
    all_differing = []
    for name, first_column in REAL_FILES:
        path = real_dir / name
        if not path.is_file():
            print(f"skipping {path}: not found", file=sys.stderr)
            continue
        with np.load(path, allow_pickle=False) as archive:
            images = archive["imgs"]
            classes = archive["latents_classes"][:, first_column:]
        differing = (render(classes) != images).sum(axis=(1, 2))
        all_differing.append(differing)
        per_shape = {
            shape_name: _summarise(differing[classes[:, 0] == shape])
            for shape, shape_name in enumerate(SHAPE_NAMES)
        }
        results["files"][name] = {"all": _summarise(differing), "shapes": per_shape}
    if all_differing:
        results["all"] = _summarise(np.concatenate(all_differing))
    return results


def _print(results: dict[str, Any]) -> None:
    print(f"renderer version {results['renderer_version']}")
    for name, result in results["files"].items():
        for label, summary in [("all", result["all"]), *result["shapes"].items()]:
            print(
                f"{name:<20} {label:<8} images {summary['images']:>6}  "
                f"identical {summary['identical_fraction']:.4f}  "
                f"max differing {summary['max_differing_pixels']}  "
                f"histogram {summary['histogram']}"
            )
    if "all" in results:
        summary = results["all"]
        print(
            f"{'both files':<29} images {summary['images']:>6}  "
            f"identical {summary['identical_fraction']:.4f}  "
            f"max differing {summary['max_differing_pixels']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--real-dir",
        type=Path,
        default=DEFAULT_REAL_DIR,
        help="folder with dsprites_subset.npz and gif_frames.npz "
        "[default: %(default)s]",
    )
    parser.add_argument("--output", type=Path, help="JSON file to write the results to")
    args = parser.parse_args()
    results = compare(args.real_dir)
    _print(results)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
