"""Stale-output guard: an output folder records the settings that produced it (hidden ``.nnext_settings.json``,
or a per-step file); a re-run with different settings is refused naming them (``config.top_k: null -> 1``),
unless ``overwrite``, and ``nnext demo`` redoes a step whose settings changed.

* :func:`check_settings` ``(folder, settings, overwrite) -> bool`` - reuse (True), fresh (False) or refuse.
* :func:`record_settings` ``(folder, settings, command=...) -> Path`` - the record, written atomically.
* :func:`differing_settings` ``(folder, settings) -> list | None`` - the settings that differ, by name.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from nnunet_ext.errors import InputError

SETTINGS_FILE = ".nnext_settings.json"  # hidden: folder listings (cases) stay as they were


def normalised_settings(settings: Mapping[str, Any]) -> dict:
    """``settings`` as JSON would give them back (keys sorted, tuples as lists, other objects as ``str``)."""
    return json.loads(json.dumps(dict(settings), default=str, sort_keys=True))


def flat_settings(d: Mapping[str, Any], prefix: str = "") -> dict:
    """``{"config": {"top_k": 1}} -> {"config.top_k": 1}`` so that a difference names the leaf setting."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``[(leaf key, old value, new value)]`` for every leaf that differs (sorted; ``"<absent>"`` when missing)."""
    a, b = flat_settings(old), flat_settings(new)
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")]


def _recorded(record: Path) -> "dict | None":
    """The ``settings`` object of a record file; None when it is missing, unreadable or not an object."""
    try:
        old = json.loads(record.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        return None
    return old if isinstance(old, dict) else None


def check_settings(folder: str | os.PathLike, settings: Mapping[str, Any], overwrite: bool = False, *,
                   filename: str = SETTINGS_FILE, what: str = "output folder") -> bool:
    """Stale-output guard. Compare ``settings`` (the options that determine the outputs; JSON-able) with those
    recorded in ``folder/filename``.

    * no record (new folder, or written by an older version): returns ``False``;
    * same settings: returns ``True`` (existing outputs are valid; resume / reuse them);
    * different settings: InputError naming each differing setting (``key: recorded -> now``), unless
      ``overwrite`` (returns ``False``; the caller replaces the outputs).

    Nothing is written: call :func:`record_settings` once the inputs are validated, before the first output.
    """
    record = Path(os.fspath(folder)) / filename
    if not record.is_file():
        return False
    old = _recorded(record)
    if old is None:
        if overwrite:
            return False
        raise InputError(f"{record}: unreadable settings record of the {what}; pass --overwrite to replace it")
    diff = [f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, a, b in settings_diff(old, normalised_settings(settings))]
    if not diff:
        return True
    if overwrite:
        return False
    raise InputError(f"{Path(os.fspath(folder))}: {what} was written with other settings ({'; '.join(diff)}); "
                     "pass --overwrite to replace its outputs, or choose another folder")


def record_settings(folder: str | os.PathLike, settings: Mapping[str, Any], *, filename: str = SETTINGS_FILE,
                    command: str | None = None) -> Path:
    """Write ``folder/filename`` = ``{"command", "settings"}`` atomically (creates ``folder``); returns its path."""
    from nnunet_ext.io.atomic_write import write_text as atomic_write_text

    record = Path(os.fspath(folder)) / filename
    body = {"command": command, "settings": normalised_settings(settings)}
    atomic_write_text(record, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return record


def differing_settings(folder: str | os.PathLike, settings: Mapping[str, Any], *,
                       filename: str = SETTINGS_FILE) -> list[str] | None:
    """Names of the settings that differ from the record (``[]`` = same), ``None`` without a readable record.
    For commands that redo a step instead of refusing (``nnext demo``)."""
    old = _recorded(Path(os.fspath(folder)) / filename)
    if old is None:
        return None
    return [k for k, _, _ in settings_diff(old, normalised_settings(settings))]


__all__ = ["SETTINGS_FILE", "check_settings", "record_settings", "differing_settings"]
