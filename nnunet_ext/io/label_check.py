"""Label values of segmentations: the one check every reader of segmentations calls (issue 19, item 4).

A segmentation read by ``nnext evaluate``, ``roi-dataset``, ``kernel-dataset``, ``evaluate-raters`` or
``convert raters`` may only hold the values its dataset declares; anything else (a 7 in a two-class dataset, a
rater mask holding 2) was, before this module, scored as background or copied as it was, without a word.

* :func:`declared_label_values` ``(labels, source)`` -> the set of integer values a ``dataset.json`` ``labels``
  dict declares: plain values, the members of region lists (nnU-Net's region-based datasets: ``"whole tumor":
  [1, 2, 3]``) and the ``ignore`` label. Background must be declared and be ``0`` (nnU-Net's convention; a
  ``"background": 1`` dataset would silently swap the meaning of every voxel).
* :func:`unknown_values` ``(array, allowed)`` -> the sorted values of ``array`` not in ``allowed``.
* :func:`check_label_values` ``(array, path, allowed, source)`` -> InputError naming the file, the unknown values
  (and how many voxels hold them) and where the allowed values come from.
* :func:`check_binary` ``(array, path, what)`` -> InputError unless every value is 0 or 1 (rater masks).
* :func:`unknown_to_background` ``(array, unknown)`` -> a copy with the unknown values set to 0 (``nnext evaluate
  --ignore-unknown-labels``; the caller warns naming the file).

Only numpy is imported (inside the functions); messages are one line.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

from nnunet_ext.errors import InputError

_MAX_SHOWN = 8  # values named in one message


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    try:
        import numpy as np

        if isinstance(v, np.integer):
            return True
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return isinstance(v, float) and v.is_integer()


def declared_label_values(labels: Mapping, source: str | os.PathLike = "dataset.json") -> set[int]:
    """Every integer value of a ``dataset.json`` ``labels`` dict (regions flattened, ``ignore`` included);
    InputError when background is missing or not 0, or a value is not a non-negative integer."""
    source = os.fspath(source)
    if not isinstance(labels, Mapping) or not labels:
        raise InputError(f"{source}: 'labels' must be a non-empty dict of name -> value")
    if "background" not in labels:
        raise InputError(f"{source}: 'labels' lacks 'background' (nnU-Net requires \"background\": 0)")
    if labels["background"] not in (0, [0]) or isinstance(labels["background"], bool):
        raise InputError(f"{source}: background must be label 0, got \"background\": "
                         f"{labels['background']!r} (nnU-Net's convention; relabel the dataset)")
    values: set[int] = set()
    for name, value in labels.items():
        members = value if isinstance(value, (list, tuple)) else [value]
        if not members or not all(_is_int(v) and int(v) >= 0 for v in members):
            raise InputError(f"{source}: label {name!r} has value {value!r}; expected a non-negative integer "
                             "or a list of them (a region)")
        values.update(int(v) for v in members)
    return values


def unknown_values(array, allowed: Iterable[int]) -> list[int]:
    """Sorted values present in ``array`` that are not in ``allowed`` (integers as Python ints)."""
    import numpy as np

    present = np.unique(np.asarray(array))
    bad = present[~np.isin(present, np.fromiter(set(allowed), dtype=np.int64))]
    return [int(v) if float(v).is_integer() else float(v) for v in bad]


def _shown(values: list) -> str:
    head = ", ".join(str(v) for v in values[:_MAX_SHOWN])
    return f"[{head}{', ...' if len(values) > _MAX_SHOWN else ''}]"


def check_label_values(array, path: str | os.PathLike, allowed: Iterable[int],
                       source: str = "dataset.json", hint: str = "") -> None:
    """InputError when ``array`` (read from ``path``) holds a value outside ``allowed``: names the file, the
    values, the voxel count and ``source`` (where the allowed values are declared)."""
    import numpy as np

    allowed = sorted(set(int(v) for v in allowed))
    bad = unknown_values(array, allowed)
    if bad:
        n = int(np.isin(np.asarray(array), bad).sum())
        raise InputError(f"{os.fspath(path)}: label value(s) {_shown(bad)} ({n} voxel(s)) not declared in {source} "
                         f"(labels {_shown(allowed)}){hint}")


def check_binary(array, path: str | os.PathLike, what: str = "rater mask") -> None:
    """InputError unless ``array`` holds only 0 and 1 (names the file, the other values and their voxels)."""
    import numpy as np

    bad = unknown_values(array, (0, 1))
    if bad:
        n = int(np.isin(np.asarray(array), bad).sum())
        raise InputError(f"{os.fspath(path)}: {what}s must be binary 0/1, found value(s) {_shown(bad)} in {n} "
                         "voxel(s)")


def unknown_to_background(array, unknown: Iterable):
    """Copy of ``array`` with the ``unknown`` values set to 0."""
    import numpy as np

    arr = np.asarray(array)
    return np.where(np.isin(arr, list(unknown)), np.zeros((), arr.dtype), arr)


__all__ = ["declared_label_values", "unknown_values", "check_label_values", "check_binary", "unknown_to_background"]
