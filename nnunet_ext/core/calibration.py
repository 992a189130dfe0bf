"""Calibration and uncertainty-quality metrics of voxel-wise predictions (pure numpy / scipy).

Inputs: ``probs`` of shape ``(C, *S)`` (class probabilities, channel c = label c), ``labels`` of shape ``S``
(integer reference labels in ``[0, C)``), optional boolean ``mask`` of shape ``S`` restricting the voxels.

* ECE, classwise one-vs-rest: for every foreground class c (default 1..C-1) each voxel gives a pair
  (confidence p_c, outcome [label == c]). Pairs fall into ``n_bins`` equal-width bins over [0, 1]
  (``[lo, hi)``, the last bin closed). With per-bin count n_b, mean confidence conf_b, accuracy acc_b:
  ``ECE = sum_b n_b / N |acc_b - conf_b|``.  ``pooling="pooled"`` (default): the pairs of all foreground
  classes share one histogram (N = voxels x classes); ``pooling="mean"``: one ECE per class, then their mean.
  Every class contributes the same N pairs, so the two differ only through the shared bins: over- and
  under-confidence of different classes in one bin partly cancel when pooled (pooled <= mean).
* Brier (multi-class): ``mean_voxels sum_c (p_c - onehot_c)^2`` in [0, 2].
* AUROC of uncertainty scores for detecting voxel errors: rank formula (Mann-Whitney U), ties averaged with
  ``scipy.stats.rankdata``: ``(sum of positive ranks - n1 (n1 + 1) / 2) / (n1 n0)``; NaN if one class is empty.
* top-uncertainty Dice: Dice between the k most uncertain voxels and the error region.

Histograms are kept as sums (:class:`ReliabilityBins`) so cases can be pooled by adding them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["ReliabilityBins", "reliability_bins", "expected_calibration_error", "brier_score", "auroc",
           "top_uncertainty_dice", "ECE_POOLING"]

ECE_POOLING = ("pooled", "mean")
_CHUNK = 1 << 22  # voxels per chunk: bounds the float64 temporaries of large volumes


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin sums of a reliability histogram; add two to pool them."""

    edges: np.ndarray        # (n_bins + 1,) bin edges over [0, 1]
    count: np.ndarray        # (n_bins,) number of (confidence, outcome) pairs
    confidence_sum: np.ndarray
    outcome_sum: np.ndarray

    @property
    def mean_confidence(self) -> np.ndarray:
        """conf_b = sum p / n_b (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.confidence_sum / np.maximum(self.count, 1), np.nan)

    @property
    def accuracy(self) -> np.ndarray:
        """acc_b = fraction of positive outcomes in the bin (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.outcome_sum / np.maximum(self.count, 1), np.nan)

    @property
    def ece(self) -> float:
        """sum_b n_b / N |acc_b - conf_b| = sum_b |sum outcome - sum p| / N; NaN without pairs."""
        n = int(self.count.sum())
        return float(np.abs(self.outcome_sum - self.confidence_sum).sum() / n) if n else float("nan")

    def __add__(self, other: "ReliabilityBins") -> "ReliabilityBins":
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot pool reliability histograms with different bins")
        return ReliabilityBins(self.edges, self.count + other.count, self.confidence_sum + other.confidence_sum,
                               self.outcome_sum + other.outcome_sum)

    @classmethod
    def empty(cls, n_bins: int = 15) -> "ReliabilityBins":
        z = np.zeros(n_bins)
        return cls(np.linspace(0.0, 1.0, n_bins + 1), z.astype(np.int64), z.copy(), z.copy())

    def as_dict(self) -> dict:
        """JSON-friendly: edges, count, mean_confidence, accuracy (NaN for empty bins)."""
        return {"edges": self.edges.tolist(), "count": self.count.tolist(),
                "mean_confidence": self.mean_confidence.tolist(), "accuracy": self.accuracy.tolist()}


def _flatten(probs, labels, mask):
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.ndim != labels.ndim + 1 or probs.shape[1:] != labels.shape:
        raise ValueError(f"probs must be (C, *S) for labels of shape S; got {probs.shape} and {labels.shape}")
    p = probs.reshape(probs.shape[0], -1)
    y = labels.reshape(-1)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != labels.shape:
            raise ValueError(f"mask shape {mask.shape} != labels shape {labels.shape}")
        m = mask.reshape(-1)
        p, y = p[:, m], y[m]
    if y.size and (y.min() < 0 or y.max() >= probs.shape[0]):
        raise ValueError(f"labels must lie in [0, {probs.shape[0]}); found {int(y.min())}..{int(y.max())}")
    return p, y


