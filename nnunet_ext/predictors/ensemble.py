"""``-m ensemble``: the cross-validation folds as a deep ensemble (Lakshminarayanan et al. 2017).

nnU-Net's maintainers recommend the disagreement of the folds as the uncertainty of an nnU-Net model
(MIC-DKFZ/nnUNet issue 1342). Each fold is one deterministic member (dropout off; ``--member-mirroring`` adds
nnU-Net's mirroring per member) that predicts the whole volume (Gaussian-blended probabilities); across the
members: the mean (exported; nnUNetv2_predict averages fold logits instead), the entropy of that mean, the mutual
information (the members' disagreement, epistemic) and the variance. Works for any nnU-Net trainer, dropout or not.
"""
from __future__ import annotations

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.model_method import ModelMethod


class EnsembleMethod(ModelMethod):
    name = "ensemble"
    map_names = ("entropy", "variance", "mi")
    default_uncertainty = "mi"

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--member-mirroring", action="store_true",
                           help="nnU-Net's mirroring TTA inside every member (default off)")

    @classmethod
    def engine_kwargs(cls, args) -> dict:
        return {"use_mirroring": bool(args.member_mirroring)}

    @classmethod
    def sampling_from_args(cls, args):
        from nnunet_ext.predictors.engine import Sampling

        return Sampling(n_passes=1, tta_scope="volume", blend="probabilities")  # each fold: one whole-volume member

    @classmethod
    def from_args(cls, args, common, model=None):
        method = super().from_args(args, common, model)
        if len(method.engine.list_of_parameters) < 2:
            raise InputError(f"-m ensemble needs >= 2 folds (members); {method.model_info['model_folder']} gives "
                             f"{method.model_info['folds']} (train more folds or pass -f 0 1 2 3 4)")
        return method

    def forward(self, batch, window, ctx):
        return self.engine._internal_maybe_mirror_and_predict(batch)
