"""Simulated clicks from a reference (and a prediction): training (HN-UISeg stages 1 and 3) and evaluation.

All functions take label maps as integer numpy arrays of one spatial grid (2D or 3D, numpy order), class
values ``classes`` (foreground values; channel k = ``classes[k]``) and return clicks as
``[(channel, index, positive)]`` with integer numpy indices, ready for
:func:`nnunet_ext.methods.interactive.clicks.rasterize_voxels`. Connected components: cc3d, 26-connectivity in 3D, 8
in 2D.
The "centre" of a region is its deepest interior voxel, the maximum of scipy's Euclidean distance transform
(spacing-aware with ``spacing``); ties (a slab has a plane of deepest voxels) go to the tied voxel nearest the
tied voxels' mean, then the first in C order.

* :func:`training_clicks` (stage 1, Chu 2026 sec. 2.2): per class, one positive click at a random voxel of
  each connected component and as many negative clicks at random voxels outside that class (anywhere the
  reference is not the class, other classes included).
* :func:`error_clicks` (stage 3 and the ``errors`` evaluation protocol): per class, the error components of
  the prediction (false negative = reference & ~prediction -> positive click, false positive = prediction &
  ~reference -> negative click) of at least ``min_voxels`` voxels (:func:`min_error_voxels`: by default the
  click stamp's own volume -- a click cannot correct an error smaller than what it paints; with
  ``min_voxels=1`` 78 % of the stage-3 clicks fell on edge slivers of <= 3 pixels), largest first or drawn
  with probability proportional to size, one click at each one's centre, at most ``max_per_class``; a
  component clicked before (same class, sign and voxels, recorded in ``seen``) is not clicked again -- it is
  eligible again once the model changed it.
* :func:`lesion_clicks` (``each-lesion`` / ``autopet`` protocols): a positive click at the centre of each
  lesion, largest first; :func:`hotspot_clicks`: negative clicks at the centres of the largest non-lesion
  hot spots of an image (autoPET IV background clicks on PET).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import cc3d
import numpy as np
from scipy import ndimage

__all__ = ["components", "region_centre", "training_clicks", "error_clicks", "lesion_clicks", "hotspot_clicks",
           "prune_unclicked", "ball_voxels", "min_error_voxels", "ERROR_ORDERS"]

ERROR_ORDERS = ("largest", "proportional")


def ball_voxels(radius: float, ndim: int) -> int:
    """Voxels of the click ball of ``radius`` voxels (d <= r): 123 for r = 3 in 3D, 29 in 2D."""
    w = int(np.floor(radius))
    axes = np.meshgrid(*([np.arange(-w, w + 1)] * ndim), indexing="ij")
    return int((sum(a.astype(float) ** 2 for a in axes) <= radius ** 2 + 1e-9).sum())


def min_error_voxels(min_mm3: "float | None", spacing: "Sequence[float] | None", radius: float, ndim: int) -> int:
    """Smallest error component worth a click, in voxels of a grid with ``spacing`` (mm per axis, ``ndim``
    axes): ``ceil(min_mm3 / prod(spacing))``, or, with ``min_mm3=None``, the click ball's own voxel count
    (:func:`ball_voxels`; stamps are painted with the radius in voxels of the network grid). In a 2D grid
    ``min_mm3`` is read as mm^2 of the slice."""
    if min_mm3 is None:
        return ball_voxels(radius, ndim)
    volume = float(np.prod(spacing)) if spacing is not None else 1.0
    return max(1, int(np.ceil(float(min_mm3) / volume - 1e-9)))


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels, n) of the connected components of a boolean mask (26-connected in 3D, 8 in 2D)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, np.uint32), 0
    labels, n = cc3d.connected_components(mask, connectivity=26 if mask.ndim == 3 else 8, return_N=True)
    return labels, int(n)


def region_centre(mask: np.ndarray, spacing: "Sequence[float] | None" = None) -> tuple:
    """Deepest interior voxel of a non-empty mask: argmax of the distance to the nearest voxel outside it
    (the EDT is taken on the mask's bounding box padded by one voxel, so the image border counts as outside)."""
    idx = np.nonzero(mask)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    box = np.pad(mask[tuple(slice(a, b) for a, b in zip(lo, hi))], 1)
    edt = ndimage.distance_transform_edt(box, sampling=spacing)
    tied = np.argwhere(edt == edt.max())
    best = tied[int(np.argmin(((tied - tied.mean(0)) ** 2).sum(1)))]
    return tuple(int(b) - 1 + a for b, a in zip(best, lo))


def _random_voxel(mask: np.ndarray, rng) -> tuple:
    flat = np.flatnonzero(mask)
    return tuple(int(v) for v in np.unravel_index(int(flat[rng.integers(len(flat))]), mask.shape))


def training_clicks(label: np.ndarray, classes: Sequence[int], rng: np.random.Generator) -> list:
    """Stage-1 clicks: per class one positive click per component (random voxel in it) plus as many
    negative clicks at random voxels where the reference is not that class."""
    out = []
    for channel, value in enumerate(classes):
        fg = label == value
        comps, n = components(fg)
        for k in range(1, n + 1):
            out.append((channel, _random_voxel(comps == k, rng), True))
        outside = ~fg
        if n and outside.any():
            flat = np.flatnonzero(outside)
            for i in rng.integers(len(flat), size=n):
                out.append((channel, tuple(int(v) for v in np.unravel_index(int(flat[i]), label.shape)), False))
    return out


def _component_key(channel, positive: bool, mask: np.ndarray) -> tuple:
    """Identity of an error component: class channel, sign and its voxels (a digest of their flat indices)."""
    digest = hashlib.blake2b(np.flatnonzero(mask).astype(np.int64).tobytes(), digest_size=12).hexdigest()
    return ("component", int(channel), bool(positive), digest)


def error_clicks(reference: np.ndarray, prediction: np.ndarray, classes: Sequence[int],
                 max_per_class: "int | None" = None, spacing: "Sequence[float] | None" = None,
                 min_voxels: int = 1, order: str = "largest", rng: "np.random.Generator | None" = None,
                 seen: "set | None" = None, components_out: "list | None" = None) -> list:
    """Per class: one click at the centre of each error component (FN -> positive, FP -> negative) of at least
    ``min_voxels`` voxels, at most ``max_per_class`` clicks (None = all). ``order``: ``largest`` first (ties:
    FN before FP, then scan order) or ``proportional`` (drawn without replacement with probability
    proportional to size from ``rng``). ``seen``: keys of components and clicks already used; those are
    skipped (a component is clicked again only once its voxels changed, a click position is never repeated)
    and the new ones are added to it. ``components_out``: the boolean mask of each clicked component is appended
    to it, in the order of the returned clicks."""
    if order not in ERROR_ORDERS:
        raise ValueError(f"unknown error-click order {order!r}; choose from {', '.join(ERROR_ORDERS)}")
    if order == "proportional" and rng is None:
        raise ValueError("order='proportional' needs an rng")
    out = []
    for channel, value in enumerate(classes):
        ref, pred = reference == value, prediction == value
        errors = []
        for mask, positive in ((ref & ~pred, True), (pred & ~ref, False)):
            comps, n = components(mask)
            if n:
                sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:]
                errors += [(int(sizes[k]), positive, comps, k + 1) for k in range(n) if sizes[k] >= min_voxels]
        if order == "largest":
            errors.sort(key=lambda e: -e[0])  # stable: FN before FP at equal size
        elif errors:
            p = np.asarray([e[0] for e in errors], float)
            errors = [errors[i] for i in rng.choice(len(errors), size=len(errors), replace=False, p=p / p.sum())]
        chosen = 0
        for size, positive, comps, k in errors:
            if max_per_class is not None and chosen >= max_per_class:
                break
            mask = comps == k
            key = _component_key(channel, positive, mask) if seen is not None else None
            if seen is not None and key in seen:
                continue
            centre = region_centre(mask, spacing)
            point = ("click", channel, centre, positive)
            if seen is not None:
                if point in seen:
                    continue
                seen.update((key, point))
            out.append((channel, centre, positive))
            if components_out is not None:
                components_out.append(mask)
            chosen += 1
    return out