def reliability_bins(probs, labels, n_bins: int = 15, classes: Sequence[int] | None = None,
                     mask=None) -> ReliabilityBins:
    """Pooled one-vs-rest reliability histogram of ``classes`` (default: every foreground class 1..C-1)."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    p, y = _flatten(probs, labels, mask)
    classes = range(1, p.shape[0]) if classes is None else classes
    out = ReliabilityBins.empty(n_bins)
    for c in classes:
        if not 0 <= int(c) < p.shape[0]:
            raise ValueError(f"class {c} not in [0, {p.shape[0]})")
        for start in range(0, y.size, _CHUNK):
            conf = np.clip(p[int(c), start:start + _CHUNK].astype(np.float64), 0.0, 1.0)
            hit = (y[start:start + _CHUNK] == int(c)).astype(np.float64)
            idx = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
            out = out + ReliabilityBins(out.edges, np.bincount(idx, minlength=n_bins),
                                        np.bincount(idx, conf, n_bins), np.bincount(idx, hit, n_bins))
    return out


def expected_calibration_error(probs, labels, n_bins: int = 15, classes: Sequence[int] | None = None, *,
                               pooling: str = "pooled", mask=None) -> tuple[float, ReliabilityBins]:
    """Classwise (one-vs-rest) ECE over ``classes`` (default foreground 1..C-1) -> ``(ece, pooled bins)``.

    ``pooling="pooled"``: ECE of the histogram shared by all classes' pairs; ``"mean"``: mean of per-class
    ECEs (classes without voxels skipped). The returned bins are always the pooled histogram.
    """
    if pooling not in ECE_POOLING:
        raise ValueError(f"pooling must be one of {ECE_POOLING}, got {pooling!r}")
    n_classes = np.asarray(probs).shape[0]
    classes = list(range(1, n_classes)) if classes is None else [int(c) for c in classes]
    per_class = [reliability_bins(probs, labels, n_bins, [c], mask) for c in classes]
    pooled = sum(per_class, ReliabilityBins.empty(n_bins))
    if pooling == "pooled":
        return pooled.ece, pooled
    eces = [b.ece for b in per_class if b.count.sum()]
    return (float(np.mean(eces)) if eces else float("nan")), pooled


def brier_score(probs, labels, mask=None) -> float:
    """Multi-class Brier: mean over voxels of ``sum_c (p_c - [label == c])^2`` (0 best, 2 worst); NaN if no voxel."""
    p, y = _flatten(probs, labels, mask)
    if y.size == 0:
        return float("nan")
    total = 0.0
    for start in range(0, y.size, _CHUNK):
        pc = p[:, start:start + _CHUNK].astype(np.float64)
        yc = y[start:start + _CHUNK].astype(np.int64)
        p_true = np.take_along_axis(pc, yc[None], axis=0)[0]
        total += float(((pc ** 2).sum(0) - 2.0 * p_true + 1.0).sum())  # sum_c p_c^2 - 2 p_y + 1
    return total / y.size


def auroc(scores, targets) -> float:
    """ROC AUC of ``scores`` for binary ``targets`` (rank formula, ties count 1/2); NaN if all 0 or all 1."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    t = np.asarray(targets, dtype=bool).reshape(-1)
    if s.size != t.size:
        raise ValueError(f"scores ({s.size}) and targets ({t.size}) differ in size")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n1 = int(t.sum())
    n0 = t.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    u = float(ranks[t].sum()) - n1 * (n1 + 1) / 2.0
    return u / (float(n1) * float(n0))


def top_uncertainty_dice(uncertainty, error_mask, fraction: float | None = None) -> float:
    """Dice between the k most uncertain voxels T and the error region E: ``2 |T & E| / (|T| + |E|)``.

    k = |E| (default) or ``round(fraction * N)``. Ties at the k-th value are broken by flat index (lowest
    first), so exactly k voxels are chosen, deterministically. Both T and E empty -> 1.
    """
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    e = np.asarray(error_mask, dtype=bool).reshape(-1)
    if u.size != e.size:
        raise ValueError(f"uncertainty ({u.size}) and error mask ({e.size}) differ in size")
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if np.isnan(u).any():
        raise ValueError("uncertainty contains NaN")
    k = int(e.sum()) if fraction is None else int(round(fraction * u.size))
    n_err = int(e.sum())
    if k == 0 and n_err == 0:
        return 1.0
    top = np.zeros(u.size, dtype=bool)
    if k > 0:
        kth = np.partition(u, u.size - k)[u.size - k]  # k-th largest value
        top[u > kth] = True
        ties = np.flatnonzero(u == kth)[: k - int(top.sum())]
        top[ties] = True
    return 2.0 * float((top & e).sum()) / float(k + n_err)
