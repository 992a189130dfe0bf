"""Voxel-weighted segmentation losses for uncertainty-aware training, pure torch (no nnU-Net import).

Shapes follow nnU-Net: logits ``(B, C, *S)`` (softmax over C), integer targets ``(B, 1, *S)`` (``(B, *S)`` is
accepted too), per-voxel weights ``(B, *S)`` or ``(B, 1, *S)``. No ``ignore_label`` support.

* :func:`weighted_soft_dice_loss` - ``-mean_c D_c`` with ``D_c = (2 Σ w p_c g_c + s) / (Σ w p_c + Σ w g_c + s)``.
* :func:`weighted_cross_entropy` - ``Σ w CE / Σ w`` (or ``/ N``).
* :func:`uncertainty_adaptive_loss` - lung cascade adaptive loss (isler2025 sec. III.D), per voxel.
* :func:`mc_dropout_variance` - the MC-dropout variance map ``U`` feeding it.
* :func:`lovasz_softmax_loss` - Lovász-softmax (Berman 2018), optional weights ``1 + U`` (in ``lovasz.py``).
* :func:`distance_weight_map` - boundary distance-transform weights ``1 + w0 exp(-d² / 2σ²)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nnunet_ext.core.mc_dropout import set_mc_dropout
from nnunet_ext.methods.lung_cascade.lovasz import _labels, lovasz_grad, lovasz_softmax, lovasz_softmax_loss  # noqa: F401 (re-export)

CE_NORMALIZATIONS = ("weight", "voxels")


def _voxel_weight(weight, like: torch.Tensor) -> torch.Tensor:
    """Per-voxel weight broadcast to ``(B, *S)`` float (``like`` is the label map)."""
    weight = torch.as_tensor(weight, dtype=torch.float32, device=like.device)
    if weight.ndim == like.ndim + 1:
        weight = weight[:, 0]
    return weight.expand(like.shape)


def weighted_soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight, do_bg: bool = False,
                            smooth: float = 1e-5, batch_dice: bool = False) -> torch.Tensor:
    """Per-voxel weighted soft Dice loss, nnU-Net's sign convention (``-Dice``, range [-1, 0]).

    ``D_{b,c} = (2 Σ_x w p_c g_c + smooth) / (Σ_x w p_c + Σ_x w g_c + smooth)`` with ``p = softmax(logits)``,
    ``g`` the one-hot target and sums over the spatial axes (and the batch when ``batch_dice``); the loss is
    ``-mean`` over (batch,) classes, class 0 excluded unless ``do_bg``. With ``w ≡ 1`` this is nnU-Net's
    ``MemoryEfficientSoftDiceLoss``. ``D`` is invariant to a global rescaling of ``w`` (up to ``smooth``).
    """
    labels = _labels(target, logits.ndim)
    w = _voxel_weight(weight, labels).unsqueeze(1)                       # (B, 1, *S)
    p = torch.softmax(logits.float(), 1)
    g = F.one_hot(labels, logits.shape[1]).movedim(-1, 1).float()       # (B, C, *S)
    if not do_bg:
        p, g = p[:, 1:], g[:, 1:]
    axes = tuple(range(2, logits.ndim))
    if batch_dice:
        axes = (0,) + axes
    intersect = (w * p * g).sum(axes)
    sum_pred = (w * p).sum(axes)
    sum_gt = (w * g).sum(axes)
    dice = (2.0 * intersect + smooth) / (sum_pred + sum_gt + smooth).clamp_min(1e-8)
    return -dice.mean()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight,
                           normalize: str = "weight") -> torch.Tensor:
    """Voxel-weighted cross-entropy ``Σ_x w CE(x) / Z``, ``CE(x) = -log softmax(logits)_{y(x)}``.

    ``normalize="weight"`` (default): ``Z = Σ_x w`` - a weighted *mean*, so ``w ≡ const`` gives exactly
    ``F.cross_entropy`` (and a zero total weight gives 0, not NaN). ``normalize="voxels"``: ``Z = N`` (number of
    voxels, batch included) - the mean of ``w·CE``, whose magnitude shrinks with the weights.
    """
    if normalize not in CE_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {CE_NORMALIZATIONS}, got {normalize!r}")
    labels = _labels(target, logits.ndim)
    w = _voxel_weight(weight, labels)
    ce = F.cross_entropy(logits.float(), labels, reduction="none")       # (B, *S)
    total = (w * ce).sum()
    if normalize == "voxels":
        return total / ce.numel()
    return total / w.sum().clamp_min(1e-8)


def uncertainty_adaptive_loss(logits: torch.Tensor, target: torch.Tensor, uncertainty: torch.Tensor,
                              do_bg: bool = False, smooth: float = 1e-5, batch_dice: bool = False
                              ) -> torch.Tensor:
    """Uncertainty-guided adaptive loss of the lung cascade (isler2025 sec. III.D), applied per voxel.

    Paper: ``L = α(x) L_Dice + (1 - α(x)) L_CE`` with ``α(x) = exp(-U(x))``, ``U`` the MC-dropout variance
    (:func:`mc_dropout_variance`). The authors' released code reduces α to its mean (one scalar per batch);
    we follow the per-voxel formula::

        L = ᾱ · L_Dice[w = α] + (1/N) Σ_x (1 - α(x)) CE(x),     ᾱ = mean_x α(x),

    where ``L_Dice[w = α]`` is :func:`weighted_soft_dice_loss` with voxel weights α (Dice is not a sum over
    voxels, so α enters as weights of its sums; since weighted Dice is invariant to rescaling ``w`` the factor
    ᾱ restores the α-scaling) and the CE term is :func:`weighted_cross_entropy` with weights ``1 - α`` and
    ``normalize="voxels"`` (the voxel mean of the formula's CE part). For a constant ``U`` this equals the
    released code, ``α L_Dice + (1 - α) L_CE``; ``U ≡ 0`` gives plain soft Dice and no CE. ``U`` is detached.
    """
    labels = _labels(target, logits.ndim)
    alpha = torch.exp(-_voxel_weight(uncertainty.detach(), labels))
    dice = weighted_soft_dice_loss(logits, labels, alpha, do_bg=do_bg, smooth=smooth, batch_dice=batch_dice)
    ce = weighted_cross_entropy(logits, labels, 1.0 - alpha, normalize="voxels")
    return alpha.mean() * dice + ce


def max_mc_variance(num_classes: int, k: int) -> float:
    """Largest possible value of :func:`mc_dropout_variance`'s ``U = 1/C Σ_c Var_k p_c`` for K passes.

    ``Σ_c Var_k p_c = mean_k ||p_k||² − ||p̄||² <= 1 − ||p̄||²`` (probabilities: ``||p_k||² <= 1``, equality for
    one-hot passes); with one-hot passes, ``n_c`` of them on class c, ``||p̄||² = Σ_c (n_c / K)²``, smallest when
    the K passes are spread as evenly as possible over ``m = min(K, C)`` classes. So ``U_max = (1 − Σ_c (n_c /
    K)²) / C`` -- 0.25 for two classes and even K (a Bernoulli variance), 2/9 for C = 3 and K = 3 or 6.
    (Checked against every one-hot assignment and random probability passes in the tests.)
    """
    if num_classes < 2 or k < 2:
        raise ValueError(f"need num_classes >= 2 and k >= 2, got {num_classes}, {k}")
    m = min(k, num_classes)
    q, r = divmod(k, m)
    spread = (r * (q + 1) ** 2 + (m - r) * q ** 2) / k ** 2
    return (1.0 - spread) / num_classes


U_SCALINGS = ("none", "max", "batch")


def scale_uncertainty(u: torch.Tensor, scaling: str, num_classes: int, k: int) -> torch.Tensor:
    """U rescaled before ``α = exp(−U)``: ``none`` (the paper), ``max`` (``U / U_max``, in [0, 1], so α spans
    [1/e, 1]; :func:`max_mc_variance`) or ``batch`` (``U / max U`` of the batch; a zero map stays zero)."""
    if scaling == "none":
        return u
    if scaling == "max":
        return u / max_mc_variance(num_classes, k)
    if scaling == "batch":
        top = u.max()
        return u / top if float(top) > 0 else u
    raise ValueError(f"scaling must be one of {U_SCALINGS}, got {scaling!r}")


@torch.no_grad()
def mc_dropout_variance(network: torch.nn.Module, x: torch.Tensor, k: int, dropout_active: bool = True
                        ) -> torch.Tensor:
    """MC-dropout variance map ``U = 1/C Σ_c Var_k softmax(f_k(x))_c``, shape ``(B, *S)`` (isler2025 III.D).

    ``k`` stochastic passes with dropout modules in train mode and everything else (normalisation) in eval
    (:func:`nnunet_ext.core.mc_dropout.set_mc_dropout`); population variance over passes, as
    ``uncertainty.ensemble_maps``. A list output (deep supervision) contributes its first, full-resolution
    entry. Every module's previous train/eval flag is restored afterwards.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    modes = [(m, m.training) for m in network.modules()]
    try:
        set_mc_dropout(network, active=dropout_active)
        passes = []
        for _ in range(k):
            out = network(x)
            if isinstance(out, (list, tuple)):
                out = out[0]
            passes.append(torch.softmax(out.float(), 1))
    finally:
        for m, mode in modes:
            m.training = mode
    return torch.stack(passes).var(0, unbiased=False).mean(1)


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour of a different label (both sides of every interface; the image border
    is not a boundary)."""
    from scipy import ndimage

    footprint = ndimage.generate_binary_structure(labels.ndim, 1)
    hi = ndimage.maximum_filter(labels, footprint=footprint, mode="nearest")
    lo = ndimage.minimum_filter(labels, footprint=footprint, mode="nearest")
    return hi != lo


def distance_weight_map(target, spacing: "Sequence[float] | None" = None, sigma: float = 5.0, w0: float = 10.0,
                        spatial_dims: "int | None" = None) -> torch.Tensor:
    """Boundary weight ``w(x) = 1 + w0 · exp(-d(x)² / (2 σ²))``, ``d`` = Euclidean distance to the nearest
    label boundary (:func:`boundary_mask`) from ``scipy.ndimage.distance_transform_edt``.

    ``w`` peaks at ``1 + w0`` on the boundary and decays to 1 (Ronneberger-style, U-Net 2015, ``w0 = 10``,
    ``σ ≈ 5``). ``d`` and ``σ`` are in the units of ``spacing`` (voxels when None). ``target``: integer labels
    (numpy or torch), the last ``spatial_dims`` axes spatial (default ``len(spacing)``, else all axes); leading
    axes (e.g. nnU-Net's ``(B, 1)``) are handled one map at a time. No boundary -> ``w ≡ 1``. Returns float32 torch.
    """
    from scipy import ndimage

    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    target = np.asarray(target)
    if spatial_dims is None:
        spatial_dims = len(spacing) if spacing is not None else target.ndim
    if spacing is not None and len(spacing) != spatial_dims:
        raise ValueError(f"spacing {tuple(spacing)} does not match {spatial_dims} spatial dims")
    spatial = target.shape[target.ndim - spatial_dims:]
    flat = target.reshape((-1,) + spatial)
    out = np.ones(flat.shape, dtype=np.float32)
    for i, labels in enumerate(flat):
        edge = boundary_mask(labels)
        if not edge.any():
            continue
        d = ndimage.distance_transform_edt(~edge, sampling=spacing)
        out[i] = 1.0 + w0 * np.exp(-(d ** 2) / (2.0 * sigma ** 2))
    return torch.from_numpy(out.reshape(target.shape))
