"""Rater-set labels: K binary rater masks in the one integer segmentation channel nnU-Net stores.

Encoding ("rater-set v1"). For a case annotated by K raters (1 <= K <= ``MAX_RATERS``) a voxel whose set of
positive raters is the bit pattern ``p = Σ_j 2^j · m_j`` (bit j = rater j) gets the label

    label = 0                      if p = 0 (no rater: background, for every K)
    label = offset(K) + p          otherwise,  offset(K) = 2^K − K − 1  (= Σ_{k<K} (2^k − 1))

so K = 1 uses label 1, K = 2 labels 2..4, K = 3 labels 5..11, K = 4 labels 12..26 (K = 6: up to 120).
Every foreground label names *both* the rater count of its case and the rater pattern, so the per-voxel
union U(GT), intersection I(GT) (over the K raters of that case) and mean rater mask are functions of the
label alone: a trainer needs no per-case side channel (nnU-Net's data loader has none), and background needs
no K because all three are 0 there.

Why this survives nnU-Net: every step nnU-Net applies to a segmentation only ever *selects* an existing
label per voxel, never averages label values — preprocessing resamples each label's indicator and takes the
per-voxel argmax (``resize_segmentation``; order 0 = nearest neighbour), augmentation samples either by
nearest neighbour or by the argmax of interpolated indicators and pads with -1 -> 0, deep-supervision
targets are downsampled with ``nearest-exact``. So each voxel's decoded pattern is always a pattern some
input voxel had: union ⊇ each rater ⊇ intersection and mean = count / K hold exactly everywhere. With
nearest-neighbour resampling (order 0, which the multi-annotation trainers use for augmentation) decoding
even commutes with resampling: decode(resample(encode(m))) = resample(m_j) for every rater j, bit for bit.

Limit: K <= ``MAX_RATERS`` = 6 (largest label 2^(K+1) − K − 2 = 120 fits nnU-Net's int8 segmentation storage,
and dataset.json lists every label). LIDC-IDRI has at most 4 raters per nodule.
"""
from __future__ import annotations

import numpy as np

#: largest number of raters per case the encoding supports (labels up to 120 fit int8)
MAX_RATERS = 6
ENCODING_NAME = "rater-set-v1"


def check_n_raters(n_raters: int) -> int:
    """``n_raters`` as int; ValueError naming the limit unless 1 <= n_raters <= MAX_RATERS."""
    if isinstance(n_raters, bool) or not isinstance(n_raters, (int, np.integer)):
        raise ValueError(f"number of raters must be an integer, got {n_raters!r}")
    if not 1 <= int(n_raters) <= MAX_RATERS:
        raise ValueError(f"the rater-set encoding supports 1 to {MAX_RATERS} raters per case, got {n_raters} "
                         f"(labels up to 2^(K+1)-K-2 must fit nnU-Net's int8 segmentation storage)")
    return int(n_raters)


def label_offset(n_raters: int) -> int:
    """``offset(K) = 2^K − K − 1``: labels of K-rater cases are offset(K) + 1 .. offset(K) + 2^K − 1."""
    k = check_n_raters(n_raters)
    return (1 << k) - k - 1


def max_label(max_raters: int) -> int:
    """Largest label used by cases with up to ``max_raters`` raters (``2^(K+1) − K − 2``)."""
    return label_offset(max_raters) + (1 << check_n_raters(max_raters)) - 1


def labels_for(n_raters: int) -> np.ndarray:
    """The foreground labels a case with ``n_raters`` raters can contain."""
    off = label_offset(n_raters)
    return np.arange(off + 1, off + (1 << n_raters), dtype=np.int64)


def encode_raters(masks) -> np.ndarray:
    """``(K, *shape)`` binary masks -> ``*shape`` label map (uint8) of the rater-set encoding (module docstring)."""
    masks = np.asarray(masks)
    if masks.ndim < 2:
        raise ValueError(f"need masks of shape (K, *spatial), got shape {masks.shape}")
    k = check_n_raters(masks.shape[0])
    if masks.dtype != bool:
        values = np.unique(masks)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"rater masks must be binary (0/1), found values {values[:8].tolist()}")
        masks = masks.astype(bool)
    pattern = np.zeros(masks.shape[1:], dtype=np.int64)
    for j in range(k):
        pattern |= masks[j].astype(np.int64) << j
    return np.where(pattern > 0, pattern + label_offset(k), 0).astype(np.uint8)


def code_table(max_raters: int = MAX_RATERS) -> dict[str, np.ndarray]:
    """Per label id 0..max_label: ``n_raters`` (0 for background), ``pattern``, ``count`` (positive raters),
    ``union``, ``intersection`` (bool) and ``mean`` (count / K, float). Index these with a label map."""
    size = max_label(max_raters) + 1
    n = np.zeros(size, np.int64)
    pattern = np.zeros(size, np.int64)
    for k in range(1, max_raters + 1):
        ids = labels_for(k)
        n[ids] = k
        pattern[ids] = ids - label_offset(k)
    count = np.array([bin(int(p)).count("1") for p in pattern], np.int64)
    full = np.where(n > 0, (1 << n) - 1, -1)
    return {"n_raters": n, "pattern": pattern, "count": count, "union": count > 0,
            "intersection": pattern == full, "mean": np.where(n > 0, count / np.maximum(n, 1), 0.0)}


def _check_labels(label: np.ndarray, max_raters: int = MAX_RATERS) -> np.ndarray:
    label = np.asarray(label)
    if not np.issubdtype(label.dtype, np.integer):
        if not np.array_equal(label, np.round(label)):
            raise ValueError("rater-set label maps must hold integers")
        label = label.astype(np.int64)
    top = max_label(max_raters)
    if label.size and (label.min() < 0 or label.max() > top):
        raise ValueError(f"label values must be in 0..{top} (rater-set encoding, up to {max_raters} raters), "
                         f"found {int(label.min())}..{int(label.max())}")
    return label.astype(np.int64, copy=False)


def decode_raters(label, n_raters: int) -> np.ndarray:
    """Label map of a case annotated by ``n_raters`` raters -> ``(n_raters, *shape)`` bool rater masks.

    ValueError if the map holds a foreground label of another rater count (the case is not a K-rater case).
    """
    k = check_n_raters(n_raters)
    label = _check_labels(label)
    fg = label > 0
    off = label_offset(k)
    if fg.any():
        present = np.unique(label[fg])
        wrong = present[(present <= off) | (present >= off + (1 << k))]
        if wrong.size:
            raise ValueError(f"label(s) {wrong[:6].tolist()} do not belong to a {k}-rater case "
                             f"(expected {off + 1}..{off + (1 << k) - 1})")
    pattern = np.where(fg, label - off, 0)
    return np.stack([(pattern >> j) & 1 for j in range(k)]).astype(bool)


def raters_in(label) -> int:
    """Rater count K of a label map (0 if it is all background); ValueError if it mixes rater counts."""
    label = _check_labels(label)
    n = code_table()["n_raters"][np.unique(label)]
    ks = np.unique(n[n > 0])
    if ks.size > 1:
        raise ValueError(f"label map mixes labels of {ks.tolist()}-rater cases")
    return int(ks[0]) if ks.size else 0


def consensus_maps(label) -> dict[str, np.ndarray]:
    """``union`` / ``intersection`` (bool) and ``mean`` (float32) of any rater-set label map, no K needed."""
    label = _check_labels(label)
    table = code_table()
    return {"union": table["union"][label], "intersection": table["intersection"][label],
            "mean": table["mean"][label].astype(np.float32)}