def _by_size(mask: np.ndarray) -> list:
    """Component masks of ``mask``, largest first (ties: lower component number, i.e. scan order)."""
    comps, n = components(mask)
    if not n:
        return []
    sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:]
    return [comps == k + 1 for k in sorted(range(n), key=lambda k: (-sizes[k], k))]


def lesion_clicks(reference: np.ndarray, classes: Sequence[int], max_per_class: "int | None" = None,
                  spacing: "Sequence[float] | None" = None) -> list:
    """One positive click at the deepest voxel of each lesion (connected component) of each class, largest
    lesion first, at most ``max_per_class`` per class (``each-lesion`` protocol: all; ``autopet``: up to K)."""
    out = []
    for channel, value in enumerate(classes):
        for mask in _by_size(reference == value)[:max_per_class]:
            out.append((channel, region_centre(mask, spacing), True))
    return out


def hotspot_clicks(image: np.ndarray, reference: np.ndarray, n: int, percentile: float = 99.75,
                   spacing: "Sequence[float] | None" = None) -> list:
    """Up to ``n`` negative clicks (every class: channel ``None``) at the deepest voxel of the largest
    non-lesion hot spots: components of {voxels outside every lesion with intensity above the
    ``percentile``-th percentile of the non-lesion voxels} (the autoPET IV background clicks on PET; they
    sample the hot spots at random, we take the largest first so the sequence is reproducible)."""
    outside = reference == 0
    if n <= 0 or not outside.any():
        return []
    threshold = np.percentile(image[outside], percentile)
    return [(None, region_centre(mask, spacing), False) for mask in _by_size(outside & (image > threshold))[:n]]


def prune_unclicked(segmentation: np.ndarray, positives: Sequence, max_distance_mm: float,
                    spacing: "Sequence[float] | None" = None) -> tuple[np.ndarray, list]:
    """Beyond the paper (its appendix B: refining the automatic result inherits distant false positives): for
    every class with at least one positive click, drop the components of that class whose nearest voxel is
    farther than ``max_distance_mm`` from every positive click of the class (scipy EDT from the click voxels,
    ``spacing`` in mm per axis). ``positives``: ``[(label value, zyx voxel)]``. Classes without positive clicks
    are untouched. Returns (pruned copy, [{"label", "voxels", "distance_mm"} of each dropped component])."""
    out = np.array(segmentation, copy=True)
    dropped = []
    by_class: dict = {}
    for value, zyx in positives:
        by_class.setdefault(int(value), []).append(tuple(int(v) for v in zyx))
    for value, points in by_class.items():
        comps, n = components(out == value)
        if not n:
            continue
        seeds = np.ones(out.shape, bool)
        for p in points:
            seeds[p] = False
        dist = ndimage.distance_transform_edt(seeds, sampling=spacing)
        nearest = ndimage.minimum(dist, comps, index=np.arange(1, n + 1))
        for k, d in enumerate(np.atleast_1d(nearest), start=1):
            if d > max_distance_mm:
                mask = comps == k
                dropped.append({"label": value, "voxels": int(mask.sum()), "distance_mm": round(float(d), 2)})
                out[mask] = 0
    return out, dropped
