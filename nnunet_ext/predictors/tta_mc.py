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
from nnunet_ext.predictors.sampling_options import SamplingOptions


class TTAMCMethod(ModelMethod):
    name = "tta_mc"
    map_names = ("entropy", "variance", "mi")
    default_uncertainty = "entropy"

    #: the option family of this method's flags (also built directly by Python callers)
    options_class = SamplingOptions

    @classmethod
    def add_arguments(cls, group) -> None:
        SamplingOptions.add_arguments(None, group=group)

    @classmethod
    def sampling_options(cls, args) -> SamplingOptions:
        """The sampling options given on the command line (one-line InputError naming the flag)."""
        try:
            return SamplingOptions.from_args(args)
        except ValueError as e:
            raise InputError(str(e)) from None

    @classmethod
    def sampling_from_args(cls, args):
        return cls.sampling_options(args).sampling()

    @classmethod
    def from_args(cls, args, common, model=None):
        method = super().from_args(args, common, model)
        method.dropout_p = cls.sampling_options(args).dropout_p
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
