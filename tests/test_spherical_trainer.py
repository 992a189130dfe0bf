"""SphericalProjectionTransform and the SphericalProjection trainers (2d, brain phantoms, TinyPlanner)."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from nnunet_ext.trainers.spherical import RegionBCELoss, select_region
from nnunet_ext.trainers.spherical_transform import SphericalProjectionTransform

BRAIN_ID = 611
TINY = "nnextTinyPlans"


def _sample(seed=0, h=40, w=48):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(4, h, w, generator=g)
    seg = torch.zeros(1, h, w, dtype=torch.int16)
    seg[0, 10:30, 12:36] = 1
    seg[0, 15:25, 18:30] = 2
    seg[0, 18:22, 22:26] = 3
    seg[0, :, :3] = -1  # nnU-Net's padding value
    return img, seg


def test_transform_warps_image_and_labels_consistently():
    torch.manual_seed(0)
    img, seg = _sample()
    t = SphericalProjectionTransform(p=1.0, radius_range=(10.0, 20.0))
    params = t.get_parameters(image=img, segmentation=seg)
    assert 10.0 <= params["radius"] <= 20.0 and params["origin"].shape == (1, 2)
    out = t.apply({"image": img.clone(), "segmentation": seg.clone()}, **params)
    assert out["image"].shape == img.shape and out["segmentation"].shape == seg.shape
    assert out["segmentation"].dtype == seg.dtype
    assert set(torch.unique(out["segmentation"]).tolist()) <= {-1, 0, 1, 2, 3}   # nearest: no mixed labels
    assert float((out["image"] - img).abs().mean()) > 0.01                       # the image changed
    # image and label moved together: the warped label equals the nearest-warped label of the same origin
    from nnunet_ext.core.spherical import forward_warp
    ref = forward_warp(seg, params["origin"], params["radius"], mode="nearest")[0]
    torch.testing.assert_close(out["segmentation"], ref)
    # the patch border is kept (the warp maps the border onto itself)
    torch.testing.assert_close(out["image"][:, 0], img[:, 0], atol=1e-4, rtol=0)


def test_transform_probability_and_2d_only():
    img, seg = _sample()
    never = SphericalProjectionTransform(p=0.0)
    out = never(image=img.clone(), segmentation=seg.clone())
    assert torch.equal(out["image"], img) and torch.equal(out["segmentation"], seg)
    torch.manual_seed(1)
    half = SphericalProjectionTransform(p=0.5)
    applied = sum(half.get_parameters(image=img)["origin"] is not None for _ in range(400))
    assert 160 < applied < 240
    with pytest.raises(ValueError, match="2D only"):
        never.get_parameters(image=torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError):
        SphericalProjectionTransform(p=0.5, radius_range=(5, 1))


BRATS_JSON = {"channel_names": {"0": "T1"}, "file_ending": ".nii.gz", "numTraining": 1,
              "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
              "regions_class_order": [1, 2, 3]}


def test_select_region_by_name_and_by_size():
    et = select_region(BRATS_JSON, "ET")
    assert et["labels"] == {"background": 0, "enhancing tumor": [3, 3]} and et["regions_class_order"] == [3]
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    lm = LabelManager(et["labels"], et["regions_class_order"])
    assert lm.has_regions and lm.foreground_regions == [(3, 3)]   # still region-based (sigmoid)
    assert select_region(BRATS_JSON, "WT")["regions_class_order"] == [1]
    # the brats label convention: other names, TC = [1, 3], order [2, 1, 3]
    other = dict(BRATS_JSON, labels={"background": 0, "a": [1, 2, 3], "b": [1, 3], "c": [3]},
                 regions_class_order=[2, 1, 3])
    tc = select_region(other, "TC")
    assert tc["labels"] == {"background": 0, "b": [1, 3]} and tc["regions_class_order"] == [1]
    assert BRATS_JSON["labels"]["whole tumor"] == [1, 2, 3]   # input untouched
    with pytest.raises(ValueError, match="region-based"):
        select_region({"labels": {"background": 0, "tumour": 1}}, "ET")


def test_region_bce_equals_hand_computation():
    logits = torch.tensor([[[[0.5, -1.0]], [[2.0, 0.0]]]])      # (1, 2, 1, 2)
    target = torch.tensor([[[[1, 0]], [[1, 1]]]])
    p = torch.sigmoid(logits)
    want = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    assert float(RegionBCELoss()(logits, target)) == pytest.approx(float(want), rel=1e-6)


@pytest.fixture(scope="module")
def brain_2d(nnunet_dirs):
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    folder = write_dataset("brain", BRAIN_ID, num_train=4, num_test=1, seed=0, size=(16, 48, 48), progress=False,
                           overwrite=True)
    plan_and_preprocess(BRAIN_ID, "TinyPlanner", ["2d"], num_processes=1)
    return folder


def _trainer(name, brain_2d, nnunet_dirs):
    from nnunet_ext.trainers.registry import load_trainer

    pre = nnunet_dirs["nnUNet_preprocessed"] / brain_2d.name
    plans = json.loads((pre / f"{TINY}.json").read_text())
    plans["continue_training"] = False  # what nnU-Net's run_training adds before building the trainer
    dataset_json = json.loads((pre / "dataset.json").read_text())
    return load_trainer(name)(plans, "2d", "all", dataset_json, device=torch.device("cpu"))


@pytest.mark.slow
def test_bce_per_region_variant_builds_the_papers_setup(brain_2d, nnunet_dirs):
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    tr = _trainer("SphericalProjectionBCETrainer_ET", brain_2d, nnunet_dirs)
    tr.initialize()
    assert tr.label_manager.has_regions and tr.label_manager.foreground_regions == [(3, 3)]
    assert tr.dataset_json["labels"] == {"background": 0, "enhancing tumor": [3, 3]}
    out = tr.network(torch.zeros(1, 4, *tr.configuration_manager.patch_size))
    assert out[0].shape[1] == 1                                   # one sigmoid output: ET only
    assert isinstance(tr.loss, DeepSupervisionWrapper) and isinstance(tr.loss.loss, RegionBCELoss)
    assert isinstance(tr.optimizer, torch.optim.Adam) and tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    steps = tr.get_training_transforms(tr.configuration_manager.patch_size, (0, 0), None, (0, 1), False,
                                       regions=tr.label_manager.foreground_regions).transforms
    i = next(k for k, t in enumerate(steps) if isinstance(t, SphericalProjectionTransform))
    assert isinstance(steps[i - 1], SpatialTransform)
    # default trainer: nnU-Net's region loss (Dice + BCE), SGD, three regions
    plain = _trainer("SphericalProjectionTrainer", brain_2d, nnunet_dirs)
    plain.initialize()
    assert type(plain.loss.loss).__name__ == "DC_and_BCE_loss"
    assert isinstance(plain.optimizer, torch.optim.SGD) and len(plain.label_manager.foreground_regions) == 3


@pytest.mark.slow
def test_nnunetv2_train_spherical_projection_2d(brain_2d, nnunet_dirs, monkeypatch):
    env = dict(os.environ, NNEXT_SPHERICAL_P="0.8", NNEXT_SPHERICAL_RADIUS="8,24")
    cmd = ["nnUNetv2_train", str(BRAIN_ID), "2d", "all", "-tr", "SphericalProjectionTrainer", "-p", TINY,
           "-device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = nnunet_dirs["nnUNet_results"] / brain_2d.name / f"SphericalProjectionTrainer__{TINY}__2d"
    ckpt = torch.load(model / "fold_all" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["spherical_p"] == 0.8 and ckpt["nnext"]["spherical_radius"] == [8.0, 24.0]
    assert ckpt["nnext"]["loss"] == "DeepSupervisionWrapper"
    log = "".join(p.read_text() for p in (model / "fold_all").glob("training_log_*.txt"))
    assert "spherical projection: p = 0.8, R in (8.0, 24.0) px" in log
    losses = [float(v) for v in ckpt["logging"]["train_losses"]]
    assert len(losses) >= 2 and all(np.isfinite(losses))
    assert json.loads((model / "dataset.json").read_text())["regions_class_order"] == [1, 2, 3]
