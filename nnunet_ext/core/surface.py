"""Spacing-aware surface-distance metrics between a reference mask R and a predicted mask P (numpy + scipy).

Definitions (all distances in mm, between voxel centres, ``spacing`` given per array axis, e.g. (z, y, x)):

* Surface S(M): voxels of M with at least one background 6-neighbour (face neighbour), i.e.
  ``M & ~binary_erosion(M, cross)``; the outside of the image counts as background. Surfaces made of
  voxel centres make HD of identical masks exactly 0; for analytic shapes (spheres, ...) the distances are
  accurate to about one voxel (diagonal), since the surface lies up to half a voxel inside the true boundary.
* Directed distances d(R->P) = {dist(r, S(P)) : r in S(R)}, from the Euclidean distance transform of ~S(P)
  with ``sampling=spacing`` (exact for anisotropic grids).
* HD = max(max d(R->P), max d(P->R)) (symmetric Hausdorff).
* HD95 = max(P95 d(R->P), P95 d(P->R)), P95 = ``numpy.percentile(d, 95)`` with numpy's default
  ``method='linear'`` (Hyndman-Fan type 7) over the surface *voxels* (not weighted by surface area).
* ASSD = (sum d(R->P) + sum d(P->R)) / (|S(R)| + |S(P)|).
* NSD at tolerance tau (Nikolov et al. 2021, voxel-count version without surface-element areas) =
  (|{d(R->P) <= tau}| + |{d(P->R) <= tau}|) / (|S(R)| + |S(P)|).
* Boundary Dice with band width w (Boundary-IoU style, Cheng et al. 2021, as a Dice): the inner band
  B_w(M) = S(M) | {v in M : dist(v, background) <= w} (distance between voxel centres, spacing-aware; S(M)
  is always included so the band is never empty for a non-empty mask even when w < spacing);
  boundary Dice = 2 |B_w(R) & B_w(P)| / (|B_w(R)| + |B_w(P)|).

Empty-mask policy (:func:`surface_metrics`): both empty -> HD = HD95 = ASSD = 0, NSD = boundary Dice = 1;
exactly one empty -> HD = HD95 = ASSD = ``penalty`` (default 374 mm as in BraTS), NSD = boundary Dice = 0.

For speed both masks are cropped to their joint bounding box and padded by one background voxel before
any erosion or distance transform; this changes no value (every voxel outside the box is background).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_PENALTY_MM", "SurfaceDistances", "crop_to_joint_bbox", "surface_voxels",
           "directed_surface_distances", "surface_distances", "hausdorff", "hausdorff_percentile",
           "average_symmetric_surface_distance", "normalized_surface_dice", "boundary_band", "boundary_dice",
           "surface_metrics"]

#: HD / HD95 / ASSD when exactly one mask is empty (BraTS convention, roughly the diagonal of a 240x240x155 mm box).
DEFAULT_PENALTY_MM = 374.0


def _check(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, tuple]:
    ref, pred = np.asarray(ref, dtype=bool), np.asarray(pred, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(f"mask shapes differ: reference {ref.shape} vs prediction {pred.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing {spacing} must hold {ref.ndim} positive numbers (one per array axis)")
    return ref, pred, spacing


def crop_to_joint_bbox(*masks: np.ndarray, pad: int = 1) -> tuple[np.ndarray, ...]:
    """Crop same-shaped masks to the bounding box of their union and pad ``pad`` background voxels around."""
    union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks])
    boxes = ndimage.find_objects(union.astype(np.uint8))
    if not boxes:  # all empty
        return tuple(np.zeros((0,) * union.ndim, dtype=bool) for _ in masks)
    return tuple(np.pad(np.asarray(m, dtype=bool)[boxes[0]], pad) for m in masks)


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """S(M) = M & ~erosion(M) with a cross (6-neighbour in 3D) structuring element; the border is background."""
    mask = np.asarray(mask, dtype=bool)
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)


def directed_surface_distances(surface_from: np.ndarray, surface_to: np.ndarray,
                               spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) from every voxel of ``surface_from`` to the nearest voxel of ``surface_to`` (non-empty)."""
    if not surface_to.any():
        raise ValueError("target surface is empty")
    edt = ndimage.distance_transform_edt(~surface_to, sampling=spacing)
    return edt[surface_from]


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances (mm) of a non-empty pair: ``ref_to_pred`` has one entry per voxel of S(R)."""

    ref_to_pred: np.ndarray
    pred_to_ref: np.ndarray


def surface_distances(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """d(R->P) and d(P->R) for two non-empty masks (cropped to their joint bounding box first)."""
    ref, pred, spacing = _check(ref, pred, spacing)
    if not ref.any() or not pred.any():
        raise ValueError("surface distances need two non-empty masks (see surface_metrics for the empty policy)")
    ref, pred = crop_to_joint_bbox(ref, pred)
    s_ref, s_pred = surface_voxels(ref), surface_voxels(pred)
    return SurfaceDistances(directed_surface_distances(s_ref, s_pred, spacing),
                            directed_surface_distances(s_pred, s_ref, spacing))


def hausdorff(sd: SurfaceDistances) -> float:
    """HD = max of both directed maxima."""
    return float(max(sd.ref_to_pred.max(), sd.pred_to_ref.max()))


def hausdorff_percentile(sd: SurfaceDistances, q: float = 95.0) -> float:
    """HDq = max(Pq d(R->P), Pq d(P->R)) with ``numpy.percentile`` (linear interpolation)."""
    return float(max(np.percentile(sd.ref_to_pred, q), np.percentile(sd.pred_to_ref, q)))


def average_symmetric_surface_distance(sd: SurfaceDistances) -> float:
    """ASSD = mean over the pooled directed distances of both surfaces."""
    return float((sd.ref_to_pred.sum() + sd.pred_to_ref.sum()) / (sd.ref_to_pred.size + sd.pred_to_ref.size))


def normalized_surface_dice(sd: SurfaceDistances, tau: float) -> float:
    """NSD = fraction of the surface voxels of both masks lying within ``tau`` mm of the other surface."""
    within = np.count_nonzero(sd.ref_to_pred <= tau) + np.count_nonzero(sd.pred_to_ref <= tau)
    return float(within / (sd.ref_to_pred.size + sd.pred_to_ref.size))


def boundary_band(mask: np.ndarray, spacing: Sequence[float], width: float) -> np.ndarray:
    """Inner band B_w(M) = S(M) | {v in M : dist(v, background) <= width}; the image border is background."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)  # guarantees a background voxel just outside the image
    dist_to_bg = ndimage.distance_transform_edt(padded, sampling=spacing)
    band = surface_voxels(padded) | (padded & (dist_to_bg <= width))
    return band[tuple(slice(1, -1) for _ in range(mask.ndim))]


