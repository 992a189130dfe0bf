"""Lung masks for chest CT: label 1 = right lung, 2 = left lung (the convention of lungmask's U-net R231).

Two backends:

``lungmask``
    The pre-trained U-net R231 of the ``lungmask`` package (Hofmanninger et al. 2020). Used only when the
    package is importable AND its weights are already on this machine: an explicit ``weights`` file, or the
    file torch hub would have cached (``<torch hub dir>/checkpoints/unet_r231-d5d2fc3d.pth``). Nothing is
    ever downloaded.

``threshold``
    A classical HU algorithm (no learning, no weights), see :func:`threshold_lung_mask` for the steps.

``auto`` picks ``lungmask`` when usable, else ``threshold``.

Patient sides come from the image direction (SimpleITK / ITK physical space is LPS: +x = patient left), so
a volume stored with its x axis flipped and the x direction cosine negated gets the same anatomical labels.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
from scipy import ndimage

from nnunet_ext.errors import InputError

RIGHT, LEFT = 1, 2
BACKENDS = ("auto", "lungmask", "threshold")
R231_FILE = "unet_r231-d5d2fc3d.pth"  # file name torch hub gives the R231 weights of lungmask

#: defaults of :func:`threshold_lung_mask` (all overridable as keyword arguments)
THRESHOLD_DEFAULTS = {
    "air_hu": -320.0,             # voxels below this HU are air-like (lung parenchyma ~ -850, air -1000)
    "body_hu": -500.0,            # body = largest non-air component (used for the midline and volume threshold)
    "min_volume_ml": 20.0,        # a lung component must be at least this large ...
    "min_body_fraction": 0.005,   # ... and at least this fraction of the body volume
    "second_ratio": 0.1,          # the 2nd component must be >= this fraction of the largest (else: bowel gas)
    "trachea_max_area_mm2": 800.0,  # 2D airway cross-sections above this area are lung, not trachea / bronchus
    "trachea_midline_mm": 40.0,   # trachea seeds: within this distance of the body midline
    "split_max_erosion_mm": 20.0,  # in-plane erosion depth tried to separate lungs touching at the midline
    "closing_iterations": 1,      # final in-plane closing per lung
}


# ----------------------------------------------------------------------------------------------- geometry

def _direction_matrix(geometry) -> np.ndarray:
    d = np.asarray(getattr(geometry, "direction", ()) or np.eye(3).ravel(), dtype=float)
    return d.reshape(3, 3) if d.size == 9 else np.eye(3)


def _index_to_lps(geometry, idx_zyx: np.ndarray) -> np.ndarray:
    """Physical LPS coordinates (N, 3: x, y, z) of numpy (z, y, x) indices (N, 3)."""
    idx_xyz = np.asarray(idx_zyx, dtype=float)[..., ::-1]
    spacing = np.asarray(geometry.spacing, dtype=float)
    origin = np.asarray(geometry.origin, dtype=float)
    return origin + (idx_xyz * spacing) @ _direction_matrix(geometry).T


def _as_axial(ct: np.ndarray, geometry):
    """View a volume stored in any axis order as numpy (z, y, x) ~ physical (S-I, A-P, R-L).

    Returns ``(array, geometry of that array, axes to transpose the result back)``; a no-op for axial storage.
    Each index axis is matched to the physical axis its direction cosine points along most.
    """
    d = _direction_matrix(geometry)
    phys_of_index = [int(np.argmax(np.abs(d[:, i]))) for i in range(3)]  # index axis (x, y, z) -> physical axis
    if sorted(phys_of_index) != [0, 1, 2] or phys_of_index == [0, 1, 2]:
        return ct, geometry, None
    index_of_phys = [phys_of_index.index(p) for p in range(3)]
    order = tuple(2 - index_of_phys[p] for p in (2, 1, 0))  # numpy axes giving (phys z, phys y, phys x)
    spacing = tuple(float(geometry.spacing[i]) for i in index_of_phys)
    direction = tuple(float(v) for v in d[:, index_of_phys].ravel())
    view = type(geometry)(spacing, tuple(geometry.origin), direction)  # a Geometry, without importing it
    return np.transpose(ct, order), view, tuple(np.argsort(order))


def _superior_is_high_z(geometry) -> bool:
    """True if increasing numpy axis 0 (SimpleITK k) points to the patient's head (+z in LPS)."""
    return bool(_direction_matrix(geometry)[2, 2] >= 0)


