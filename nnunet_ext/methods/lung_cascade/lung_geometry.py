"""Geometry helpers of the threshold lung masks: LPS coordinates from the image direction, axial views of
sagittal / coronal storage, the airway tracker and the split of lungs joined at the midline. Pure numpy/scipy."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def direction_matrix(geometry) -> np.ndarray:
    d = np.asarray(getattr(geometry, "direction", ()) or np.eye(3).ravel(), dtype=float)
    return d.reshape(3, 3) if d.size == 9 else np.eye(3)


def index_to_lps(geometry, idx_zyx: np.ndarray) -> np.ndarray:
    """Physical LPS coordinates (N, 3: x, y, z) of numpy (z, y, x) indices (N, 3)."""
    idx_xyz = np.asarray(idx_zyx, dtype=float)[..., ::-1]
    spacing = np.asarray(geometry.spacing, dtype=float)
    origin = np.asarray(geometry.origin, dtype=float)
    return origin + (idx_xyz * spacing) @ direction_matrix(geometry).T


def as_axial(ct: np.ndarray, geometry):
    """View a volume stored in any axis order as numpy (z, y, x) ~ physical (S-I, A-P, R-L).

    Returns ``(array, geometry of that array, axes to transpose the result back)``; a no-op for axial storage.
    Each index axis is matched to the physical axis its direction cosine points along most.
    """
    d = direction_matrix(geometry)
    phys_of_index = [int(np.argmax(np.abs(d[:, i]))) for i in range(3)]  # index axis (x, y, z) -> physical axis
    if sorted(phys_of_index) != [0, 1, 2] or phys_of_index == [0, 1, 2]:
        return ct, geometry, None
    index_of_phys = [phys_of_index.index(p) for p in range(3)]
    order = tuple(2 - index_of_phys[p] for p in (2, 1, 0))  # numpy axes giving (phys z, phys y, phys x)
    spacing = tuple(float(geometry.spacing[i]) for i in index_of_phys)
    direction = tuple(float(v) for v in d[:, index_of_phys].ravel())
    view = type(geometry)(spacing, tuple(geometry.origin), direction)  # a Geometry, without importing it
    return np.transpose(ct, order), view, tuple(np.argsort(order))


def superior_is_high_z(geometry) -> bool:
    """True if increasing numpy axis 0 (SimpleITK k) points to the patient's head (+z in LPS)."""
    return bool(direction_matrix(geometry)[2, 2] >= 0)


def patient_x(geometry, mask: np.ndarray) -> float:
    """Mean physical LPS x (mm) of a mask: smaller = more to the patient's right."""
    idx = np.argwhere(mask)
    if len(idx) > 20000:  # a subsample is plenty for a centroid
        idx = idx[:: len(idx) // 20000 + 1]
    return float(index_to_lps(geometry, idx)[:, 0].mean())


# ------------------------------------------------------------------------------------ threshold backend

def trachea(cand: np.ndarray, midline_x: np.ndarray, spacing_zyx, superior_high: bool, max_area_mm2: float,
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


def opposite_sides(pieces: list, midline_x: np.ndarray) -> bool:
    """True if the two masks' mean x lie on opposite sides of the (per-slice) body midline."""
    side = []
    for p in pieces:
        idx = np.argwhere(p)
        side.append(np.mean(idx[:, 2] - midline_x[idx[:, 0]]))
    return bool(side[0] * side[1] < 0)


def split_lungs(comp: np.ndarray, spacing_zyx, midline_x: np.ndarray, max_erosion_mm: float) -> list:
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
            if sizes[top[1]] >= 0.1 * sizes[top[0]] and opposite_sides(pieces, midline_x):
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
