"""Training options of the click-prompt trainers (plans section ``clicks``; HN-UISeg, chu2026 sec. 2.2-2.4)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from nnunet_ext.core.options import Options, option
from nnunet_ext.methods.interactive.clicks import ENCODINGS  # noqa: E402 (numpy + scipy only)


@dataclasses.dataclass(frozen=True)
class ClickOptions(Options):
    """How clicks are simulated and encoded while training (stage 1: from the reference; stage 3: in the
    model's own errors) and the PET-dropout extension beyond the paper."""

    SECTION = "clicks"
    SOURCE = "chu2026 sec. 2.2-2.4"

    p_prompt: Optional[float] = option(None, "probability that a training sample gets clicks; null = the stage's "
                                       "default (stage 1: 0.5)", lambda v: v is None or 0 <= v <= 1, "in [0, 1]")
    radius: float = option(3.0, "click stamp radius in voxels", lambda r: r > 0, "> 0")
    encoding: str = option("ball", "prompt encoding: ball, edt (distance) or gaussian", choices=ENCODINGS)
    max_errors: int = option(5, "stage 3: most error clicks per class and sample in the first round (the automatic "
                             "prediction's errors)", lambda n: n >= 1, ">= 1")
    error_rounds: int = option(3, "stage 3: rounds of error clicks per sample, drawn uniformly from 1..N: round 1 "
                               "clicks the automatic prediction's errors (the paper), each further round adds one "
                               "click per class in the errors of the prediction with the clicks so far",
                               lambda n: n >= 1, ">= 1")
    error_order: str = option("largest", "stage 3: which error components get clicks first: largest, or drawn "
                              "with probability proportional to size", choices=("largest", "proportional"))
    min_error_mm3: Optional[float] = option(None, "smallest error component that gets a click, in mm^3 of the "
                                            "network grid (mm^2 of the slice for 2D configurations); null = the "
                                            "click ball's own volume (123 voxels for radius 3 in 3D, 29 pixels in "
                                            "2D)", lambda v: v is None or v >= 0, ">= 0 or null")
    previous_prediction: bool = option(False, "beyond the paper, as nnInteractive: K more input channels holding "
                                       "the prediction the clicks were placed on (one per foreground class, 0/1); "
                                       "stage 3 feeds each sample the prediction of its last click round, stages 1-2 "
                                       "and the automatic branch zeros; prediction runs the automatic branch first")
    component_loss_weight: float = option(0.0, "stage 3, beyond the paper: weight of an extra cross-entropy over the "
                                          "voxels of the error components that got clicks (0 = off; "
                                          "nnunet_ext.methods.interactive.component_loss)", lambda w: w >= 0, ">= 0")
    transfer_heads: bool = option(True, "-pretrained_weights also carries the segmentation heads over (the stages "
                                  "share one label set; nnU-Net re-initialises them, meant for new label sets)")
    pet_channel: int = option(1, "image channel zeroed by pet_dropout (1 = PET of CT/PET)", lambda c: c >= 0, ">= 0")
    pet_dropout: float = option(0.0, "probability of zeroing pet_channel per sample (beyond the paper: CT-only "
                                "robustness)", lambda p: 0 <= p <= 1, "in [0, 1]")


@dataclasses.dataclass(frozen=True)
class InteractiveOptions(Options):
    """Prediction options of ``nnext predict -m interactive`` (besides the sampling options of ``-m tta_mc``):
    where the clicks come from and what is done with them (chu2026 sec. 2.5)."""

    SOURCE = "chu2026 sec. 2.5; pruning beyond the paper"

    clicks: Optional[str] = option(None, "clicks for every case (list / 'Multiple points') or keyed by case id; "
                                   "none = the automatic branch", metavar="CLICKS.json")
    allow_missing_clicks: bool = option(False, "run even when the clicks file names cases that are not among the "
                                        "inputs (they are listed as a warning); default: refused")
    point_names: Optional[tuple[str, ...]] = option(None, "grand-challenge point names -> classes (NAME=CLASS "
                                                    "positive, NAME=-CLASS negative, NAME=- negative in every "
                                                    "class); default tumor=1 background=-", nargs="+",
                                                    metavar="NAME=CLASS")
    gc_space: str = option("voxel", "coordinates of grand-challenge points: voxel (x, y, z) index as autoPET IV or "
                           "world mm", choices=("voxel", "world"))
    prune_unclicked: Optional[float] = option(None, "beyond the paper: for a class with positive clicks, drop its "
                                              "segmented components farther than MM from every positive click of "
                                              "that class (default off)", lambda v: v is None or v > 0, "> 0 mm",
                                              metavar="MM")
