"""Training options of the spherical-projection trainers (plans section ``spherical``; yang2025 sec. 2.2)."""
from __future__ import annotations

import dataclasses

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