def boundary_dice(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float], width: float) -> float:
    """2 |B_w(R) & B_w(P)| / (|B_w(R)| + |B_w(P)|); 1 if both masks are empty, 0 if exactly one is."""
    ref, pred, spacing = _check(ref, pred, spacing)
    n_ref, n_pred = bool(ref.any()), bool(pred.any())
    if not (n_ref or n_pred):
        return 1.0
    if not (n_ref and n_pred):
        return 0.0
    ref, pred = crop_to_joint_bbox(ref, pred)
    b_ref, b_pred = boundary_band(ref, spacing, width), boundary_band(pred, spacing, width)
    return float(2 * np.count_nonzero(b_ref & b_pred) / (np.count_nonzero(b_ref) + np.count_nonzero(b_pred)))


def surface_metrics(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float], tau: float = 2.0,
                    penalty: float = DEFAULT_PENALTY_MM, boundary_width: float | None = None) -> dict[str, float]:
    """``hd, hd95, assd, nsd, boundary_dice`` with the empty-mask policy of the module docstring.

    ``boundary_width`` (mm) defaults to ``tau``.
    """
    ref, pred, spacing = _check(ref, pred, spacing)
    if tau < 0 or (boundary_width is not None and boundary_width < 0):
        raise ValueError("tau and boundary_width must be >= 0")
    width = tau if boundary_width is None else boundary_width
    n_ref, n_pred = bool(ref.any()), bool(pred.any())
    if not (n_ref or n_pred):
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0, "boundary_dice": 1.0}
    if not (n_ref and n_pred):
        p = float(penalty)
        return {"hd": p, "hd95": p, "assd": p, "nsd": 0.0, "boundary_dice": 0.0}
    ref, pred = crop_to_joint_bbox(ref, pred)
    sd = surface_distances(ref, pred, spacing)
    return {"hd": hausdorff(sd), "hd95": hausdorff_percentile(sd, 95.0),
            "assd": average_symmetric_surface_distance(sd), "nsd": normalized_surface_dice(sd, tau),
            "boundary_dice": boundary_dice(ref, pred, spacing, width)}
