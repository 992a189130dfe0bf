"""``-m tta_mc``: MC dropout + one random test-time augmentation per pass (HN-UISeg, chu2026 sec. 2.5).

For every sliding window, N passes are run as one batch (chunks of ``pass_batch_size``): pass i sees the
window under its own random transform (Gaussian noise, a flip along one axis, or a rotation of at most 5
degrees; :mod:`nnunet_ext.core.tta`) with dropout active (normalisation stays in eval mode); its softmax (sigmoid
for region-based plans) is mapped back by the inverse transform; the N probability maps give the mean and the
uncertainty maps of :func:`nnunet_ext.core.uncertainty.ensemble_maps`. nnU-Net's mirroring is off: flips are
part of the random policy. Dropout p defaults to the one the model was trained with (checkpoint metadata).
"""
from __future__ import annotations

import warnings

import torch

from nnunet_ext.core.mc_dropout import check_dropout_p, set_mc_dropout
from nnunet_ext.core.tta import TTAPolicy, apply_each, invert_each
from nnunet_ext.core.uncertainty import MAP_NAMES, ensemble_maps, pooled_logits
from nnunet_ext.predictors.sliding_window import StatisticsPredictor


class TTAMCPredictor(StatisticsPredictor):
    map_names = MAP_NAMES

    def __init__(self, n_samples: int = 10, dropout_p: "float | None" = None, tta: TTAPolicy = TTAPolicy(),
                 pass_batch_size: "int | None" = None, **kwargs):
        kwargs["use_mirroring"] = False
        super().__init__(**kwargs)
        if int(n_samples) < 1:
            raise ValueError(f"--n-samples must be >= 1, got {n_samples}")
        self.n_samples = int(n_samples)
        self.dropout_p = None if dropout_p is None else check_dropout_p(dropout_p)
        self.tta = tta
        self.pass_batch_size = int(pass_batch_size or n_samples)
        self.num_dropout_modules = None

    def on_parameters_loaded(self) -> None:
        p = self.dropout_p if self.dropout_p is not None else self.training_metadata.get("dropout_p")
        self.num_dropout_modules = set_mc_dropout(self.network, active=True, p=p)
        if self.num_dropout_modules == 0 and not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(f"trainer {self.trainer_name} has no dropout layers: MC sampling is impossible, "
                          f"the {self.n_samples} passes differ by test-time augmentation only (pure TTA)")

    def predict_patch(self, x):
        sigmoid = self.label_manager.has_regions
        transforms = self.tta.sample(self.n_samples, self.generator, x.ndim - 2)
        batch = apply_each(transforms, x[0])
        logits = torch.cat([self.network(chunk) for chunk in batch.split(self.pass_batch_size)]).float()
        probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, 1)
        maps = ensemble_maps(invert_each(transforms, probs), sigmoid)
        return pooled_logits(maps["mean"], sigmoid), maps
