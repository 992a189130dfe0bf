"""Spherical-projection ensemble of one 2D slice (Yang et al. 2025, sec. 2.2.1, eq. 1).

For a slice ``x`` (C, H, W) and origins ``o_1..o_K``: ``P_k = W_k^-1( sigmoid(f(W_k x)) )`` with ``W_k`` the
forward warp around ``o_k`` (:mod:`nnunet_ext.methods.glioma.spherical`) and ``f`` the 2D network. Per pixel and region:

* mean probability ``P2D = 1/K sum_k P_k`` (binarised at 0.5 by the caller);
* a ``B``-bin histogram of the ``P_k`` over [0, 1] (paper: 100 bins, bin b = [b/B, (b+1)/B), last closed) and
  its Shannon entropy over the non-empty bins ``U = -sum_t f_t log f_t`` (eq. 1), ``f_t`` the relative
  frequency of bin t; log base configurable (default e: nats, the unit of every nnunet_ext map, so U lies in
  [0, ln(min(K, B))]; the paper's bits with base 2, bits = nats / ln 2),
  optionally normalised by ``log(B)`` to [0, 1];
* the variance across projections (mean over regions).

Streaming: origins are processed in chunks and folded into :class:`~nnunet_ext.core.streaming.StreamingStats`,
so memory does not grow with K. Without origins (a slice outside the ROI) the slice is predicted once, unwarped,
and its uncertainty is 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from nnunet_ext.core.streaming import StreamingStats, histogram_entropy
from nnunet_ext.methods.glioma.spherical import forward_warp, inverse_warp

__all__ = ["SliceEnsemble", "ensemble_slice"]


@dataclass
class SliceEnsemble:
    mean: torch.Tensor       # (R, H, W) mean probability over projections
    entropy: torch.Tensor    # (R, H, W) histogram entropy (eq. 1)
    variance: torch.Tensor   # (H, W)
    n_origins: int


def ensemble_slice(x: torch.Tensor, predict: Callable[[torch.Tensor], torch.Tensor], origins,
                   radius=None, bins: int = 100, chunk: int = 32, entropy_base: float = math.e,
                   normalise: bool = False) -> SliceEnsemble:
    """Ensemble of ``predict`` (a batch ``(k, C, H, W)`` -> probabilities ``(k, R, H, W)``) over the spherical
    projections of ``x`` around ``origins`` (K, 2) (module docstring)."""
    origins = np.asarray(origins).reshape(-1, 2)
    if len(origins) == 0:
        p = predict(x[None])
        return SliceEnsemble(p[0].float(), torch.zeros_like(p[0], dtype=torch.float32),
                             torch.zeros(x.shape[-2:], dtype=torch.float32, device=p.device), 0)
    stats = None
    for s in range(0, len(origins), max(1, chunk)):
        o = origins[s:s + chunk]
        warped = forward_warp(x, o, radius)
        probs = inverse_warp(predict(warped).float(), o, radius).clamp_(0.0, 1.0)
        if stats is None:
            stats = StreamingStats(x.shape[-2:], probs.shape[1], sigmoid=True, variance=True,
                                   expected_entropy=False, bins=bins, device=probs.device)
        stats.update(probs)
    return SliceEnsemble(stats.mean(), histogram_entropy(stats.histogram(), entropy_base, normalise, dim=1),
                         stats.variance(), len(origins))
