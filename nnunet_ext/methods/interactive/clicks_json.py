"""Clicks JSON files: our format and grand-challenge "Multiple points" (autoPET IV).

Our format, one file per case (a list) or one file keyed by case::

    [{"point": [x, y, z], "space": "world", "label": "GTVp", "positive": true}, ...]
    {"CASE_001": [...], "CASE_002": [...]}

``space`` is ``world`` (mm, LPS as SimpleITK; the default) or ``voxel`` (SimpleITK (x, y, z) index);
``label`` a class name or value; ``positive`` defaults to true; ``label`` may be omitted for a negative
click, which then applies to every class.

Grand-challenge "Multiple points" (as in the autoPET IV interactive track)::

    {"type": "Multiple points", "points": [{"point": [x, y, z], "name": "tumor"}, ...]}

Point names are mapped to ``(label, positive)`` by ``names``; the default maps ``tumor`` to a positive click
of class 1 and ``background`` to a negative click of every class; any other name is taken as a class name
(positive). autoPET IV writes voxel indices in (x, y, z) order (nibabel's array order = SimpleITK's index
order), so ``gc_space`` defaults to ``voxel``; pass ``world`` for files holding millimetres. A keyed file may
hold "Multiple points" objects as values. Every problem raises :class:`InputError` naming the file and the
field (``CASE[2].point``) or, for a syntax error, the line and column.
"""
from __future__ import annotations

import json
import math
import os
from typing import Mapping, Sequence

from nnunet_ext.errors import InputError
from nnunet_ext.methods.interactive.clicks import SPACES, Click

__all__ = ["DEFAULT_POINT_NAMES", "parse_point_names", "parse_clicks", "load_clicks", "clicks_for_case"]

#: grand-challenge point name -> (label, positive); None = every class
DEFAULT_POINT_NAMES = {"tumor": (1, True), "background": (None, False)}
GC_TYPE = "Multiple points"


def parse_point_names(items: Sequence[str]) -> dict:
    """``["tumor=GTVp", "node=GTVn", "background=-"]`` -> names map; ``-CLASS`` = negative click of CLASS,
    ``-`` = negative click of every class."""
    out = dict(DEFAULT_POINT_NAMES)
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InputError(f"point name mapping must be NAME=CLASS, NAME=-CLASS or NAME=-; got {item!r}")
        target = target.strip()
        if target == "-":
            out[name.strip()] = (None, False)
        elif target.startswith("-"):
            out[name.strip()] = (_label(target[1:]), False)
        else:
            out[name.strip()] = (_label(target), True)
    return out


def _label(text):
    return int(text) if isinstance(text, str) and text.strip().isdigit() else text


def _point(value, where: str) -> tuple:
    if (not isinstance(value, list) or len(value) not in (2, 3)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{where}: expected a list of 3 numbers [x, y, z], got {json.dumps(value)}")
    bad = [f"{'xyz'[i]} = {json.dumps(v)}" for i, v in enumerate(value) if not math.isfinite(v)]
    if bad:  # JSON's NaN / Infinity literals (Python's json reads them): an index would be -2**63
        raise InputError(f"{where}: coordinate {', '.join(bad)} is not a finite number (NaN or infinite)")
    return tuple(value)


def _our_click(item, where: str) -> Click:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with a 'point', got {json.dumps(item)}")
    unknown = set(item) - {"point", "space", "label", "positive"}
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: point, space, label, positive)")
    if "point" not in item:
        raise InputError(f"{where}.point: missing")
    space = item.get("space", "world")
    if space not in SPACES:
        raise InputError(f"{where}.space: must be 'world' or 'voxel', got {json.dumps(space)}")
    positive = item.get("positive", True)
    if not isinstance(positive, bool):
        raise InputError(f"{where}.positive: must be true or false, got {json.dumps(positive)}")
    label = item.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        raise InputError(f"{where}.label: must be a class name or value, got {json.dumps(label)}")
    if label is None and positive:
        raise InputError(f"{where}.label: missing (only a negative click may omit its class)")
    return Click(_point(item["point"], f"{where}.point"), _label(label), positive, space)


def _gc_clicks(obj: dict, where: str, names: Mapping, space: str) -> list:
    points = obj.get("points")
    if not isinstance(points, list):
        raise InputError(f"{where}.points: expected a list of points, got {json.dumps(points)}")
    out = []
    for n, p in enumerate(points):
        w = f"{where}.points[{n}]"
        if not isinstance(p, dict) or "point" not in p:
            raise InputError(f"{w}: expected an object with 'point' and 'name', got {json.dumps(p)}")
        name = p.get("name")
        if not isinstance(name, str):
            raise InputError(f"{w}.name: expected a string, got {json.dumps(name)}")
        label, positive = names.get(name, (_label(name), True))
        out.append(Click(_point(p["point"], f"{w}.point"), label, positive, space))
    return out


def _case_clicks(value, where: str, names: Mapping, gc_space: str) -> list:
    if isinstance(value, dict) and value.get("type") == GC_TYPE:
        return _gc_clicks(value, where, names, gc_space)
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list of clicks or a '{GC_TYPE}' object, got {type(value).__name__}")
    return [_our_click(item, f"{where}[{n}]") for n, item in enumerate(value)]


def parse_clicks(obj, source: str = "clicks", names: "Mapping | None" = None, gc_space: str = "voxel") -> dict:
    """``{case_id or None: [Click, ...]}``; ``None`` is the key of a per-case file (list or GC object)."""
    names = DEFAULT_POINT_NAMES if names is None else names
    if gc_space not in SPACES:
        raise InputError(f"grand-challenge point space must be 'world' or 'voxel', got {gc_space!r}")
    if isinstance(obj, list) or (isinstance(obj, dict) and obj.get("type") == GC_TYPE):
        return {None: _case_clicks(obj, source, names, gc_space)}
    if isinstance(obj, dict) and "type" in obj and not isinstance(obj["type"], list):
        raise InputError(f"{source}.type: only '{GC_TYPE}' is supported, got {json.dumps(obj['type'])}")
    if not isinstance(obj, dict):
        raise InputError(f"{source}: expected a list of clicks, an object keyed by case or a '{GC_TYPE}' object")
    return {str(case): _case_clicks(v, f"{source}: {case}", names, gc_space) for case, v in obj.items()}


def load_clicks(path: "str | os.PathLike", names: "Mapping | None" = None, gc_space: str = "voxel") -> dict:
    """Read and parse a clicks JSON file (see :func:`parse_clicks`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: clicks file not found")
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return parse_clicks(obj, path, names, gc_space)


def clicks_for_case(parsed: Mapping, case_id: str) -> list:
    """The clicks of ``case_id`` from a parsed file (a per-case file applies to whichever case it is given
    for); [] when the case has none."""
    if None in parsed:
        return list(parsed[None])
    return list(parsed.get(case_id, []))
