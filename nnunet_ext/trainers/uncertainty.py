"""``UncertaintyTrainer``: stage-2 trainer of the lung cascade with the uncertainty-adaptive loss (isler2025 III.D).

Per training batch, U(x) = MC-dropout variance of K stochastic forward passes of the current network (dropout
active, normalisation in eval mode, no gradient; :func:`nnunet_ext.core.losses.mc_dropout_variance`), then
``L = ᾱ·Dice[w = α] + mean_x (1 − α(x))·CE(x)`` with ``α(x) = exp(−U(x))``, applied per voxel
(:func:`nnunet_ext.core.losses.uncertainty_adaptive_loss`; the paper's formula is per voxel, the authors'
released code reduces α to its mean -- we follow the formula). With deep supervision, U is resized (area
interpolation) to each output and the terms are weighted like nnU-Net's ``DeepSupervisionWrapper``.

Knobs (class attributes, or env ``NNEXT_UNC_SAMPLES`` / ``NNEXT_UNC_REFRESH``): K = ``mc_samples`` (default 4),
``refresh`` (default 1 = a fresh U for every batch; with n > 1, U is recomputed every n-th batch and the other
batches use the batch-mean of the last U, i.e. the released code's scalar α). Validation uses nnU-Net's plain
Dice + CE. Label-based (softmax) datasets only.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from nnunet_ext.core.losses import mc_dropout_variance, uncertainty_adaptive_loss
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer


class UncertaintyAdaptiveLoss(torch.nn.Module):
    """Deep-supervision-aware adaptive loss; falls back to nnU-Net's loss while :attr:`uncertainty` is None."""

    def __init__(self, fallback: torch.nn.Module, weight_factors=None, batch_dice: bool = False):
        super().__init__()
        self.fallback = fallback
        self.weight_factors = None if weight_factors is None else tuple(weight_factors)
        self.batch_dice = batch_dice
        self.uncertainty: "torch.Tensor | None" = None  # (B, *spatial) at full resolution, set per batch

    def _one(self, logits, target, u):
        if u.shape[1:] != logits.shape[2:]:
            u = F.interpolate(u[:, None], size=logits.shape[2:], mode="area")[:, 0]
        return uncertainty_adaptive_loss(logits.float(), target, u, batch_dice=self.batch_dice)

    def forward(self, output, target):
        if self.uncertainty is None:
            return self.fallback(output, target)
        if not isinstance(output, (list, tuple)):
            return self._one(output, target, self.uncertainty)
        weights = self.weight_factors or (1.0,) * len(output)
        return sum(w * self._one(o, t, self.uncertainty) for w, o, t in zip(weights, output, target) if w != 0)


class UncertaintyTrainer(MCDropoutTrainer):
    """MC-dropout nnU-Net trained with L = α·Dice + (1−α)·CE, α = exp(−U), U = MC-dropout variance (per voxel)."""

    mc_samples: int = 4
    refresh: int = 1

    def initialize(self):
        self.mc_samples = int(os.environ.get("NNEXT_UNC_SAMPLES", self.mc_samples))
        self.refresh = int(os.environ.get("NNEXT_UNC_REFRESH", self.refresh))
        if self.mc_samples < 2 or self.refresh < 1:
            raise ValueError(f"need NNEXT_UNC_SAMPLES >= 2 and NNEXT_UNC_REFRESH >= 1, got {self.mc_samples}, "
                             f"{self.refresh}")
        if self.label_manager.has_regions:
            raise ValueError("UncertaintyTrainer supports label-based (softmax) datasets, not region-based plans")
        super().initialize()
        self._iteration = 0
        self._last_u = None

    def _build_loss(self):
        fallback = super()._build_loss()
        return UncertaintyAdaptiveLoss(fallback, getattr(fallback, "weight_factors", None),
                                       bool(self.configuration_manager.batch_dice))

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"uncertainty-adaptive loss: K = {self.mc_samples} MC passes, refresh every "
                               f"{self.refresh} batch(es)")

    def train_step(self, batch: dict) -> dict:
        if self._iteration % self.refresh == 0 or self._last_u is None:
            data = batch["data"].to(self.device, non_blocking=True)
            self._last_u = mc_dropout_variance(self.network, data, self.mc_samples)
            u = self._last_u
        else:  # between refreshes: the last batch-mean U (a scalar alpha per sample)
            u = self._last_u.mean(dim=tuple(range(1, self._last_u.ndim)), keepdim=True).expand_as(self._last_u)
        self._iteration += 1
        self.loss.uncertainty = u
        try:
            return super().train_step(batch)
        finally:
            self.loss.uncertainty = None

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "mc_samples": self.mc_samples, "refresh": self.refresh}
