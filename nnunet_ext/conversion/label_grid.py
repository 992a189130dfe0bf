"""A label on another grid than its image: refused, or with ``--resample-labels`` resampled and checked.

Resampling a label silently changes it: nearest-neighbour resampling of HECKTOR's GTVn (12 voxels on a finer
grid) onto the CT grid gave 0 voxels, and the case went into the dataset with one class gone. Rules:

* label and image on the same grid (size, and spacing / origin / direction within ``atol``): used as it is;
* otherwise refused, the message naming both files and what differs (size, spacing, origin, direction),
  unless ``resample=True`` (``--resample-labels``);
* resampled with SimpleITK nearest neighbour (the label values stay labels) onto the image grid; refused even
  then when a class present in the label has no voxel left after resampling; every class's voxel count
  before -> after is returned for the conversion log (and printed by the converter as a note).
"""
from __future__ import annotations

import os

import numpy as np

from nnunet_ext.errors import InputError


def grid_differences(a, b, atol: float = 1e-3) -> list[str]:
    """What differs between the grids of SimpleITK images ``a`` (label) and ``b`` (image): ``[]`` = same grid."""
    def fmt(v):
        return "(" + ", ".join(f"{x:g}" for x in np.round(np.asarray(v, float), 4)) + ")"

    out = []
    if tuple(a.GetSize()) != tuple(b.GetSize()):
        out.append(f"size {tuple(a.GetSize())} vs {tuple(b.GetSize())}")
    for name in ("Spacing", "Origin", "Direction"):
        va, vb = getattr(a, f"Get{name}")(), getattr(b, f"Get{name}")()
        if len(va) != len(vb) or not np.allclose(va, vb, atol=atol if name != "Direction" else 1e-4):
            out.append(f"{name.lower()} {fmt(va)} vs {fmt(vb)}")
    return out


def label_on_image_grid(label, image, label_path: str | os.PathLike, image_path: str | os.PathLike,
                        resample: bool = False, names: dict[int, str] | None = None, atol: float = 1e-3):
    """``(label array (z, y, x) on the image grid, note or None, voxel counts {value: [before, after]} or None)``.

    See the module docstring; ``names`` maps label values to class names for the messages."""
    import SimpleITK as sitk

    label_path, image_path = os.fspath(label_path), os.fspath(image_path)
    diff = grid_differences(label, image, atol)
    if not diff:
        return sitk.GetArrayFromImage(label), None, None
    if not resample:
        raise InputError(f"{label_path}: label is not on the grid of its image {os.path.basename(image_path)} "
                         f"({'; '.join(diff)}); pass --resample-labels to resample it (nearest neighbour)")
    before = sitk.GetArrayFromImage(label)
    after = sitk.GetArrayFromImage(sitk.Resample(label, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                 label.GetPixelID()))
    names = names or {}
    counts = {}
    for v in (int(x) for x in np.unique(before) if x != 0):
        counts[v] = [int((before == v).sum()), int((after == v).sum())]
    lost = [v for v, (b, a) in counts.items() if b > 0 and a == 0]
    if lost:
        what = ", ".join(f"{v} ({names[v]})" if v in names else str(v) for v in lost)
        raise InputError(f"{label_path}: resampling the label onto the grid of {os.path.basename(image_path)} "
                         f"loses every voxel of class {what} ("
                         + ", ".join(f"{counts[v][0]} -> 0 voxels" for v in lost) + "); fix the label's grid")
    note = ("label resampled onto the image grid (nearest neighbour; " + "; ".join(diff) + "); voxels "
            + ", ".join(f"{names.get(v, v)} {b} -> {a}" for v, (b, a) in counts.items()))
    return after, note, {str(v): c for v, c in counts.items()}


__all__ = ["grid_differences", "label_on_image_grid"]
