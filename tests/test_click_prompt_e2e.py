"""Click-prompt trainers through plain nnU-Net commands on head-and-neck phantoms (TinyPlanner, 1 epoch x 3
iterations): stage 1 (ClickPromptTrainer) -> stage 3 (ClickPromptErrorTrainer, AdamW + warm-up cosine) started
with ``-pretrained_weights`` -> plain ``nnUNetv2_predict`` (automatic branch, prompts zero-filled)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ext.imageio import read_image

HN_ID = 521
TINY = "nnextTinyPlans"
pytestmark = pytest.mark.slow


def _cmd(name):
    return str(Path(sys.executable).parent / name)


def _run(cmd, **env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def headneck_dataset(nnunet_dirs):
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    folder = write_dataset("headneck", HN_ID, num_train=5, num_test=1, seed=0, size=(16, 40, 40), progress=False)
    plan_and_preprocess(HN_ID, "TinyPlanner", ["3d_fullres"], num_processes=1,
                        schedule={"num_epochs": 1, "num_iterations_per_epoch": 3, "num_val_iterations_per_epoch": 1})
    return folder


def test_stages_pretrained_weights_and_plain_predict(headneck_dataset, nnunet_dirs, tmp_path):
    results = nnunet_dirs["nnUNet_results"] / headneck_dataset.name
    _run([_cmd("nnUNetv2_train"), str(HN_ID), "3d_fullres", "0", "-tr", "ClickPromptTrainer", "-p", TINY,
          "-device", "cpu"])
    stage1 = results / f"ClickPromptTrainer__{TINY}__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    ck1 = torch.load(stage1, map_location="cpu", weights_only=False)
    assert ck1["nnext"]["click_stage"] == 1 and ck1["nnext"]["prompt_classes"] == [1, 2]
    first = next(v for k, v in ck1["network_weights"].items() if k.endswith("weight") and v.ndim == 5)
    assert first.shape[1] == 4  # CT, PET, GTVp prompt, GTVn prompt

    proc = _run([_cmd("nnUNetv2_train"), str(HN_ID), "3d_fullres", "0", "-tr", "ClickPromptErrorTrainer", "-p",
                 TINY, "-device", "cpu", "-pretrained_weights", str(stage1)], NNEXT_OPTIMIZER="adamw")
    assert "Loading pretrained weights from file" in proc.stdout
    model3 = results / f"ClickPromptErrorTrainer__{TINY}__3d_fullres"
    ck3 = torch.load(model3 / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ck3["nnext"]["click_stage"] == 3 and ck3["nnext"]["optimizer"] == "adamw"
    assert "betas" in ck3["optimizer_state"]["param_groups"][0]  # AdamW, not nnU-Net's SGD
    assert ck3["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # warm-up epoch 0: 1e-3 / 10
    log = next((model3 / "fold_0").glob("training_log_*.txt")).read_text()
    assert "click prompts: stage 3, source errors, p_prompt 1.0" in log

    out = tmp_path / "pred"
    _run([_cmd("nnUNetv2_predict"), "-i", str(headneck_dataset / "imagesTs"), "-o", str(out), "-d", str(HN_ID),
          "-c", "3d_fullres", "-f", "0", "-tr", "ClickPromptErrorTrainer", "-p", TINY, "-device", "cpu",
          "--disable_tta", "-npp", "1", "-nps", "1"])
    image = next((headneck_dataset / "imagesTs").glob("*_0000.nii.gz"))
    seg, g_seg = read_image(out / image.name.replace("_0000.nii.gz", ".nii.gz"))
    img, g_img = read_image(image)
    assert seg.shape == img.shape and g_seg.matches(g_img) and set(np.unique(seg)) <= {0, 1, 2}
