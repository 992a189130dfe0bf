"""``-m tta_mc``: MC dropout + random test-time augmentation, N passes (HN-UISeg, chu2026 sec. 2.5).

Every pass runs with dropout active (normalisation stays in eval mode) and its own random transform (Gaussian
noise, a flip along one axis, or a rotation of at most 5 degrees *in millimetres*, :mod:`nnunet_ext.core.tta`).
``--tta-scope volume`` (default, the paper): one transform per pass for the whole case; ``window``: one per pass
and window (cheaper, not the paper's protocol). ``--blend probabilities`` (default, the paper's Gaussian-weighted
mean of softmax) or ``logits`` (nnU-Net's rule on pooled logits). Maps: entropy of the final mean, variance and
mutual information of the passes (:mod:`nnunet_ext.core.streaming`). Dropout p and kind default to those the
model was trained with (checkpoint metadata); nnU-Net's mirroring is off (flips are part of the random policy).
"""
from __future__ import annotations

import warnings

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.model_method import ModelMethod


class TTAMCMethod(ModelMethod):
    name = "tta_mc"
    map_names = ("entropy", "variance", "mi")
    default_uncertainty = "entropy"

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--n-samples", type=int, default=10, help="stochastic passes per fold (default 10)")
        group.add_argument("--dropout-p", type=float, default=None,
                           help="dropout probability at inference (default: the trained one; 0 = no MC dropout)")
        group.add_argument("--dropout-kind", choices=("channel", "element"), default=None,
                           help="rebuild the network with this dropout kind (default: the trained one)")
        group.add_argument("--tta", default="noise,flip,rotate",
                           help="augmentations drawn per pass (noise,flip,rotate) or 'none' (default all three)")
        group.add_argument("--tta-scope", default="volume", choices=("volume", "window"),
                           help="one transform per pass of the whole case (volume, the paper) or per window")
        group.add_argument("--blend", default="probabilities", choices=("logits", "probabilities"),
                           help="window blending: Gaussian-weighted mean of softmax (probabilities, the paper) or "
                                "of pooled logits (nnU-Net's rule)")
        group.add_argument("--max-angle", type=float, default=5.0, help="largest rotation in degrees (default 5)")
        group.add_argument("--noise-std", type=float, default=0.1,
                           help="Gaussian noise sigma in normalised intensity units (default 0.1)")
        group.add_argument("--pass-batch-size", type=int, default=None,
                           help="passes per forward batch (default all)")

    @classmethod
    def sampling_from_args(cls, args):
        from nnunet_ext.core.tta import TTAPolicy, parse_tta
        from nnunet_ext.predictors.engine import Sampling

        if args.dropout_p is not None and not 0 <= args.dropout_p < 1:
            raise InputError(f"--dropout-p must be in [0, 1), got {args.dropout_p}")
        if not 0 <= args.max_angle <= 45 or args.noise_std < 0:
            raise InputError(f"--max-angle must be in [0, 45] and --noise-std >= 0, got {args.max_angle}, "
                             f"{args.noise_std}")
        try:
            policy = TTAPolicy(kinds=parse_tta(args.tta), noise_std=args.noise_std, max_angle_deg=args.max_angle)
        except ValueError as e:
            raise InputError(f"--tta: {e}") from e
        return Sampling(n_passes=args.n_samples, pass_batch_size=args.pass_batch_size, tta=policy,
                        tta_scope=args.tta_scope, blend=args.blend)

    @classmethod
    def from_args(cls, args, common, model=None):
        method = super().from_args(args, common, model)
        method.dropout_p = args.dropout_p
        return method

    dropout_p = None
    _warned = False

    def on_parameters_loaded(self) -> None:
        from nnunet_ext.core.mc_dropout import set_mc_dropout

        p = self.dropout_p if self.dropout_p is not None else self.engine.training_metadata.get("dropout_p")
        n = set_mc_dropout(self.engine.network, active=True, p=p)
        if n == 0 and not self._warned:
            self._warned = True
            warnings.warn(f"trainer {self.engine.trainer_name} has no dropout layers: MC sampling is impossible, "
                          f"the {self.sampling.n_passes} passes differ by test-time augmentation only (pure TTA)")

    def settings(self) -> dict:
        return {**super().settings(), "dropout_p": self.dropout_p}
