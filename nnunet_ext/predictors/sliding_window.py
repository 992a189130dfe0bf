"""Sliding-window inference that keeps per-pass statistics (the shared engine of every nnunet_ext predictor).

nnU-Net's ``nnUNetPredictor`` blends overlapping windows by a Gaussian-weighted mean of float16 logits and
never exposes individual passes. :class:`StatisticsPredictor` runs the same window grid, padding and Gaussian,
but asks the method (:meth:`StatisticsPredictor.predict_patch`) for

* pooled logits ``(K, *patch)`` -- blended exactly like nnU-Net's logits, then handed to nnU-Net's own export
  (resampling, crop reversal, transpose), and
* any number of scalar maps ``(*patch)`` (entropy, variance, ...), blended with the same weights,

accumulated in float32. Several folds are treated as more windows of equal weight, so fold ensembling averages
pooled logits like nnU-Net averages logits.
"""
from __future__ import annotations

import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian
from nnunetv2.utilities.helpers import dummy_context, empty_cache
from torch._dynamo import OptimizedModule
from tqdm import tqdm


class StatisticsPredictor(nnUNetPredictor):
    """Base class: subclasses implement :meth:`predict_patch` and name their maps in :attr:`map_names`."""

    #: names of the scalar maps :meth:`predict_patch` returns
    map_names: tuple[str, ...] = ()
    #: dtype of the blended-logits accumulator; ``torch.half`` reproduces nnU-Net's accumulation bit for bit
    logits_dtype: torch.dtype = torch.float32

    def predict_patch(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x``: one window ``(1, C_in, *patch)`` on ``self.device`` -> (pooled logits ``(K, *patch)``,
        ``{name: (*patch)}`` for every name in :attr:`map_names`)."""
        raise NotImplementedError

    def on_parameters_loaded(self) -> None:
        """Called after each fold's weights are loaded (e.g. to switch dropout to MC mode)."""

    def _load_parameters(self, params: dict) -> None:
        net = self.network._orig_mod if isinstance(self.network, OptimizedModule) else self.network
        net.load_state_dict(params)
        self.on_parameters_loaded()

    @torch.inference_mode()
    def predict_statistics(self, data: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Preprocessed image ``(C_in, *spatial)`` -> (pooled logits ``(K, *spatial)``, maps), float32 on CPU."""
        self.network = self.network.to(self.device)
        patch = tuple(self.configuration_manager.patch_size)
        padded, revert = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
        slicers = self._internal_get_sliding_window_slicers(padded.shape[1:])
        spatial = padded.shape[1:]
        results_device = self.device if self.perform_everything_on_device else torch.device("cpu")
        k = self.label_manager.num_segmentation_heads
        logits = torch.zeros((k, *spatial), dtype=self.logits_dtype, device=results_device)
        maps = {n: torch.zeros(spatial, dtype=torch.float32, device=results_device) for n in self.map_names}
        weights = torch.zeros(spatial, dtype=torch.float32, device=results_device)
        gaussian = (compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=results_device)
                    .float() if self.use_gaussian else torch.ones(patch, device=results_device))
        autocast = torch.autocast(self.device.type) if self.device.type == "cuda" else dummy_context()
        padded = padded.to(self.device)
        total = len(self.list_of_parameters) * len(slicers)
        with autocast, tqdm(total=total, desc="windows", leave=False, disable=not self.allow_tqdm) as bar:
            for params in self.list_of_parameters:
                self._load_parameters(params)
                for sl in slicers:
                    window = padded[sl][None]
                    patch_logits, patch_maps = self.predict_patch(window)
                    logits[sl] += (patch_logits.float().to(results_device) * gaussian).to(self.logits_dtype)
                    for n in self.map_names:
                        maps[n][sl[1:]] += patch_maps[n].float().to(results_device) * gaussian
                    weights[sl[1:]] += gaussian
                    bar.update()
        logits = logits.float() / weights
        for n in self.map_names:
            maps[n] /= weights
        crop = (slice(None), *revert[1:])
        empty_cache(self.device)
        return logits[crop].cpu(), {n: m[crop[1:]].cpu() for n, m in maps.items()}

    # -- set-up shared by all methods ------------------------------------------------------------------------
    generator: "torch.Generator | None" = None
    training_metadata: dict = {}

    def set_seed(self, seed: int) -> None:
        """Seed the method's sampling generator and torch's global RNG (dropout masks) for one case."""
        self.generator = torch.Generator().manual_seed(int(seed))
        torch.manual_seed(int(seed))

    def initialize_from_trained_model_folder(self, model_training_output_dir, use_folds, checkpoint_name="checkpoint_final.pth"):
        super().initialize_from_trained_model_folder(model_training_output_dir, use_folds, checkpoint_name)
        folds = use_folds if use_folds is not None else self.auto_detect_available_folds(
            model_training_output_dir, checkpoint_name)
        first = folds[0] if isinstance(folds, (list, tuple)) else folds
        first = int(first) if str(first) != "all" else "all"
        ckpt = torch.load(f"{model_training_output_dir}/fold_{first}/{checkpoint_name}", map_location="cpu",
                          weights_only=False)
        self.training_metadata = dict(ckpt.get("nnext") or {})
