"""Lovász-softmax loss (Berman, Triki & Blaschko, CVPR 2018), pure torch, optionally voxel-weighted.

For a class c with ground-truth set ``G`` and errors ``m_i = |[y_i = c] - p_{i,c}|``, the Jaccard loss of a
set ``S`` of mispredicted voxels is ``ΔJ(S) = 1 - |G \\ S| / |G ∪ S|``. Its Lovász extension, evaluated at m, is

    ΔJ̄(m) = Σ_i m_(i) · (ΔJ(S_i) - ΔJ(S_{i-1})),   m_(1) >= m_(2) >= ...,   S_i = {(1), ..., (i)},

a convex, piecewise-linear surrogate that equals ``ΔJ`` (i.e. ``1 - IoU``) on 0/1 error vectors. The loss is
its mean over classes (Berman sec. 3, eq. 9-12; the "lovasz_grad" below is ``ΔJ(S_i) - ΔJ(S_{i-1})``).

Weighted variant (uncertainty-weighted Lovász, weights e.g. ``w = 1 + U``): the errors are multiplied by the
per-voxel weight *before* sorting, ``m_i -> w_i m_i``, so the loss is the same Lovász extension evaluated at
the weighted error vector (still convex in m and equal to 1 - IoU on 0/1 errors when w ≡ 1); uncertain voxels
move up the ordering and carry their weight as slope.
"""
from __future__ import annotations

from typing import Sequence

import torch


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """``ΔJ(S_i) - ΔJ(S_{i-1})`` for a 0/1 ground truth sorted by decreasing error (Berman alg. 1)."""
    if not gt_sorted.is_floating_point():
        gt_sorted = gt_sorted.float()
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)          # |G \ S_i|
    union = gts + (1.0 - gt_sorted).cumsum(0)         # |G ∪ S_i|  (>= 1 for i >= 1)
    jaccard = 1.0 - intersection / union              # ΔJ(S_i)
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def _labels(target: torch.Tensor, ndim: int) -> torch.Tensor:
    """Drop nnU-Net's channel axis: ``(B, 1, *S)`` or ``(B, *S)`` -> ``(B, *S)`` long."""
    if target.ndim == ndim:
        if target.shape[1] != 1:
            raise ValueError(f"target must have one channel, got shape {tuple(target.shape)}")
        target = target[:, 0]
    return target.long()


def _weights(weight: torch.Tensor, ndim: int, dtype: torch.dtype, device) -> torch.Tensor:
    if weight.ndim == ndim:
        weight = weight[:, 0]
    return weight.detach().to(device=device, dtype=dtype)


def lovasz_softmax(probas: torch.Tensor, target: torch.Tensor, weight: "torch.Tensor | None" = None,
                   classes: "str | Sequence[int]" = "present") -> torch.Tensor:
    """Lovász-softmax of probabilities ``(B, C, *S)`` against labels ``(B, 1, *S)``, batch flattened.

    ``classes``: ``"present"`` (classes in the target, Berman's default), ``"all"``, or a list of class ids.
    ``weight`` (``(B, *S)`` or ``(B, 1, *S)``, >= 0) multiplies the errors before sorting (module docstring); it is
    detached (no gradient).
    """
    num_classes, ndim = probas.shape[1], probas.ndim
    labels = _labels(target, ndim).reshape(-1)
    w = None if weight is None else _weights(weight, ndim, probas.dtype, probas.device).reshape(-1)
    probas = probas.movedim(1, -1).reshape(-1, num_classes)
    if classes == "present" or classes == "all":
        class_ids = range(num_classes)
    else:
        class_ids = list(classes)
    losses = []
    for c in class_ids:
        fg = (labels == c).to(probas.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()
        if w is not None:
            errors = errors * w
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    if not losses:  # no requested class present: zero loss that still belongs to the graph
        return probas.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax_loss(logits: torch.Tensor, target: torch.Tensor, weight: "torch.Tensor | None" = None,
                        classes: "str | Sequence[int]" = "present") -> torch.Tensor:
    """Lovász-softmax loss of logits ``(B, C, *S)`` (softmax over C); see :func:`lovasz_softmax`."""
    return lovasz_softmax(torch.softmax(logits.float(), 1), target, weight, classes)
