"""``-m mcm``: UGS-Net's multi-confidence outputs (Yang & Wang, sec. III-B, IV-C) from a ``UGSNetTrainer`` model.

Per case: ``CASE.nii.gz`` = X_S > 0.5 (the same segmentation as ``nnUNetv2_predict``), side images
``CASE_hc`` (high confidence: σ(∩(GT)') > 0.5) and ``CASE_lc`` (low confidence: σ(∪(GT)') > 0.5 and not HC),
maps ``mcm`` = (σ(∪') + σ(∩')) / 2 (the paper's Normal(∪' + ∩')), ``union_probability`` σ(∪'),
``hc_probability`` σ(∩') and, as the default uncertainty, ``lc_probability`` = max(σ(∪') − σ(∩'), 0): the
probability of lying in the union but not in the intersection when ∩ ⊆ ∪ (nested events,
P(U \\ I) = P(U) − P(I)). Each head goes through nnU-Net's own sliding window (Gaussian logit blending,
mirroring unless ``--disable_tta``, folds averaged) and nnU-Net's export separately, so ``CASE.nii.gz`` is
exactly ``nnUNetv2_predict``'s output and all outputs are in the input's geometry.
"""
from __future__ import annotations

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.stock import StockMethod

HEADS = ("xs", "inter", "union")


class MCMMethod(StockMethod):
    """nnU-Net's deterministic prediction of each UGS-Net head (``--disable_tta`` as ``-m stock``)."""

    name = "mcm"
    map_names = ("lc_probability", "mcm", "hc_probability", "union_probability")
    default_uncertainty = "lc_probability"

    @classmethod
    def from_args(cls, args, common, model=None):
        method = super().from_args(args, common, model)
        if not hasattr(method.engine.network, "output_head"):
            raise InputError(f"{method.model_info['model_folder']}: -m mcm needs a UGSNetTrainer model "
                             f"(trainer {method.engine.trainer_name})")
        return method

    def side_outputs(self):
        return ("hc", "lc"), ()

    def forward(self, batch, window, ctx):
        return self.engine._internal_maybe_mirror_and_predict(batch)

    def head_logits(self, data):
        """One head's logits at network resolution through nnU-Net's own ``predict_logits_from_preprocessed_data``
        (its sliding window, Gaussian logit blending, mirroring and fold averaging: bit-identical to
        ``nnUNetv2_predict``; deterministic, so the engine's N-pass statistics are not needed, and it serves 2D
        configurations too)."""
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        with torch.no_grad():
            return nnUNetPredictor.predict_logits_from_preprocessed_data(self.engine, torch.from_numpy(data)).float()

    def predict_case(self, prepared, ctx):
        from nnunet_ext.predictors.export import geometry_from_properties, to_original
        from nnunet_ext.predictors.method import CaseResult

        net = self.engine.network
        out = {}
        try:
            for head in HEADS:
                net.output_head = head
                out[head] = to_original(self.head_logits(prepared.data), {}, prepared.properties, self.engine)[:2]
        finally:
            net.output_head = "xs"
        seg, probs = out["xs"]
        p_inter, p_union = out["inter"][1][0].astype(np.float32), out["union"][1][0].astype(np.float32)
        hc = p_inter > 0.5
        lc = (p_union > 0.5) & ~hc
        maps = {"lc_probability": np.clip(p_union - p_inter, 0, 1), "mcm": 0.5 * (p_union + p_inter),
                "hc_probability": p_inter, "union_probability": p_union}
        return CaseResult(geometry_from_properties(prepared.properties), seg, probs,
                          {k: v for k, v in maps.items()},
                          images={"hc": hc.astype(np.uint8), "lc": lc.astype(np.uint8)},
                          properties=prepared.properties)
