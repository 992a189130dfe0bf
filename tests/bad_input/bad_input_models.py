"""A tiny *untrained* nnU-Net model folder for the bad-input cells of ``nnext predict`` and ``nnext clicks-eval``.

The cells test input validation, output handling, Ctrl-C and resume, not segmentation quality, so the model is a
freshly initialised network saved by nnU-Net's own trainer
(:func:`nnunet_ext.trainers.untrained.save_untrained_model`): a valid checkpoint in a valid model folder, built in
~2 s instead of a training. The plans are TinyPlanner's for the 8 x 16 x 16 volumes of
``bad_input_harness.raw_dataset`` (3d_fullres only; written here instead of planned, which takes ~40 s of
worker-process start-up on 2 cores)."""
from __future__ import annotations

from pathlib import Path

DATASET_ID, DATASET = 920, "Dataset920_Bad"
PLANS = "nnextTinyPlans"
SPACING = [2.0, 0.9, 0.8]  # z, y, x of bad_input_harness.G


def tiny_plans() -> dict:
    arch = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}}
    resampling = {"resampling_fn_data": "resample_data_or_seg_to_shape",
                  "resampling_fn_seg": "resample_data_or_seg_to_shape",
                  "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                  "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                  "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                  "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                         "force_separate_z": None}}
    config = {"data_identifier": f"{PLANS}_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
              "patch_size": [8, 16, 16], "median_image_size_in_voxels": [8.0, 16.0, 16.0], "spacing": SPACING,
              "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False], **resampling,
              "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                               "arch_kwargs": arch, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op",
                                                                            "nonlin"]},
              "batch_dice": False}
    ct = {"max": 150.0, "mean": 0.0, "median": 0.0, "min": -150.0, "percentile_00_5": -120.0,
          "percentile_99_5": 140.0, "std": 50.0}
    return {"dataset_name": DATASET, "plans_name": PLANS, "original_median_spacing_after_transp": SPACING,
            "original_median_shape_after_transp": [8, 16, 16], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": config},
            "experiment_planner_used": "TinyPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": ct}}


DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumor": 1}, "numTraining": 2,
                "file_ending": ".nii.gz"}


def write_untrained_model(results: Path, trainer_name: str) -> Path:
    """``results/Dataset920_Bad/TRAINER__nnextTinyPlans__3d_fullres`` with fold_0/checkpoint_final.pth."""
    from nnunet_ext.trainers.untrained import save_untrained_model

    if trainer_name == "nnUNetTrainer":
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as cls
    else:
        from nnunet_ext.methods.interactive import click_prompt_trainer as click_prompt
        cls = getattr(click_prompt, trainer_name)
    return save_untrained_model(results, tiny_plans(), DATASET_JSON, "3d_fullres", cls)
