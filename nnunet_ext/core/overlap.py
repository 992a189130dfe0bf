"""Voxel-overlap metrics between a reference mask R and a predicted mask P (pure numpy).

Confusion counts over all voxels: TP = |R & P|, FP = |~R & P|, FN = |R & ~P|, TN = |~R & ~P|.

==============  ===========================  ==========================================
metric          formula                      empty-mask policy
==============  ===========================  ==========================================
Dice            2 TP / (2 TP + FP + FN)      R, P both empty -> 1
IoU (Jaccard)   TP / (TP + FP + FN)          R, P both empty -> 1
sensitivity     TP / (TP + FN)               R empty -> NaN (undefined; aggregate with nanmean)
specificity     TN / (TN + FP)               R covers every voxel -> NaN
precision       TP / (TP + FP)               P empty -> NaN
accuracy        (TP + TN) / N                always defined (N > 0)
==============  ===========================  ==========================================

Exactly one of R, P empty gives TP = 0 and FP + FN > 0, hence Dice = IoU = 0 with the plain formulas.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ConfusionCounts", "confusion_counts", "dice", "iou", "sensitivity", "specificity",
           "precision", "accuracy", "overlap_metrics"]


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a binary comparison (plain Python ints, JSON-friendly)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n_ref(self) -> int:
        """|R| = TP + FN."""
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        """|P| = TP + FP."""
        return self.tp + self.fp

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def confusion_counts(ref: np.ndarray, pred: np.ndarray) -> ConfusionCounts:
    """TP, FP, FN, TN of two same-shaped masks (anything non-zero counts as foreground)."""
    ref = np.asarray(ref, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(f"mask shapes differ: reference {ref.shape} vs prediction {pred.shape}")
    tp = int(np.count_nonzero(ref & pred))
    n_ref = int(np.count_nonzero(ref))
    n_pred = int(np.count_nonzero(pred))
    fp, fn = n_pred - tp, n_ref - tp
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=int(ref.size) - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den > 0 else float("nan")


def dice(c: ConfusionCounts) -> float:
    """2 TP / (2 TP + FP + FN); 1 when both masks are empty."""
    return 1.0 if c.tp + c.fp + c.fn == 0 else _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def iou(c: ConfusionCounts) -> float:
    """TP / (TP + FP + FN); 1 when both masks are empty."""
    return 1.0 if c.tp + c.fp + c.fn == 0 else _ratio(c.tp, c.tp + c.fp + c.fn)


def sensitivity(c: ConfusionCounts) -> float:
    """Recall TP / (TP + FN); NaN when the reference is empty."""
    return _ratio(c.tp, c.tp + c.fn)


def specificity(c: ConfusionCounts) -> float:
    """TN / (TN + FP); NaN when the reference covers the whole image."""
    return _ratio(c.tn, c.tn + c.fp)


def precision(c: ConfusionCounts) -> float:
    """Positive predictive value TP / (TP + FP); NaN when the prediction is empty."""
    return _ratio(c.tp, c.tp + c.fp)


def accuracy(c: ConfusionCounts) -> float:
    """(TP + TN) / N."""
    return _ratio(c.tp + c.tn, c.total)


def overlap_metrics(ref: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """All overlap metrics of the table above plus the raw counts ``tp, fp, fn, tn`` and voxel counts."""
    c = confusion_counts(ref, pred)
    return {"dice": dice(c), "iou": iou(c), "sensitivity": sensitivity(c), "specificity": specificity(c),
            "precision": precision(c), "accuracy": accuracy(c),
            **asdict(c), "voxels_ref": c.n_ref, "voxels_pred": c.n_pred}
