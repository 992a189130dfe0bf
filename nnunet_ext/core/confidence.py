"""Case-, structure- and lesion-level confidence from per-voxel maps and streamed vote counts (pure numpy).

Rows of ``confidence.csv`` (written by ``nnext predict`` for every case): one per case and label (``component``
0, the whole structure) and one per connected component of the predicted label (``component`` >= 1, numbered
by :func:`components`: cc3d, 26-connectivity in 3D (8 in 2D), cc3d's scan order).

**Pooled pairwise Dice, streamed** (Zenk et al. 2024, "Comparative benchmarking of failure detection methods in
medical image segmentation": the pairwise Dice between ensemble members was the best case-level score). For N
passes / members with binary masks ``A_i`` of a label and the per-voxel vote count ``v_x = sum_i [x in A_i]``::

    sum_{i<j} |A_i & A_j|       = sum_x C(v_x, 2) = sum_x v_x (v_x - 1) / 2
    sum_{i<j} (|A_i| + |A_j|)   = (N - 1) sum_i |A_i|  = (N - 1) sum_x v_x
    D = sum_{i<j} 2 |A_i & A_j| / sum_{i<j} (|A_i| + |A_j|) = sum_x v_x (v_x - 1) / ((N - 1) sum_x v_x)

so one vote count per voxel and label (memory flat in N) gives the *pooled* pairwise Dice (ratio of the sums
over all pairs; the mean of the per-pair Dice ratios cannot be streamed from counts). ``D`` = 1 when no pass
predicts the label in the region (all pairs both-empty); undefined (NaN) for N < 2. A region ``R`` restricts
the sums to its voxels: for a component, ``R`` is the connected component of ``{v >= 1/2} | component`` that
contains it (every voxel some pass gave to that lesion). Votes resampled to the image grid are real-valued; the
formula is then applied as is (exact on the network grid).

**Uncertainty summaries** of the written map ``u`` (nats for entropy / MI): ``mean_uncertainty`` = mean of u
over the structure's voxels; ``boundary_uncertainty`` = mean of u over its one-voxel boundary band
``dilate(S) & ~erode(S)`` (inner and outer layer, 3x3(x3) cross-free box structure).

**confidence** in [0, 1], higher = more trustworthy:

* multi-pass (vote counts present): ``confidence = D`` (pooled pairwise Dice over the region);
* single pass: ``confidence = 1 - ū / u_max`` clipped to [0, 1], ``ū`` = mean of u over ``dilate(S)`` (the
  structure and its outer boundary layer) and ``u_max`` the map's maximum (``log K`` nats for the entropy /
  MI of K classes, ``K log 2`` for K sigmoid regions, 1/4 for the variance); an unknown map uses ``exp(-ū)``.
* an **empty** structure (nothing predicted for the label): ``confidence = 1 - max_x p_label(x)`` when the
  (mean) class probabilities are given (how sure "nothing" is at the most suspicious voxel), taking the
  minimum with ``D`` for multi-pass methods (``D`` = 1 when every pass agrees on nothing, which says nothing
  about a tumour all passes missed); without probabilities the single-pass rule with ``ū = max_x u``.

**flag** (``;``-joined, ``ok`` when none): ``empty`` (nothing predicted for the label, component 0 only),
``low_confidence`` (confidence < ``low_confidence``, default 0.5), ``touches_border`` (a voxel on the image
border: a cropped field of view may cut the structure), ``small`` (a component with fewer than ``min_voxels``
voxels, default 10).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["COLUMNS", "pooled_pairwise_dice", "pairwise_dice_direct", "components", "boundary_band",
           "uncertainty_max", "confidence_rows", "LOW_CONFIDENCE", "MIN_VOXELS"]

#: columns of confidence.csv, in order
COLUMNS = ("case", "label", "component", "voxels", "volume_mm3", "mean_uncertainty", "boundary_uncertainty",
           "pairwise_dice", "n_members", "confidence", "confidence_source", "uncertainty_map", "flag")
LOW_CONFIDENCE = 0.5
MIN_VOXELS = 10


def pooled_pairwise_dice(votes, n_members: int, region=None) -> float:
    """``D = sum v (v - 1) / ((N - 1) sum v)`` over ``region`` (module docstring); 1 when no vote, NaN if N < 2."""
    n = int(n_members)
    if n < 2:
        return float("nan")
    v = np.asarray(votes, dtype=np.float64)
    if region is not None:
        v = v[np.asarray(region, dtype=bool)]
    total = float(v.sum())
    if total <= 0:
        return 1.0
    return float((v * (v - 1.0)).sum() / ((n - 1) * total))


def pairwise_dice_direct(masks) -> float:
    """Pooled pairwise Dice of ``masks`` ``(N, *S)`` by the direct sum over pairs (reference for tests)."""
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    num = den = 0.0
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            num += 2.0 * float((m[i] & m[j]).sum())
            den += float(m[i].sum() + m[j].sum())
    return float("nan") if len(m) < 2 else (1.0 if den == 0 else num / den)


def components(mask) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: (labels 1..n, n); cc3d, 26-connectivity (8 for 2D arrays)."""
    import cc3d

    m = np.ascontiguousarray(np.asarray(mask, dtype=bool))
    if not m.any():
        return np.zeros(m.shape, dtype=np.uint32), 0
    labels, n = cc3d.connected_components(m.astype(np.uint8), connectivity=8 if m.ndim == 2 else 26,
                                          return_N=True)
    return labels, int(n)


