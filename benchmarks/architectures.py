"""Compare decoder architectures under the same training budget on the full grid.

For each architecture: ``causalvae train`` for a budget in steps (comparable on a busy
machine) or minutes on the cached full grid, then ``causalvae evaluate`` on the
held-out images. Prints and writes the key metrics.

Usage::

    python benchmarks/architectures.py --steps 3000 --output benchmarks/architectures.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEYS = ("heldout_neg_elbo", "reconstruction_iou", "counterfactual_iou")


def run(args: list[str]) -> None:
    command = [sys.executable, "-m", "causalvae", "-q", *args]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default="geometric,mlp")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--num-images", type=int, default=500)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for architecture in args.architectures.split(","):
            folder = Path(work) / architecture
            start = time.perf_counter()
            budget = (
                ["--steps", str(args.steps)]
                if args.steps
                else ["--minutes", str(args.minutes or 7.0)]
            )
            run(["train", "-o", str(folder), "--architecture", architecture, *budget])
            run(["evaluate", str(folder), "--num-images", str(args.num_images)])
            metrics = json.loads((folder / "metrics.json").read_text())
            history = json.loads((folder / "history.json").read_text())
            row = {
                "architecture": architecture,
                "budget_steps": args.steps,
                "budget_minutes": args.minutes,
                "steps": history[-1]["step"],
                "wall_s": round(time.perf_counter() - start, 1),
            }
            row.update({key: metrics[key] for key in KEYS})
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
