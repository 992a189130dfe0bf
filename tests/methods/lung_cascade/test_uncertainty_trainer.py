"""UncertaintyTrainer: the deep-supervision loss wrapper and a real nnUNetv2_train run."""
import os
import subprocess

import torch

from nnunet_ext.io.paths import nnunet_command
from nnunet_ext.methods.lung_cascade.uncertainty_trainer import UncertaintyAdaptiveLoss
from nnunet_ext.methods.lung_cascade.weighted_losses import uncertainty_adaptive_loss, weighted_soft_dice_loss


def test_loss_falls_back_without_uncertainty_and_resizes_for_deep_supervision():
    torch.manual_seed(0)
    fallback = lambda o, t: torch.tensor(123.0)  # noqa: E731
    loss = UncertaintyAdaptiveLoss(fallback, weight_factors=(0.6, 0.4, 0.0))
    outs = [torch.randn(2, 2, 8, 8, 8), torch.randn(2, 2, 4, 4, 4), torch.randn(2, 2, 2, 2, 2)]
    tgts = [torch.randint(0, 2, (2, 1, s, s, s)) for s in (8, 4, 2)]
    assert loss(outs, tgts).item() == 123.0
    u = torch.rand(2, 8, 8, 8)
    loss.uncertainty = u
    u_half = torch.nn.functional.interpolate(u[:, None], size=(4, 4, 4), mode="area")[:, 0]
    expected = 0.6 * uncertainty_adaptive_loss(outs[0], tgts[0], u) + 0.4 * uncertainty_adaptive_loss(
        outs[1], tgts[1], u_half)
    assert torch.allclose(loss(outs, tgts), expected)
    loss.uncertainty = torch.zeros(2, 8, 8, 8)  # U = 0 -> alpha = 1 -> pure soft Dice
    plain = 0.6 * weighted_soft_dice_loss(outs[0], tgts[0], torch.ones(2, 8, 8, 8)) + 0.4 * weighted_soft_dice_loss(
        outs[1], tgts[1], torch.ones(2, 4, 4, 4))
    assert torch.allclose(loss(outs, tgts), plain, atol=1e-6)


def test_nnunetv2_train_with_uncertainty_trainer(chest_dataset, nnunet_dirs, plans_with_options):
    plans = plans_with_options(nnunet_dirs, chest_dataset.name, ["uncertainty_loss.samples=3"], "nnextTinyPlansK3")
    proc = subprocess.run(
        [
            nnunet_command("nnUNetv2_train"),
            "501",
            "3d_fullres",
            "1",
            "-tr",
            "UncertaintyTrainer",
            "-p",
            plans,
            "-device",
            "cpu",
            "--disable_checkpointing",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fold = nnunet_dirs["nnUNet_results"] / chest_dataset.name / f"UncertaintyTrainer__{plans}__3d_fullres" / "fold_1"
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "uncertainty-adaptive loss: K = 3 MC passes" in log
    losses = [float(line.split()[-1]) for line in log.splitlines() if "train_loss" in line]
    assert len(losses) == 2 and all(l == l for l in losses)  # finite, 2 epochs from the plans


def test_bad_sample_count_is_rejected(chest_dataset, nnunet_dirs):
    import json

    path = nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name / "nnextTinyPlansK1.json"
    plans = json.loads((path.parent / "nnextTinyPlans.json").read_text())
    plans["configurations"]["3d_fullres"].setdefault("nnext_training", {})["uncertainty_loss"] = {"samples": 1}
    path.write_text(json.dumps(plans))  # as a hand-edited plans file: the trainer validates it
    proc = subprocess.run(
        [
            nnunet_command("nnUNetv2_train"),
            "501",
            "3d_fullres",
            "2",
            "-tr",
            "UncertaintyTrainer",
            "-p",
            "nnextTinyPlansK1",
            "-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.returncode != 0 and "uncertainty_loss.samples: must be >= 2, got 1" in proc.stderr


def test_legacy_variable_is_refused_naming_the_plans_key(chest_dataset, nnunet_dirs):
    proc = subprocess.run(
        [
            nnunet_command("nnUNetv2_train"),
            "501",
            "3d_fullres",
            "2",
            "-tr",
            "UncertaintyTrainer",
            "-p",
            "nnextTinyPlans",
            "-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NNEXT_UNC_SAMPLES": "3"},
    )
    assert proc.returncode != 0
    assert (
        "NNEXT_UNC_SAMPLES is no longer read" in proc.stderr and "--set uncertainty_loss.samples=VALUE" in proc.stderr
    )
