"""Training options of the multi-rater trainers (plans sections ``ugsnet`` and ``multi_annotation``; yang-wang)."""
from __future__ import annotations

import dataclasses

from nnunet_ext.core.options import Options, option


@dataclasses.dataclass(frozen=True)
class UGSNetOptions(Options):
    """UGS-Net loss weights (eq. 4: L = a1 L_MCM + a2 Phi_a + a3 Phi_b) and the IUCM attention grid."""

    SECTION = "ugsnet"
    SOURCE = "yang-wang eq. 4 (alpha = 0.5, 0.5, 1)"

    alphas: tuple[float, ...] = option((0.5, 0.5, 1.0), "eq. 4 weights a1, a2, a3",
                                       lambda v: len(v) == 3 and all(a >= 0 for a in v), "three weights >= 0")
    dice_weight: float = option(0.0, "soft Dice vs the mean rater mask added to every Phi_b term (0 = the paper)",
                                lambda v: v >= 0, ">= 0")
    max_tokens: int = option(4096, "most attention tokens of the IUCM (coarser grid, upsampled back)",
                             lambda v: v >= 1, ">= 1")


@dataclasses.dataclass(frozen=True)
class MultiAnnotationOptions(Options):
    """Phi = mean_j BCE(X, GT_j) (yang-wang eq. 3) plus an optional Dice term against the mean rater mask."""

    SECTION = "multi_annotation"
    SOURCE = "yang-wang eq. 3"

    dice_weight: float = option(1.0, "weight of the Dice term vs the mean rater mask (0 = the paper's pure BCE)",
                                lambda v: v >= 0, ">= 0")


@dataclasses.dataclass(frozen=True)
class RaterTrainingOptions(Options):
    """What every rater-set arm shares (baseline, MultiAnnotation, UGS-Net): the optimiser / schedule and, for
    the single-reader baseline, which reader it learns. ``optimizer = sgdr`` is the paper's (sec. IV-A: SGD with
    warm restarts, lr 1e-5, momentum 0.9, weight decay 1e-4, "updated every 50 epochs" = cosine restarts with a
    period of 50 epochs over 200 epochs, batch 32, 50 x 50 crops); ``nnunet`` keeps nnU-Net's SGD + poly."""

    SECTION = "rater_training"
    SOURCE = "yang-wang sec. IV-A (SGDR, lr 1e-5, momentum 0.9, weight decay 1e-4, period 50 epochs)"

    optimizer: str = option("nnunet", "nnunet (nnU-Net's SGD + poly) or sgdr (the paper's SGD with warm restarts)",
                            choices=("nnunet", "sgdr"))
    sgdr_lr: float = option(1e-5, "SGDR initial learning rate (paper 1e-5)", lambda v: v > 0, "> 0")
    sgdr_momentum: float = option(0.9, "SGDR momentum (paper 0.9)", lambda v: 0 <= v < 1, "in [0, 1)")
    sgdr_weight_decay: float = option(1e-4, "SGDR weight decay (paper 1e-4)", lambda v: v >= 0, ">= 0")
    sgdr_period: int = option(50, "epochs per cosine cycle before a warm restart (paper: 50)", lambda v: v >= 1,
                              ">= 1")
    reader: int = option(0, "SingleReaderTrainer: the reader it learns (0 = the paper's Label_1, the first reader)",
                         lambda v: 0 <= v < 6, "0..5")
