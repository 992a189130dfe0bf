"""``UncertaintyTrainer``: stage-2 trainer of the lung cascade with the uncertainty-adaptive loss (isler2025 III.D).

Per training batch, U(x) = MC-dropout variance of K stochastic forward passes of the current network (dropout
active, normalisation in eval mode, no gradient;
:func:`nnunet_ext.methods.lung_cascade.weighted_losses.mc_dropout_variance`), then
``L = ᾱ·Dice[w = α] + mean_x (1 − α(x))·CE(x)`` with ``α(x) = exp(−U(x))``, applied per voxel
(:func:`nnunet_ext.methods.lung_cascade.weighted_losses.uncertainty_adaptive_loss`; the paper's formula is per voxel,
the authors'
released code reduces α to its mean -- we follow the formula). With deep supervision, U is resized (area
interpolation) to each output and the terms are weighted like nnU-Net's ``DeepSupervisionWrapper``.

Options (plans ``nnext_training.uncertainty_loss``: ``samples`` / ``refresh`` / ``scale``): K =
``samples`` (default 4); ``refresh`` (default 1 = a fresh U for every batch; with n > 1, U is recomputed
every n-th batch and the batches in between use ONE scalar, the mean of the last map over all its samples and
voxels -- a per-sample map must not be applied to the unrelated samples of another batch); ``scale``:
``none`` (default, the paper's α = exp(−U); U is a variance of probabilities, <= 0.25 for two classes, so
α >= 0.78 and in practice ≈ 1: Dice-only training), ``max`` (α = exp(−U / U_max), U_max the largest possible U for K
passes and C classes (0.25 for C = 2, even K),
:func:`~nnunet_ext.methods.lung_cascade.weighted_losses.max_mc_variance`; α spans [1/e, 1]) or ``batch`` (α = exp(−U /
max U of the
batch)). The K passes run under the same autocast as nnU-Net's training step (CUDA: fp16 autocast). Validation
uses nnU-Net's plain Dice + CE. Label-based (softmax) datasets only, no ignore label. :class:`UncertaintyWeightedLoss`
and the
``_uncertainty_loss`` / ``loss_summary`` hooks are shared with ``UncertaintyLovaszTrainer`` (``lovasz.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nnunet_ext.methods.lung_cascade.options import UncertaintyLossOptions
from nnunet_ext.methods.lung_cascade.weighted_losses import (
    mc_dropout_variance,
    scale_uncertainty,
    uncertainty_adaptive_loss,
)
from nnunet_ext.trainers.ds_loss import DeepSupervisionLoss, require_plain_labels
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer


class UncertaintyWeightedLoss(DeepSupervisionLoss):
    """Deep-supervision loss driven by a per-batch uncertainty map; nnU-Net's ``fallback`` while it is None.

    Subclasses define ``uncertainty_loss(logits, target, u)``; ``u`` is :attr:`uncertainty` resized (area
    interpolation) to the output's spatial shape.
    """

    def __init__(self, fallback: torch.nn.Module, weight_factors=None):
        super().__init__(fallback, weight_factors)
        self.uncertainty: "torch.Tensor | None" = None  # (B, *spatial) at full resolution, set per batch

    @property
    def active(self) -> bool:
        return self.uncertainty is not None

    def output_loss(self, logits, target, index):
        u = self.uncertainty
        if u.shape[1:] != logits.shape[2:]:
            u = F.interpolate(u[:, None], size=logits.shape[2:], mode="area")[:, 0]
        return self.uncertainty_loss(logits.float(), target, u)

    def uncertainty_loss(self, logits, target, u) -> torch.Tensor:
        raise NotImplementedError


class UncertaintyAdaptiveLoss(UncertaintyWeightedLoss):
    """Deep-supervision-aware adaptive loss; falls back to nnU-Net's loss while :attr:`uncertainty` is None."""

    def __init__(self, fallback: torch.nn.Module, weight_factors=None, batch_dice: bool = False):
        super().__init__(fallback, weight_factors)
        self.batch_dice = batch_dice

    def uncertainty_loss(self, logits, target, u):
        return uncertainty_adaptive_loss(logits, target, u, batch_dice=self.batch_dice)


class UncertaintyTrainer(MCDropoutTrainer):
    """MC-dropout nnU-Net trained with L = α·Dice + (1−α)·CE, α = exp(−U), U = MC-dropout variance (per voxel)."""

    option_families = (UncertaintyLossOptions,)

    def initialize(self):
        opts = self.options(UncertaintyLossOptions)
        self.mc_samples, self.refresh, self.u_scaling = opts.samples, opts.refresh, opts.scale
        require_plain_labels(self)
        super().initialize()
        self._iteration = 0
        self._last_u = None

    def _build_loss(self):
        fallback = super()._build_loss()
        return self._uncertainty_loss(fallback, getattr(fallback, "weight_factors", None))

    def _uncertainty_loss(self, fallback, weight_factors) -> UncertaintyWeightedLoss:
        """The training loss (subclasses swap it); ``fallback`` = nnU-Net's Dice + CE, used for validation."""
        return UncertaintyAdaptiveLoss(fallback, weight_factors, bool(self.configuration_manager.batch_dice))

    def loss_summary(self) -> str:
        """One line for the training log."""
        return f"uncertainty-adaptive loss: {self._mc_summary()}"

    def _mc_summary(self) -> str:
        return (f"K = {self.mc_samples} MC passes, refresh every {self.refresh} batch(es), U scaling "
                f"{self.u_scaling}")

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(self.loss_summary())

    def mc_uncertainty(self, data: torch.Tensor) -> torch.Tensor:
        """U of ``data`` (B, *S): K MC-dropout passes under the training step's autocast, then ``u_scaling``."""
        from nnunetv2.utilities.helpers import dummy_context

        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            u = mc_dropout_variance(self.network, data, self.mc_samples)
        return scale_uncertainty(u.float(), self.u_scaling, self.label_manager.num_segmentation_heads,
                                 self.mc_samples)

    def train_step(self, batch: dict) -> dict:
        data = batch["data"]
        shape = (data.shape[0],) + tuple(data.shape[2:])
        if self._iteration % self.refresh == 0 or self._last_u is None:
            self._last_u = self.mc_uncertainty(data.to(self.device, non_blocking=True))
            u = self._last_u
        else:  # between refreshes: one scalar (the last map's mean), never another batch's per-sample map
            u = self._last_u.mean().expand(shape)
        self._iteration += 1
        self.last_uncertainty = u
        self.loss.uncertainty = u
        try:
            return super().train_step(batch)
        finally:
            self.loss.uncertainty = None

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "mc_samples": self.mc_samples, "refresh": self.refresh,
                "u_scaling": self.u_scaling}
