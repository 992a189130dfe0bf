"""Export of a case's prediction into the original image geometry, through nnU-Net's own functions.

Pooled logits go through ``convert_predicted_logits_to_segmentation_with_correct_shape`` (resampling with the
plans' probability resampling function, crop reversal, transpose) exactly as nnU-Net's logits do; scalar maps
take the same route (``resampling_fn_probabilities``, ``insert_crop_into_image``, ``transpose_backward``) and are 0
outside nnU-Net's non-zero crop. The case loop (:mod:`nnunet_ext.predictors.loop`) writes them with the input's
spacing / origin / direction.
"""
from __future__ import annotations

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry


def geometry_from_properties(properties: dict) -> Geometry:
    """Geometry of the input image as recorded by nnU-Net's SimpleITK reader."""
    stuff = properties.get("sitk_stuff")
    if stuff is None:
        raise InputError("uncertainty export needs images read by nnU-Net's SimpleITKIO (NIfTI, NRRD, MHA); "
                         "this dataset uses another reader")
    return Geometry(tuple(stuff["spacing"]), tuple(stuff["origin"]), tuple(stuff["direction"]))


def map_to_original(values: torch.Tensor, properties: dict, configuration_manager, plans_manager) -> np.ndarray:
    """A scalar map at network resolution ``(*spatial)`` -> float32 array in the original (z, y, x) grid."""
    spacing_t = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    shape = properties["shape_after_cropping_and_before_resampling"]
    current = (configuration_manager.spacing if len(configuration_manager.spacing) == len(shape)
               else [spacing_t[0], *configuration_manager.spacing])
    resampled = configuration_manager.resampling_fn_probabilities(values[None].float(), shape, current, spacing_t)
    resampled = resampled.cpu().numpy() if isinstance(resampled, torch.Tensor) else np.asarray(resampled)
    full = np.zeros(properties["shape_before_cropping"], dtype=np.float32)
    full = insert_crop_into_image(full, resampled[0].astype(np.float32), properties["bbox_used_for_cropping"])
    return np.ascontiguousarray(full.transpose(plans_manager.transpose_backward))


def to_original(logits: torch.Tensor, maps: dict[str, torch.Tensor], properties: dict, predictor,
                names: "tuple[str, ...] | list[str]" = ()) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Network-resolution outputs -> (segmentation, probabilities ``(K, *spatial)``, ``{name: map}``) in the
    original image grid (numpy order; 2D images still as ``(1, y, x)``), through nnU-Net's own export path."""
    seg, probs = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
        return_probabilities=True)
    resampled = {n: map_to_original(maps[n], properties, predictor.configuration_manager, predictor.plans_manager)
                 for n in dict.fromkeys(names)}  # --all-maps names the uncertainty map twice: resample it once
    return np.asarray(seg), np.asarray(probs), resampled
