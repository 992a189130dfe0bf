"""The extension trainers known to ``nnUNetv2_train -tr`` (through the shim) and ``nnext trainers``.

Kept free of torch imports: names, modules and one-line descriptions only.
"""
from __future__ import annotations

import importlib

#: trainer class name -> (module, one-line description)
TRAINERS: dict[str, tuple[str, str]] = {
    "MCDropoutTrainer": ("nnunet_ext.trainers.mc_dropout",
                         "nnU-Net + dropout (p=0.05) in every conv block for Monte-Carlo sampling"),
    "UncertaintyTrainer": ("nnunet_ext.trainers.uncertainty",
                           "MC dropout + L = a*Dice + (1-a)*CE, a = exp(-U), U = MC-dropout variance (isler2025)"),
    "UncertaintyLovaszTrainer": ("nnunet_ext.trainers.lovasz",
                                 "MC dropout + L = Lovasz-softmax[w = 1 + U] + CE, U = MC-dropout variance (isler2025)"),
    "DistanceTransformTrainer": ("nnunet_ext.trainers.distance",
                                 "MC dropout + Dice[w] + CE[w], w = 1 + 10*exp(-d^2/2s^2), d = mm to boundary (isler2025)"),
    "ClickPromptTrainer": ("nnunet_ext.trainers.click_prompt", "MC dropout + one click-prompt channel per class, stage 1: clicks from the reference with p = 0.5 (chu2026)"),
    "ClickPromptAutoTrainer": ("nnunet_ext.trainers.click_prompt", "click-prompt network, stage 2: automatic fine-tuning, prompts zero (chu2026)"),
    "ClickPromptErrorTrainer": ("nnunet_ext.trainers.click_prompt", "click-prompt network, stage 3: clicks in the errors of its own prediction (chu2026)"),
    "MultiAnnotationTrainer": ("nnunet_ext.trainers.multi_annotation", "rater-set dataset: Phi = mean_j BCE(X, GT_j) + Dice vs mean rater mask (yang-wang eq. 3)"),
    "UGSNetTrainer": ("nnunet_ext.trainers.ugsnet", "UGS-Net head (UAM + IUCM, Gabor / Otsu FAABs) on nnU-Net's U-Net, L = .5 L_MCM + .5 Phi_a + Phi_b (yang-wang)"),
    "SingleReaderTrainer": ("nnunet_ext.trainers.multi_annotation", "rater-set dataset, one reader as target (rater_training.reader, 0 = Label_1): the identical-arm baseline of the multi-rater trainers (yang-wang)"),
    "UGSNetNoIUCMTrainer": ("nnunet_ext.trainers.ugsnet", "ablation: UGS-Net without the IUCM (UAM heads, X_S from Concat(R, R_Uni, R_LC, R_HC)), eq. 4 loss (yang-wang)"),
    "SphericalProjectionTrainer": ("nnunet_ext.trainers.spherical", "2D + random spherical-projection augmentation, regions (sigmoid), Dice + BCE (yang2025)"),
    "SphericalProjectionBCETrainer": ("nnunet_ext.trainers.spherical", "2D spherical projection, the paper's BCE loss and Adam lr 1e-5 (yang2025)"),
    **{f"SphericalProjection{k}Trainer_{r}": ("nnunet_ext.trainers.spherical", f"as SphericalProjection{k}Trainer, one model for region {r} only (yang2025)")
       for k in ("", "BCE") for r in ("WT", "TC", "ET")},
}


def load_trainer(name: str):
    module, _ = TRAINERS[name]
    return getattr(importlib.import_module(module), name)


def load_all() -> dict:
    """``{name: class}`` for every registered trainer (imports torch and nnU-Net)."""
    return {name: load_trainer(name) for name in TRAINERS}
