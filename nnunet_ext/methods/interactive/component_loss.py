"""Stage-3 loss term on the clicked error components (beyond the paper; plans ``clicks.component_loss_weight``).

Why: the stage-3 models follow a click only inside its stamp. Measured on the demo's 3D models (benchmarks/RESULTS.md,
issue 18): a positive click on a GTVp under-segmentation changes ~5 voxels of a 100-200-voxel missed shell, and a
2D click corrects 4-37 % of the clicked component. nnU-Net's loss averages over the whole patch, where a clicked
component is a few hundred of 131 072 voxels, so "correct the whole component I clicked" is a weak signal. This
term adds the cross-entropy over exactly those voxels:

    L = L_nnU-Net(outputs, targets) + lambda * (1 / |M|) * sum_{v in M} CE(softmax(z_v), y_v)

with z the full-resolution logits, y the reference and M the union, over the batch, of the error components
that got a click in the sample's rounds, each as it was when clicked (the FN component of a positive click, the
FP component of a negative one; :func:`nnunet_ext.methods.interactive.click_prompt_trainer.error_click_prompts`).
The term is 0 when no component was clicked, and absent in validation (no mask is set). HN-UISeg (Chu 2026, sec.
2.2) trains stage 3 with nnU-Net's Dice + CE only; ``lambda = 0`` (the default) is the paper's loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class ClickedComponentLoss(torch.nn.Module):
    """``base(outputs, targets) + weight * CE`` over the voxels of :attr:`mask` (bool, ``(B, *S)`` of the
    full-resolution target; ``None`` = base loss only). The trainer sets :attr:`mask` before a training step and
    clears it after."""

    def __init__(self, base: torch.nn.Module, weight: float):
        super().__init__()
        if not weight > 0:
            raise ValueError(f"component loss weight must be > 0, got {weight}")
        self.base, self.weight = base, float(weight)
        self.mask: "torch.Tensor | None" = None

    def forward(self, outputs, targets):
        loss = self.base(outputs, targets)
        if self.mask is None:
            return loss
        return loss + self.weight * clicked_component_ce(outputs, targets, self.mask)


def clicked_component_ce(outputs, targets, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the full-resolution ``outputs`` (logits ``(B, C, *S)``, or the first of a
    deep-supervision list) against ``targets`` (``(B, 1, *S)`` labels, or the first of a list) over the voxels of
    ``mask``; 0 (with a gradient path) when the mask is empty."""
    logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    target = targets[0] if isinstance(targets, (list, tuple)) else targets
    mask = mask.to(logits.device)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target[:, 0].long(), reduction="none")
    return ce[mask].mean()
