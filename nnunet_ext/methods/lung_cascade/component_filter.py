"""Anatomy-aware connected-component filter for a binary tumour prediction (Isler et al. 2025, sec. III.C/F).

Pure numpy / scipy / cc3d; arrays are numpy ``(z, y, x)`` with ``x`` (the last axis) the left-right axis.
Lung mask labels: 0 = background, 1 = right lung, 2 = left lung (any other non-zero value counts as lung for
the overlap and distance tests but not for the central zone).

Steps (each configurable in :class:`LungFilterConfig`, each decision logged per component):

1. **Dilation merge.** The prediction is dilated with a cube of side ``2 * merge_radius + 1`` (``0`` disables),
   connected components of the dilated mask are labelled with 26-connectivity (``cc3d``), and the labels are
   intersected back with the original prediction: dilation only decides which voxels form one component, it
   never adds voxels to the output. With radius 1, voxels up to 2 empty voxels apart (Chebyshev gap <= 3) are
   grouped. (Implemented equivalently without a full-volume dilation, see ``_label_components``.) Component ids
   in the log are 1..N in the order of each component's first voxel in C order.
2. **Lung overlap.** ``lung_overlap`` = fraction of the component's voxels with ``lung > 0``. A component is
   kept if ``lung_overlap >= overlap_threshold`` (``>= central_overlap_threshold`` if it is in the central zone).
3. **Central (mediastinal) zone.** Defined per axial slice ``z`` in which both lungs (labels 1 and 2) are
   present: the lung whose z-x projection has the smaller mean x is the "low" lung. Its medial edge in slice z
   is its largest x in that slice; the medial edge of the other lung is its smallest x in that slice. The zone
   in slice z is every voxel with x strictly between the two medial edges and y within the y extent (min..max)
   of the union of both lungs in that slice. Slices without both lungs, or where the edges do not leave a gap,
   have no zone. The zone contains no lung voxel by construction. A component is ``in_central_zone`` if ANY of
   its voxels lies in the zone (``central_fraction`` > 0), i.e. it extends medially between the lungs.
4. **Distance rescue.** A component failing the overlap test that is NOT in the central zone (unless
   ``rescue_in_central_zone``) is kept if its minimum distance to the lung mask is ``<= rescue_distance``
   (``rescue_unit`` "vox": Euclidean distance in voxel index units; "mm": with ``sampling=spacing``) and it has
   ``>= min_voxels`` voxels. Distance = smallest Euclidean distance between the centre of a component voxel and
   the centre of a lung voxel (``scipy.ndimage.distance_transform_edt`` of ``lung == 0``; a voxel face-adjacent
   to the lung is at distance 1 voxel). Computed in a crop around the component that is large enough for the
   threshold; distances beyond the crop's reach are logged as ``None``.
5. **Valid components and Top-K.** Kept components smaller than ``min_size`` (voxels or mm^3) are dropped
   (``below_min_size``) for every Top-K, All included (isler2025: Top-K among valid components); then Top-K by
   voxel count among the rest (``top_k=None`` keeps all; ties broken by lower id).

``preset="isler-code"`` replaces steps 1-4 by the rules of the authors' released code
(:mod:`.component_filter_isler`).

Empty lung mask: the lung steps (2-4) are skipped with a ``warnings.warn`` and an entry in ``log["warnings"]``;
only Top-K applies.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nnunet_ext.methods.lung_cascade.component_ranking import apply_min_size_and_top_k

__all__ = ["LungFilterConfig", "central_zone_mask", "filter_components"]


#: default min_size of the command line (voxels)
DEFAULT_MIN_SIZE = 10.0


@dataclass(frozen=True)
class LungFilterConfig:
    merge_radius: int = 1                    #: dilation radius in voxels for grouping (0 = off)
    overlap_threshold: float = 0.8           #: min lung-overlap fraction outside the central zone
    central_overlap_threshold: float = 0.95  #: min lung-overlap fraction for components in the central zone
    rescue_distance: float = 5.0             #: max distance to the lung for the rescue (in rescue_unit)
    rescue_unit: str = "vox"                 #: "vox" or "mm"
    min_voxels: int = 10                     #: min component size for the rescue
    rescue_in_central_zone: bool = False     #: allow the distance rescue for central-zone components
    top_k: int | None = None              #: keep the K largest kept components (None = all)
    min_size: float = 0.0                    #: components below this size are invalid for every Top-K (All too)
    min_size_unit: str = "vox"               #: "vox" or "mm3"
    preset: str = "paper"                    #: "paper" (steps above) or "isler-code" (component_filter_isler.py)
    band_axis: str = "x"                     #: isler-code: axis of the central centroid band

    #: argparse / keyword names (add_filter_arguments) -> field names
    _OPTION_NAMES = {"overlap": "overlap_threshold", "central_overlap": "central_overlap_threshold"}

    @classmethod
    def from_options(cls, **options) -> "LungFilterConfig":
        """Config from the command-line option names of ``filter_options.add_filter_arguments`` (``top_k``,
        ``min_size``, ``min_size_unit``, ``preset``, ``merge_radius``, ``overlap``, ``central_overlap``,
        ``rescue_distance``, ``rescue_unit``, ``min_voxels``, ``band_axis``) or field names; other keys are
        ignored (so ``**vars(args)`` works); missing ones keep the command line's defaults (min_size 10 vox)."""
        from dataclasses import fields

        names = {f.name for f in fields(cls)}
        kw = {"min_size": DEFAULT_MIN_SIZE}
        for key, value in options.items():
            key = cls._OPTION_NAMES.get(key, key)
            if key in names:
                kw[key] = value
        return cls(**kw)

    def __post_init__(self):
        if int(self.merge_radius) != self.merge_radius or self.merge_radius < 0:
            raise ValueError(f"merge_radius must be an integer >= 0, got {self.merge_radius!r}")
        for name in ("overlap_threshold", "central_overlap_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if not self.rescue_distance >= 0:
            raise ValueError(f"rescue_distance must be >= 0, got {self.rescue_distance!r}")
        if self.rescue_unit not in ("vox", "mm"):
            raise ValueError(f"rescue_unit must be 'vox' or 'mm', got {self.rescue_unit!r}")
        if int(self.min_voxels) != self.min_voxels or self.min_voxels < 0:
            raise ValueError(f"min_voxels must be an integer >= 0, got {self.min_voxels!r}")
        if self.top_k is not None and (int(self.top_k) != self.top_k or self.top_k < 1):
            raise ValueError(f"top_k must be None or an integer >= 1, got {self.top_k!r}")
        if not self.min_size >= 0 or self.min_size_unit not in ("vox", "mm3"):
            raise ValueError(f"min_size must be >= 0 with unit 'vox' or 'mm3', got {self.min_size!r} "
                             f"{self.min_size_unit!r}")
        if self.preset not in ("paper", "isler-code"):
            raise ValueError(f"preset must be 'paper' or 'isler-code', got {self.preset!r}")
        if self.band_axis not in ("x", "y", "z"):
            raise ValueError(f"band_axis must be 'x', 'y' or 'z', got {self.band_axis!r}")

    def min_size_voxels(self, spacing_zyx) -> float:
        """``min_size`` in voxels (mm^3 divided by the voxel volume)."""
        return self.min_size / float(np.prod(spacing_zyx)) if self.min_size_unit == "mm3" else self.min_size


def _medial_edges(lung: np.ndarray):
    """Per z: (valid, lo_edge, hi_edge, y_min, y_max) arrays for the central zone; None without both lungs."""
    _, ny, nx = lung.shape
    r, l = lung == 1, lung == 2
    r_zx, l_zx = r.any(axis=1), l.any(axis=1)           # (z, x) projections
    if not r_zx.any() or not l_zx.any():
        return None
    xs = np.arange(nx)
    # the lung whose z-x projection has the smaller mean x is the "low" lung
    r_cols, l_cols = r_zx.sum(axis=0), l_zx.sum(axis=0)
    r_mean, l_mean = (r_cols * xs).sum() / r_cols.sum(), (l_cols * xs).sum() / l_cols.sum()
    low_zx, high_zx = (r_zx, l_zx) if r_mean <= l_mean else (l_zx, r_zx)
    both = low_zx.any(axis=1) & high_zx.any(axis=1)
    lo = np.where(low_zx, xs, -1).max(axis=1)           # medial edge of the low lung (its max x)
    hi = np.where(high_zx, xs, nx).min(axis=1)          # medial edge of the high lung (its min x)
    valid = both & (hi - lo > 1)
    zy = r.any(axis=2) | l.any(axis=2)                  # (z, y)
    ys = np.arange(ny)
    y_min = np.where(zy, ys, ny).min(axis=1)
    y_max = np.where(zy, ys, -1).max(axis=1)
    return valid, lo, hi, y_min, y_max


def central_zone_mask(lung: np.ndarray) -> np.ndarray:
    """Boolean mask of the central (mediastinal) zone as defined in the module docstring."""
    zone = np.zeros(lung.shape, dtype=bool)
    edges = _medial_edges(np.asarray(lung))
    if edges is None:
        return zone
    valid, lo, hi, y_min, y_max = edges
    for z in np.flatnonzero(valid):
        zone[z, y_min[z]:y_max[z] + 1, lo[z] + 1:hi[z]] = True
    return zone


def _in_zone(coords: np.ndarray, edges) -> np.ndarray:
    """Which of the voxels ``coords`` (n, 3) lie in the central zone."""
    if edges is None or len(coords) == 0:
        return np.zeros(len(coords), dtype=bool)
    valid, lo, hi, y_min, y_max = edges
    z, y, x = coords[:, 0], coords[:, 1], coords[:, 2]
    return valid[z] & (x > lo[z]) & (x < hi[z]) & (y >= y_min[z]) & (y <= y_max[z])


def _cube_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a bool array with a cube of side ``2 * radius + 1`` (separable shifted ORs; zero
    outside the array)."""
    out = np.asarray(mask, dtype=bool)
    for axis in range(out.ndim):
        src, out = out, out.copy()
        n = src.shape[axis]
        for k in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * src.ndim
            hi = [slice(None)] * src.ndim
            lo[axis], hi[axis] = slice(k, None), slice(None, n - k)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


_UNION_FIND_MAX = 400  #: above this many raw components the merge uses one full-volume dilation


def _label_components(fg: np.ndarray, radius: int) -> np.ndarray:
    """Component labels of ``fg`` after the dilation merge (0 outside ``fg``; labels need not be consecutive).

    Equivalent to labelling ``dilate(fg, cube of side 2 * radius + 1)`` with 26-connectivity and intersecting
    with ``fg``: two voxels end up together iff a chain of voxels links them with Chebyshev gaps
    <= ``2 * radius + 1`` (the dilated cubes touch). Done as 26-connected raw components joined by a union-find
    over each raw component's neighbourhood, so sparse predictions never pay a full-volume dilation."""
    import cc3d

    labels, n = cc3d.connected_components(fg.view(np.uint8), connectivity=26, return_N=True)
    if radius <= 0 or n <= 1:
        return labels
    if n > _UNION_FIND_MAX:  # many specks: one full dilation is cheaper than a neighbourhood per component
        labels = cc3d.connected_components(_cube_dilate(fg, radius).view(np.uint8), connectivity=26)
        labels[~fg] = 0
        return labels
    reach = 2 * radius + 1
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat]
    order = np.argsort(lab, kind="stable")
    coords = np.stack(np.unravel_index(flat[order], labels.shape), axis=1)
    _, starts, counts = np.unique(lab[order], return_index=True, return_counts=True)
    parent = np.arange(n + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, (s, c) in enumerate(zip(starts, counts), start=1):
        cc = coords[s:s + c]
        lo = np.maximum(cc.min(axis=0) - reach, 0)
        hi = np.minimum(cc.max(axis=0) + reach + 1, labels.shape)
        crop = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        grown = _cube_dilate(crop == a, reach)
        for b in np.unique(crop[grown & (crop > a)]):
            ra, rb = find(a), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n + 1)], dtype=labels.dtype)
    return roots[labels]


