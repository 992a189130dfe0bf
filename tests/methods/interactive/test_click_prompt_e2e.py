"""Click-prompt trainers through plain nnU-Net commands on head-and-neck phantoms (TinyPlanner, 1 epoch x 3
iterations): stage 1 (ClickPromptTrainer) -> stage 3 (ClickPromptErrorTrainer, AdamW + warm-up cosine) started
with ``-pretrained_weights`` -> plain ``nnUNetv2_predict`` (automatic branch, prompts zero-filled) and
``nnext predict -m interactive`` (automatic branch = stock; clicks change the prediction; bad clicks refused)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image

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


@pytest.fixture(scope="module")
def stage3_model(headneck_dataset, nnunet_dirs):
    """(stage-1 checkpoint, stage-3 model folder, stage-3 nnUNetv2_train stdout)."""
    results = nnunet_dirs["nnUNet_results"] / headneck_dataset.name
    _run([_cmd("nnUNetv2_train"), str(HN_ID), "3d_fullres", "0", "-tr", "ClickPromptTrainer", "-p", TINY,
          "-device", "cpu"])
    stage1 = results / f"ClickPromptTrainer__{TINY}__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    # stage 3 with the paper's AdamW: a plans option (stage 1 recorded its own options in its checkpoint)
    from nnunet_ext.planners.plans_edit import write_options

    write_options(nnunet_dirs["nnUNet_preprocessed"] / headneck_dataset.name / f"{TINY}.json", ["optimizer.name=adamw"])
    proc = _run([_cmd("nnUNetv2_train"), str(HN_ID), "3d_fullres", "0", "-tr", "ClickPromptErrorTrainer", "-p",
                 TINY, "-device", "cpu", "-pretrained_weights", str(stage1)])
    return stage1, results / f"ClickPromptErrorTrainer__{TINY}__3d_fullres", proc.stdout


def test_stages_pretrained_weights_and_plain_predict(headneck_dataset, stage3_model, tmp_path):
    stage1, model3, stdout = stage3_model
    ck1 = torch.load(stage1, map_location="cpu", weights_only=False)
    assert ck1["nnext"]["click_stage"] == 1 and ck1["nnext"]["prompt_classes"] == [1, 2]
    first = next(v for k, v in ck1["network_weights"].items() if k.endswith("weight") and v.ndim == 5)
    assert first.shape[1] == 6  # CT, PET, GTVp +, GTVn +, GTVp -, GTVn - prompts (split layout)
    assert ck1["nnext"]["prompt_layout"] == "split" and ck1["nnext"]["n_prompt_channels"] == 4

    assert "Loading pretrained weights from file" in stdout
    assert "clicks.transfer_heads: also copied" in stdout  # nnUNetv2_train's loader, wrapped: heads carried over
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


INTERACTIVE = ["-d", str(HN_ID), "-c", "3d_fullres", "-tr", "ClickPromptErrorTrainer", "-p", TINY, "-f", "0",
               "-device", "cpu"]


def test_interactive_predictor(headneck_dataset, stage3_model, tmp_path, capsys):
    images = headneck_dataset / "imagesTs"
    case = next(images.glob("*_0000.nii.gz")).name.replace("_0000.nii.gz", "")
    deterministic = ["--n-samples", "1", "--tta", "none", "--dropout-p", "0", "--blend", "logits"]
    assert main(["predict", "-m", "stock", "-i", str(images), "-o", str(tmp_path / "stock"), *INTERACTIVE,
                 "--disable_tta"]) == 0
    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "auto"), *INTERACTIVE,
                 *deterministic]) == 0
    stock, _ = read_image(tmp_path / "stock" / f"{case}.nii.gz")
    auto, _ = read_image(tmp_path / "auto" / f"{case}.nii.gz")
    assert np.array_equal(stock, auto), "no clicks = the automatic branch (prompts zero)"
    assert not (tmp_path / "auto" / f"{case}_clicks.json").exists()

    label_centre = [20, 20, 8]  # voxel (x, y, z) inside the 16 x 40 x 40 phantom
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps({case: [{"point": label_centre, "space": "voxel", "label": "GTVp"},
                                         {"point": [4, 4, 2], "space": "voxel", "label": "GTVn", "positive": False}]}))
    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "clicked"), *INTERACTIVE,
                 *deterministic, "--clicks", str(clicks)]) == 0
    used = json.loads((tmp_path / "clicked" / f"{case}_clicks.json").read_text())
    assert [c["label"] for c in used["clicks"]] == ["GTVp", "GTVn"] and used["radius_voxels"] == 3.0
    u_auto, _ = read_image(tmp_path / "auto" / f"{case}_uncertainty.nii.gz")
    u_click, _ = read_image(tmp_path / "clicked" / f"{case}_uncertainty.nii.gz")
    assert not np.allclose(u_auto, u_click), "the prompt channels must reach the network"

    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "pruned"), *INTERACTIVE,
                 *deterministic, "--clicks", str(clicks), "--prune-unclicked", "5"]) == 0
    seg_click, _ = read_image(tmp_path / "clicked" / f"{case}.nii.gz")
    seg_pruned, _ = read_image(tmp_path / "pruned" / f"{case}.nii.gz")
    dropped = json.loads((tmp_path / "pruned" / f"{case}_clicks.json").read_text())["pruned_components"]
    assert ((seg_click == 1) & (seg_pruned != 1)).sum() == sum(d["voxels"] for d in dropped if d["label"] == 1)
    assert np.array_equal(seg_click == 2, seg_pruned == 2)  # GTVn has only a negative click: untouched

    clicks.write_text(json.dumps([{"point": [400, 4, 2], "space": "voxel", "label": "GTVp"}]))
    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "bad"), *INTERACTIVE,
                 "--clicks", str(clicks)]) == 2
    assert "outside the image" in capsys.readouterr().err
    clicks.write_text(json.dumps([{"point": [4, 4, 2], "space": "voxel", "label": "GTVx"}]))
    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "bad"), *INTERACTIVE,
                 "--clicks", str(clicks)]) == 2
    assert "click 0: class 'GTVx' is not a foreground class" in capsys.readouterr().err


def test_clicks_eval(headneck_dataset, stage3_model, tmp_path):
    import csv

    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.methods.interactive.click_simulation import components

    images, refs = headneck_dataset / "imagesTs", headneck_dataset / "labelsTs"
    args = ["-d", str(HN_ID), "-c", "3d_fullres", "-p", TINY, "-f", "0", "-device", "cpu"]
    assert main(["clicks-eval", "-i", str(images), "-ref", str(refs), "-o", str(tmp_path / "err"), *args,
                 "--max-clicks", "2", "--protocol", "errors"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "err" / "clicks_eval.csv")))
    assert [(r["step"], r["class"]) for r in rows] == [(s, c) for s in "012" for c in ("GTVp", "GTVn")]
    assert all(int(r["clicks_class"]) <= int(r["step"]) for r in rows)
    assert (tmp_path / "err" / "dice_vs_clicks.png").stat().st_size > 0
    # step 0 is the automatic branch: the same Dice as -m interactive without clicks
    assert main(["predict", "-m", "interactive", "-i", str(images), "-o", str(tmp_path / "auto"), *INTERACTIVE,
                 "--n-samples", "1", "--tta", "none", "--dropout-p", "0"]) == 0
    case = rows[0]["case"]
    ref, g = read_image(refs / f"{case}.nii.gz")
    auto, _ = read_image(tmp_path / "auto" / f"{case}.nii.gz")
    for r in rows[:2]:
        value = 1 if r["class"] == "GTVp" else 2
        assert float(r["dice"]) == pytest.approx(compute_metrics(ref == value, auto == value, g.spacing[::-1])["dice"])

    assert main(["clicks-eval", "-i", str(images), "-ref", str(refs), "-o", str(tmp_path / "each"), *args,
                 "--protocol", "each-lesion", "--save-steps"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "each" / "clicks_eval.csv")))
    lesions = {"GTVp": components(ref == 1)[1], "GTVn": components(ref == 2)[1]}
    assert {r["class"]: int(r["clicks_class"]) for r in rows if r["step"] == "1"} == lesions
    assert (tmp_path / "each" / "steps" / f"{case}_step1.nii.gz").is_file()
    assert main(["clicks-eval", "-i", str(images), "-ref", str(refs), "-o", str(tmp_path / "each"), *args]) == 2


def test_session_tile_local_updates_equal_full_prediction(headneck_dataset, stage3_model, tmp_path):
    import SimpleITK as sitk

    from nnunet_ext.methods.interactive.session import InteractiveSession

    files = sorted((headneck_dataset / "imagesTs").glob("*.nii.gz"))
    wide = []  # the case twice along x: 16 x 40 x 80 voxels -> 3 windows of 40 along x
    for f in files:
        img = sitk.ReadImage(str(f))
        arr = sitk.GetArrayFromImage(img)
        out = sitk.GetImageFromArray(np.concatenate([arr, arr[..., ::-1]], -1))
        out.SetSpacing(img.GetSpacing()), out.SetOrigin(img.GetOrigin()), out.SetDirection(img.GetDirection())
        wide.append(out)
    s = InteractiveSession.from_model(HN_ID, "3d_fullres", plans=TINY, folds=(0,), device="cpu")
    s.set_image(wide)
    assert len(s._slicers) == 3
    auto = s.segmentation.copy()
    box = s.add_point_interaction((5, 20, 8), "GTVp")
    assert s.last_recomputed == 1 and box[2].start == 0 and box[2].stop <= 40 and box[0] == slice(0, 16)
    local_sum, local_seg, local_u = s._sum.clone(), s.segmentation.copy(), s.uncertainty.copy()
    s.recompute_all()
    assert s.last_recomputed == 3
    assert np.allclose(local_sum.numpy(), s._sum.numpy(), atol=1e-4) and np.array_equal(local_seg, s.segmentation)
    assert np.allclose(local_u, s.uncertainty, atol=1e-5)
    s.add_point_interaction((70, 20, 8), "GTVn", include_interaction=False)
    assert s.last_recomputed == 1
    s.undo()
    s.undo()
    assert np.array_equal(s.segmentation, auto)
    assert s.undo() is None and s.reset_interactions() is None
    with pytest.raises(Exception, match="outside the image"):
        s.add_point_interaction((500, 20, 8), "GTVp")


PREV = "nnextTinyPrevPlans"


@pytest.fixture(scope="module")
def previous_model(headneck_dataset, nnunet_dirs):
    """A stage-3 model with previous-prediction channels (plans copy with clicks.previous_prediction = true)."""
    from nnunet_ext.planners.plans_edit import write_options

    write_options(nnunet_dirs["nnUNet_preprocessed"] / headneck_dataset.name / f"{TINY}.json",
                  ["clicks.previous_prediction=true"], new_identifier=PREV)
    _run([_cmd("nnUNetv2_train"), str(HN_ID), "3d_fullres", "0", "-tr", "ClickPromptErrorTrainer", "-p", PREV,
          "-device", "cpu"])
    return nnunet_dirs["nnUNet_results"] / headneck_dataset.name / f"ClickPromptErrorTrainer__{PREV}__3d_fullres"


def test_previous_prediction_channels_end_to_end(headneck_dataset, previous_model, tmp_path):
    """The option is recorded in the checkpoint; -m interactive feeds the automatic prediction to the previous
    channels of the clicked pass; clicks-eval feeds each step the step before; the session replays on undo."""
    import SimpleITK as sitk

    from nnunet_ext.methods.interactive.clicks import Click
    from nnunet_ext.methods.interactive.interactive_predictor import InteractiveMethod
    from nnunet_ext.methods.interactive.session import InteractiveSession
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.method import CaseContext

    ckpt = torch.load(previous_model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["options"]["clicks"]["previous_prediction"] is True
    method = InteractiveMethod.load(HN_ID, "3d_fullres", plans=PREV, folds=(0,))
    assert (method.n_image_channels, method.n_prompt, method.n_previous) == (2, 4, 2)
    case = list_cases(str(headneck_dataset / "imagesTs"), method.dataset_json)[0]
    ctx = CaseContext.for_case(case.case_id, 0)
    prepared = method.prepare(case)
    auto = method.predict_network(method.with_channels(prepared.data), ctx).logits.argmax(0).numpy()
    prepared.clicks = [Click((20, 20, 8), "GTVp", True, "voxel")]
    prompt = method.prompt_for(prepared.clicks, prepared.data.shape[1:], prepared.properties)
    prepared.data = method.with_channels(prepared.data, prompt)
    clicked = method.predict_case(prepared, ctx)
    assert np.array_equal(prepared.previous, auto)  # the automatic prediction, computed first
    assert np.array_equal(prepared.data[6:], np.stack([auto == 1, auto == 2]).astype(np.float32))
    without = method.predict_network(method.with_channels(prepared.data, prompt), ctx)  # previous channels zero
    assert not np.allclose(without.probabilities.numpy(), method.predict_network(prepared.data, ctx).probabilities
                           .numpy()), "the previous channels must reach the network"
    assert clicked.segmentation.shape == read_image(case.files[0])[0].shape

    args = ["-d", str(HN_ID), "-c", "3d_fullres", "-p", PREV, "-f", "0", "-device", "cpu"]
    assert main(["clicks-eval", "-i", str(headneck_dataset / "imagesTs"), "-ref", str(headneck_dataset / "labelsTs"),
                 "-o", str(tmp_path / "err"), *args, "--max-clicks", "2"]) == 0
    assert (tmp_path / "err" / "summary.json").is_file()

    s = InteractiveSession.from_model(HN_ID, "3d_fullres", plans=PREV, folds=(0,), device="cpu")
    s.set_image([sitk.ReadImage(str(f)) for f in case.files])
    first = s.segmentation.copy()
    s.add_point_interaction((20, 20, 8), "GTVp")
    assert s._previous.shape[0] == 2 and s._previous.any() == bool((first > 0).any())
    s.add_point_interaction((4, 4, 2), "GTVn", include_interaction=False)
    s.undo()
    s.undo()
    assert np.array_equal(s.segmentation, first) and not s._previous.any()


def _error_trainer(dataset_folder, nnunet_dirs, plans_name, trainer_class):
    pre = nnunet_dirs["nnUNet_preprocessed"] / dataset_folder.name
    plans = json.loads((pre / f"{plans_name}.json").read_text())
    plans["continue_training"] = False  # what nnU-Net's run_training adds before building the trainer
    tr = trainer_class(plans, "3d_fullres", 0, json.loads((pre / "dataset.json").read_text()),
                       device=torch.device("cpu"))
    tr.initialize()
    return tr


def test_component_loss_weight_from_the_plans_reaches_stage3_training(headneck_dataset, nnunet_dirs,
                                                                      plans_with_options):
    """clicks.component_loss_weight = 1 in the plans: stage 3's loss is the wrapped one and records the weight in
    the checkpoint metadata; each training step sets the clicked-component mask while nnU-Net computes the loss
    (non-empty: the untrained network misses the cube) and clears it after; stage 1 with the same plans keeps
    nnU-Net's loss."""
    from nnunet_ext.methods.interactive.click_prompt_trainer import ClickPromptErrorTrainer, ClickPromptTrainer
    from nnunet_ext.methods.interactive.component_loss import ClickedComponentLoss

    plans = plans_with_options(nnunet_dirs, headneck_dataset.name, ["clicks.component_loss_weight=1"],
                               "nnextTinyCompPlans")
    torch.manual_seed(0)
    np.random.seed(0)
    tr = _error_trainer(headneck_dataset, nnunet_dirs, plans, ClickPromptErrorTrainer)
    assert isinstance(tr.loss, ClickedComponentLoss) and tr.loss.weight == 1.0
    assert tr.checkpoint_metadata()["component_loss_weight"] == 1.0
    seen = []

    class Spy(torch.nn.Module):  # nnU-Net's loss, noting the mask set while it runs
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, o, t):
            seen.append(None if tr.loss.mask is None else int(tr.loss.mask.sum()))
            return self.base(o, t)

    tr.loss.base = Spy(tr.loss.base)
    patch = tuple(tr.configuration_manager.patch_size)
    full = torch.zeros((2, 1) + patch)
    full[:, :, 2:-2, 4:-4, 4:-4] = 1
    targets = [full[(slice(None), slice(None)) + tuple(slice(None, None, int(round(1 / s))) for s in scale)]
               for scale in tr._get_deep_supervision_scales()]
    data = torch.cat([torch.randn((2, 2) + patch, generator=torch.Generator().manual_seed(1)) + full,
                      torch.zeros((2, 4) + patch)], 1)
    out = tr.train_step({"data": data, "target": targets})
    assert np.isfinite(out["loss"]) and tr.loss.mask is None
    assert len(seen) == 1 and seen[0] and seen[0] > 0
    stage1 = _error_trainer(headneck_dataset, nnunet_dirs, plans, ClickPromptTrainer)
    assert not isinstance(stage1.loss, ClickedComponentLoss)
