"""Multiple Annotation Fusion Loss and the MCM BCE loss of UGS-Net (Yang & Wang, sec. III-D, eq. 2-4).

    Φ(pred, GT)  = E_j BCE(pred, GT_j)                              (eq. 3; Φ_a on GT'_uni, Φ_b on X_S)
    L_MCM        = BCE(∪(GT)', ∪(GT)) + BCE(∩(GT)', ∩(GT))          (eq. 2)
    L            = α1 L_MCM + α2 Φ_a + α3 Φ_b,   α = (0.5, 0.5, 1)   (eq. 4)

BCE is linear in its target, so the mean over the K raters of the per-rater BCEs equals one BCE against the
mean rater mask: ``(1/K) Σ_j BCE(p, g_j) = BCE(p, (1/K) Σ_j g_j)`` voxel by voxel. :func:`fusion_bce` uses that
identity (the mean mask is decoded from the rater-set label, module :mod:`nnunet_ext.methods.multi_rater.raters`),
which is
exact and lets cases with different K share a batch; the tests compare it with per-rater BCEs by hand.
BCE is averaged over voxels (and the batch), per rater, then over raters — i.e. the paper's E over j.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nnunet_ext.methods.multi_rater.raters import MAX_RATERS, code_table

DEFAULT_ALPHAS = (0.5, 0.5, 1.0)

_TABLES: dict = {}


def _table(name: str, device: torch.device) -> torch.Tensor:
    key = (name, str(device))
    if key not in _TABLES:
        values = code_table(MAX_RATERS)[name]
        dtype = torch.float32 if values.dtype.kind == "f" or values.dtype == bool else torch.long
        _TABLES[key] = torch.as_tensor(np.asarray(values, dtype=np.float64 if dtype == torch.float32 else np.int64),
                                       dtype=dtype, device=device)
    return _TABLES[key]


def decode_targets(label: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rater-set label tensor (any shape, integer codes) -> float ``mean``, ``union``, ``intersection`` maps."""
    idx = label.long().clamp_min(0)
    return {name: _table(name, label.device)[idx] for name in ("mean", "union", "intersection")}


def decode_reader(label: torch.Tensor, reader: int) -> torch.Tensor:
    """Rater-set label tensor -> float mask of reader ``reader`` (bit ``reader`` of the case's rater pattern; 0
    where the case has fewer readers). The single-reader baseline's target (the paper's Label_1 = reader 0)."""
    pattern = _table("pattern", label.device)[label.long().clamp_min(0)]
    return ((pattern >> int(reader)) & 1).to(torch.float32)


def fusion_bce(logits: torch.Tensor, mean_target: torch.Tensor) -> torch.Tensor:
    """Φ = mean_j BCE(σ(logits), GT_j) computed as BCE against the mean rater mask (exact, see module doc)."""
    return F.binary_cross_entropy_with_logits(logits, mean_target.to(logits.dtype))


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, batch_dice: bool = False,
                   smooth: float = 1e-5) -> torch.Tensor:
    """1 − (2 Σ p·t + s) / (Σ p + Σ t + s) with p = σ(logits), soft target t in [0, 1]; per sample (or over the
    batch when ``batch_dice``), then averaged (nnU-Net's soft Dice, foreground only, for a soft target)."""
    p = torch.sigmoid(logits)
    dims = tuple(range(2, p.ndim))
    if batch_dice:
        dims = (0,) + dims
    t = target.to(p.dtype)
    inter = (p * t).sum(dims)
    denom = p.sum(dims) + t.sum(dims)
    return 1 - ((2 * inter + smooth) / (denom + smooth).clamp_min(1e-8)).mean()


def mcm_loss(union_logits: torch.Tensor, inter_logits: torch.Tensor, union: torch.Tensor,
             intersection: torch.Tensor) -> torch.Tensor:
    """L_MCM = BCE(∪(GT)', ∪(GT)) + BCE(∩(GT)', ∩(GT)) (eq. 2)."""
    return (F.binary_cross_entropy_with_logits(union_logits, union.to(union_logits.dtype))
            + F.binary_cross_entropy_with_logits(inter_logits, intersection.to(inter_logits.dtype)))


def multi_confidence_mask(union_logits: torch.Tensor, inter_logits: torch.Tensor) -> torch.Tensor:
    """MCM' = Normal(∪(GT)' + ∩(GT)') = (σ(∪') + σ(∩')) / 2 in [0, 1]: ~1 high confidence, ~0.5 low, 0 outside.

    The paper writes "Normal(∪(GT)' + ∩(GT))" without defining Normal; we normalise the sum of the two
    probabilities by its maximum (2), which keeps the three levels apart and stays differentiable."""
    return 0.5 * (torch.sigmoid(union_logits) + torch.sigmoid(inter_logits))


def ugs_loss(heads: dict[str, torch.Tensor], label: torch.Tensor, alphas=DEFAULT_ALPHAS) -> dict[str, torch.Tensor]:
    """Eq. 4 for one resolution: heads ``union``, ``inter``, ``uni``, ``xs`` (logits, (B, 1, ...)) against the
    rater-set label (B, 1, ...). Returns the total and its parts (``mcm``, ``phi_a``, ``phi_b``)."""
    t = decode_targets(label)
    a1, a2, a3 = alphas
    parts = {"mcm": mcm_loss(heads["union"], heads["inter"], t["union"], t["intersection"]),
             "phi_a": fusion_bce(heads["uni"], t["mean"]),
             "phi_b": fusion_bce(heads["xs"], t["mean"])}
    parts["total"] = a1 * parts["mcm"] + a2 * parts["phi_a"] + a3 * parts["phi_b"]
    return parts
