"""UncertaintyLovaszTrainer and DistanceTransformTrainer: deep-supervision losses against hand-assembled sums of
the core losses, gradients, distance weights at deep-supervision resolution, and real nnUNetv2_train runs."""
import math
import os
import re
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunet_ext.io.paths import nnunet_command
from nnunet_ext.methods.lung_cascade.distance_trainer import DistanceWeightedLoss, deep_supervision_spacings
from nnunet_ext.methods.lung_cascade.lovasz_trainer import UncertaintyLovaszLoss
from nnunet_ext.methods.lung_cascade.weighted_losses import (
    distance_weight_map,
    lovasz_softmax_loss,
    weighted_cross_entropy,
    weighted_soft_dice_loss,
)

DS_WEIGHTS = (4 / 7, 2 / 7, 1 / 7, 0.0)


def _blob_target(batch=2, shape=(8, 16, 16), seed=0):
    """(B, 1, *shape) label maps with an off-centre ellipsoid (class 1) and a small box (class 2)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    out = np.zeros((batch, 1) + shape, dtype=np.int64)
    for b in range(batch):
        c = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        r = rng.uniform(0.2, 0.3, 3) * np.array(shape)
        out[b, 0][((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1] = 1
        out[b, 0, :2, :3, :3] = 2
    return torch.from_numpy(out)


def _ds_batch(seed=0, scales=((1, 1, 1), (1, 0.5, 0.5), (0.5, 0.25, 0.25), (0.25, 0.125, 0.125))):
    """Logits per output and targets downsampled like nnU-Net (nearest-exact), full resolution first."""
    g = torch.Generator().manual_seed(seed)
    full = _blob_target(seed=seed)
    targets, outputs = [], []
    for s in scales:
        size = [round(n * f) for n, f in zip(full.shape[2:], s)]
        t = full if all(f == 1 for f in s) else F.interpolate(full.float(), size, mode="nearest-exact").long()
        targets.append(t)
        outputs.append(torch.randn((t.shape[0], 3) + t.shape[2:], generator=g))
    return outputs, targets


def _fallback(output, target):
    return torch.tensor(123.0)


# ----------------------------------------------------------------------------------------------- Lovász loss

def test_lovasz_ds_loss_is_the_weighted_sum_of_core_losses():
    outputs, targets = _ds_batch(seed=1)
    u = torch.rand((2,) + outputs[0].shape[2:], generator=torch.Generator().manual_seed(2)) * 0.2
    for ce_weight in (1.0, 0.5, 0.0):
        loss = UncertaintyLovaszLoss(_fallback, DS_WEIGHTS, ce_weight=ce_weight)
        assert loss(outputs, targets).item() == 123.0                      # no U yet: nnU-Net's loss
        loss.uncertainty = u
        expected = 0.0
        for lam, o, t in zip(DS_WEIGHTS[:3], outputs, targets):
            u_i = u if o.shape[2:] == u.shape[1:] else F.interpolate(u[:, None], o.shape[2:], mode="area")[:, 0]
            expected = expected + lam * (lovasz_softmax_loss(o, t, weight=1.0 + u_i)
                                         + ce_weight * F.cross_entropy(o, t[:, 0]))
        assert loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)
        # a single (non-list) output: the first term only, no DS weight
        single = lovasz_softmax_loss(outputs[0], targets[0], 1.0 + u) + ce_weight * F.cross_entropy(outputs[0],
                                                                                                    targets[0][:, 0])
        assert loss(outputs[0], targets[0]).item() == pytest.approx(single.item(), rel=1e-6)


def test_lovasz_uncertainty_weighting_changes_the_loss_and_is_detached():
    outputs, targets = _ds_batch(seed=3)
    loss = UncertaintyLovaszLoss(_fallback, DS_WEIGHTS, ce_weight=0.0)
    loss.uncertainty = torch.zeros((2,) + outputs[0].shape[2:])
    plain = sum(lam * lovasz_softmax_loss(o, t) for lam, o, t in zip(DS_WEIGHTS, outputs, targets))
    assert loss(outputs, targets).item() == pytest.approx(plain.item(), rel=1e-6)      # U = 0 -> Berman's loss
    u = torch.rand((2,) + outputs[0].shape[2:], generator=torch.Generator().manual_seed(4), requires_grad=True)
    loss.uncertainty = u
    weighted, grads = _grads(loss, outputs, targets)
    assert weighted.item() > plain.item() + 1e-4                          # w = 1 + U >= 1 scales the errors up
    assert u.grad is None and all(g is not None for g in grads[:3])      # gradient into the logits, not into U


# ----------------------------------------------------------------------------------------------- distance loss

def test_deep_supervision_spacings_scale_with_the_pooling():
    scales = [[1.0, 1.0, 1.0], [1.0, 0.5, 0.5], [0.5, 0.25, 0.25]]
    assert deep_supervision_spacings([2.0, 0.5, 0.5], scales) == [(2.0, 0.5, 0.5), (2.0, 1.0, 1.0), (4.0, 2.0, 2.0)]
    assert deep_supervision_spacings((1.0, 2.0), None) == [(1.0, 2.0)]


def test_distance_ds_loss_is_the_weighted_sum_of_core_losses():
    outputs, targets = _ds_batch(seed=5)
    spacings = deep_supervision_spacings((2.0, 1.0, 1.0), [(1, 1, 1), (1, 0.5, 0.5), (0.5, 0.25, 0.25),
                                                          (0.25, 0.125, 0.125)])
    loss = DistanceWeightedLoss(spacings, w0=10.0, sigma=3.0, weight_factors=DS_WEIGHTS)
    expected = 0.0
    for i, (lam, o, t, sp) in enumerate(zip(DS_WEIGHTS[:3], outputs, targets, spacings)):
        w = distance_weight_map(t, sp, sigma=3.0, w0=10.0)
        assert torch.equal(loss.weights(t, i), w)
        expected = expected + lam * (weighted_soft_dice_loss(o, t, w) + weighted_cross_entropy(o, t, w))
    assert loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    batch = DistanceWeightedLoss(spacings, 10.0, 3.0, DS_WEIGHTS, batch_dice=True)
    w0 = distance_weight_map(targets[0], spacings[0], sigma=3.0, w0=10.0)
    single = weighted_soft_dice_loss(outputs[0], targets[0], w0, batch_dice=True) + weighted_cross_entropy(
        outputs[0], targets[0], w0)
    assert batch(outputs[0], targets[0]).item() == pytest.approx(single.item(), rel=1e-6)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_distance_loss_with_w0_zero_is_nnunet_dice_ce(batch_dice):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    outputs, targets = _ds_batch(seed=6)
    nnunet = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False,
                                                    "ddp": False}, {}, weight_ce=1, weight_dice=1,
                                                   dice_class=MemoryEfficientSoftDiceLoss), DS_WEIGHTS)
    ours = DistanceWeightedLoss([(1.0, 1.0, 1.0)] * 4, w0=0.0, sigma=5.0, weight_factors=DS_WEIGHTS,
                                batch_dice=batch_dice)
    assert ours(outputs, targets).item() == pytest.approx(nnunet(outputs, targets).item(), rel=1e-5)


def test_distance_weights_use_the_coarser_spacing_of_downsampled_targets():
    t = torch.zeros(1, 1, 4, 4, 12, dtype=torch.long)
    t[..., 6:] = 1                                             # boundary between x = 5 and x = 6
    loss = DistanceWeightedLoss([(1.0, 1.0, 1.0), (2.0, 2.0, 2.0)], w0=4.0, sigma=3.0)
    fine, coarse = loss.weights(t, 0), loss.weights(t, 1)
    # x = 2 is 3 voxels from the boundary voxel x = 5: 3 mm at index 0, 6 mm at index 1
    assert fine[0, 0, 0, 0, 2].item() == pytest.approx(1 + 4 * math.exp(-9 / 18), rel=1e-6)
    assert coarse[0, 0, 0, 0, 2].item() == pytest.approx(1 + 4 * math.exp(-36 / 18), rel=1e-6)


# ----------------------------------------------------------------------------------------------- gradients

def _grads(loss, outputs, targets):
    xs = [o.clone().requires_grad_(True) for o in outputs]
    value = loss(xs, targets)
    value.backward()
    return value, [x.grad for x in xs]


@pytest.mark.parametrize("kind", ["lovasz", "lovasz_only", "distance"])
@pytest.mark.parametrize("all_background", [False, True])
def test_gradients_are_finite_and_nonzero(kind, all_background):
    outputs, targets = _ds_batch(seed=7)
    if all_background:
        targets = [torch.zeros_like(t) for t in targets]
    if kind == "distance":
        loss = DistanceWeightedLoss([(2.0, 1.0, 1.0), (2.0, 2.0, 2.0), (4.0, 4.0, 4.0), (8.0, 8.0, 8.0)],
                                    weight_factors=DS_WEIGHTS)
    else:
        loss = UncertaintyLovaszLoss(_fallback, DS_WEIGHTS, ce_weight=1.0 if kind == "lovasz" else 0.0)
        loss.uncertainty = torch.rand((2,) + outputs[0].shape[2:], generator=torch.Generator().manual_seed(8))
    value, grads = _grads(loss, outputs, targets)
    assert torch.isfinite(value)
    for lam, g in zip(DS_WEIGHTS, grads):
        if lam == 0:
            assert g is None or torch.count_nonzero(g) == 0           # the lowest output is not supervised
        else:
            assert torch.isfinite(g).all() and g.abs().sum() > 0


# ----------------------------------------------------------------------------------------------- trainers

def _trainer(name, fold, plans="nnextTinyPlans"):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args("501", "3d_fullres", fold, name, plans, device=torch.device("cpu"))
    trainer.initialize()
    return trainer


def test_lovasz_trainer_knobs_loss_and_metadata(chest_dataset, nnunet_dirs, monkeypatch, plans_with_options):
    plans = plans_with_options(nnunet_dirs, chest_dataset.name, ["lovasz.ce_weight=0.25", "uncertainty_loss.samples=3"],
                               "nnextTinyPlansLov")
    trainer = _trainer("UncertaintyLovaszTrainer", 4, plans)
    assert type(trainer.loss) is UncertaintyLovaszLoss and trainer.loss.ce_weight == 0.25
    assert trainer.loss.weight_factors is not None and trainer.loss.weight_factors[-1] == 0
    meta = trainer.checkpoint_metadata()
    assert meta["lovasz_ce_weight"] == 0.25 and meta["mc_samples"] == 3 and meta["refresh"] == 1
    assert meta["trainer"] == "UncertaintyLovaszTrainer" and "dropout_p" in meta
    assert meta["options"]["lovasz"] == {"ce_weight": 0.25}
    assert meta["options"]["uncertainty_loss"] == {"samples": 3, "refresh": 1, "scale": "none"}
    from nnunet_ext.errors import InputError
    from nnunet_ext.planners.plans_edit import write_options

    with pytest.raises(InputError, match="lovasz.ce_weight: must be >= 0, got -1"):
        write_options(nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name / "nnextTinyPlans.json",
                      ["lovasz.ce_weight=-1"], None, "nnextTinyPlansBad")


def test_distance_trainer_weights_at_deep_supervision_resolution(chest_dataset, nnunet_dirs, monkeypatch,
                                                                  plans_with_options):
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

    plans = plans_with_options(nnunet_dirs, chest_dataset.name, ["distance.sigma=6"], "nnextTinyPlansDT6")
    trainer = _trainer("DistanceTransformTrainer", 3, plans)
    cm = trainer.configuration_manager
    strides = np.cumprod(np.vstack(cm.pool_op_kernel_sizes), axis=0)[:-1]
    expected_spacings = [tuple(float(s) for s in np.asarray(cm.spacing) * f) for f in strides]
    loss = trainer.loss
    assert type(loss) is DistanceWeightedLoss and loss.sigma == 6.0 and loss.w0 == 10.0
    assert loss.spacings == expected_spacings and len(loss.weight_factors) == len(expected_spacings)
    assert any(f.max() > 1 for f in strides[1:])                           # the test needs real downsampling
    meta = trainer.checkpoint_metadata()
    assert meta["dt_sigma"] == 6.0 and meta["dt_w0"] == 10.0 and meta["dt_spacings"] == [list(s) for s in
                                                                                        expected_spacings]
    # a target downsampled by nnU-Net's own transform gets weights computed with the scaled spacing
    target = _blob_target(batch=1, shape=tuple(cm.patch_size), seed=9)[0]
    targets = DownsampleSegForDSTransform(trainer._get_deep_supervision_scales())(segmentation=target)["segmentation"]
    for i in range(1, len(targets)):
        t = targets[i][None]
        w = loss.weights(t, i)
        assert torch.equal(w, distance_weight_map(t, expected_spacings[i], sigma=6.0, w0=10.0))
        assert not torch.allclose(w, distance_weight_map(t, cm.spacing, sigma=6.0, w0=10.0))
    with pytest.raises(ValueError, match="distance.sigma: must be > 0, got 0"):
        plans_with_options(nnunet_dirs, chest_dataset.name, ["distance.sigma=0"], "nnextTinyPlansDT0")


@pytest.mark.parametrize("trainer,fold,env,log_line", [
    ("UncertaintyLovaszTrainer", "3", ["uncertainty_loss.samples=2", "lovasz.ce_weight=0.5"],
     "uncertainty-weighted Lovasz loss: L = Lovasz[w = 1 + U] + 0.5 * CE, K = 2 MC passes, refresh every 1"),
    ("DistanceTransformTrainer", "4", ["distance.w0=5", "distance.sigma=8"],
     "distance-transform loss: L = Dice[w] + CE[w], w = 1 + 5.0 * exp(-d^2 / (2 * 8.0^2)), d in mm"),
])
def test_nnunetv2_train_runs(chest_dataset, nnunet_dirs, trainer, fold, env, log_line, plans_with_options):
    plans = plans_with_options(nnunet_dirs, chest_dataset.name, env, f"nnextTinyPlans{trainer[:4]}")
    proc = subprocess.run([nnunet_command("nnUNetv2_train"), "501", "3d_fullres", fold, "-tr", trainer, "-p", plans,
                           "-device", "cpu", "--disable_checkpointing"],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = nnunet_dirs["nnUNet_results"] / chest_dataset.name / f"{trainer}__{plans}__3d_fullres" / f"fold_{fold}"
    logs = [p.read_text() for p in folder.glob("training_log_*.txt")]
    log = next(text for text in logs if "train_loss" in text)
    assert log_line in log
    losses = [float(line.split()[-1]) for line in log.splitlines() if "train_loss" in line]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)   # 2 epochs from the plans
    if trainer == "DistanceTransformTrainer":  # every batch brought its weights from the data pipeline
        assert re.search(r"distance weights: [1-9]\d* batches from the data pipeline, 0 computed in the loss", log)
