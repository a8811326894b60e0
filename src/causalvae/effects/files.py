"""Atomic writes of the effect outputs, through
:func:`causalvae.data.store.atomic_output`.

An interrupted write leaves either the old file or the new one, never a partial
file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from causalvae.data.store import atomic_output


def write_csv(frame: pd.DataFrame, path: str | Path, index: bool = True) -> Path:
    """Write ``frame`` as CSV, atomically."""
    return write_text(frame.to_csv(index=index), path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_output(path) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)


def write_json(value: Any, path: str | Path) -> Path:
    """Write ``value`` as indented JSON, atomically."""
    return write_text(json.dumps(value, indent=2) + "\n", path)
