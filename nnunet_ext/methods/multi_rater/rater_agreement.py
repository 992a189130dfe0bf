"""Agreement between the readers of one case: pairwise Dice, nesting, volume ratios, share of the union.

For two reader masks A, B of the same case (issue 22; used to calibrate the phantom readers against LIDC-IDRI):

    Dice(A, B)          = 2 |A ∩ B| / (|A| + |B|)
    containment(A, B)   = |A ∩ B| / min(|A|, |B|)      (1 = the smaller mask lies entirely in the larger)
    nested(A, B)        = containment(A, B) >= NESTED_CONTAINMENT (0.95)
    volume ratio(A, B)  = min(|A|, |B|) / max(|A|, |B|)  (in (0, 1])

and per reader k: share_k = |M_k| / |∪_j M_j| (with a fixed reader order, a share that depends on k means the
order carries meaning; exchangeable readers have the same expected share at every index). ``nested`` with a
0.95 containment (not exact inclusion) because hand-drawn contours of a reader who outlines a larger region still
cross the smaller outline by a voxel here and there; the threshold is a parameter of every function.
"""
from __future__ import annotations

import itertools

import numpy as np

NESTED_CONTAINMENT = 0.95
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def pair_agreement(a: np.ndarray, b: np.ndarray, nested_at: float = NESTED_CONTAINMENT) -> dict[str, float]:
    """Dice, containment, nested (bool) and volume ratio of two masks (module docstring); both must be non-empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 or nb == 0:
        raise ValueError("pair_agreement needs two non-empty masks")
    inter = int(np.logical_and(a, b).sum())
    containment = inter / min(na, nb)
    return {"dice": 2.0 * inter / (na + nb), "containment": containment, "nested": bool(containment >= nested_at),
            "volume_ratio": min(na, nb) / max(na, nb)}


def case_agreement(masks, nested_at: float = NESTED_CONTAINMENT) -> dict:
    """Every reader pair of one case (``masks`` (K, *shape), K >= 2, none empty) plus each reader's union share."""
    masks = np.asarray(masks, bool)
    if masks.shape[0] < 2:
        raise ValueError(f"need at least 2 readers, got {masks.shape[0]}")
    union = int(masks.any(0).sum())
    pairs = [pair_agreement(masks[i], masks[j], nested_at) for i, j in itertools.combinations(range(masks.shape[0]), 2)]
    return {"pairs": pairs, "share_of_union": [float(m.sum()) / union for m in masks],
            "mean_pairwise_dice": float(np.mean([p["dice"] for p in pairs]))}


def summarise(cases: list[dict]) -> dict:
    """Pooled statistics over the pairs of many cases (each from :func:`case_agreement`): quantiles of the pairwise
    Dice and volume ratio, the fraction of nested pairs, the mean share of the union per reader index and the
    quantiles of the per-case mean pairwise Dice."""
    pairs = [p for c in cases for p in c["pairs"]]
    if not pairs:
        raise ValueError("no reader pairs to summarise")
    dice = np.array([p["dice"] for p in pairs])
    ratio = np.array([p["volume_ratio"] for p in pairs])
    k_max = max(len(c["share_of_union"]) for c in cases)
    shares = [[c["share_of_union"][k] for c in cases if len(c["share_of_union"]) > k] for k in range(k_max)]
    q = {f"q{int(round(x * 100)):02d}": None for x in QUANTILES}
    return {"n_cases": len(cases), "n_pairs": len(pairs),
            "pairwise_dice": {**{k: float(np.quantile(dice, x)) for k, x in zip(q, QUANTILES)},
                              "mean": float(dice.mean())},
            "volume_ratio": {**{k: float(np.quantile(ratio, x)) for k, x in zip(q, QUANTILES)},
                             "mean": float(ratio.mean())},
            "nested_fraction": float(np.mean([p["nested"] for p in pairs])),
            "case_mean_dice": {k: float(np.quantile([c["mean_pairwise_dice"] for c in cases], x))
                               for k, x in zip(q, QUANTILES)},
            "mean_share_by_index": [float(np.mean(s)) for s in shares]}
