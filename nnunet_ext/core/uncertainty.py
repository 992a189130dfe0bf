"""Uncertainty of an ensemble of N probabilistic predictions (MC dropout, TTA, folds), in pure torch.

For passes ``P_i`` (probabilities, class axis first) with mean ``P̄ = 1/N Σ_i P_i``:

* predictive entropy ``H[P̄] = -Σ_c P̄_c log P̄_c`` (total uncertainty; HN-UISeg, chu2026 sec. 2.5);
* expected entropy ``E_i H[P_i]`` (aleatoric part);
* mutual information ``MI = H[P̄] - E_i H[P_i] >= 0`` (epistemic part, Gal 2016 / BALD);
* variance ``1/C Σ_c Var_i(P_{i,c})`` (lung cascade, isler2025 sec. III.E, uses MC-dropout variance).

Softmax outputs use the categorical entropy; sigmoid (nnU-Net region-based) outputs are independent
Bernoulli variables per region, so entropies are the *sums of binary entropies* over regions. Natural log (nats):
the maximum is ``log C`` (softmax) or ``C log 2`` (sigmoid).
"""
from __future__ import annotations

import math

import torch

EPS = 1e-7
MAP_NAMES = ("entropy", "variance", "mi")
#: the unit of every map nnunet_ext writes: one convention, natural logarithms (nats), everywhere (issue 23)
MAP_UNITS = {"entropy": "nats", "mi": "nats", "expected_entropy": "nats", "variance": "probability^2"}
MAP_TITLES = {"entropy": "predictive entropy", "mi": "mutual information", "expected_entropy": "expected entropy",
              "variance": "variance of the passes"}


def map_label(name: "str | None") -> str:
    """Colour-bar label of a map: its name and unit, e.g. ``predictive entropy (nats)``; region maps
    ``entropy_WT`` are entropies in nats too."""
    if not name:
        return "uncertainty (unit unknown)"
    base = "entropy" if name.startswith("entropy_") else name
    title = MAP_TITLES.get(base, name.replace("_", " "))
    if base != name:
        title += f" {name.split('_', 1)[1]}"
    unit = MAP_UNITS.get(base)
    return f"{title} ({unit})" if unit else f"{title} (unit unknown)"


def entropy(p: torch.Tensor, dim: int = 0, sigmoid: bool = False) -> torch.Tensor:
    """Categorical (or summed binary, when ``sigmoid``) entropy along ``dim``, in nats."""
    p = p.float()
    h = -torch.xlogy(p, p)
    if sigmoid:
        q = 1.0 - p
        h = h - torch.xlogy(q, q)
    return h.sum(dim)


def max_entropy(num_classes: int, sigmoid: bool = False) -> float:
    return num_classes * math.log(2.0) if sigmoid else math.log(num_classes)


def ensemble_maps(passes: torch.Tensor, sigmoid: bool = False) -> dict[str, torch.Tensor]:
    """Mean probability and uncertainty maps of ``passes`` shaped ``(N, C, *spatial)``.

    Returns ``{"mean": (C, *S), "entropy": S, "expected_entropy": S, "mi": S, "variance": S}``.
    """
    passes = passes.float()
    mean = passes.mean(0)
    h_mean = entropy(mean, 0, sigmoid)
    h_exp = entropy(passes, 1, sigmoid).mean(0)
    return {
        "mean": mean,
        "entropy": h_mean,
        "expected_entropy": h_exp,
        "mi": (h_mean - h_exp).clamp_min(0.0),  # >= 0 by Jensen; clamp float round-off
        "variance": passes.var(0, unbiased=False).mean(0),
    }


def pooled_logits(mean_probabilities: torch.Tensor, sigmoid: bool = False) -> torch.Tensor:
    """Logits whose inference non-linearity gives back ``mean_probabilities``: ``log P̄`` (softmax) or
    ``logit(P̄)`` (sigmoid).

    nnU-Net blends overlapping sliding windows by a Gaussian-weighted mean of *logits*. Blending these pooled
    logits instead keeps that rule: for one pass they equal the network logits up to a per-voxel constant
    shared by all classes (``log softmax(z) = z - logsumexp(z)``), so the argmax, and for sigmoid the logits
    themselves, are exactly nnU-Net's. For N passes the blend is a log-linear pool of the windows' MC means.
    """
    p = mean_probabilities.float().clamp(EPS, 1.0 - EPS if sigmoid else 1.0)
    return torch.logit(p) if sigmoid else torch.log(p)
