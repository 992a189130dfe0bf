"""Atomic file replacement: readers never see a half-written file."""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary name beside ``path`` (same extension); rename it to ``path`` if the block succeeds,
    delete it otherwise, so readers never see a half-written file."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
