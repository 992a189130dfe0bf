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


def _kernel_sizes_ok(text: str) -> bool:
    from nnunet_ext.methods.glioma.kernels import parse_kernel_sizes

    try:
        parse_kernel_sizes(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class KernelSearchOptions(Options):
    """The uncertainty-kernel search (yang2025 sec. 2.2.2) of ``nnext kernel-dataset`` and ``-m kernel_refine``:
    cubes of edge ``kernel_mm`` with the largest summed entropy, greedily, at most ``overlap`` shared."""

    SOURCE = "yang2025 sec. 2.2.2"

    kernel_mm: str = option("WT=64,TC=32,ET=32", "kernel edge in mm: D or TAG=D,... (the paper's WT=64,TC=32,ET=32)",
                            _kernel_sizes_ok, "D or TAG=D,... with sizes > 0 mm", metavar="D|TAG=D,...")
    overlap: float = option(0.4, "max overlap of a kernel with any selected one (fraction of the kernel volume)",
                            lambda v: 0 <= v <= 1, "in [0, 1]")
    min_fraction: Optional[float] = option(None, "stop below this fraction of the first kernel's sum (default 0.1)",
                                           lambda v: v is None or 0 <= v <= 1, "in [0, 1]", metavar="F")
    min_sum: Optional[float] = option(None, "stop below this absolute sum of the entropy map (nats)",
                                      lambda v: v is None or v >= 0, ">= 0", metavar="S")
    max_kernels: Optional[int] = option(None, "at most this many kernels per case and region",
                                        lambda v: v is None or v >= 1, ">= 1", metavar="K")

    def __post_init__(self):
        super().__post_init__()
        if self.min_fraction is not None and self.min_sum is not None:
            raise ValueError("--min-fraction / --min-sum: give one, not both")

    def sizes(self) -> dict:
        """``{tag or '*': mm}`` of ``kernel_mm``."""
        from nnunet_ext.methods.glioma.kernels import parse_kernel_sizes

        return parse_kernel_sizes(self.kernel_mm)

    def search(self) -> dict:
        """The keyword arguments of :func:`nnunet_ext.methods.glioma.kernels.search_kernels`."""
        return {"overlap": self.overlap, "min_fraction": self.min_fraction, "min_sum": self.min_sum,
                "max_kernels": self.max_kernels}


@dataclasses.dataclass(frozen=True)
class KernelRefineOptions(Options):
    """The models and fusion of ``-m kernel_refine`` (yang2025 sec. 2.2.3, eq. 2)."""

    SOURCE = "yang2025 sec. 2.2.3"

    model2d: Optional[str] = option(None, "2D spherical-projection model", metavar="D,C,TR,PLANS[,FOLDS]")
    model3d: Optional[str] = option(None, "3D refinement model (kernel crops)", metavar="D,C,TR,PLANS[,FOLDS]")
    fusion: Optional[str] = option(None, "fusion weights per region from nnext fusion-fit (default w2D = w3D = 5, "
                                   "b = -5)", metavar="PARAMS.json")
