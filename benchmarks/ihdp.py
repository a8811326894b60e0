"""IHDP benchmark of CEVAE and three baselines, recorded in ``benchmarks/RESULTS.md``.

Runs :func:`causalvae.effects.run_ihdp_benchmark` with the package's IHDP settings
(the same as ``causalvae effects benchmark ihdp``), prints the Markdown tables and,
with ``--write-results``, replaces the section "IHDP treatment effects" of
``RESULTS.md``. Usage, from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ihdp.py --write-results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import pyro
import torch

from causalvae.data.store import atomic_output
from causalvae.effects import IHDP_CONFIG, run_ihdp_benchmark
from causalvae.effects.files import write_json
from causalvae.effects.ihdp_benchmark import format_ihdp_markdown
from causalvae.runtime import configure_threads

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## IHDP treatment effects"


def machine_description() -> str:
    """Describe the CPU, memory, GPU and library versions of this machine."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    gpu = "a CUDA GPU" if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPU cores ({model}){memory}, {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"pyro-ppl {pyro.__version__}; {torch.get_num_threads()} torch thread(s)"
    )


def run_header(command: str, load_before: float, load_after: float) -> list[str]:
    """Return the lines that open a results section: the command in a code block,
    then the machine and the load average around the run."""
    return [
        "```",
        command,
        "```",
        "",
        f"Machine: {machine_description()}. Load average {load_before:.1f} before "
        f"and {load_after:.1f} after the run, from other jobs sharing the cores.",
        "",
    ]


def cevae_sentence(rows: pd.DataFrame) -> str:
    """Summarise CEVAE's out-of-sample scores and its worst replication."""
    cevae = rows[rows["method"] == "CEVAE"]
    worst = cevae.loc[cevae["out_sqrt_pehe"].idxmax()]
    above = int((cevae["out_sqrt_pehe"] > 5).sum())
    return (
        f"CEVAE, out of sample: mean √PEHE {cevae['out_sqrt_pehe'].mean():.2f}, mean "
        f"ATE error {cevae['out_ate_error'].mean():.2f}; worst replication "
        f"{int(worst['replication'])} with √PEHE {worst['out_sqrt_pehe']:.2f}; "
        f"{above} replication(s) above 5."
    )


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the text from ``heading`` to the next heading of the same level with
    ``heading`` and ``body``, or append them when the heading is absent."""
    text = (
        path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    )
    level = heading.split(" ", 1)[0] + " "
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    section = [f"{heading}\n", "\n", body.rstrip("\n") + "\n", "\n"]
    if start is None:
        if lines and lines[-1].strip():
            lines.append("\n")
        lines.extend(section)
    else:
        end = next(
            (
                i
                for i in range(start + 1, len(lines))
                if lines[i].startswith(level) and not lines[i].startswith(level + "#")
            ),
            len(lines),
        )
        lines[start:end] = section
    with atomic_output(path) as handle:
        handle.write(("".join(lines).rstrip("\n") + "\n").encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument(
        "--only",
        type=int,
        nargs="+",
        default=None,
        help="run these replication numbers instead of 1 to --replications",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="JSON of all scores")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.only and args.write_results:
        parser.error("--write-results records all replications; drop --only")
    configure_threads()
    replications = args.only or list(range(1, args.replications + 1))

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = run_ihdp_benchmark(
        args.data_dir,
        replications,
        config=IHDP_CONFIG,
        seed=args.seed,
        on_replication=lambda replication, rows: print(
            f"replication {replication}: CEVAE out-of-sample sqrt(PEHE) "
            f"{rows.set_index('method').at['CEVAE', 'out_sqrt_pehe']:.3f}, "
            f"{time.perf_counter() - start:.0f} s so far",
            file=sys.stderr,
        ),
    )
    load_after = os.getloadavg()[0]
    markdown = format_ihdp_markdown(result, heading_level=3)
    print(markdown)
    print(f"{len(replications)} replication(s) in {result.seconds:.0f} s")

    if args.output is not None:
        record = {
            # to_json writes the baselines' missing epochs as null, not bare NaN.
            "rows": json.loads(result.rows.to_json(orient="records")),
            "summary": result.summary().to_dict(orient="index"),
            "seconds": result.seconds,
            "config": dataclasses.asdict(result.config),
            "machine": machine_description(),
        }
        write_json(record, args.output)

    if args.write_results:
        command = (
            "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ihdp.py --write-results"
        )
        if args.replications != 10 or args.seed != 0:
            command += f" --replications {args.replications} --seed {args.seed}"
        if args.data_dir is not None:
            command += f" --data-dir {args.data_dir}"
        if args.output is not None:
            command += f" --output {args.output}"
        body = "\n".join(
            [
                *run_header(command, load_before, load_after),
                f"{args.replications} replications in {result.seconds / 60:.1f} "
                f"minutes. Mean ± standard error over replications; protocol in "
                "`docs/effects.md`.",
                "",
                cevae_sentence(result.rows),
                "",
                markdown,
            ]
        )
        replace_section(RESULTS, HEADING, body)
        print(f"updated {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
