"""Boundary-distance weights computed in nnU-Net's data-loading pipeline (a batchgeneratorsv2 transform).

:class:`DistanceWeightTransform` runs after nnU-Net's ``DownsampleSegForDSTransform`` (in the data-augmentation
workers, per sample): for every deep-supervision target ``t_i`` (labels ``(1, *S_i)``) it computes
``w_i = 1 + w0 · exp(−d² / 2σ²)`` (:func:`nnunet_ext.methods.lung_cascade.weighted_losses.distance_weight_map`,
scipy's EDT with that
output's spacing) and returns ``cat([t_i, w_i])`` as float32 ``(2, *S_i)``: channel 0 the labels (exact in
float32), channel 1 the weights. nnU-Net's data loader collates only ``image`` and ``segmentation``, so the
weights travel as a second segmentation channel;
:class:`~nnunet_ext.methods.lung_cascade.distance_trainer.DistanceTransformTrainer`
splits them off before nnU-Net's ``train_step`` / ``validation_step`` see the targets.
"""
from __future__ import annotations

from typing import Sequence

import torch
from batchgeneratorsv2.transforms.base.basic_transform import SegOnlyTransform

from nnunet_ext.methods.lung_cascade.weighted_losses import distance_weight_map


class DistanceWeightTransform(SegOnlyTransform):
    """Append the boundary weight map to each (deep-supervision) segmentation: ``(1, *S) -> (2, *S)`` float32."""

    def __init__(self, spacings: Sequence[Sequence[float]], w0: float = 10.0, sigma: float = 5.0):
        super().__init__()
        self.spacings = [tuple(float(v) for v in s) for s in spacings]
        self.w0, self.sigma = float(w0), float(sigma)

    def _one(self, seg: torch.Tensor, spacing) -> torch.Tensor:
        w = distance_weight_map(seg[0], spacing, sigma=self.sigma, w0=self.w0, spatial_dims=len(spacing))
        return torch.cat([seg.float(), w[None].float()], 0)

    def _apply_to_segmentation(self, segmentation, **params):
        if isinstance(segmentation, (list, tuple)):
            return [self._one(s, sp) for s, sp in zip(segmentation, self.spacings)]
        return self._one(segmentation, self.spacings[0])


def split_weights(target):
    """``(labels, weights)`` from targets carrying the weight channel (list per output, or one tensor); labels
    back to int16 ``(B, 1, *S)`` as nnU-Net's loader gives them, weights float32 ``(B, *S)``."""
    if isinstance(target, (list, tuple)):
        pairs = [split_weights(t) for t in target]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return target[:, :1].round().to(torch.int16), target[:, 1].float()
