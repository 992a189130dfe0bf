"""Export of a case's prediction into the original image geometry, through nnU-Net's own functions.

Pooled logits go through ``convert_predicted_logits_to_segmentation_with_correct_shape`` (resampling with the
plans' probability resampling function, crop reversal, transpose) exactly as nnU-Net's logits do; scalar maps
take the same route (``resampling_fn_probabilities``, ``insert_crop_into_image``, ``transpose_backward``) and are 0
outside nnU-Net's non-zero crop. Files are written with the input's spacing / origin / direction.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

from nnunet_ext.errors import InputError
from nnunet_ext.imageio import Geometry, write_image, write_probabilities


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


def _spatial(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    """nnU-Net stores 2D images as (1, y, x); write them back as 2D."""
    return array[0] if len(geometry.spacing) == 2 and array.ndim == 3 else array


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


def export_case(logits: torch.Tensor, maps: dict[str, torch.Tensor], properties: dict, predictor,
                output_truncated: str, file_ending: str, uncertainty: "str | None",
                extra_maps: tuple[str, ...] = (), save_probabilities: bool = False) -> dict[str, str]:
    """Write ``CASE{file_ending}`` (segmentation, last: its presence marks the case as done),
    ``CASE_uncertainty{file_ending}`` (map ``uncertainty``), ``CASE_<name>`` for ``extra_maps`` and optionally
    ``CASE_probabilities{file_ending}`` (float32, classes first). Returns ``{kind: path}``."""
    files = _map_files(output_truncated, file_ending, uncertainty, extra_maps)
    seg, probs, resampled = to_original(logits, maps, properties, predictor, [name for _, name, _ in files])
    return write_case(seg, probs if save_probabilities else None, resampled, geometry_from_properties(properties),
                      output_truncated, file_ending, uncertainty, extra_maps)


def write_case(seg: np.ndarray, probs: "np.ndarray | None", maps: dict[str, np.ndarray], geometry: Geometry,
               output_truncated: str, file_ending: str, uncertainty: "str | None",
               extra_maps: tuple[str, ...] = ()) -> dict[str, str]:
    """Write the arrays of one case (original grid) with the file names of :func:`case_outputs`; maps first,
    probabilities (when given) next, the segmentation last. Returns ``{kind: path}``."""
    written = {}
    for suffix, name, path in _map_files(output_truncated, file_ending, uncertainty, extra_maps):
        write_image(_spatial(maps[name], geometry), geometry, path)
        written[suffix] = path
    if probs is not None:
        path = f"{output_truncated}_probabilities{file_ending}"
        write_probabilities(np.stack([_spatial(p, geometry) for p in probs]).astype(np.float32), geometry, path)
        written["probabilities"] = path
    path = f"{output_truncated}{file_ending}"
    write_image(_spatial(np.asarray(seg), geometry), geometry, path)
    written["segmentation"] = path
    return written


def _map_files(output_truncated: str, file_ending: str, uncertainty: "str | None", extra_maps=()):
    """``(suffix, map name, path)`` of every map file of a case."""
    names = ([("uncertainty", uncertainty)] if uncertainty else []) + [(n, n) for n in extra_maps]
    return [(suffix, name, f"{output_truncated}_{suffix}{file_ending}") for suffix, name in names]


def case_outputs(output_truncated: str, file_ending: str, uncertainty: "str | None", extra_maps=(),
                 save_probabilities: bool = False) -> list[str]:
    """Every file :func:`export_case` writes for one case."""
    paths = [path for _, _, path in _map_files(output_truncated, file_ending, uncertainty, extra_maps)]
    paths += [f"{output_truncated}_probabilities{file_ending}"] if save_probabilities else []
    return paths + [f"{output_truncated}{file_ending}"]


def case_done(output_truncated: str, file_ending: str, **kwargs) -> bool:
    return all(os.path.isfile(p) for p in case_outputs(output_truncated, file_ending, **kwargs))
