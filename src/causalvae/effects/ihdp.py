"""The IHDP semi-synthetic benchmark: data files and the split of Louizos et al. (2017).

IHDP (Hill, 2011) keeps the 25 covariates and the treatment of 747 children from
the Infant Health and Development Program and simulates both potential outcomes, so
the true effect of every unit is known. Each replication file ``ihdp_npci_<k>.csv``
has no header and 30 columns: ``treatment, y_factual, y_cfactual, mu0, mu1,
x1, ..., x25``, where ``mu0`` and ``mu1`` are the noiseless expected outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IHDP_FILE_PATTERN = "ihdp_npci_{replication}.csv"
IHDP_COLUMNS: tuple[str, ...] = (
    "treatment",
    "y_factual",
    "y_cfactual",
    "mu0",
    "mu1",
    *(f"x{i}" for i in range(1, 26)),
)
NUM_REPLICATIONS = 10
CONTINUOUS_COVARIATES: tuple[str, ...] = tuple(f"x{i}" for i in range(1, 7))
"""x1 to x6 are continuous (and already standardised in the files); x7 to x25 are
binary."""

DEFAULT_IHDP_DIR = Path("..") / "shared" / "data" / "ihdp"
"""Default data folder, looked up relative to the current directory and then to the
repository root."""

SPLIT_SEED = 1
"""Seed of the split. Louizos et al. (2017) split every replication with the same
seed, so the units of each split are the same in all replications."""


@dataclass(frozen=True)
class IhdpReplication:
    """One IHDP replication.

    :ivar covariates: ``(747, 25)``; x14, coded 1/2 in the files, is recoded to 0/1.
    :ivar treatment: ``(747,)`` 0/1.
    :ivar y_factual: observed outcome ``(747,)``.
    :ivar y_cfactual: outcome under the other treatment ``(747,)``.
    :ivar mu0: noiseless expected outcome under control ``(747,)``.
    :ivar mu1: noiseless expected outcome under treatment ``(747,)``.
    """

    covariates: np.ndarray
    treatment: np.ndarray
    y_factual: np.ndarray
    y_cfactual: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray

    @property
    def true_ite(self) -> np.ndarray:
        """True individual effects ``mu1 - mu0``, ``(747,)``."""
        return self.mu1 - self.mu0


@dataclass(frozen=True)
class IhdpSplit:
    """Row indices of the training, validation and test units."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def within_sample(self) -> np.ndarray:
        """Training and validation units: those whose factual outcome was seen."""
        return np.concatenate([self.train, self.validation])


def resolve_ihdp_dir(data_dir: str | Path | None = None) -> Path:
    """Return the folder that contains ``ihdp_npci_1.csv``.

    :param data_dir: the folder; ``None`` tries :data:`DEFAULT_IHDP_DIR` relative to
        the current directory, then relative to the repository root.
    :raises FileNotFoundError: naming every folder tried.
    """
    if data_dir is not None:
        candidates = [Path(data_dir)]
    else:
        repository_root = Path(__file__).resolve().parents[3]
        candidates = [Path.cwd() / DEFAULT_IHDP_DIR, repository_root / DEFAULT_IHDP_DIR]
    first_file = IHDP_FILE_PATTERN.format(replication=1)
    for candidate in candidates:
        if (candidate / first_file).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"IHDP data not found: no {first_file} in {tried}. Pass the folder that "
        f"contains ihdp_npci_1.csv ... ihdp_npci_{NUM_REPLICATIONS}.csv as the data "
        "directory"
    )


def load_ihdp_replication(data_dir: str | Path, replication: int) -> IhdpReplication:
    """Load replication ``replication`` (1 to 10) from ``data_dir``.

    :raises FileNotFoundError: if the file is missing.
    :raises ValueError: if it does not have 30 numeric columns.
    """
    path = Path(data_dir) / IHDP_FILE_PATTERN.format(replication=replication)
    if not path.is_file():
        raise FileNotFoundError(f"IHDP replication file {str(path)!r} not found")
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    if table.shape[1] != len(IHDP_COLUMNS):
        raise ValueError(
            f"{str(path)!r} has {table.shape[1]} columns; expected "
            f"{len(IHDP_COLUMNS)} ({', '.join(IHDP_COLUMNS[:5])}, x1..x25)"
        )
    covariates = table[:, 5:].copy()
    covariates[:, 13] -= 1.0  # x14 is coded 1/2
    return IhdpReplication(
        covariates=covariates,
        treatment=table[:, 0],
        y_factual=table[:, 1],
        y_cfactual=table[:, 2],
        mu0=table[:, 3],
        mu1=table[:, 4],
    )


def louizos_split(num_units: int, seed: int = SPLIT_SEED) -> IhdpSplit:
    """Split units 63/27/10 into training, validation and test sets.

    As in Louizos et al. (2017): 10 % of the units (rounded up) are held out for
    testing, then 30 % of the rest (rounded up) become the validation set. Each
    step draws a permutation from ``numpy.random.RandomState(seed)``, takes the
    held-out units from its start and the kept units from the remainder, which is
    what scikit-learn's ``train_test_split(..., random_state=seed)`` does. For 747
    units this gives 470 training, 202 validation and 75 test units.
    """
    test_size = int(np.ceil(0.1 * num_units))
    permutation = np.random.RandomState(seed).permutation(num_units)
    test, rest = permutation[:test_size], permutation[test_size:]

    validation_size = int(np.ceil(0.3 * len(rest)))
    permutation = np.random.RandomState(seed).permutation(len(rest))
    validation = rest[permutation[:validation_size]]
    train = rest[permutation[validation_size:]]
    return IhdpSplit(train=train, validation=validation, test=test)
