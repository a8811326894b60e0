"""Training throughput of the conditional VAE: threads × precision × architecture.

Each setting runs in a fresh subprocess (so the thread count applies from the start),
warms up for a few steps and then counts SVI steps for a fixed number of seconds.

Usage::

    python benchmarks/training_speed.py --seconds 20 --output benchmarks/training_speed.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np, torch
threads, precision, architecture, seconds, batch = sys.argv[1:6]
torch.set_num_threads(int(threads))
from causalvae.data.render import render
from causalvae.data.spec import index_to_classes
from causalvae.models import ConditionalVAE, ModelConfig
from causalvae.training import ImageData, neg_elbo_per_image
rng = np.random.default_rng(0)
classes = index_to_classes(rng.choice(737280, 4096, replace=False))
data = ImageData.split(render(classes), classes, heldout=96, seed=0)
model = ConditionalVAE(ModelConfig(architecture=architecture, precision=precision))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
def step(i):
    index = data.train_index[(i * int(batch)) % 3900 :][: int(batch)]
    images, factors = data.batch(index, torch.device("cpu"))
    loss = neg_elbo_per_image(model, images, factors) + model.label_loss(images, factors)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
for i in range(5):
    step(i)
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < float(seconds):
    step(steps); steps += 1
elapsed = time.perf_counter() - start
print(json.dumps({"steps_per_s": steps / elapsed, "images_per_s": steps * int(batch) / elapsed}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precision", default="bf16,fp32")
    parser.add_argument("--architecture", default="geometric,mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    rows = []
    settings = itertools.product(
        args.architecture.split(","), args.precision.split(","), args.threads.split(",")
    )
    for architecture, precision, threads in settings:
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                WORKER,
                threads,
                precision,
                architecture,
                str(args.seconds),
                str(args.batch_size),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        row = {
            "architecture": architecture,
            "precision": precision,
            "threads": int(threads),
            "batch_size": args.batch_size,
            **measured,
        }
        rows.append(row)
        print(
            f"{architecture:9s} {precision:4s} threads={threads}: "
            f"{measured['steps_per_s']:.2f} steps/s, "
            f"{measured['images_per_s']:.0f} images/s",
            flush=True,
        )
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(
                {"date": time.strftime("%Y-%m-%d"), "rows": rows}, handle, indent=2
            )


if __name__ == "__main__":
    main()
