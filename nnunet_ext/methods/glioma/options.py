"""Training options of the spherical-projection trainers (plans section ``spherical``; yang2025 sec. 2.2)."""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

from nnunet_ext.core.options import Options, option


def _radius_ok(r: tuple) -> bool:
    return len(r) == 2 and 0 < r[0] <= r[1]


@dataclasses.dataclass(frozen=True)
class SphericalOptions(Options):
    """Random spherical-projection augmentation and the paper's Adam learning rate."""

    SECTION = "spherical"
    SOURCE = "yang2025 sec. 2.2 (projection), sec. 3.1 (Adam, lr 1e-5)"

    p: float = option(0.5, "probability that a training sample is spherically projected", lambda v: 0 <= v <= 1,
                      "in [0, 1]")
    radius: tuple[float, ...] = option((32.0, 128.0), "sphere radius range [low, high] in pixels", _radius_ok,
                                       "two numbers 0 < low <= high")
    lr: float = option(1e-5, "Adam learning rate of the BCE trainers (the paper's 1e-5)", lambda v: v > 0, "> 0")


@dataclasses.dataclass(frozen=True)
class RefinerOptions(Options):
    """The 3D kernel-crop refiner's training (the paper trains it as the 2D model: BCE, Adam, lr 1e-5)."""

    SECTION = "refiner"
    SOURCE = "yang2025 sec. 3.1 (BCE loss, Adam, initial lr 1e-5, for the 2D and the 3D model)"

    lr: float = option(1e-5, "Adam learning rate of KernelRefinerBCETrainer (the paper's 1e-5)", lambda v: v > 0, "> 0")


@dataclasses.dataclass(frozen=True)
class SphericalEnsembleOptions(Options):
    """Prediction options of the spherical-projection ensemble (``-m spherical``, ``-m kernel_refine``'s 2D stage,
    ``nnext kernel-dataset``): origins on a stride grid, every slice projected around every origin, eq. 1's
    histogram entropy per voxel (yang2025 sec. 2.2.1)."""

    SOURCE = "yang2025 sec. 2.2.1, eq. 1"

    stride: int = option(8, "origin grid stride in pixels (the paper: 8)", lambda v: v >= 1, ">= 1")
    radius: Optional[float] = option(None, "sphere radius R in pixels (default: half the larger slice side)",
                                     lambda v: v is None or v > 0, "> 0 pixels")
    roi_mask: str = option("auto", "origins only inside: auto (non-zero image voxels), none, or DIR/CASE.nii.gz",
                           lambda v: v in ("auto", "none") or os.path.isdir(v), "auto, none or a folder")
    bins: int = option(100, "histogram bins of eq. 1", lambda v: v >= 2, ">= 2")
    entropy_base: float = option(math.e, "log base of eq. 1 (e: nats, the unit of every nnunet_ext map; 2 = the "
                                 "paper's bits)", lambda v: v > 1, "> 1")
    entropy_normalise: bool = option(False, "divide eq. 1 by log(bins): [0, 1]")
    origin_batch: int = option(32, "projections per forward batch", lambda v: v >= 1, ">= 1")
