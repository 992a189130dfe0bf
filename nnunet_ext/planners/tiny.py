"""``TinyPlanner`` -> plans ``nnextTinyPlans``: a network small enough to train in seconds on 2 CPU cores.

Used by the tests and ``nnext demo``; never meant for real results. Differences from nnU-Net's default
``ExperimentPlanner`` (everything else, e.g. target spacing, normalisation, resampling, is unchanged):

* 4 -> 32 features (base 4, doubled per stage, capped at 32), one conv per encoder and decoder stage;
* patch size at most :attr:`patch_size_cap_3d` / :attr:`patch_size_cap_2d` voxels (then nnU-Net's own
  topology rules make it divisible by the pooling factors), batch size 2, no 3d_lowres / cascade;
* patch size at least :attr:`patch_size_floor_3d` / :attr:`patch_size_floor_2d` (smaller images, e.g. the
  ROI crops of the lung cascade, are padded by nnU-Net): this guarantees >= 3 resolution stages. With only 2
  stages nnU-Net 2.8.1's deep-supervision weights are ``[1, 0] / sum`` -> ``[nan]`` and every loss is NaN
  (measured on margin-0 ROI crops of the chest phantoms, median 4x10x9 voxels);
* a ``nnext_training`` block (see :mod:`nnunet_ext.trainers.schedule`) that every nnunet_ext trainer honours:
  by default 2 epochs x 10 iterations, 2 validation iterations, and -- because such a small network on a few
  small phantoms otherwise stays stuck predicting background for well over 1000 iterations (measured on the
  chest phantoms, see benchmarks/RESULTS.md) -- initial learning rate 0.05 (nnU-Net: 0.01) and foreground
  oversampling for every patch (nnU-Net: 33 %);
* :attr:`fingerprint_foreground_samples` = 1e6 foreground voxels for the intensity statistics (nnU-Net: 1e8,
  which costs ~6 s per small phantom case; ``nnext plan --fingerprint-samples`` overrides it).
"""
from __future__ import annotations

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from nnunet_ext.trainers.schedule import PLANS_KEY

TINY_PLANS = "nnextTinyPlans"


class TinyPlanner(ExperimentPlanner):
    patch_size_cap_3d = (32, 64, 64)
    patch_size_cap_2d = (64, 64)
    patch_size_floor_3d = (8, 16, 16)
    patch_size_floor_2d = (16, 16)
    fingerprint_foreground_samples = 10**6
    training_schedule = {"num_epochs": 2, "num_iterations_per_epoch": 10, "num_val_iterations_per_epoch": 2,
                         "initial_lr": 0.05, "oversample_foreground_percent": 1.0}

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = TINY_PLANS,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_base_num_features = 4
        self.UNet_max_features_3d = 32
        self.UNet_max_features_2d = 32
        self.UNet_blocks_per_stage_encoder = (1,) * 14
        self.UNet_blocks_per_stage_decoder = (1,) * 13
        self.lowres_creation_threshold = 0  # never plan 3d_lowres

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier, approximate_n_voxels_dataset,
                                    _cache):
        # nnU-Net clips its initial patch to the median shape: clipping that shape to the cap bounds the patch.
        cap = self.patch_size_cap_2d if len(spacing) == 2 else self.patch_size_cap_3d
        floor = self.patch_size_floor_2d if len(spacing) == 2 else self.patch_size_floor_3d
        capped = np.clip(np.asarray(median_shape, dtype=float)[: len(spacing)], floor, cap)
        plan = super().get_plans_for_configuration(spacing, capped, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        plan["median_image_size_in_voxels"] = median_shape
        plan["batch_size"] = 2
        return plan

    def save_plans(self, plans):
        plans[PLANS_KEY] = dict(self.training_schedule)
        super().save_plans(plans)
