"""Paired statistics for comparing two methods case by case (thin, quiet wrappers around ``scipy.stats``).

Every helper takes two equally long sequences ``a`` and ``b`` (values of method A and B on the same cases),
drops the pairs where either value is NaN (or None), and returns a :class:`StatResult` with the statistic,
the two-sided p-value and the number ``n`` of pairs used. Degenerate inputs give NaN instead of warnings:

* :func:`wilcoxon_paired`: Wilcoxon signed-rank test of d = b - a (``scipy.stats.wilcoxon``, default
  ``zero_method='wilcox'``: zero differences are dropped). No pairs -> NaN; all differences zero ->
  statistic 0, p = 1 (no evidence of a difference).
* :func:`spearman`, :func:`pearson`: ``scipy.stats.spearmanr`` / ``pearsonr``; fewer than 2 pairs or a
  constant input -> NaN, NaN (the coefficient is undefined).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["StatResult", "paired_finite", "wilcoxon_paired", "spearman", "pearson", "compare_paired"]

_NAN = float("nan")


@dataclass(frozen=True)
class StatResult:
    """Test statistic (W for Wilcoxon, rho for Spearman, r for Pearson), p-value and number of pairs used."""

    statistic: float
    pvalue: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_finite(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as float arrays without the pairs where either value is NaN / None."""
    x = np.array([_NAN if v is None else v for v in a], dtype=float)
    y = np.array([_NAN if v is None else v for v in b], dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired inputs must be 1-D and equally long, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> StatResult:
    """Two-sided Wilcoxon signed-rank test on d = b - a (NaN pairs dropped)."""
    x, y = paired_finite(a, b)
    n = int(x.size)
    if n == 0:
        return StatResult(_NAN, _NAN, 0)
    if np.all(y - x == 0):
        return StatResult(0.0, 1.0, n)
    res = _quiet(_st.wilcoxon, y, x)
    return StatResult(float(res.statistic), float(res.pvalue), n)


def _correlation(fn, a, b) -> StatResult:
    x, y = paired_finite(a, b)
    n = int(x.size)
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return StatResult(_NAN, _NAN, n)
    res = _quiet(fn, x, y)
    return StatResult(float(res.statistic), float(res.pvalue), n)


def spearman(a: Sequence[float], b: Sequence[float]) -> StatResult:
    """Spearman rank correlation rho and its p-value (NaN pairs dropped; constant input -> NaN)."""
    return _correlation(_st.spearmanr, a, b)


def pearson(a: Sequence[float], b: Sequence[float]) -> StatResult:
    """Pearson correlation r and its p-value (NaN pairs dropped; constant input -> NaN)."""
    return _correlation(_st.pearsonr, a, b)


def compare_paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Summary of a paired comparison: n, means, mean / median of d = b - a, Wilcoxon, Spearman, Pearson."""
    x, y = paired_finite(a, b)
    d = y - x
    empty = x.size == 0
    return {"n": int(x.size),
            "mean_a": _NAN if empty else float(x.mean()), "mean_b": _NAN if empty else float(y.mean()),
            "mean_difference": _NAN if empty else float(d.mean()),
            "median_difference": _NAN if empty else float(np.median(d)),
            "wilcoxon": wilcoxon_paired(x, y).as_dict(), "spearman": spearman(x, y).as_dict(),
            "pearson": pearson(x, y).as_dict()}