def boundary_band(mask) -> np.ndarray:
    """``dilate(S) & ~erode(S)`` with the full 3^d box: the inner and the outer one-voxel layer of ``S``."""
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    box = np.ones((3,) * m.ndim, dtype=bool)
    return ndimage.binary_dilation(m, box) & ~ndimage.binary_erosion(m, box, border_value=1)


def uncertainty_max(map_name: "str | None", n_classes: int, sigmoid: bool = False) -> "float | None":
    """Largest value of a written map in nats (None when unknown): entropy / MI / expected entropy ``log K``
    (``K log 2`` for sigmoid regions), variance 1/4."""
    name = (map_name or "").lower()
    if name in ("entropy", "mi", "expected_entropy") or name.startswith("entropy_"):
        return n_classes * math.log(2.0) if sigmoid else math.log(max(2, n_classes))
    if name == "variance":
        return 0.25
    return None


def _from_uncertainty(u_mean: float, u_max: "float | None") -> float:
    if not np.isfinite(u_mean):
        return float("nan")
    if u_max is None or u_max <= 0:
        return float(math.exp(-max(0.0, u_mean)))
    return float(min(1.0, max(0.0, 1.0 - u_mean / u_max)))


def _flags(confidence: float, empty: bool, border: bool, small: bool, low: float) -> str:
    flags = [name for name, on in (("empty", empty), ("low_confidence", np.isfinite(confidence) and confidence < low),
                                   ("touches_border", border), ("small", small)) if on]
    return ";".join(flags) or "ok"


def _touches_border(mask: np.ndarray) -> bool:
    for axis, n in enumerate(mask.shape):
        if n <= 1:
            continue  # a 2D image stored as (1, y, x): its z "border" is the image itself
        if np.take(mask, 0, axis).any() or np.take(mask, n - 1, axis).any():
            return True
    return False


def _box_on_border(box, shape) -> bool:
    """Whether an object with the tight bounding box ``box`` (ndimage.find_objects) has a voxel on the image
    border: its extreme voxel along an axis lies on the border exactly when the box does."""
    return any(n > 1 and (s.start == 0 or s.stop == n) for s, n in zip(box, shape))


def _mean(u: "np.ndarray | None", where: np.ndarray) -> float:
    return float(u[where].mean()) if u is not None and where.any() else float("nan")


