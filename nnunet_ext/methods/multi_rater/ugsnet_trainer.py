"""``UGSNetTrainer``: UGS-Net (Yang & Wang, sec. III) on nnU-Net's U-Net, trained with eq. 4 on a rater-set
dataset.

    L = α1 L_MCM + α2 Φ_a + α3 Φ_b,   α = (0.5, 0.5, 1)  (plans ``nnext_training.ugsnet.alphas``)

L_MCM and Φ_a on the full-resolution heads ∪(GT)', ∩(GT)', GT'_uni; Φ_b on X_S with weight exactly α3 (eq. 4).
With deep supervision the backbone's lower-resolution logits o_i are supervised by Φ as well, added on top with
nnU-Net's relative weights: Φ_b = Φ(X_S) + Σ_{i>=1} (λ_i / λ_0) Φ(o_i) = Φ(X_S) + ½ Φ(o_1) + ¼ Φ(o_2) + ...
(the lowest resolution 0; before issue 22 the weights were normalised to sum 1, so X_S got λ_0 ≈ 0.53 and the
effective α3 was about 0.55). ``ugsnet.dice_weight`` (default 0 = the
paper) adds a soft Dice against the mean rater mask to every Φ_b term. ``ugsnet.max_tokens`` (4096)
bounds the self-attention grid (:class:`nnunet_ext.methods.multi_rater.options.UGSNetOptions`). Validation loss is Φ_b
alone (the network returns X_S only in eval mode).

The network (:class:`nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet`) is built through nnU-Net's
``get_network_from_plans`` by its dotted path, with the plans' backbone class and kwargs, so
``nnUNetv2_predict`` (which calls this trainer's ``build_network_architecture``) rebuilds it and writes X_S.
"""
from __future__ import annotations

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_ext.methods.multi_rater.fusion_loss import (
    DEFAULT_ALPHAS,
    decode_targets,
    fusion_bce,
    mcm_loss,
    soft_dice_loss,
)
from nnunet_ext.methods.multi_rater.multi_annotation_trainer import RaterSetTrainer
from nnunet_ext.methods.multi_rater.options import UGSNetOptions
from nnunet_ext.trainers.plans_options import manager_options

NETWORK_CLASS = "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet"


class UGSLoss(torch.nn.Module):
    """Eq. 4 with deep supervision on X_S (module docstring). ``output`` is UGSNet's dict (training) or X_S."""

    def __init__(self, alphas=DEFAULT_ALPHAS, dice_weight: float = 0.0, batch_dice: bool = False,
                 weight_factors=None):
        super().__init__()
        self.alphas, self.dice_weight, self.batch_dice = tuple(alphas), dice_weight, batch_dice
        self.weight_factors = None if weight_factors is None else tuple(weight_factors)

    def phi_b(self, xs, target) -> torch.Tensor:
        outs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        weights = self.weight_factors if len(outs) > 1 and self.weight_factors else (1.0,) + (0.0,) * (len(outs) - 1)
        weights = tuple(w / weights[0] for w in weights)  # X_S exactly 1 (eq. 4), deep supervision on top
        total = 0.0
        for w, o, t in zip(weights, outs, targets):
            if w == 0:
                continue
            mean = decode_targets(t)["mean"]
            term = fusion_bce(o, mean)
            if self.dice_weight:
                term = term + self.dice_weight * soft_dice_loss(o, mean, self.batch_dice)
            total = total + w * term
        return total

    def forward(self, output, target):
        a1, a2, a3 = self.alphas
        if not isinstance(output, dict):
            return a3 * self.phi_b(output, target)
        full = target[0] if isinstance(target, (list, tuple)) else target
        t = decode_targets(full)
        return (a1 * mcm_loss(output["union"], output["inter"], t["union"], t["intersection"])
                + a2 * fusion_bce(output["uni"], t["mean"]) + a3 * self.phi_b(output["xs"], target))


def record_max_tokens(plans: dict, configuration: str, architecture: dict, max_tokens: int, **more) -> dict:
    """Write ``max_tokens`` into ``configuration``'s ``arch_kwargs`` of ``plans`` (in place; ``architecture`` = the
    resolved architecture block, which an inheriting configuration does not hold itself), so that the plans.json
    nnU-Net saves next to the model rebuilds the attention grid the model was trained with, whatever
    the plans' ``ugsnet`` section says at inference. Returns the new architecture block."""
    import copy

    arch = copy.deepcopy(architecture)
    arch["arch_kwargs"]["max_tokens"] = int(max_tokens)
    arch["arch_kwargs"].update(more)
    plans["configurations"][configuration]["architecture"] = arch
    return arch


class UGSNetTrainer(RaterSetTrainer):
    """nnU-Net U-Net (Feature Extracting Module) + UGS-Net UAM / IUCM head; L = eq. 4 (module docstring).

    ``max_tokens`` (attention grid) comes from the plans' ``arch_kwargs`` when they hold it (every model this trainer
    saves does: :func:`record_max_tokens` at initialisation), else from plans ``ugsnet.max_tokens`` (default 4096)."""

    option_families = (UGSNetOptions,)
    #: the IUCM (feature-aware attention blocks + distance weights); False in the ablation subclass
    IUCM = True

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        cm = self.configuration_manager
        if "max_tokens" not in cm.network_arch_init_kwargs or "iucm" not in cm.network_arch_init_kwargs:
            tokens = cm.network_arch_init_kwargs.get("max_tokens", self.options(UGSNetOptions).max_tokens)
            cm.configuration["architecture"] = record_max_tokens(self.plans_manager.plans, configuration,
                                                                 cm.configuration["architecture"], tokens,
                                                                 iucm=self.IUCM)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        kwargs = dict(configuration_manager.network_arch_init_kwargs)
        kwargs["backbone_class_name"] = configuration_manager.network_arch_class_name
        if "max_tokens" not in kwargs:
            kwargs["max_tokens"] = manager_options(plans_manager, configuration_manager, UGSNetOptions).max_tokens
        kwargs.setdefault("iucm", cls.IUCM)
        return get_network_from_plans(NETWORK_CLASS, kwargs, configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    def _build_loss(self):
        opts = self.options(UGSNetOptions)
        return UGSLoss(
            opts.alphas, opts.dice_weight, self.configuration_manager.batch_dice, self.deep_supervision_weights()
        )

    def checkpoint_metadata(self) -> dict:
        opts = self.options(UGSNetOptions)
        return {**super().checkpoint_metadata(), "alphas": list(opts.alphas), "dice_weight": opts.dice_weight,
                "network": NETWORK_CLASS, "iucm": self.IUCM}


class UGSNetNoIUCMTrainer(UGSNetTrainer):
    """Ablation: UGS-Net without the IUCM (module docstring); same heads, loss and options."""

    IUCM = False
