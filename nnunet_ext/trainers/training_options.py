"""Option families shared by several trainers: the optimiser and the MC-dropout layers (plans sections
``optimizer`` and ``dropout`` of ``nnext_training``; see :mod:`nnunet_ext.core.options`)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from nnunet_ext.core.options import Options, option


@dataclasses.dataclass(frozen=True)
class OptimizerOptions(Options):
    """nnU-Net's SGD + poly schedule, or AdamW with linear warm-up + cosine decay (HN-UISeg, chu2026 sec. 2.2:
    ``lr(e) = base (e+1)/W`` for ``e < W``, then ``base/2 (1 + cos(pi (e-W)/(E-W)))``)."""

    SECTION = "optimizer"
    SOURCE = "chu2026 sec. 2.2 (AdamW + cosine, 10 warm-up epochs); sgd = nnU-Net's default"

    name: str = option("sgd", "sgd (nnU-Net's SGD, poly schedule) or adamw (AdamW, warm-up + cosine)",
                       choices=("sgd", "adamw"))
    warmup_epochs: int = option(10, "linear warm-up epochs of the adamw schedule", lambda n: n >= 0, ">= 0")
    adamw_lr: float = option(1e-3, "AdamW base learning rate (the paper gives none)", lambda v: v > 0, "> 0")
    adamw_wd: float = option(1e-2, "AdamW weight decay (the paper gives none)", lambda v: v >= 0, ">= 0")


@dataclasses.dataclass(frozen=True)
class DropoutOptions(Options):
    """Dropout in every conv block, for Monte-Carlo sampling at prediction (chu2026 sec. 2.5: p = 0.05)."""

    SECTION = "dropout"
    SOURCE = "chu2026 sec. 2.5 (p = 0.05)"

    p: Optional[float] = option(None, "dropout probability; null = the planner's (MCDropout planners) or 0.05",
                                lambda v: v is None or 0 <= v < 1, "in [0, 1)")
    kind: str = option("channel", "channel (Dropout2d/3d, whole feature maps) or element (nn.Dropout)",
                       choices=("channel", "element"))
