"""Failure-detection metrics of a confidence score against a segmentation quality (pure numpy / scipy).

Zenk et al. 2024 ("Comparative benchmarking of failure detection methods in medical image segmentation", after
Jaeger et al. 2023): a case-level confidence ``kappa`` (higher = more trustworthy) and a risk ``r`` per case, here
``r = 1 - Dice``.

* **risk-coverage curve**: accept the cases with ``kappa >= t``; for every distinct threshold t (descending) the
  coverage ``c(t)`` = accepted / N and the selective risk ``R(t)`` = mean risk of the accepted cases. Tied
  confidences are accepted together (no arbitrary order inside a tie).
* **AURC** = ``sum_j (c_j - c_{j-1}) R_j`` (c_0 = 0): the area under the step curve; without ties this is
  ``1/N sum_{k=1..N} R_k``, the mean selective risk over the N coverages. Lower is better. ``aurc_optimal``: the
  same with the cases ordered by their true risk (the best any score could do); ``eaurc = aurc - aurc_optimal``
  (excess AURC).
* **AUROC for failures**: failures ``Dice < tau``, score ``-kappa`` (rank formula, ties averaged,
  :func:`nnunet_ext.core.calibration.auroc`); NaN when every case fails or none does.
* **Spearman** rank correlation of ``kappa`` and Dice (``scipy.stats.spearmanr``); NaN for a constant input.
"""
from __future__ import annotations

import numpy as np

from nnunet_ext.core.calibration import auroc

__all__ = ["risk_coverage", "aurc", "aurc_optimal", "failure_auroc", "spearman"]


def _check(confidence, risk) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(confidence, dtype=np.float64).reshape(-1)
    r = np.asarray(risk, dtype=np.float64).reshape(-1)
    if k.size != r.size:
        raise ValueError(f"confidence ({k.size}) and risk ({r.size}) differ in size")
    if np.isnan(k).any() or np.isnan(r).any():
        raise ValueError("confidence and risk must not contain NaN")
    return k, r


def risk_coverage(confidence, risk) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk) at every distinct confidence threshold, coverage increasing."""
    k, r = _check(confidence, risk)
    if k.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-k, kind="stable")
    k, r = k[order], r[order]
    last = np.r_[np.flatnonzero(np.diff(k) != 0), k.size - 1]  # last index of every tie group
    cum = np.cumsum(r)[last]
    n = last + 1.0
    return n / k.size, cum / n


def aurc(confidence, risk) -> float:
    """Area under the risk-coverage step curve (module docstring); NaN for no case."""
    cov, sel = risk_coverage(confidence, risk)
    if cov.size == 0:
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, cov]) * sel))


def aurc_optimal(risk) -> float:
    """AURC of the oracle score ``-risk``."""
    r = np.asarray(risk, dtype=np.float64).reshape(-1)
    return aurc(-r, r)


def failure_auroc(confidence, dice, tau: float = 0.5) -> float:
    """AUROC of ``-confidence`` for the failures ``Dice < tau``."""
    k, d = _check(confidence, dice)
    return auroc(-k, d < float(tau))


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = _check(a, b)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)
