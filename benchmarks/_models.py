"""Randomly initialised nnU-Net predictors of known size for benchmarks (no training, no data download)."""
from __future__ import annotations

import copy

import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ext.core.mc_dropout import dropout_arch_kwargs
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer

CONV = "torch.nn.modules.conv.Conv3d"
NORM = "torch.nn.modules.instancenorm.InstanceNorm3d"


def tiny_arch():
    """TinyPlanner's 3d_fullres network for a 40x64x64 chest phantom (patch 32x64x64)."""
    return "dynamic_network_architectures.architectures.unet.PlainConvUNet", {
        "n_stages": 5, "features_per_stage": [4, 8, 16, 32, 32], "conv_op": CONV,
        "kernel_sizes": [[1, 3, 3]] + [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [1, 2, 2]] + [[2, 2, 2]] * 3,
        "n_conv_per_stage": [1] * 5, "n_conv_per_stage_decoder": [1] * 4, "conv_bias": True,
        "norm_op": NORM, "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}, [32, 64, 64]


def resenc_m_arch():
    """nnU-Net ResEnc M 3d_fullres for isotropic data (patch 128^3, 6 stages, 32..320 features)."""
    return "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet", {
        "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320], "conv_op": CONV,
        "kernel_sizes": [[3, 3, 3]] * 6, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
        "n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [1] * 5, "conv_bias": True,
        "norm_op": NORM, "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}, [128, 128, 128]


def plans_for(arch_name: str, arch_kwargs: dict, patch: list[int]) -> dict:
    return {
        "dataset_name": "Dataset999_Bench", "plans_name": "bench", "original_median_spacing_after_transp": [1, 1, 1],
        "original_median_shape_after_transp": patch, "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {},
        "configurations": {"3d_fullres": {
            "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2, "patch_size": patch,
            "median_image_size_in_voxels": patch, "spacing": [1, 1, 1], "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {},
            "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {}, "batch_dice": False,
            "architecture": {"network_class_name": arch_name, "arch_kwargs": arch_kwargs,
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}},
    }


def initialise(predictor, arch, device: torch.device, seed: int = 0):
    """Give ``predictor`` a random MCDropoutTrainer network (p=0.05) for ``arch``; returns the patch size."""
    name, kwargs, patch = arch
    plans = plans_for(name, copy.deepcopy(kwargs), patch)
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "file_ending": ".nii.gz"}
    torch.manual_seed(seed)
    net = MCDropoutTrainer.build_network_architecture(pm, cm, 1, 2, enable_deep_supervision=False)
    predictor.manual_initialization(net.to(device), pm, cm, [net.state_dict()], dataset_json, "MCDropoutTrainer",
                                    (0, 1, 2))
    predictor.training_metadata = {"dropout_p": 0.05}
    return patch


__all__ = ["tiny_arch", "resenc_m_arch", "initialise", "dropout_arch_kwargs"]
