"""Atomic file writes: a temporary file in the same folder, renamed into place.

An interrupted write leaves either the old file or the new one, never a partial
file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def replace_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name in the same folder, created by the writer with the usual umask.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_csv(frame: pd.DataFrame, path: str | Path, index: bool = True) -> Path:
    """Write ``frame`` as CSV, atomically."""
    with replace_atomically(path) as temporary:
        frame.to_csv(temporary, index=index)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` as UTF-8, atomically."""
    with replace_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(value: Any, path: str | Path) -> Path:
    """Write ``value`` as indented JSON, atomically."""
    with replace_atomically(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    return Path(path)