def confidence_rows(case: str, segmentation, uncertainty, spacing, labels, *, votes: "dict | None" = None,
                    n_members: int = 1, u_max: "float | None" = None, map_name: "str | None" = None,
                    probabilities=None,
                    low_confidence: float = LOW_CONFIDENCE, min_voxels: int = MIN_VOXELS) -> list[dict]:
    """Rows of :data:`COLUMNS` for one case (module docstring).

    ``segmentation``: label image; ``uncertainty``: map on the same grid (None: no uncertainty columns);
    ``spacing``: voxel size per axis (any order: only the product is used, the volume of a voxel in mm^3, the
    area in mm^2 for a 2D image); ``labels``: the foreground labels to report; ``votes``: ``{label: vote count
    map}`` of ``n_members`` passes (None for a single pass); ``probabilities``: ``(K, *S)`` class probabilities,
    channel = label value (softmax; used for empty structures only).
    """
    seg = np.asarray(segmentation)
    u = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    if u is not None and u.shape != seg.shape:
        raise ValueError(f"uncertainty shape {u.shape} != segmentation shape {seg.shape}")
    voxel_mm3 = float(np.prod([float(s) for s in spacing]))
    box = np.ones((3,) * seg.ndim, dtype=bool)
    rows = []
    from scipy import ndimage

    for label in labels:
        mask = seg == int(label)
        v = None if votes is None or int(label) not in votes else np.asarray(votes[int(label)], dtype=np.float64)
        multi = v is not None and int(n_members) >= 2
        n = int(mask.sum())
        band = boundary_band(mask)
        grown = ndimage.binary_dilation(mask, box) if n else mask
        if multi:
            d = pooled_pairwise_dice(v, n_members)
            conf, source = d, "pairwise_dice"
        else:
            d = float("nan")
            u_ref = _mean(u, grown) if n else (float(u.max()) if u is not None and u.size else float("nan"))
            conf, source = _from_uncertainty(u_ref, u_max), "uncertainty"
        if not n and probabilities is not None and int(label) < len(probabilities):
            p_max = float(np.max(probabilities[int(label)], initial=0.0))
            conf = min(1.0 - p_max, conf) if multi else 1.0 - p_max
            source = "max_probability"
        rows.append(_row(case, label, 0, n, voxel_mm3, _mean(u, mask), _mean(u, band), d, n_members if multi else 1,
                         conf, source, map_name,
                         _flags(conf, n == 0, bool(n) and _touches_border(mask), False, low_confidence)))
        if not n:
            continue
        comp, n_comp = components(mask)
        if multi:  # per connected region of {v >= 1/2} | S: sum v and sum v (v - 1), one pass over the image
            region_labels, n_regions = components((v >= 0.5) | mask)
            flat = region_labels.ravel()
            s1 = np.bincount(flat, weights=v.ravel(), minlength=n_regions + 1)
            s2 = np.bincount(flat, weights=(v * (v - 1.0)).ravel(), minlength=n_regions + 1)
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            if sl is None:
                continue
            grow = tuple(slice(max(0, s.start - 1), min(dim, s.stop + 1)) for s, dim in zip(sl, seg.shape))
            cm = comp[grow] == k
            nk = int(cm.sum())
            uk = None if u is None else u[grow]
            if multi:
                ids = np.unique(region_labels[grow][cm])
                total = float(s1[ids].sum())
                dk = 1.0 if total <= 0 else float(s2[ids].sum() / ((int(n_members) - 1) * total))
                ck = dk
            else:
                dk = float("nan")
                ck = _from_uncertainty(_mean(uk, ndimage.binary_dilation(cm, box)), u_max)
            rows.append(_row(case, label, k, nk, voxel_mm3, _mean(uk, cm), _mean(uk, boundary_band(cm)), dk,
                             n_members if multi else 1, ck, "pairwise_dice" if multi else "uncertainty", map_name,
                             _flags(ck, False, _box_on_border(sl, seg.shape), nk < min_voxels, low_confidence)))
    return rows


def _row(case, label, component, voxels, voxel_mm3, mean_u, boundary_u, dice, n_members, conf, source, map_name,
         flag) -> dict:
    return {"case": case, "label": int(label), "component": int(component), "voxels": int(voxels),
            "volume_mm3": voxels * voxel_mm3, "mean_uncertainty": mean_u, "boundary_uncertainty": boundary_u,
            "pairwise_dice": dice, "n_members": int(n_members), "confidence": conf, "confidence_source": source,
            "uncertainty_map": map_name or "", "flag": flag}
