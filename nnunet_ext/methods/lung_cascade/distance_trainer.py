"""``DistanceTransformTrainer``: stage-2 lung-cascade variant with a distance-transform-weighted loss
("Distance Transform", isler2025 Table VII).

The paper names the loss but gives no formula; we use Ronneberger-style boundary weighting (U-Net 2015, eq. 2
without the class-balance term) of a Euclidean distance map to the label boundary, as Kervadec-style boundary
losses (2019) use, here in millimetres::

    w(x) = 1 + w0 · exp(-d(x)² / (2 σ²)),     d(x) = distance (mm) to the nearest label boundary,
    L    = Σ_i λ_i (Dice[w_i](o_i, t_i) + CE[w_i](o_i, t_i)),

``Dice[w]`` = :func:`nnunet_ext.methods.lung_cascade.weighted_losses.weighted_soft_dice_loss` (``-Dice``, background
excluded, the
plans' ``batch_dice``), ``CE[w] = Σ w CE / Σ w``
(:func:`~nnunet_ext.methods.lung_cascade.weighted_losses.weighted_cross_entropy`), so
``w0 = 0`` is exactly nnU-Net's Dice + CE. ``w_i`` =
:func:`~nnunet_ext.methods.lung_cascade.weighted_losses.distance_weight_map` of the
deep-supervision target ``t_i`` with spacing ``spacing / scale_i`` (nnU-Net's downsampled targets are coarser by
the cumulative pooling strides), λ_i as in nnU-Net's ``DeepSupervisionWrapper``. The weights are computed in the
data-loading pipeline (:class:`~nnunet_ext.methods.lung_cascade.distance_weights_transform.DistanceWeightTransform`,
after
nnU-Net's deep-supervision downsampling, in the augmentation workers), carried as a second target channel and
handed to the loss by ``train_step`` / ``validation_step``; the loss computes them itself only when called
without them. Used for training and validation loss. Label maps only.

Defaults (class attributes ``dt_w0`` / ``dt_sigma``, plans ``distance.w0`` / ``distance.sigma``): ``w0 = 10``
(Ronneberger) and ``σ = 5 mm`` -- about 5–7 voxels in-plane and 1–5 slices at CT 3d_fullres spacings
(0.7–1 mm x 1–5 mm), i.e. a ±10 mm band around tumour boundaries. Recorded in the checkpoint and the log.
"""
from __future__ import annotations

from typing import Sequence

import torch

from nnunet_ext.methods.lung_cascade.distance_weights_transform import DistanceWeightTransform, split_weights
from nnunet_ext.methods.lung_cascade.options import DistanceOptions
from nnunet_ext.methods.lung_cascade.weighted_losses import (
    distance_weight_map,
    weighted_cross_entropy,
    weighted_soft_dice_loss,
)
from nnunet_ext.trainers.ds_loss import DeepSupervisionLoss, require_plain_labels
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer


def deep_supervision_spacings(spacing: Sequence[float], scales) -> list[tuple[float, ...]]:
    """Spacing of each deep-supervision target: ``spacing / scale`` per axis (``scales`` None -> one output)."""
    if scales is None:
        return [tuple(float(s) for s in spacing)]
    return [tuple(float(s) / float(f) for s, f in zip(spacing, scale)) for scale in scales]


