"""End to end through plain nnU-Net commands: nnUNetv2_train / nnUNetv2_predict with -tr MCDropoutTrainer."""
import json
import os
import subprocess

import numpy as np
import torch

import nnunet_ext
from nnunet_ext.io.imageio import read_image
from nnunet_ext.io.paths import nnunet_command


def test_plans_are_tiny(chest_dataset, nnunet_dirs):
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name / "nnextTinyPlans.json").read_text())
    cfg = plans["configurations"]["3d_fullres"]
    assert cfg["batch_size"] == 2
    assert all(p <= c for p, c in zip(cfg["patch_size"], (32, 64, 64)))
    assert max(cfg["architecture"]["arch_kwargs"]["features_per_stage"]) <= 32
    assert "3d_lowres" not in plans["configurations"]
    assert plans["nnext_training"]["num_epochs"] == 2


def test_train_records_dropout_and_honours_schedule(trained_chest_model):
    fold = trained_chest_model / "fold_0"
    ckpt = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["dropout_p"] == 0.05
    assert ckpt["nnext"]["nnunet_ext_version"] == nnunet_ext.__version__  # named when another version loads it
    assert ckpt["current_epoch"] == 2  # 2 epochs from the plans' nnext_training, not nnU-Net's 1000
    assert any(k.endswith("weight") for k in ckpt["network_weights"])
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "MC dropout: p = 0.05" in log
    assert (fold / "validation" / "summary.json").is_file()


def test_plain_predict_finds_trainer_and_keeps_geometry(trained_chest_model, chest_dataset, tmp_path):
    out = tmp_path / "pred"
    cmd = [nnunet_command("nnUNetv2_predict"), "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501",
           "-c", "3d_fullres", "-f", "0", "-tr", "MCDropoutTrainer", "-p", "nnextTinyPlans", "-device", "cpu",
           "--disable_tta", "-npp", "1", "-nps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    images = sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))
    assert len(images) == 2
    for image_file in images:
        case = image_file.name[: -len("_0000.nii.gz")]
        seg, g_seg = read_image(out / f"{case}.nii.gz")
        img, g_img = read_image(image_file)
        assert seg.shape == img.shape
        assert g_seg.matches(g_img)
        assert set(np.unique(seg)) <= {0, 1}
