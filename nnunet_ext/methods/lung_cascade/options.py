"""Training options of the lung cascade's stage-2 loss trainers (plans sections ``uncertainty_loss``,
``lovasz`` and ``distance``; isler2025 sec. III.C)."""
from __future__ import annotations

import dataclasses

from nnunet_ext.core.options import Options, option

U_SCALINGS = (
    "none",
    "max",
    "batch",
)  # as nnunet_ext.methods.lung_cascade.weighted_losses.U_SCALINGS (torch-free copy; a test checks)


@dataclasses.dataclass(frozen=True)
class UncertaintyLossOptions(Options):
    """L = a Dice + (1 - a) CE with a = exp(-U), U = MC-dropout variance from ``samples`` passes."""

    SECTION = "uncertainty_loss"
    SOURCE = "isler2025 sec. III.C"

    samples: int = option(4, "MC-dropout passes K that estimate U", lambda k: k >= 2, ">= 2")
    refresh: int = option(1, "iterations between recomputations of U", lambda n: n >= 1, ">= 1")
    scale: str = option("none", "scaling of U before a = exp(-U)", choices=U_SCALINGS)


@dataclasses.dataclass(frozen=True)
class LovaszOptions(Options):
    """L = Lovasz-softmax[w = 1 + U] + ce_weight CE."""

    SECTION = "lovasz"
    SOURCE = "isler2025 sec. III.C; Berman et al. CVPR 2018"

    ce_weight: float = option(1.0, "weight of the cross-entropy term", lambda v: v >= 0, ">= 0")


@dataclasses.dataclass(frozen=True)
class DistanceOptions(Options):
    """Voxel weights w = 1 + w0 exp(-d^2 / 2 sigma^2), d = distance to the label boundary in mm."""

    SECTION = "distance"
    SOURCE = "isler2025 sec. III.C"

    w0: float = option(10.0, "weight amplitude at the boundary", lambda v: v >= 0, ">= 0")
    sigma: float = option(5.0, "width of the boundary band in mm", lambda v: v > 0, "> 0")
