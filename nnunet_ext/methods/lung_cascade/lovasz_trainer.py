"""``UncertaintyLovaszTrainer``: stage-2 lung-cascade variant with the uncertainty-weighted Lovász loss
("U-W Lovász", isler2025 sec. III.D / Table VII).

Per training batch, U = MC-dropout variance of K passes exactly as in ``UncertaintyTrainer`` (same knobs
plans ``uncertainty_loss.samples`` / ``.refresh``), then per deep-supervision output (U area-resized to it)::

    L = Lovász[w = 1 + U] + λ_CE · CE,

``Lovász[w]`` = Lovász-softmax (Berman et al. 2018, the convex Lovász extension of the Jaccard loss), errors
``|[y = c] - p_c|`` multiplied by ``w`` before sorting, mean over the classes present in the batch, background
included (Berman's default; :func:`nnunet_ext.methods.lung_cascade.lovasz.lovasz_softmax_loss`); ``CE`` = plain
(unweighted)
cross-entropy, as in nnU-Net's Dice + CE. The terms are summed over outputs with nnU-Net's DS weights.

Choice: the paper does not say whether Lovász is used alone. We default to ``λ_CE = 1`` (Lovász + CE): the
Lovász gradient follows the current error ranking and is usually paired with CE when training from scratch
(Berman et al. fine-tune CE-trained networks), and nnU-Net's baseline is likewise a region loss + CE.
``λ_CE = 0`` gives the pure weighted Lovász loss. ``lovasz_classes`` (class attribute): ``"present"`` (default).
Option: plans ``nnext_training.lovasz.ce_weight`` (>= 0), recorded in the
checkpoint (``checkpoint["nnext"]["options"]["lovasz"]``) and the training log. Validation: nnU-Net's Dice + CE.
"""
from __future__ import annotations

import torch

from nnunet_ext.methods.lung_cascade.options import LovaszOptions
from nnunet_ext.methods.lung_cascade.uncertainty_trainer import UncertaintyTrainer, UncertaintyWeightedLoss
from nnunet_ext.methods.lung_cascade.weighted_losses import lovasz_softmax_loss, weighted_cross_entropy


class UncertaintyLovaszLoss(UncertaintyWeightedLoss):
    """``Σ_i λ_i (Lovász[w = 1 + U_i](o_i, t_i) + ce_weight · CE(o_i, t_i))``; ``fallback`` while U is None."""

    def __init__(self, fallback: torch.nn.Module, weight_factors=None, ce_weight: float = 1.0,
                 classes="present"):
        super().__init__(fallback, weight_factors)
        self.ce_weight = float(ce_weight)
        self.classes = classes

    def uncertainty_loss(self, logits, target, u):
        loss = lovasz_softmax_loss(logits, target, weight=1.0 + u.detach(), classes=self.classes)
        if self.ce_weight:
            loss = loss + self.ce_weight * weighted_cross_entropy(logits, target, 1.0)
        return loss


class UncertaintyLovaszTrainer(UncertaintyTrainer):
    """MC-dropout nnU-Net trained with L = Lovász-softmax[w = 1 + U] + λ_CE·CE, U = MC-dropout variance."""

    lovasz_classes = "present"
    option_families = (LovaszOptions,)

    def initialize(self):
        self.lovasz_ce_weight = self.options(LovaszOptions).ce_weight
        super().initialize()

    def _uncertainty_loss(self, fallback, weight_factors):
        return UncertaintyLovaszLoss(fallback, weight_factors, self.lovasz_ce_weight, self.lovasz_classes)

    def loss_summary(self) -> str:
        return (f"uncertainty-weighted Lovasz loss: L = Lovasz[w = 1 + U] + {self.lovasz_ce_weight} * CE, "
                f"{self._mc_summary()}")

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "lovasz_ce_weight": self.lovasz_ce_weight}
