"""Fixtures for the dSprites tests: original pixels, when they are available."""

from __future__ import annotations

from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
REAL_DSPRITES_DIR = REPOSITORY_ROOT.parent / "shared" / "data" / "dsprites-real"


@pytest.fixture(scope="session")
def real_dsprites_dir() -> Path:
    """Folder with original dSprites images; skips the test when it is missing."""
    if not (REAL_DSPRITES_DIR / "dsprites_subset.npz").is_file():
        pytest.skip(f"original dSprites images not found in {REAL_DSPRITES_DIR}")
    return REAL_DSPRITES_DIR
