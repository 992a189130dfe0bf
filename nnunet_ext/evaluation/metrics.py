"""Per-pair metrics and label / region handling (pure numpy; no file IO, no nnU-Net import).

A *label* ``l`` selects the mask ``seg == l``; a *region* ``(l1, l2, ...)`` selects ``isin(seg, {l1, l2, ...})``
(nnU-Net's region-based convention, e.g. BraTS whole tumour = (1, 2, 3)). In summaries a label is keyed
``"1"`` and a region ``"1,2,3"`` (the syntax of ``nnext evaluate --regions``).
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Sequence, Union

import numpy as np

from nnunet_ext.core.overlap import overlap_metrics
from nnunet_ext.core.surface import DEFAULT_PENALTY_MM, surface_metrics
from nnunet_ext.errors import InputError

LabelOrRegion = Union[int, tuple[int, ...]]

#: Column order of the per-case metrics (summary.json and summary.csv).
METRIC_NAMES = ("dice", "iou", "sensitivity", "specificity", "precision", "accuracy", "hd", "hd95", "assd",
                "nsd", "boundary_dice", "volume_ref_mm3", "volume_pred_mm3", "voxels_ref", "voxels_pred",
                "tp", "fp", "fn", "tn")

__all__ = ["LabelOrRegion", "METRIC_NAMES", "compute_metrics", "mask_of", "label_key", "parse_label_key",
           "normalize_labels", "labels_from_dataset_json"]


def compute_metrics(ref_mask: np.ndarray, pred_mask: np.ndarray, spacing_zyx: Sequence[float], tau: float = 2.0,
                    penalty: float = DEFAULT_PENALTY_MM, boundary_width: float | None = None) -> dict[str, float]:
    """All metrics of one reference / prediction mask pair, keys in :data:`METRIC_NAMES` order.

    ``spacing_zyx`` is the voxel size in mm per array axis (``geometry.spacing[::-1]`` for SimpleITK images).
    Overlap metrics and their empty policy: :mod:`nnunet_ext.core.overlap`; HD, HD95, ASSD, NSD at ``tau`` mm,
    boundary Dice with band width ``boundary_width`` (default ``tau``) mm and the penalty for exactly one
    empty mask: :mod:`nnunet_ext.core.surface`. Volumes: voxel count x prod(spacing) (mm^3 for 3D images).
    """
    ref = np.asarray(ref_mask, dtype=bool)
    pred = np.asarray(pred_mask, dtype=bool)
    out = {**overlap_metrics(ref, pred),
           **surface_metrics(ref, pred, spacing_zyx, tau=tau, penalty=penalty, boundary_width=boundary_width)}
    voxel_volume = float(np.prod([float(s) for s in spacing_zyx]))
    out["volume_ref_mm3"] = out["voxels_ref"] * voxel_volume
    out["volume_pred_mm3"] = out["voxels_pred"] * voxel_volume
    return {k: out[k] for k in METRIC_NAMES}


def mask_of(seg: np.ndarray, label_or_region: LabelOrRegion) -> np.ndarray:
    """``seg == label`` for a label, ``isin(seg, region)`` for a region."""
    if isinstance(label_or_region, tuple):
        return np.isin(seg, label_or_region)
    return seg == label_or_region


def label_key(label_or_region: LabelOrRegion) -> str:
    """``1 -> "1"``, ``(1, 2, 3) -> "1,2,3"``."""
    if isinstance(label_or_region, tuple):
        return ",".join(str(v) for v in label_or_region)
    return str(label_or_region)


def parse_label_key(text: str) -> LabelOrRegion:
    """Inverse of :func:`label_key`; also accepts ``"(1, 2, 3)"`` (nnU-Net's spelling). Raises ValueError."""
    parts = [p.strip() for p in str(text).strip().strip("()[]").split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty label or region {text!r}")
    values = tuple(int(p) for p in parts)
    if any(v < 0 for v in values):
        raise ValueError(f"negative label in {text!r}")
    return values if "," in str(text) else values[0]


def normalize_labels(labels_or_regions: Iterable) -> list[LabelOrRegion]:
    """Validate a user list of labels (ints) and regions (sequences of ints); raise InputError if bad."""
    out: list[LabelOrRegion] = []
    for item in labels_or_regions:
        if isinstance(item, str):
            try:
                item = parse_label_key(item)
            except ValueError as e:
                raise InputError(f"bad label or region {item!r}: {e}") from None
        if isinstance(item, (list, tuple, np.ndarray)):
            values = [v for v in item]
            if not values or not all(_is_int(v) and int(v) >= 0 for v in values):
                raise InputError(f"bad region {list(values)!r}: expected non-negative integer labels")
            item = tuple(int(v) for v in values)
        elif _is_int(item) and int(item) >= 0:
            item = int(item)
        else:
            raise InputError(f"bad label {item!r}: expected a non-negative integer or a list of them")
        if label_key(item) in {label_key(x) for x in out}:
            raise InputError(f"label or region {label_key(item)} given twice")
        out.append(item)
    if not out:
        raise InputError("no labels or regions to evaluate")
    return out


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer()


def labels_from_dataset_json(path: str | os.PathLike) -> tuple[list[LabelOrRegion], dict[str, str]]:
    """Foreground labels (or regions, when any label value is a list) of an nnU-Net ``dataset.json``.

    Background must be 0 (:func:`nnunet_ext.io.label_check.declared_label_values`); it and the ``ignore`` label are
    skipped. Returns ``(labels_or_regions, {key: name})``.
    """
    from nnunet_ext.io.integrity import load_json_checked

    path = os.fspath(path)
    from nnunet_ext.io.label_check import declared_label_values

    labels = load_json_checked(path, ("labels",), what="dataset.json")["labels"]
    declared_label_values(labels, path)  # background 0, every value a non-negative integer (one-line errors)
    try:
        items = [(str(name), value) for name, value in labels.items()]
    except (KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: cannot read a 'labels' dict from it ({type(e).__name__}: {e})") from None
    has_regions = any(isinstance(v, (list, tuple)) for _, v in items)
    chosen, names = [], {}
    for name, value in items:
        if name == "ignore" or value in (0, [0], (0,)):
            continue
        if has_regions and not isinstance(value, (list, tuple)):
            value = [value]
        try:
            (item,) = normalize_labels([value])
        except InputError as e:
            raise InputError(f"{path}: label {name!r}: {e}") from None
        chosen.append(item)
        names[label_key(item)] = name
    if not chosen:
        raise InputError(f"{path}: no foreground labels in its 'labels' dict")
    return chosen, names
