"""``-m stock``: nnU-Net's own prediction (mirroring TTA, logit blending of one deterministic pass).

Differences from ``nnUNetv2_predict``: float32 accumulation by default (``--accumulator-dtype float16`` for
nnU-Net's), and an uncertainty map -- the entropy of the final softmax (the classic single-model baseline).
Several folds are averaged as nnU-Net does (their logits are blended like more windows).
"""
from __future__ import annotations

from nnunet_ext.predictors.model_method import ModelMethod


class StockMethod(ModelMethod):
    name = "stock"
    map_names = ("entropy",)
    default_uncertainty = "entropy"

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--disable_tta", action="store_true", help="no mirroring (nnU-Net's flag)")

    @classmethod
    def engine_kwargs(cls, args) -> dict:
        return {"use_mirroring": not args.disable_tta}

    def forward(self, batch, window, ctx):
        return self.engine._internal_maybe_mirror_and_predict(batch)