def _distance_to_lung(lung_bin: np.ndarray, coords: np.ndarray, spacing: np.ndarray, cfg: LungFilterConfig):
    """(distance in voxels, distance in mm) from the component voxels ``coords`` to the nearest lung voxel,
    each None if beyond the reach of the crop used."""
    from scipy import ndimage

    thr_per_axis = (cfg.rescue_distance / spacing) if cfg.rescue_unit == "mm" else np.full(3, cfg.rescue_distance)
    margin = np.ceil(thr_per_axis).astype(int) + 1
    lo = np.maximum(coords.min(axis=0) - margin, 0)
    hi = np.minimum(coords.max(axis=0) + margin + 1, lung_bin.shape)
    crop = lung_bin[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if not crop.any():
        return None, None
    local = tuple((coords - lo).T)
    out = []
    # anything outside the crop is > margin voxels away along some axis
    for sampling, reach in ((None, float(margin.min())), (spacing, float((margin * spacing).min()))):
        d = float(ndimage.distance_transform_edt(~crop, sampling=sampling)[local].min())
        out.append(d if d <= reach else None)
    return out[0], out[1]


def filter_components(pred: np.ndarray, lung: np.ndarray, spacing_zyx: Sequence[float],
                      config: LungFilterConfig = LungFilterConfig()) -> tuple[np.ndarray, dict]:
    """Filter the connected components of the binary ``pred`` (z, y, x) with the lung mask ``lung`` (same shape).

    Returns ``(filtered, log)``: ``filtered`` is a uint8 0/1 mask (a subset of ``pred > 0``); ``log`` is a
    JSON-serialisable dict with ``config``, ``warnings``, ``n_components``, ``n_kept`` and ``components`` (one dict
    per component: id, voxels, bbox [[start, stop) per z, y, x], centroid (z, y, x voxel index), lung_overlap,
    central_fraction, in_central_zone, distance_to_lung_vox, distance_to_lung_mm, kept, reason, detail).

    Reasons: kept -> ``"lung_overlap"``, ``"rescued"``, ``"no_lung_mask"``; dropped -> ``"low_overlap_central"``,
    ``"too_small"``, ``"too_far"``, ``"below_min_size"``, ``"top_k"``.
    """
    pred = np.asarray(pred)
    lung = np.asarray(lung)
    if pred.ndim != 3:
        raise ValueError(f"pred must be 3D (z, y, x), got shape {pred.shape}")
    if lung.shape != pred.shape:
        raise ValueError(f"lung mask shape {lung.shape} differs from prediction shape {pred.shape}")
    spacing = np.asarray(spacing_zyx, dtype=float)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise ValueError(f"spacing_zyx must be 3 positive numbers, got {spacing_zyx!r}")
    cfg = config
    if cfg.preset == "isler-code":
        from nnunet_ext.methods.lung_cascade.component_filter_isler import filter_components_isler_code

        return filter_components_isler_code(pred, lung, spacing, cfg)
    log: dict = {"config": asdict(cfg), "spacing_zyx": [float(s) for s in spacing], "warnings": [],
                 "n_components": 0, "n_kept": 0, "components": []}
    out = np.zeros(pred.shape, dtype=np.uint8)
    fg = pred > 0
    if not fg.any():
        return out, log

    # crop to the foreground bounding box (+ merge radius) so the grouping pass is cheap for sparse predictions
    r = int(cfg.merge_radius)
    nz = [np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo = np.array([max(int(v[0]) - r, 0) for v in nz])
    hi = np.array([min(int(v[-1]) + r + 1, s) for v, s in zip(nz, pred.shape)])
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    fg_c = np.ascontiguousarray(fg[box])
    labels = _label_components(fg_c, r)
    flat = np.flatnonzero(fg_c)                        # voxels of the ORIGINAL prediction (dilation only groups)
    lab = labels.ravel()[flat].astype(np.int64)
    coords = np.stack(np.unravel_index(flat, fg_c.shape), axis=1) + lo
    order = np.argsort(lab, kind="stable")
    lab, coords = lab[order], coords[order]
    ids, starts, counts = np.unique(lab, return_index=True, return_counts=True)

    lung_empty = not lung.any()
    if lung_empty:
        msg = "lung mask is empty: lung overlap, central zone and distance rescue skipped; only Top-K applied"
        warnings.warn(msg, stacklevel=2)
        log["warnings"].append(msg)
        edges, in_lung = None, np.zeros(len(lab), dtype=bool)
        lung_bin = None
    else:
        lung_bin = lung > 0
        edges = _medial_edges(lung)
        if edges is None:
            log["warnings"].append("lung mask lacks label 1 or 2: no central zone")
        in_lung = lung_bin[tuple(coords.T)]
    zone = _in_zone(coords, edges)

    comps = []
    for new_id, (cid, s, c) in enumerate(zip(ids, starts, counts), start=1):
        cc = coords[s:s + c]
        entry = {"id": new_id, "voxels": int(c),
                 "bbox": [[int(a), int(b) + 1] for a, b in zip(cc.min(axis=0), cc.max(axis=0))],
                 "centroid": [round(float(v), 3) for v in cc.mean(axis=0)],
                 "lung_overlap": None, "central_fraction": 0.0, "in_central_zone": False,
                 "distance_to_lung_vox": None, "distance_to_lung_mm": None,
                 "kept": True, "reason": "no_lung_mask", "detail": "lung filters skipped (empty lung mask)"}
        if not lung_empty:
            ov = float(in_lung[s:s + c].mean())
            cf = float(zone[s:s + c].mean())
            central = cf > 0
            thr = cfg.central_overlap_threshold if central else cfg.overlap_threshold
            entry.update(lung_overlap=round(ov, 6), central_fraction=round(cf, 6), in_central_zone=bool(central))
            if ov > 0:
                entry.update(distance_to_lung_vox=0.0, distance_to_lung_mm=0.0)
            if ov >= thr:
                entry.update(reason="lung_overlap", detail=f"lung overlap {ov:.3f} >= {thr}"
                             + (" (central zone)" if central else ""))
            elif central and not cfg.rescue_in_central_zone:
                entry.update(kept=False, reason="low_overlap_central",
                             detail=f"lung overlap {ov:.3f} < {thr} in the central zone (no rescue there)")
            else:
                if ov == 0:
                    dv, dmm = _distance_to_lung(lung_bin, cc, spacing, cfg)
                    entry.update(distance_to_lung_vox=dv, distance_to_lung_mm=dmm)
                d = entry["distance_to_lung_mm" if cfg.rescue_unit == "mm" else "distance_to_lung_vox"]
                near = d is not None and d <= cfg.rescue_distance
                dtxt = "beyond search radius" if d is None else f"{d:.3f} {cfg.rescue_unit}"
                if near and c >= cfg.min_voxels:
                    entry.update(reason="rescued", detail=f"lung overlap {ov:.3f} < {thr} but distance {dtxt} "
                                 f"<= {cfg.rescue_distance} and {c} >= {cfg.min_voxels} voxels")
                elif near:
                    entry.update(kept=False, reason="too_small", detail=f"lung overlap {ov:.3f} < {thr}, distance "
                                 f"{dtxt} within rescue range but {c} < {cfg.min_voxels} voxels")
                else:
                    entry.update(kept=False, reason="too_far", detail=f"lung overlap {ov:.3f} < {thr} and distance "
                                 f"{dtxt} > {cfg.rescue_distance} {cfg.rescue_unit}")
        comps.append(entry)

    apply_min_size_and_top_k(comps, cfg, spacing)

    for e, s, c in zip(comps, starts, counts):
        if e["kept"]:
            out[tuple(coords[s:s + c].T)] = 1
    log.update(n_components=len(comps), n_kept=sum(e["kept"] for e in comps), components=comps)
    return out, log
