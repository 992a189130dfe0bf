"""Inputs of benchmarks/gpu_suite.py: synthetic volumes of real size and untrained model folders of real width.

Timing does not depend on the weights or the image content (except where the number of projections, windows or
kernels depends on a mask; those are fixed here by geometry), so every model is a freshly initialised network
saved by nnU-Net's trainer (:func:`nnunet_ext.trainers.untrained.save_untrained_model`) and every image is a
seeded phantom: a CT-like body (air outside), a skull-stripped BraTS-like brain (zero outside an ellipsoid, 4
channels) and a head-and-neck CT + PET pair. Images are written uncompressed (``.nii``: gzip of 100+ MB
volumes would dominate the start-up). Model folders and images are reused when present (same settings).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from _models import plans_for

PLANS = "nnextSuitePlans"
CT_ID, BRAIN_ID, HN_ID = 990, 991, 992
CT, BRAIN, HN = "Dataset990_SuiteCT", "Dataset991_SuiteBrain", "Dataset992_SuiteHN"
ENDING = ".nii"
BRAIN_LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}


def _write(arr: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.float32))
    img.SetSpacing((1.0, 1.0, 1.0))
    tmp = path.with_name(".tmp_" + path.name)
    sitk.WriteImage(img, str(tmp), False)
    tmp.rename(path)


def _ellipsoid(shape, semi) -> np.ndarray:
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    c = [(n - 1) / 2 for n in shape]
    return ((z - c[0]) / semi[0]) ** 2 + ((y - c[1]) / semi[1]) ** 2 + ((x - c[2]) / semi[2]) ** 2 <= 1


def ct_case(folder: Path, shape, seed: int = 0) -> Path:
    """``folder/ct_000_0000.nii``: a body cylinder of soft tissue (~40 HU, noise 20) with a denser blob, air
    (-1000 HU) outside."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"ct_000_0000{ENDING}"
    if not out.is_file():
        rng = np.random.default_rng(seed)
        z, y, x = shape
        body = np.broadcast_to(_ellipsoid((1, y, x), (1e9, 0.45 * y, 0.42 * x)), shape)
        arr = np.where(body, 40.0, -1000.0).astype(np.float32) + 20 * rng.standard_normal(shape, dtype=np.float32)
        arr[_ellipsoid(shape, (0.15 * z, 0.08 * y, 0.08 * x))] += 100
        _write(arr, out)
    return folder


def brain_case(folder: Path, shape, seed: int = 0) -> Path:
    """``folder/brain_000_000{0..3}.nii``: 4 MR-like channels inside a brain ellipsoid (semi-axes 0.45, 0.36,
    0.30 of the volume: BraTS's ~140 x 170 x 145 mm brain in 155 x 240 x 240), zero outside (skull-stripped),
    with a brighter 'tumour' sphere."""
    folder.mkdir(parents=True, exist_ok=True)
    outs = [folder / f"brain_000_{c:04d}{ENDING}" for c in range(4)]
    if not all(o.is_file() for o in outs):
        rng = np.random.default_rng(seed)
        brain = _ellipsoid(shape, (0.45 * shape[0], 0.36 * shape[1], 0.30 * shape[2]))
        tumour = _ellipsoid(shape, (0.1 * shape[0], 0.08 * shape[1], 0.08 * shape[2]))
        for c, out in enumerate(outs):
            arr = 300 + 30 * c + 25 * rng.standard_normal(shape, dtype=np.float32)
            arr[tumour] += 150
            _write(arr * brain, out)
    return folder


def hn_images(shape, seed: int = 0) -> list:
    """CT + PET SimpleITK images (in memory) of a head-and-neck-sized field: body, hot PET lesion."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    body = np.broadcast_to(_ellipsoid((1, *shape[1:]), (1e9, 0.4 * shape[1], 0.35 * shape[2])), shape)
    lesion = _ellipsoid(shape, (0.08 * shape[0], 0.06 * shape[1], 0.06 * shape[2]))
    ct = np.where(body, 40.0, -1000.0).astype(np.float32) + 20 * rng.standard_normal(shape, dtype=np.float32)
    pet = np.where(body, 1.0, 0.0).astype(np.float32) + 0.2 * rng.random(shape, dtype=np.float32) + 8.0 * lesion
    images = []
    for arr in (ct, pet):
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        img.SetSpacing((1.0, 1.0, 1.0))
        images.append(img)
    return images


def _model(results: Path, plans: dict, dataset_json: dict, configuration: str, trainer_cls) -> Path:
    from nnunet_ext.trainers.untrained import save_untrained_model

    folder = results / plans["dataset_name"] / f"{trainer_cls.__name__}__{plans['plans_name']}__{configuration}"
    same = (folder / "plans.json").is_file() and json.loads((folder / "plans.json").read_text()) == plans
    if same and (folder / "fold_0" / "checkpoint_final.pth").is_file():
        return folder
    return save_untrained_model(results, plans, dataset_json, configuration, trainer_cls)


def ct_model(results: Path, arch) -> Path:
    """nnUNetTrainer 3d_fullres, 1 CT channel (CTNormalization), background + tumour."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    name, kwargs, patch = arch
    plans = plans_for(name, copy.deepcopy(kwargs), patch, "3d_fullres", CT, PLANS, 1, "CTNormalization")
    dj = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 1,
          "file_ending": ENDING}
    return _model(results, plans, dj, "3d_fullres", nnUNetTrainer)


def brain_models(results: Path, arch2d, arch3d) -> tuple[str, str]:
    """SphericalProjectionTrainer 2d + MCDropoutTrainer 3d_fullres on 4 MR channels (z-score in the brain mask),
    regions WT / TC / ET; returns the ``D,C,TR,PLANS,FOLD`` specs of ``--model2d`` / ``--model3d``."""
    from nnunet_ext.methods.glioma.spherical_trainer import SphericalProjectionTrainer
    from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer

    (n2, k2, p2), (n3, k3, p3) = arch2d, arch3d
    plans = plans_for(n2, copy.deepcopy(k2), p2, "2d", BRAIN, PLANS, 4, use_mask_for_norm=True)
    plans["configurations"].update(
        plans_for(n3, copy.deepcopy(k3), p3, "3d_fullres", BRAIN, PLANS, 4, use_mask_for_norm=True)["configurations"])
    dj = {"channel_names": {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}, "labels": BRAIN_LABELS,
          "regions_class_order": [1, 2, 3], "numTraining": 1, "file_ending": ENDING}
    _model(results, plans, dj, "2d", SphericalProjectionTrainer)
    _model(results, plans, dj, "3d_fullres", MCDropoutTrainer)
    return (f"{BRAIN_ID},2d,SphericalProjectionTrainer,{PLANS},0",
            f"{BRAIN_ID},3d_fullres,MCDropoutTrainer,{PLANS},0")


def click_model(results: Path, arch) -> Path:
    """ClickPromptTrainer 3d_fullres on CT (CTNormalization) + PET (z-score), classes GTVp / GTVn."""
    from nnunet_ext.methods.interactive.click_prompt_trainer import ClickPromptTrainer

    name, kwargs, patch = arch
    plans = plans_for(name, copy.deepcopy(kwargs), patch, "3d_fullres", HN, PLANS, 2, "CTNormalization")
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["CTNormalization", "ZScoreNormalization"]
    dj = {"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "GTVp": 1, "GTVn": 2},
          "numTraining": 1, "file_ending": ENDING}
    return _model(results, plans, dj, "3d_fullres", ClickPromptTrainer)
