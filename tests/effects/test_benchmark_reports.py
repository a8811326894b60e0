"""Markdown reports of the IHDP and dSprites benchmarks, from made-up scores."""

from __future__ import annotations

import pandas as pd
import pytest

from causalvae.effects import DspritesBenchmarkResult, IhdpBenchmarkResult
from causalvae.effects.ihdp_benchmark import (
    IHDP_CONFIG,
    METHODS,
    METRICS,
    format_ihdp_markdown,
)
from causalvae.effects.images import DSPRITES_CONFIG


def ihdp_result(replications: list[int]) -> IhdpBenchmarkResult:
    """Scores where every metric of replication r is ``r + 0.13``."""
    records = []
    for replication in replications:
        for method in METHODS:
            record = {"method": method, "replication": replication}
            record.update({metric: replication + 0.13 for metric in METRICS})
            record["validation_factual_rmse"] = 1.0
            record["seconds"] = 2.0
            records.append(record)
    return IhdpBenchmarkResult(
        rows=pd.DataFrame.from_records(records),
        config=IHDP_CONFIG,
        seed=7,
        replications=replications,
    )


def test_ihdp_markdown_starts_with_heading_and_settings():
    lines = format_ihdp_markdown(ihdp_result([1, 2])).splitlines()

    assert lines[0] == "# IHDP benchmark"
    assert lines[2].startswith("Replications: 1, 2 (2 in all). CEVAE seed 7, at most")


def test_ihdp_markdown_heading_level():
    markdown = format_ihdp_markdown(ihdp_result([1, 2]), heading_level=3)
    headings = [line for line in markdown.splitlines() if line.startswith("#")]

    assert headings == [
        "### IHDP benchmark",
        "#### Summary",
        "#### CEVAE per replication",
    ]
    assert "johnson_su outcome, per_arm abduction" in markdown


def test_ihdp_markdown_one_replication_has_no_standard_error():
    markdown = format_ihdp_markdown(ihdp_result([1]))

    assert "nan" not in markdown
    assert "±" not in markdown
    assert "| CEVAE | 1.13 | 1.13 | 1.13 | 1.13 | 1.13 |" in markdown
    assert "a standard error needs at least 2 replications" in markdown


def test_ihdp_markdown_two_replications_have_standard_error():
    # Scores 1.13 and 2.13: mean 1.63, standard error 0.5.
    markdown = format_ihdp_markdown(ihdp_result([1, 2]))

    assert "| CEVAE | 1.63 ± 0.50 | 1.63 ± 0.50 |" in markdown
    assert "mean ± standard error over 2 replications" in markdown


@pytest.fixture
def dsprites_result() -> DspritesBenchmarkResult:
    return DspritesBenchmarkResult(
        estimates={
            "difference in means": 2.5,
            "OLS with interactions": 1.1,
            "CEVAE": 1.05,
        },
        true_ate=1.0,
        cevae_sqrt_pehe=0.234,
        num_units=300,
        features="pixels",
        seed=3,
        seconds=1.0,
        config=DSPRITES_CONFIG,
    )


def test_dsprites_markdown_starts_with_heading_and_settings(dsprites_result):
    lines = dsprites_result.to_markdown().splitlines()

    assert lines[0] == "# dSprites treatment-effect benchmark"
    assert lines[2].startswith("300 units, pixels features, seed 3, 1 replication.")


def test_dsprites_markdown_reports_sqrt_pehe(dsprites_result):
    markdown = dsprites_result.to_markdown()

    assert "CEVAE's √PEHE over all units: 0.234." in markdown
    assert "| CEVAE | 1.050 | 0.050 |" in markdown
