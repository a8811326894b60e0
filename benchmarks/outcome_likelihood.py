"""Normal against Johnson SU outcomes on two small tables, recorded in ``RESULTS.md``.

Fits CEVAE with each outcome likelihood on two tables with a hidden confounder u:

* ``normal``: the 600-unit table of ``tests/effects/test_fit_effects.py``,
  ``y = 2 t + 3 u + Normal noise``, with the small settings of that test;
* ``long tail``: 400 units, ``t ~ Bernoulli(sigmoid(u))`` and
  ``y = t + exp(1.2 u) + Normal(0, 0.3²)``, with the default settings.

The true effect is 2 and 1 for every unit. It prints the ATE, the spread of the
unit effects and the validation error of the factual outcome and, with
``--write-results``, replaces the section "Outcome likelihoods" of ``RESULTS.md``.
Usage, from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/outcome_likelihood.py --write-results
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from causalvae.effects import CevaeConfig, fit_effects
from causalvae.runtime import configure_threads
from ihdp import RESULTS, replace_section, run_header

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "effects"))
from test_fit_effects import SMALL, TRUE_ATE, confounded_table

HEADING = "## Outcome likelihoods"
LIKELIHOODS = ("normal", "johnson_su")


def long_tail_table(num_units: int = 400, seed: int = 0) -> pd.DataFrame:
    """Return a table whose outcome grows exponentially in the hidden u."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=num_units)
    columns = {f"x{j}": u + 0.5 * rng.normal(size=num_units) for j in range(3)}
    treatment = (rng.random(num_units) < 1 / (1 + np.exp(-u))).astype(int)
    columns["t"] = treatment
    columns["y"] = treatment + np.exp(1.2 * u) + 0.3 * rng.normal(size=num_units)
    return pd.DataFrame(columns)


def score(table: pd.DataFrame, config: CevaeConfig, true_effect: float) -> list[str]:
    """Fit one table and return the Markdown cells of its row."""
    naive = table.y[table.t == 1].mean() - table.y[table.t == 0].mean()
    fit = fit_effects(table, "t", "y", config=config)
    factual = np.where(table.t == 1, fit.y1, fit.y0)
    validation = fit.is_validation
    rmse = np.sqrt(np.mean((factual - table.y.to_numpy())[validation] ** 2))
    return [
        f"{true_effect:g}",
        f"{naive:.2f}",
        f"{fit.ate:.2f}",
        f"{fit.ite.min():.1f} to {fit.ite.max():.1f}",
        f"{rmse:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    configure_threads()

    load_before = os.getloadavg()[0]
    tables = (
        ("normal", confounded_table(), SMALL, TRUE_ATE),
        ("long tail", long_tail_table(), CevaeConfig(), 1.0),
    )
    lines = [
        "| table | likelihood | true effect | difference in means | ATE "
        "| unit effects | validation factual RMSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, table, config, true_effect in tables:
        for likelihood in LIKELIHOODS:
            settings = dataclasses.replace(config, outcome_likelihood=likelihood)
            cells = score(table, settings, true_effect)
            lines.append(f"| {name} | {likelihood} | {' | '.join(cells)} |")
            print(lines[-1], file=sys.stderr)
    load_after = os.getloadavg()[0]
    markdown = "\n".join(lines) + "\n"
    print(markdown)

    if args.write_results:
        command = (
            "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/outcome_likelihood.py "
            "--write-results"
        )
        body = "\n".join(
            [
                *run_header(command, load_before, load_after),
                "Tables and settings are described in the script; seed 0 throughout.",
                "",
                markdown,
            ]
        )
        replace_section(RESULTS, HEADING, body)
        print(f"updated {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
