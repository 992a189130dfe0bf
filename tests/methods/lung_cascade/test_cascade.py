"""``nnext predict -m cascade``: stage 1 -> component filter -> ROI crops -> stage 2 -> paste-back.

The stage-1 model is the session's tiny chest model with its foreground output bias raised so that its
highest-scoring voxels form components (a real nnU-Net network, only another bias: the tiny model itself still
predicts background everywhere after 20 iterations). The stage-2 model is ``UncertaintyTrainer`` trained by
``nnUNetv2_train`` on the margin-0 ROI crops of the reference tumours (``nnext roi-dataset``).
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_ext.cli.main import main
from nnunet_ext.core.roi import crop, grow_box
from nnunet_ext.io.imageio import Geometry, read_image, write_image
from nnunet_ext.io.paths import nnunet_command
from nnunet_ext.methods.lung_cascade.component_filter import LungFilterConfig, filter_components

ROI_ID = 610
BIASED = "nnextTinyPlansBiased"
STAGE1 = f"501,3d_fullres,MCDropoutTrainer,{BIASED},0"
STAGE2 = "610,3d_fullres,UncertaintyTrainer,nnextTinyPlans,0"


@pytest.fixture(scope="module")
def stage1_model(trained_chest_model, chest_dataset):
    """Copy of the tiny chest model (plans renamed) whose last seg layer's foreground bias is raised so that
    0.5 % of the first test case's lung voxels are foreground (the lung filter then keeps a component whatever
    the unseeded model learnt; with 0.5 % of all voxels it kept none in one CI run)."""
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    folder = trained_chest_model.parent / f"MCDropoutTrainer__{BIASED}__3d_fullres"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(trained_chest_model, folder)
    p = SlidingWindowEngine(use_mirroring=True, device=torch.device("cpu"), allow_tqdm=False)
    p.load(str(folder), [0])
    first = sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    lung_file = chest_dataset / "lungmasksTs" / first.name.replace("_0000.nii.gz", ".nii.gz")
    # the lung mask goes through nnU-Net's preprocessing as the "segmentation": it lands on the network's grid
    data, lung, _ = p.configuration_manager.preprocessor_class().run_case(
        [str(first)], str(lung_file), p.plans_manager, p.configuration_manager, p.dataset_json)
    logits = StockMethod(p, Sampling(), {}).predict_network(data, CaseContext.for_case("x", 0)).logits
    inside = torch.from_numpy(np.asarray(lung[0]) > 0)
    assert inside.shape == logits.shape[1:] and inside.any()
    shift = -float(torch.quantile((logits[1] - logits[0])[inside].flatten(), 0.995))
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    key = max((k for k in ckpt["network_weights"] if k.startswith("decoder.seg_layers.") and k.endswith(".bias")),
              key=lambda k: int(k.split(".")[2]))
    ckpt["network_weights"][key][1] += shift
    torch.save(ckpt, ckpt_path)
    return folder


@pytest.fixture(scope="module")
def stage2_model(chest_dataset, nnunet_dirs, plans_with_options):
    from nnunet_ext.methods.lung_cascade.roi_dataset import build_roi_dataset
    from nnunet_ext.planners.run import plan_and_preprocess

    roi = build_roi_dataset(501, ROI_ID, margin=0, progress=False)
    plan_and_preprocess(ROI_ID, "TinyPlanner", ["3d_fullres"], num_processes=1)
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / roi.name / "nnextTinyPlans.json").read_text())
    cfg = plans["configurations"]["3d_fullres"]
    assert min(cfg["median_image_size_in_voxels"]) < 8  # the crops are tiny ...
    assert all(p >= f for p, f in zip(cfg["patch_size"], (8, 16, 16)))  # ... the patch and the net are not
    assert cfg["architecture"]["arch_kwargs"]["n_stages"] >= 3
    plans_with_options(nnunet_dirs, roi.name, ["uncertainty_loss.samples=2"], "nnextTinyPlans", "nnextTinyPlans")
    proc = subprocess.run(
        [
            nnunet_command("nnUNetv2_train"),
            str(ROI_ID),
            "3d_fullres",
            "0",
            "-tr",
            "UncertaintyTrainer",
            "-p",
            "nnextTinyPlans",
            "-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = nnunet_dirs["nnUNet_results"] / roi.name / "UncertaintyTrainer__nnextTinyPlans__3d_fullres"
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    losses = [float(line.split()[-1]) for line in log.splitlines() if "train_loss" in line]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses  # TinyPlanner's patch floor: no NaN on tiny crops
    return model


def _cascade(images, out, *extra):
    return main(["predict", "-m", "cascade", "-i", str(images), "-o", str(out), "--stage1", STAGE1, "--stage2",
                 STAGE2, "-device", "cpu", *extra])


def _boxes(log):
    return [tuple(slice(a, b) for a, b in r["box_zyx"]) for r in log["rois"]]


@pytest.fixture(scope="module")
def deterministic_run(stage1_model, stage2_model, chest_dataset, tmp_path_factory):
    """Cascade with deterministic stage 2 (one pass, dropout 0, no TTA), every component (no minimum size), no
    lung filter."""
    out = tmp_path_factory.mktemp("cascade_det")
    assert _cascade(chest_dataset / "imagesTs", out, "--n-samples", "1", "--dropout-p", "0", "--tta", "none",
                    "--uncertainty", "entropy", "--lung-masks", "none", "--top-k", "all", "--min-size", "0",
                    "--save-intermediates",
                    "--save-probabilities", "--png") == 0
    return out


def test_evaluate_and_png_see_only_the_final_segmentation(deterministic_run, chest_dataset, tmp_path):
    """Side outputs (coarse, lung mask, maps) are not mistaken for predictions; one PNG per case."""
    assert sorted(p.name for p in (deterministic_run / "png").glob("*.png")) == ["chest_test_000.png",
                                                                              "chest_test_001.png"]
    assert main(["evaluate", "-ref", str(chest_dataset / "labelsTs"), "-pred", str(deterministic_run), "-o",
                 str(tmp_path / "summary.json"), "-q"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(c["case"] for c in summary["metric_per_case"]) == ["chest_test_000", "chest_test_001"]


def test_stage1_is_the_plain_deterministic_prediction(deterministic_run, chest_dataset, tmp_path):
    assert main(["predict", "-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-o", str(tmp_path), "-d", "501",
                 "-c", "3d_fullres", "-p", BIASED, "-f", "0", "-device", "cpu"]) == 0
    n_components = 0
    for seg_file in sorted(tmp_path.glob("chest_test_*[0-9].nii.gz")):
        stock, _ = read_image(seg_file)
        stage1, _ = read_image(deterministic_run / seg_file.name.replace(".nii.gz", "_coarse.nii.gz"))
        assert np.array_equal(stock, stage1)
        n_components += json.loads((deterministic_run / seg_file.name.replace(".nii.gz", "_cascade.json"))
                                   .read_text())["filter"]["n_components"]
    assert n_components >= 2, "the biased stage-1 model must produce components for these tests to mean something"


def test_stage2_only_sees_rois_and_equals_a_direct_prediction_of_each_crop(deterministic_run, chest_dataset,
                                                                            tmp_path):
    """Inside each ROI (where no other ROI overlaps it) the cascade's segmentation and entropy equal
    ``nnext predict -m tta_mc`` on the crop written as its own image (exact geometry); outside every ROI both are 0."""
    crops_in, crops_out = tmp_path / "in", tmp_path / "out"
    expected = {}
    for image_file in sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz")):
        case = image_file.name[: -len("_0000.nii.gz")]
        image, g = read_image(image_file)
        log = json.loads((deterministic_run / f"{case}_cascade.json").read_text())
        seg, g_seg = read_image(deterministic_run / f"{case}.nii.gz")
        unc, _ = read_image(deterministic_run / f"{case}_uncertainty.nii.gz")
        assert seg.shape == image.shape and g_seg.matches(g)
        kept = [c for c in log["filter"]["components"] if c["kept"]]
        boxes = _boxes(log)
        assert boxes == [grow_box(c["bbox"], 0, image.shape) for c in kept]
        count = np.zeros(image.shape, int)
        for box in boxes:
            count[box] += 1
        covered = count > 0
        for k, box in enumerate(boxes):
            write_image(crop(image, box), g.cropped([s.start for s in box]), crops_in / f"{case}_roi{k}_0000.nii.gz")
            expected[f"{case}_roi{k}"] = (seg[box], unc[box], count[box] == 1)  # compare where no other ROI blends in
        assert not seg[~covered].any() and not unc[~covered].any()
        filtered, _ = read_image(deterministic_run / f"{case}_coarse_filtered.nii.gz")
        stage1, _ = read_image(deterministic_run / f"{case}_coarse.nii.gz")
        assert np.array_equal(filtered, (stage1 > 0).astype(np.uint8))  # no lung mask, Top-K all: all kept
    assert expected, "no ROI was predicted"
    assert main(["predict", "-m", "tta_mc", "-i", str(crops_in), "-o", str(crops_out), "-d", str(ROI_ID), "-c",
                 "3d_fullres", "-tr", "UncertaintyTrainer", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu",
                 "--n-samples", "1", "--dropout-p", "0", "--tta", "none"]) == 0
    compared = 0
    for crop_id, (seg_box, unc_box, alone) in expected.items():
        direct, _ = read_image(crops_out / f"{crop_id}.nii.gz")
        direct_unc, _ = read_image(crops_out / f"{crop_id}_uncertainty.nii.gz")
        assert np.array_equal(direct[alone], seg_box[alone])
        np.testing.assert_allclose(direct_unc[alone], unc_box[alone], atol=1e-5)
        compared += int(alone.sum())
    assert compared > 100


def test_margin_defaults_to_the_stage2_training_crops(deterministic_run):
    settings = json.loads((deterministic_run / "predict_settings.json").read_text())["method_settings"]
    assert settings["stage2_training_margin"] == 0 and settings["margin_vox"] == 0  # roi_info.json of ROI_ID
    assert settings["stage1"]["method"] == "stock" and settings["stage2"]["method"] == "tta_mc"


def test_probabilities_are_background_outside_rois(deterministic_run):
    from nnunet_ext.io.imageio import read_probabilities

    for f in sorted(deterministic_run.glob("*_probabilities.nii.gz")):
        probs, _ = read_probabilities(f)
        log = json.loads(f.with_name(f.name.replace("_probabilities.nii.gz", "_cascade.json")).read_text())
        covered = np.zeros(probs.shape[1:], bool)
        for box in _boxes(log):
            covered[box] = True
        assert np.all(probs[0][~covered] == 1) and np.all(probs[1][~covered] == 0)
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)


def test_lung_filter_top1_margin16_mc_uncertainty_and_resume(stage1_model, stage2_model, chest_dataset, tmp_path):
    """With the phantom lung masks given on another grid (resampled, warned), the cascade's log is exactly the
    component filter's on (stage 1, lung mask); Top-1 gives at most one ROI; MC dropout gives a non-negative
    variance map that is 0 outside the ROI; a second run skips finished cases; --overwrite redoes them."""
    lungs = tmp_path / "lungs"
    for f in sorted((chest_dataset / "lungmasksTs").glob("*.nii.gz")):
        img = sitk.ReadImage(str(f))
        ref = sitk.Image([s + 6 for s in img.GetSize()], img.GetPixelID())  # larger grid, shifted origin
        ref.SetSpacing(img.GetSpacing())
        ref.SetDirection(img.GetDirection())
        ref.SetOrigin(img.TransformIndexToPhysicalPoint([-3, -3, -3]))
        lungs.mkdir(exist_ok=True)
        sitk.WriteImage(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0), str(lungs / f.name))
    out = tmp_path / "out"
    args = ["--lung-masks", str(lungs), "--margin", "16", "--force-margin", "--n-samples", "3",
            "--save-intermediates", "--min-size", "0"]  # the biased stage-1 model's components are small
    with pytest.warns(UserWarning, match="resampled with nearest neighbour"):
        assert _cascade(chest_dataset / "imagesTs", out, *args) == 0
    n_rois = 0
    for f in sorted((chest_dataset / "lungmasksTs").glob("*.nii.gz")):
        case = f.name[: -len(".nii.gz")]
        log = json.loads((out / f"{case}_cascade.json").read_text())
        stage1, g = read_image(out / f"{case}_coarse.nii.gz")
        lung, _ = read_image(out / f"{case}_lungmask.nii.gz")
        assert np.array_equal(lung, read_image(f)[0]) and log["lung"]["resampled"]
        _, expected = filter_components(
            stage1 > 0, lung, g.spacing[::-1], LungFilterConfig.from_options(top_k=1, min_size=0)
        )
        expected.pop("config")
        assert log["filter"] == json.loads(json.dumps(expected))
        assert len(log["rois"]) == sum(c["kept"] for c in log["filter"]["components"]) <= 1
        unc, _ = read_image(out / f"{case}_uncertainty.nii.gz")
        assert unc.min() >= 0
        covered = np.zeros(unc.shape, bool)
        for box in _boxes(log):
            covered[box] = True
            assert all(b.stop - b.start > 0 for b in box)
        assert not unc[~covered].any()
        if log["rois"]:
            assert unc[covered].max() > 0, "MC dropout with 3 passes must vary somewhere in the ROI"
            n_rois += 1
    assert n_rois >= 1, "the lung filter must keep a component in at least one case for this test to mean something"
    mtime = (out / "chest_test_000.nii.gz").stat().st_mtime_ns
    assert _cascade(chest_dataset / "imagesTs", out, *args) == 0
    assert (out / "chest_test_000.nii.gz").stat().st_mtime_ns == mtime
    assert _cascade(chest_dataset / "imagesTs", out, *args, "--overwrite") == 0
    assert (out / "chest_test_000.nii.gz").stat().st_mtime_ns != mtime


def test_no_kept_component_gives_empty_outputs(trained_chest_model, stage2_model, chest_dataset, tmp_path):
    """No stage-1 component survives the filter (--min-size above any volume, so whatever the unseeded tiny model
    predicts): no ROI, empty segmentation and uncertainty, no crash; every component the log lists was dropped
    for its size."""
    out = tmp_path / "out"
    assert main(["predict", "-m", "cascade", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "--stage1",
                 "501,3d_fullres,MCDropoutTrainer,nnextTinyPlans,0", "--stage2", STAGE2, "-device", "cpu",
                 "--lung-masks", "threshold", "--n-samples", "2", "--min-size", "1e12"]) == 0
    cases = sorted(out.glob("chest_test_*[0-9].nii.gz"))
    assert cases
    for f in cases:
        log = json.loads(f.with_name(f.name.replace(".nii.gz", "_cascade.json")).read_text())
        assert log["rois"] == [] and not any(c["kept"] for c in log["filter"]["components"])
        assert all(c["reason"] == "below_min_size" for c in log["filter"]["components"])
        assert log["lung"]["source"] == "computed (threshold)"
        assert not read_image(f)[0].any()
        assert not read_image(f.with_name(f.name.replace(".nii.gz", "_uncertainty.nii.gz")))[0].any()


@pytest.mark.parametrize("extra, message", [
    (["--stage1", "501,3d_fullres"], "expected D,C,TR,PLANS[,FOLDS]"),
    (["--stage1", "501,3d_fullres,MCDropoutTrainer,nnextTinyPlans,x"], "are not integers or 'all'"),
    (["--stage1", "501,3d_fullres,MCDropoutTrainer,NoPlans", "--stage2", STAGE2], "not found"),
    (["--stage2", STAGE2], "needs --stage1"),
    (["--stage1", STAGE1, "--stage2", STAGE2, "-d", "501"], "it takes its models from --stage1 / --stage2"),
    (["--stage1", STAGE1, "--stage2", STAGE2, "--margin", "16"], "trained on ROI crops with margin 0"),
    (["--stage1", STAGE1, "--stage2", STAGE2, "--lung-masks", "/no/such/dir"],
     "--lung-masks: must be a folder or one of"),
    (["--stage1", STAGE1, "--stage2", STAGE2, "--uncertainty", "bogus"], "--uncertainty bogus"),
])
def test_bad_cascade_arguments(stage1_model, stage2_model, chest_dataset, tmp_path, capsys, extra, message):
    code = main(["predict", "-m", "cascade", "-i", str(chest_dataset / "imagesTs"), "-o", str(tmp_path / "o"),
                 "-device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_missing_lung_mask_file_is_named(stage1_model, stage2_model, chest_dataset, tmp_path, capsys):
    lungs = tmp_path / "lungs"
    lungs.mkdir()
    assert _cascade(chest_dataset / "imagesTs", tmp_path / "o", "--lung-masks", str(lungs)) == 2
    assert "no mask chest_test_000.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "o" / "chest_test_000.nii.gz").exists()


def test_roi_blend_averages_overlaps_and_fills_outside():
    from nnunet_ext.core.roi import RoiBlend

    blend = RoiBlend((4, 5, 6), 2, ["u"], outside=[1, 0])
    a, b = (slice(0, 2), slice(0, 3), slice(0, 4)), (slice(1, 3), slice(2, 5), slice(2, 6))
    pa = np.stack([np.full((2, 3, 4), 0.2), np.full((2, 3, 4), 0.8)]).astype(np.float32)
    pb = np.stack([np.full((2, 3, 4), 0.6), np.full((2, 3, 4), 0.4)]).astype(np.float32)
    blend.add(a, pa, {"u": np.full((2, 3, 4), 1.0, np.float32)})
    blend.add(b, pb, {"u": np.full((2, 3, 4), 3.0, np.float32)})
    probs, maps, covered = blend.result()
    assert probs[1, 1, 2, 2] == pytest.approx(0.6) and maps["u"][1, 2, 2] == pytest.approx(2.0)  # both boxes
    assert probs[1, 0, 0, 0] == pytest.approx(0.8) and maps["u"][0, 0, 0] == 1.0               # box a only
    assert probs[1, 2, 4, 5] == pytest.approx(0.4) and maps["u"][2, 4, 5] == 3.0               # box b only
    assert probs[0, 3, 0, 0] == 1 and probs[1, 3, 0, 0] == 0 and maps["u"][3, 0, 0] == 0       # neither
    assert covered.sum() == 2 * 3 * 4 * 2 - 1 * 1 * 2
    with pytest.raises(ValueError):
        blend.add(a, pa[:, :1])


def test_grow_box_and_model_spec():
    from nnunet_ext.errors import InputError
    from nnunet_ext.predictors.inputs import ModelSpec

    assert grow_box([[2, 4], [0, 3], [5, 10]], 16, (20, 30, 12)) == (slice(0, 20), slice(0, 19), slice(0, 12))
    assert grow_box([[2, 4], [0, 3], [5, 10]], 0, (20, 30, 12)) == (slice(2, 4), slice(0, 3), slice(5, 10))
    assert ModelSpec.parse("7,2d,T,P,0+2") == ModelSpec("7", "2d", "T", "P", ("0", "2"))
    assert ModelSpec.parse("7,2d,T,P").folds is None
    assert ModelSpec.parse("Dataset007_X,3d_fullres,T,P,all").folds == ("all",)
    with pytest.raises(InputError):
        ModelSpec.parse("7,2d,T,P,0,1")
    assert Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)).cropped([1, 2, 3]).origin == (3.0, 2.0, 1.0)
