"""Options of the lung cascade: the stage-2 loss trainers' training options (plans sections ``uncertainty_loss``,
``lovasz`` and ``distance``; isler2025 sec. III.C) and the prediction options of ``-m cascade``."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from nnunet_ext.core.options import Options, option

#: lung-mask sources of -m cascade, and the stage methods it can run
LUNG_BACKENDS = ("auto", "threshold", "lungmask", "none")
STAGE_METHODS = ("stock", "tta_mc", "ensemble")
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


@dataclasses.dataclass(frozen=True)
class CascadeOptions(Options):
    """The stages and lung masks of ``-m cascade`` (isler2025 sec. III.B-F); the component filter's own options
    are :class:`~nnunet_ext.methods.lung_cascade.component_filter.LungFilterConfig`."""

    SOURCE = "isler2025 sec. III.B-F"

    stage1: Optional[str] = option(None, "stage-1 (full volume) model; folds joined by '+', e.g. "
                                   "501,3d_fullres,MCDropoutTrainer,nnextTinyPlans,0", metavar="D,C,TR,PLANS[,FOLDS]")
    stage2: Optional[str] = option(None, "stage-2 (ROI) model, e.g. 502,3d_fullres,UncertaintyTrainer,nnextTinyPlans,0",
                                   metavar="D,C,TR,PLANS[,FOLDS]")
    stage1_method: str = option("stock", "method of stage 1 (stock: nnU-Net's deterministic prediction)",
                                choices=STAGE_METHODS)
    stage2_method: str = option("tta_mc", "method of stage 2 (tta_mc; with the cascade's default --tta none it is MC "
                                "dropout alone, as isler2025)", choices=STAGE_METHODS)
    lung_masks: str = option("auto", "folder of lung masks CASE<ending> (1 right, 2 left), or compute them (auto: "
                             "lungmask when usable, else threshold), or none (skip the lung filters)",
                             lambda v: v in LUNG_BACKENDS or os.path.isdir(v),
                             f"a folder or one of {', '.join(LUNG_BACKENDS)}",
                             metavar="DIR|auto|threshold|lungmask|none")
    lungmask_weights: Optional[str] = option(None, "local lungmask R231 weights",
                                             lambda v: v is None or os.path.isfile(v), "an existing file",
                                             metavar="PATH")
    margin: Optional[int] = option(None, "ROI margin in voxels (default: the stage-2 dataset's roi_info.json margin, "
                                   "else 0 as nnext roi-dataset)", lambda v: v is None or v >= 0, "an integer >= 0")
    force_margin: bool = option(False, "allow a --margin that differs from the stage-2 training crops' margin")
    save_intermediates: bool = option(False, "also write CASE_coarse, CASE_coarse_filtered and CASE_lungmask")
