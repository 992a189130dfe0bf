"""Deep-supervision wrapper for per-output (voxel-weighted) losses, shared by the stage-2 loss trainers.

nnU-Net's ``DeepSupervisionWrapper`` applies one loss to every (output, target) pair, ``L = Σ_i λ_i L(o_i, t_i)``
(λ halves per resolution, the lowest is 0, normalised to sum 1). Our losses need per-output context (the
uncertainty resized to the output, the spacing of the downsampled target), so :class:`DeepSupervisionLoss`
calls ``output_loss(logits, target, index)`` instead and skips outputs with ``λ_i = 0``. While ``active`` is
False (e.g. no uncertainty map yet, or in validation) the wrapped nnU-Net ``fallback`` loss is used unchanged.
"""
from __future__ import annotations

import torch


class DeepSupervisionLoss(torch.nn.Module):
    """``Σ_i λ_i · output_loss(o_i, t_i, i)`` over deep-supervision outputs (one output: ``output_loss(o, t, 0)``)."""

    def __init__(self, fallback: "torch.nn.Module | None" = None, weight_factors=None):
        super().__init__()
        self.fallback = fallback
        self.weight_factors = None if weight_factors is None else tuple(weight_factors)

    @property
    def active(self) -> bool:
        """False -> ``fallback`` is used (subclasses tie this to per-batch state)."""
        return True

    def output_loss(self, logits: torch.Tensor, target: torch.Tensor, index: int) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, output, target):
        if not self.active:
            if self.fallback is None:
                raise RuntimeError(f"{type(self).__name__} is inactive and has no fallback loss")
            return self.fallback(output, target)
        if not isinstance(output, (list, tuple)):
            return self.output_loss(output, target, 0)
        weights = self.weight_factors or (1.0,) * len(output)
        return sum(w * self.output_loss(o, t, i) for i, (w, o, t) in enumerate(zip(weights, output, target))
                   if w != 0)


def require_plain_labels(trainer) -> None:
    """The voxel-weighted core losses support softmax label maps only: no regions, no ignore label."""
    name = type(trainer).__name__
    if trainer.label_manager.has_regions:
        raise ValueError(f"{name} supports label-based (softmax) datasets, not region-based plans")
    if trainer.label_manager.ignore_label is not None:
        raise ValueError(f"{name} does not support an ignore label (dataset.json 'ignore')")
