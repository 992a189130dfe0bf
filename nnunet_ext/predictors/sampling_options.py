"""Options of the stochastic prediction methods (``-m tta_mc`` and every method that samples like it: the
cascade's stage 2, the interactive branch, the glioma refiner's 3D stage): MC dropout + test-time augmentation
(HN-UISeg, chu2026 sec. 2.5). One frozen dataclass: ``nnext predict`` builds its flags from it, Python callers
(the interactive session, clicks-eval, benchmarks) construct it directly."""
from __future__ import annotations

import dataclasses
from typing import Optional

from nnunet_ext.core.options import Options, option


def _tta_ok(text: str) -> bool:
    from nnunet_ext.core.tta import parse_tta

    try:
        parse_tta(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class SamplingOptions(Options):
    """N stochastic passes per fold: dropout active (normalisation in eval mode) and one random transform each."""

    SOURCE = "chu2026 sec. 2.5"

    n_samples: int = option(10, "stochastic passes per fold", lambda n: n >= 1, ">= 1")
    dropout_p: Optional[float] = option(None, "dropout probability at inference (default: the trained one; 0 = no "
                                        "MC dropout)", lambda v: v is None or 0 <= v < 1, "in [0, 1)")
    dropout_kind: Optional[str] = option(None, "rebuild the network with this dropout kind, channel or element "
                                         "(default: the trained one)", lambda v: v in (None, "channel", "element"),
                                         "channel or element")
    tta: str = option("noise,flip,rotate", "augmentations drawn per pass (noise,flip,rotate) or 'none'", _tta_ok,
                      "a comma-separated subset of noise, flip, rotate, or none")
    tta_scope: str = option("volume", "one transform per pass of the whole case (volume, the paper) or per window",
                            choices=("volume", "window"))
    blend: str = option("probabilities", "window blending: Gaussian-weighted mean of softmax (probabilities, the "
                        "paper) or of pooled logits (logits, nnU-Net's rule)", choices=("logits", "probabilities"))
    max_angle: float = option(5.0, "largest rotation in degrees", lambda v: 0 <= v <= 45, "in [0, 45]")
    noise_std: float = option(0.1, "Gaussian noise sigma in normalised intensity units", lambda v: v >= 0, ">= 0")
    pass_batch_size: Optional[int] = option(None, "passes per forward batch (default all)",
                                            lambda v: v is None or v >= 1, ">= 1")

    def sampling(self):
        """The engine's :class:`~nnunet_ext.predictors.engine.Sampling` for these options."""
        from nnunet_ext.core.tta import TTAPolicy, parse_tta
        from nnunet_ext.predictors.engine import Sampling

        policy = TTAPolicy(kinds=parse_tta(self.tta), noise_std=self.noise_std, max_angle_deg=self.max_angle)
        return Sampling(n_passes=self.n_samples, pass_batch_size=self.pass_batch_size, tta=policy,
                        tta_scope=self.tta_scope, blend=self.blend)
