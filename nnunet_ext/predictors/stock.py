"""``-m stock``: nnU-Net's own prediction (mirroring TTA, logit blending) through the nnunet_ext engine.

Differences from ``nnUNetv2_predict``: float32 instead of float16 accumulation, and an uncertainty map -- the
entropy of each window's softmax (the classic single-model baseline) -- next to the segmentation.
"""
from __future__ import annotations

import torch

from nnunet_ext.core.uncertainty import entropy
from nnunet_ext.predictors.sliding_window import StatisticsPredictor


class StockPredictor(StatisticsPredictor):
    map_names = ("entropy",)

    def on_parameters_loaded(self) -> None:
        self.network.eval()

    def predict_patch(self, x):
        logits = self._internal_maybe_mirror_and_predict(x)[0].float()
        sigmoid = self.label_manager.has_regions
        probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, 0)
        return logits, {"entropy": entropy(probs, 0, sigmoid)}