def _patient_x(geometry, mask: np.ndarray) -> float:
    """Mean physical LPS x (mm) of a mask: smaller = more to the patient's right."""
    idx = np.argwhere(mask)
    if len(idx) > 20000:  # a subsample is plenty for a centroid
        idx = idx[:: len(idx) // 20000 + 1]
    return float(_index_to_lps(geometry, idx)[:, 0].mean())


# ------------------------------------------------------------------------------------ threshold backend

def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = ndimage.binary_fill_holes(mask[k]) if mask[k].any() else mask[k]
    return out


def _closing_2d(mask: np.ndarray, iterations: int) -> np.ndarray:
    if iterations <= 0 or not mask.any():
        return mask
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    p = iterations + 1
    padded = np.pad(mask, ((0, 0), (p, p), (p, p)))
    closed = ndimage.binary_closing(padded, structure=s, iterations=iterations)
    return closed[:, p:-p, p:-p]


def _body_mask(ct: np.ndarray, body_hu: float) -> np.ndarray:
    tissue = ct > body_hu
    lab, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros_like(tissue)
    sizes = ndimage.sum_labels(tissue, lab, index=np.arange(1, n + 1))
    return _fill_holes_2d(lab == (int(np.argmax(sizes)) + 1))


def _remove_outside_air(air: np.ndarray) -> np.ndarray:
    """Drop air connected to the in-plane image border: per axial slice (2D) and in 3D through the side faces.
    The top / bottom faces do not count as border: lungs and trachea are routinely cut by the scan range."""
    inside = air.copy()
    for k in range(air.shape[0]):
        if not air[k].any():
            continue
        lab, _ = ndimage.label(air[k])
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        inside[k] &= ~np.isin(lab, edge[edge > 0])
    lab, _ = ndimage.label(air)
    edge = np.unique(np.concatenate([lab[:, 0].ravel(), lab[:, -1].ravel(), lab[:, :, 0].ravel(),
                                     lab[:, :, -1].ravel()]))
    return inside & ~np.isin(lab, edge[edge > 0])


def _trachea(cand: np.ndarray, midline_x: np.ndarray, spacing_zyx, superior_high: bool, max_area_mm2: float,
             midline_mm: float) -> np.ndarray:
    """Trachea and extra-pulmonary bronchi: tracked slice by slice from the most superior slice downwards.

    Seeds are the small (area <= ``max_area_mm2``) 2D air components within ``midline_mm`` of the body midline in
    the first (most superior) slice that has air there. Each following slice keeps the small 2D components that
    overlap the airway of the slice above; a branch stops where it merges into a large component (it entered a
    lung), so the carina and both main bronchi are followed up to the hila.
    """
    airway = np.zeros_like(cand)
    px_area = float(spacing_zyx[1] * spacing_zyx[2])
    order = range(cand.shape[0] - 1, -1, -1) if superior_high else range(cand.shape[0])
    prev = None
    for k in order:
        sl = cand[k]
        if not sl.any():
            if prev is not None:
                break
            continue
        lab, n = ndimage.label(sl)
        areas = ndimage.sum_labels(sl, lab, index=np.arange(1, n + 1)) * px_area
        keep = np.zeros(n + 1, bool)
        if prev is None:
            coms = ndimage.center_of_mass(sl, lab, index=np.arange(1, n + 1))
            for i, (a, (_, cx)) in enumerate(zip(areas, coms), start=1):
                keep[i] = a <= max_area_mm2 and abs(cx - midline_x[k]) * spacing_zyx[2] <= midline_mm
            if not keep.any():
                if (areas > max_area_mm2).any():  # the top slice already holds lung: no trachea above it
                    break
                continue
        else:
            hit = np.unique(lab[prev & sl])
            hit = hit[hit > 0]
            keep[hit] = areas[hit - 1] <= max_area_mm2
            merged = hit[areas[hit - 1] > max_area_mm2]
            if len(merged):  # the airway enters a lung (or the carina joins both) in this slice: cut its stump
                stump = ndimage.binary_dilation(prev) & np.isin(lab, merged)
                airway[k] |= stump
            if not keep.any():
                break
        cur = keep[lab]
        airway[k] |= cur
        prev = cur
    return airway


def _opposite_sides(pieces: list, midline_x: np.ndarray) -> bool:
    """True if the two masks' mean x lie on opposite sides of the (per-slice) body midline."""
    side = []
    for p in pieces:
        idx = np.argwhere(p)
        side.append(np.mean(idx[:, 2] - midline_x[idx[:, 0]]))
    return bool(side[0] * side[1] < 0)


def _split_lungs(comp: np.ndarray, spacing_zyx, midline_x: np.ndarray, max_erosion_mm: float) -> list:
    """Split one component holding both lungs into two masks (order arbitrary).

    1. In-plane erosion: increase the depth (2D distance to the boundary, in mm) until the component falls
       apart into two 3D pieces on opposite sides of the midline, the smaller >= 10 % of the larger (so a lung
       whose apex separates first is not mistaken for two lungs); every voxel then goes to its nearest piece.
    2. Fallback: per axial slice, cut at the valley (the fewest voxels) of the column projection within
       +-25 % of the width around the body midline.
    """
    sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    # 2D distance per slice: a huge z sampling keeps the nearest background within the slice
    dist = ndimage.distance_transform_edt(np.pad(comp, ((1, 1), (0, 0), (0, 0)), constant_values=True),
                                          sampling=(1e6, sy, sx))[1:-1]
    dist[~comp] = 0
    step = min(sy, sx)
    depth = step
    while depth <= max_erosion_mm:
        core = dist > depth
        lab, n = ndimage.label(core)
        if n >= 2:
            sizes = ndimage.sum_labels(core, lab, index=np.arange(1, n + 1))
            top = np.argsort(sizes)[::-1][:2]
            pieces = [lab == t + 1 for t in top]
            if sizes[top[1]] >= 0.1 * sizes[top[0]] and _opposite_sides(pieces, midline_x):
                # every voxel goes to the nearer piece (two distance maps: lighter than EDT indices)
                d0 = ndimage.distance_transform_edt(~pieces[0], sampling=spacing_zyx)
                d1 = ndimage.distance_transform_edt(~pieces[1], sampling=spacing_zyx)
                first = d0 <= d1
                return [comp & first, comp & ~first]
        depth += step
    a = np.zeros_like(comp)
    for k in range(comp.shape[0]):
        if not comp[k].any():
            continue
        cols = comp[k].sum(axis=0).astype(float)
        xs = np.nonzero(cols)[0]
        half = max(2, int(0.25 * (xs[-1] - xs[0] + 1)))
        m = round(float(midline_x[k]))
        lo, hi = max(0, m - half), min(len(cols), m + half + 1)
        window = ndimage.uniform_filter1d(cols, 3)[lo:hi]
        best = np.flatnonzero(window == window.min()) + lo
        cut = int(best[np.argmin(np.abs(best - m))])
        a[k, :, :cut] = comp[k, :, :cut]
    return [a, comp & ~a]


def threshold_lung_mask(ct_hu_zyx: np.ndarray, geometry, **options) -> np.ndarray:
    """Classical lung mask of a CT in HU (numpy (z, y, x)) -> uint8 (0 background, 1 right, 2 left lung).

    Steps (options in :data:`THRESHOLD_DEFAULTS`):

    1. air-like voxels: HU < ``air_hu`` (-320).
    2. outside air removed: 2D components touching the border of their axial slice, and 3D components touching
       the side faces of the volume (not top / bottom: the scan range cuts lungs and trachea).
    3. trachea and main bronchi removed by tracking small midline airway cross-sections from the most superior
       slice down to where they enter a lung (:func:`_trachea`).
    4. components (6-connected, 3D): keep the largest if >= max(``min_volume_ml``, ``min_body_fraction`` x body
       volume) and the 2nd largest if it also passes that and is >= ``second_ratio`` x the largest; smaller air
       (bowel / stomach gas, oesophagus, residual airway) is dropped.
    5. left / right: a single kept component that lies substantially on both sides of the body midline (>= 15 %
       of its voxels on each side) is split (:func:`_split_lungs`: in-plane erosion, else the projection
       valley). Each lung gets 1 (right) or 2 (left) by the side of the body's mean physical x its own mean x
       lies on (LPS: patient right = -x), so flipped / mirrored directions give the same anatomical labels.
    6. per lung: holes filled per axial slice (vessels, nodules enclosed by lung) and a small in-plane closing
       (``closing_iterations``); voxels claimed by both lungs stay with the first one.

    Volumes stored sagittally or coronally are transposed to axial order first (from the direction cosines)
    and the mask is transposed back. Assumes a CT in HU with the patient lying roughly axis-aligned.
    """
    opts = dict(THRESHOLD_DEFAULTS)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown threshold_lung_mask option(s): {', '.join(sorted(unknown))}")
    opts.update(options)
    ct = np.asarray(ct_hu_zyx)
    if ct.ndim != 3:
        raise InputError(f"lung masks need a 3D CT; got an array of shape {ct.shape}")
    ct, geometry, back = _as_axial(ct, geometry)
    if back is not None:  # sagittal / coronal storage: work axially, return in the input's axis order
        return np.ascontiguousarray(np.transpose(threshold_lung_mask(ct, geometry, **options), back))
    spacing_zyx = tuple(float(s) for s in geometry.spacing[::-1])
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    out = np.zeros(ct.shape, np.uint8)

    body = _body_mask(ct, opts["body_hu"])
    if not body.any():
        return out
    # body midline (x index) per slice, falling back to the overall centre on slices without body
    xs = np.arange(ct.shape[2])
    counts = body.sum(axis=(1, 2))
    overall = float((body.sum(axis=(0, 1)) * xs).sum() / body.sum())
    midline_x = np.where(counts > 0, (body.sum(axis=1) * xs).sum(axis=1) / np.maximum(counts, 1), overall)

    air = ct < opts["air_hu"]                                                       # step 1
    cand = _remove_outside_air(air)                                                 # step 2
    cand &= ~_trachea(cand, midline_x, spacing_zyx, _superior_is_high_z(geometry),  # step 3
                      opts["trachea_max_area_mm2"], opts["trachea_midline_mm"])
    lab, n = ndimage.label(cand)                                                    # step 4
    if n == 0:
        return out
    sizes = ndimage.sum_labels(cand, lab, index=np.arange(1, n + 1)) * voxel_ml
    min_ml = max(opts["min_volume_ml"], opts["min_body_fraction"] * body.sum() * voxel_ml)
    order = np.argsort(sizes)[::-1]
    kept = [lab == order[0] + 1] if sizes[order[0]] >= min_ml else []
    if kept and n > 1 and sizes[order[1]] >= max(min_ml, opts["second_ratio"] * sizes[order[0]]):
        kept.append(lab == order[1] + 1)
    if not kept:
        return out

    if len(kept) == 1:                                                              # step 5
        comp = kept[0]
        right_of_mid = (np.arange(ct.shape[2])[None, None, :] < midline_x[:, None, None]) & comp
        frac = right_of_mid.sum() / comp.sum()
        if min(frac, 1 - frac) >= 0.15:
            box = ndimage.find_objects(comp.astype(np.uint8))[0]  # work on the bounding box only
            halves = _split_lungs(comp[box], spacing_zyx, midline_x[box[0]] - box[2].start,
                                  opts["split_max_erosion_mm"])
            kept = []
            for h in halves:
                if h.any():
                    full = np.zeros_like(comp)
                    full[box] = h
                    kept.append(full)
    # each lung by the side of the body midline its centroid lies on (LPS: patient right = smaller x); two
    # pieces on the same side (e.g. one lung cut in two, the other collapsed) both get that side
    body_x = _patient_x(geometry, body)
    labels = tuple(RIGHT if _patient_x(geometry, m) <= body_x else LEFT for m in kept)

    for m, value in zip(kept, labels):                                              # step 6
        m = _closing_2d(_fill_holes_2d(m), int(opts["closing_iterations"]))
        out[m & (out == 0)] = value
    return out


# ------------------------------------------------------------------------------------- lungmask backend

def _hub_weights() -> str | None:
    """Where torch hub caches the R231 weights (without importing torch when TORCH_HOME says it)."""
    if os.environ.get("TORCH_HOME"):
        hub = os.path.join(os.environ["TORCH_HOME"], "hub")
    else:
        try:
            import torch.hub
            hub = torch.hub.get_dir()
        except Exception:  # noqa: BLE001 - torch missing or broken: no cache to look in
            return None
    return os.path.join(hub, "checkpoints", R231_FILE)


def lungmask_available(weights: str | None = None) -> tuple[bool, str]:
    """``(usable, reason)`` for the lungmask backend; never downloads anything."""
    if importlib.util.find_spec("lungmask") is None:
        return False, "the 'lungmask' package is not installed (pip install lungmask)"
    if weights is not None:
        if not os.path.isfile(weights):
            return False, f"lungmask weights file {weights} does not exist"
        return True, f"lungmask R231 with weights {weights}"
    cached = _hub_weights()
    if cached and os.path.isfile(cached):
        return True, f"lungmask R231 with cached weights {cached}"
    return False, (f"no lungmask R231 weights on this machine (looked for {cached or R231_FILE} in the torch hub "
                   f"cache; pass --lungmask-weights PATH; nothing is downloaded)")


def _lungmask_predict(ct: np.ndarray, geometry, weights: str) -> np.ndarray:
    import SimpleITK as sitk

    image = geometry.apply(sitk.GetImageFromArray(np.ascontiguousarray(ct).astype(np.int16)))
    try:
        try:
            from lungmask import LMInferer  # lungmask >= 0.2.14
        except ImportError:
            from lungmask import mask as lm  # older releases
            mask = lm.apply(image, lm.get_model("unet", "R231", modelpath=weights))
        else:
            mask = LMInferer(modelname="R231", modelpath=weights).apply(image)
    except (ImportError, OSError, RuntimeError, ValueError, KeyError) as e:  # e.g. a corrupt weights file
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(f"lungmask backend failed with weights {weights}: {msg}") from None
    mask = np.asarray(mask).astype(np.uint8)
    if mask.shape != ct.shape:
        raise InputError(f"lungmask returned shape {mask.shape} for a CT of shape {ct.shape}")
    return mask


def compute_lung_mask(ct: np.ndarray, geometry, backend: str = "auto", weights: str | None = None,
                      **threshold_options) -> tuple[np.ndarray, str]:
    """``(uint8 mask with 1 = right / 2 = left lung, backend used)``; ``backend`` in auto | lungmask | threshold.

    Asking for ``lungmask`` when it cannot be used raises :class:`InputError` with the reason.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown lung mask backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if np.asarray(ct).ndim != 3:
        raise InputError(f"lung masks need a 3D CT; got an array of shape {np.asarray(ct).shape}")
    if backend in ("auto", "lungmask"):
        ok, reason = lungmask_available(weights)
        if ok:
            return _lungmask_predict(ct, geometry, weights or _hub_weights()), "lungmask"
        if backend == "lungmask":
            raise InputError(f"lungmask backend unusable: {reason}")
    return threshold_lung_mask(ct, geometry, **threshold_options), "threshold"
