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
