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


def default_2d_arch():
    """nnU-Net's default 2d network for BraTS (patch 192 x 160, 6 stages, 32..512 features, 2 convs per stage)."""
    return "dynamic_network_architectures.architectures.unet.PlainConvUNet", {
        "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 512, 512], "conv_op": CONV.replace("3d", "2d"),
        "kernel_sizes": [[3, 3]] * 6, "strides": [[1, 1]] + [[2, 2]] * 5, "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True, "norm_op": NORM.replace("3d", "2d"),
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}, [192, 160]


def default_3d_arch():
    """nnU-Net's default 3d_fullres network for BraTS (patch 128^3, 6 stages, 32..320 features)."""
    return "dynamic_network_architectures.architectures.unet.PlainConvUNet", {
        "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320], "conv_op": CONV,
        "kernel_sizes": [[3, 3, 3]] * 6, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5, "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True, "norm_op": NORM,
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}, [128, 128, 128]


def tiny_2d_arch(patch=(32, 32)):
    """A 3-stage 2d PlainConvUNet (4..16 features) for CPU smoke runs."""
    return "dynamic_network_architectures.architectures.unet.PlainConvUNet", {
        "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": CONV.replace("3d", "2d"),
        "kernel_sizes": [[3, 3]] * 3, "strides": [[1, 1], [2, 2], [2, 2]], "n_conv_per_stage": [1] * 3,
        "n_conv_per_stage_decoder": [1] * 2, "conv_bias": True, "norm_op": NORM.replace("3d", "2d"),
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}, list(patch)


def plans_for(arch_name: str, arch_kwargs: dict, patch: list[int], configuration: str = "3d_fullres",
              dataset_name: str = "Dataset999_Bench", plans_name: str = "bench", n_channels: int = 1,
              normalization: str = "ZScoreNormalization", use_mask_for_norm: bool = False) -> dict:
    """nnU-Net plans with one configuration at 1 mm (1 x 1 in-plane for 2d) for the given network."""
    spacing = [1.0] * len(patch)
    return {
        "dataset_name": dataset_name,
        "plans_name": plans_name,
        "original_median_spacing_after_transp": [1, 1, 1],
        "original_median_shape_after_transp": [max(patch)] * 3,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(c): {
                "max": 1000.0,
                "mean": 0.0,
                "median": 0.0,
                "min": -1000.0,
                "percentile_00_5": -1000.0,
                "percentile_99_5": 1000.0,
                "std": 300.0,
            }
            for c in range(n_channels)
        },
        "configurations": {
            configuration: {
                "data_identifier": f"{plans_name}_{configuration}",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": patch,
                "median_image_size_in_voxels": patch,
                "spacing": spacing,
                "normalization_schemes": [normalization] * n_channels,
                "use_mask_for_norm": [use_mask_for_norm] * n_channels,
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "batch_dice": False,
                "architecture": {
                    "network_class_name": arch_name,
                    "arch_kwargs": arch_kwargs,
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
            }
        },
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


__all__ = [
    "tiny_arch",
    "resenc_m_arch",
    "default_2d_arch",
    "default_3d_arch",
    "tiny_2d_arch",
    "plans_for",
    "initialise",
    "dropout_arch_kwargs",
]