class DistanceWeightedLoss(DeepSupervisionLoss):
    """``Σ_i λ_i (Dice[w_i] + CE[w_i])`` with boundary-distance weights ``w_i`` of target ``i`` (module docstring)."""

    def __init__(self, spacings: Sequence[Sequence[float]], w0: float = 10.0, sigma: float = 5.0,
                 weight_factors=None, batch_dice: bool = False):
        super().__init__(None, weight_factors)
        self.spacings = [tuple(s) for s in spacings]
        self.w0, self.sigma, self.batch_dice = float(w0), float(sigma), batch_dice
        self.batch_weights = None  #: per-output weights (B, *S_i) from the data pipeline, set per batch

    def weights(self, target: torch.Tensor, index: int) -> torch.Tensor:
        """``w`` for target ``index`` (float32, on its device; no gradient): the pipeline's map when set, else
        computed here (scipy EDT on the CPU)."""
        if self.batch_weights is not None:
            return self.batch_weights[index].to(target.device)
        spacing = self.spacings[index]
        w = distance_weight_map(target, spacing, sigma=self.sigma, w0=self.w0, spatial_dims=len(spacing))
        return w.to(target.device)

    def output_loss(self, logits, target, index):
        w = self.weights(target, index)
        logits = logits.float()
        return (weighted_soft_dice_loss(logits, target, w, batch_dice=self.batch_dice)
                + weighted_cross_entropy(logits, target, w))


class DistanceTransformTrainer(MCDropoutTrainer):
    """MC-dropout nnU-Net trained with Dice[w] + CE[w], w = 1 + w0·exp(-d²/2σ²), d = mm to the label boundary."""

    option_families = (DistanceOptions,)

    def initialize(self):
        opts = self.options(DistanceOptions)
        self.dt_w0, self.dt_sigma = opts.w0, opts.sigma
        require_plain_labels(self)
        super().initialize()

    @property
    def dt_spacings(self) -> list[tuple[float, ...]]:
        """Target spacing (mm) per deep-supervision output, full resolution first."""
        cm = self.configuration_manager
        spacing = list(cm.spacing)[-len(cm.patch_size):]  # 2d plans: in-plane spacing
        return deep_supervision_spacings(spacing, self._get_deep_supervision_scales())

    def _build_loss(self):
        weights = getattr(super()._build_loss(), "weight_factors", None)  # nnU-Net's DS weights
        return DistanceWeightedLoss(self.dt_spacings, self.dt_w0, self.dt_sigma, weights,
                                    bool(self.configuration_manager.batch_dice))

    def weight_transform(self) -> DistanceWeightTransform:
        return DistanceWeightTransform(self.dt_spacings, self.dt_w0, self.dt_sigma)

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training transforms + :class:`DistanceWeightTransform` (instance method: needs the spacings)."""
        compose = MCDropoutTrainer.get_training_transforms(*args, **kwargs)
        compose.transforms.append(self.weight_transform())
        return compose

    def get_validation_transforms(self, *args, **kwargs):
        compose = MCDropoutTrainer.get_validation_transforms(*args, **kwargs)
        compose.transforms.append(self.weight_transform())
        return compose

    pipeline_batches = 0  #: training / validation batches whose weights came from the data pipeline ...
    fallback_batches = 0  #: ... and those without (the loss computed them)

    def _with_weights(self, step, batch: dict) -> dict:
        target = batch["target"]
        first = target[0] if isinstance(target, (list, tuple)) else target
        if first.shape[1] != 2:  # a batch without the weight channel: the loss computes the weights itself
            self.fallback_batches += 1
            return step(batch)
        self.pipeline_batches += 1
        labels, weights = split_weights(target)
        self.loss.batch_weights = weights
        try:
            return step({**batch, "target": labels})
        finally:
            self.loss.batch_weights = None

    def train_step(self, batch: dict) -> dict:
        return self._with_weights(super().train_step, batch)

    def validation_step(self, batch: dict) -> dict:
        return self._with_weights(super().validation_step, batch)

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"distance-transform loss: L = Dice[w] + CE[w], w = 1 + {self.dt_w0} * "
                               f"exp(-d^2 / (2 * {self.dt_sigma}^2)), d in mm; target spacings {self.dt_spacings}")

    def on_train_end(self):
        self.print_to_log_file(f"distance weights: {self.pipeline_batches} batches from the data pipeline, "
                               f"{self.fallback_batches} computed in the loss")
        super().on_train_end()

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "dt_w0": self.dt_w0, "dt_sigma": self.dt_sigma,
                "dt_spacings": [list(s) for s in self.dt_spacings]}
