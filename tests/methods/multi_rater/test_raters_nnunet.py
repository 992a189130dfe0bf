"""Rater-set labels through nnU-Net: nnext convert raters, nnU-Net preprocessing (with and without resampling)
and the multi-annotation trainers' augmentation keep the decoded raters exact."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.errors import InputError
from nnunet_ext.methods.multi_rater import raters as R

RAW_ID, RATER_ID = 611, 612
#: rater count kept per training case (the phantom writes 4): K varies between cases, 1..4
KEEP = {0: 4, 1: 2, 2: 3, 3: 1, 4: 4, 5: 2}


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def rater_dataset(nnunet_dirs, tmp_path_factory):
    """Nodule phantoms with 1-4 raters per case -> nnext convert raters -> planned + preprocessed (2d)."""
    from nnunet_ext.cli.main import main
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    src = write_dataset("nodule", RAW_ID, num_train=len(KEEP), num_test=1, seed=3, size=(16, 32, 32),
                        progress=False, raters=4)
    for i, k in KEEP.items():
        for j in range(k, 4):
            (src / "labelsTr_raters" / f"nodule_{i:03d}_rater{j}.nii.gz").unlink()
    assert main(["convert", "raters", "-i", str(src), "-d", str(RATER_ID), "--no-progress"]) == 0
    folder = next(nnunet_dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*"))
    plan_and_preprocess(RATER_ID, "TinyPlanner", ["2d", "3d_fullres"], num_processes=1, verify_dataset_integrity=True,
                        schedule={"num_epochs": 1, "num_iterations_per_epoch": 4, "num_val_iterations_per_epoch": 2})
    return src, folder


def _raters(src, case, split="Tr"):
    files = sorted((src / f"labels{split}_raters").glob(f"{case}_rater*.nii.gz"))
    return np.stack([_read(f) for f in files]).astype(bool)


def test_convert_raters_writes_exact_codes_and_valid_dataset_json(rater_dataset):
    src, folder = rater_dataset
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["labels"]["nodule"] == list(range(1, R.max_label(4) + 1)) and ds["regions_class_order"] == [1]
    assert ds["nnext_raters"]["n_raters"] == {f"nodule_{i:03d}": k for i, k in KEEP.items()} | {"nodule_test_000": 4}
    for i, k in KEEP.items():
        case = f"nodule_{i:03d}"
        label = sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz"))
        image = sitk.ReadImage(str(src / "imagesTr" / f"{case}_0000.nii.gz"))
        assert label.GetOrigin() == image.GetOrigin() and label.GetDirection() == image.GetDirection()
        np.testing.assert_array_equal(R.decode_raters(sitk.GetArrayFromImage(label), k), _raters(src, case))


def test_decoding_exact_after_nnunet_preprocessing(rater_dataset, nnunet_dirs):
    """Same spacing as the plans: nnU-Net's preprocessed seg decodes to exactly the raters (transposed)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    src, folder = rater_dataset
    pre = nnunet_dirs["nnUNet_preprocessed"] / folder.name
    plans = json.loads((pre / "nnextTinyPlans.json").read_text())
    tf = plans["transpose_forward"]
    data_dir = pre / "nnextTinyPlans_2d"
    dataset = infer_dataset_class(str(data_dir))(str(data_dir))
    for i, k in KEEP.items():
        case = f"nodule_{i:03d}"
        _, seg, _, props = dataset.load_case(case)
        seg = np.asarray(seg[0])
        assert seg.min() >= -1
        seg = np.where(seg < 0, 0, seg)  # -1 = outside nnU-Net's nonzero crop: no rater there
        bbox = props["bbox_used_for_cropping"]
        expected = _raters(src, case).transpose([0, *[t + 1 for t in tf]])
        expected = expected[(slice(None),) + tuple(slice(a, b) for a, b in bbox)]
        np.testing.assert_array_equal(R.decode_raters(seg, k), expected)


@pytest.mark.parametrize("order", [0, 1])
def test_decoding_after_nnunet_resampling(rater_dataset, order):
    """nnU-Net's segmentation resampling to another spacing: order 0 (nearest) commutes exactly with decoding
    (decode(resample(codes)) == resample(rater_j) for every j); order 1 (nnU-Net's default, argmax of
    interpolated per-label indicators) keeps every voxel a valid code of its case, so U ⊇ raters ⊇ I."""
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

    src, folder = rater_dataset
    for i, k in KEEP.items():
        case = f"nodule_{i:03d}"
        codes = _read(folder / "labelsTr" / f"{case}.nii.gz")[None].astype(np.int16)
        spacing, target = (0.8, 0.7, 0.7), (1.1, 0.55, 0.9)
        new_shape = [int(round(s * a / b)) for s, a, b in zip(codes.shape[1:], spacing, target)]
        kw = dict(is_seg=True, order=order, order_z=0, force_separate_z=None)
        out = resample_data_or_seg_to_shape(codes, new_shape, spacing, target, **kw)[0]
        decoded = R.decode_raters(out, k)  # raises if a code of another K appeared
        if order == 0:
            per_rater = np.stack([resample_data_or_seg_to_shape(m[None].astype(np.int16), new_shape, spacing,
                                                                target, **kw)[0] for m in _raters(src, case)])
            np.testing.assert_array_equal(decoded, per_rater.astype(bool))
        maps = R.consensus_maps(out)
        assert np.all(maps["union"] >= decoded.any(0)) and np.all(decoded.all(0) >= maps["intersection"])
        np.testing.assert_allclose(maps["mean"], decoded.mean(0), atol=1e-6)


def test_trainer_augmentation_keeps_codes_exact(rater_dataset):
    """The multi-annotation trainers' spatial augmentation samples seg by nearest neighbour: pushing codes and
    rater masks through the *same* random transform, the codes still decode to the transformed raters."""
    import torch

    from nnunet_ext.methods.multi_rater.multi_annotation_trainer import RaterSetTrainer

    src, folder = rater_dataset
    case, k = "nodule_000", KEEP[0]
    codes = _read(folder / "labelsTr" / f"{case}.nii.gz")
    masks = _raters(src, case)
    image = _read(src / "imagesTr" / f"{case}_0000.nii.gz").astype(np.float32)
    transforms = RaterSetTrainer.get_training_transforms(
        (24, 24), (-np.pi / 3, np.pi / 3), [[1, 1], [0.5, 0.5]], (0, 1), False)
    torch.manual_seed(0)
    checked = 0
    for z in range(4, 12):
        seg = torch.as_tensor(np.concatenate([codes[z][None], masks[:, z]]).astype(np.int16))
        out = transforms(image=torch.as_tensor(image[z][None]), segmentation=seg)
        for target in out["segmentation"]:  # every deep-supervision scale
            target = target.numpy()
            np.testing.assert_array_equal(R.decode_raters(target[0], k), target[1:].astype(bool))
            checked += int(target[0].any())
    assert checked > 0


def test_convert_raters_bad_input(rater_dataset, tmp_path):
    from nnunet_ext.conversion.raters import convert_raters

    src, _ = rater_dataset
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    f = bad / "labelsTr_raters" / "nodule_001_rater1.nii.gz"
    img = sitk.ReadImage(str(f))
    img.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(img, str(f))
    with pytest.raises(InputError, match="nodule_001_rater1.nii.gz: geometry differs"):
        convert_raters(bad, 613, progress=False)
    for j in range(1, 7):
        shutil.copy(bad / "labelsTr_raters" / "nodule_000_rater0.nii.gz",
                    bad / "labelsTr_raters" / f"nodule_000_rater{j}.nii.gz")
    with pytest.raises(InputError, match="7 raters, the rater-set encoding supports at most 6"):
        convert_raters(bad, 613, progress=False)
    empty = tmp_path / "empty"
    (empty / "labelsTr_raters").mkdir(parents=True)
    with pytest.raises(InputError, match="no CASE_rater"):
        convert_raters(empty, 613, progress=False)
    zero = tmp_path / "zero"
    shutil.copytree(src, zero)
    for f in (zero / "labelsTr_raters").glob("nodule_002_rater*"):
        f.unlink()
    with pytest.raises(InputError, match="nodule_002_0000.nii.gz: case has zero raters"):
        convert_raters(zero, 613, progress=False)
    assert not list(tmp_path.glob("Dataset613*"))


def _train(dataset_id, trainer, env=None, configuration="2d", plans="nnextTinyPlans"):
    import os
    import subprocess

    from nnunet_ext.io.paths import nnunet_command

    cmd = [nnunet_command("nnUNetv2_train"), str(dataset_id), configuration, "0", "-tr", trainer, "-p", plans,
           "-device", "cpu"]
    # one thread: tiny nets gain nothing from more, and on a shared 2-core machine threads contend
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def ugs_model(rater_dataset, nnunet_dirs):
    """UGSNetTrainer (3d_fullres, deep supervision) trained by plain nnUNetv2_train."""
    _, folder = rater_dataset
    log = _train(RATER_ID, "UGSNetTrainer", configuration="3d_fullres")
    assert "train_loss" in log
    return nnunet_dirs["nnUNet_results"] / folder.name / "UGSNetTrainer__nnextTinyPlans__3d_fullres"


def _own_heads(model, image_file):
    """Our forward pass of the checkpoint's rebuilt UGSNet on nnU-Net's preprocessed image (one tile), every
    head's logits back in the image grid (z, y, x)."""
    import torch
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ext.methods.multi_rater.ugsnet_trainer import UGSNetTrainer

    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["network"] == "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet"
    pm = PlansManager(str(model / "plans.json"))
    cm = pm.get_configuration("3d_fullres")
    ds = json.loads((model / "dataset.json").read_text())
    net = UGSNetTrainer.build_network_architecture(pm, cm, 1, 1, enable_deep_supervision=False)
    net.load_state_dict(ckpt["network_weights"])
    net.eval()
    net.return_heads = True
    data, _, props = DefaultPreprocessor().run_case([str(image_file)], None, pm, cm, ds)
    assert tuple(data.shape[1:]) == tuple(cm.patch_size)  # one sliding-window tile: no blending involved
    with torch.no_grad():
        heads = net(torch.as_tensor(data[None]))
    out = {}
    for name, logits in heads.items():
        full = np.full(props["shape_before_cropping"], -1e4, np.float32)
        full[tuple(slice(a, b) for a, b in props["bbox_used_for_cropping"])] = logits[0, 0].numpy()
        out[name] = full.transpose(pm.transpose_backward)
    return out


def _agrees(mask, logits):
    """nnU-Net's thresholded output vs our logits: nnU-Net blends in float16, and with a single tile the Gaussian
    weights at its corners are tiny, so logits near 0 may flip there; decisive voxels (|logit| > 1.5) must agree."""
    mask = np.asarray(mask) > 0
    assert np.mean(mask != (logits > 0)) < 0.02
    assert mask[logits > 1.5].all() and not mask[logits < -1.5].any()


@pytest.fixture(scope="module")
def ugs_plain_prediction(rater_dataset, ugs_model, tmp_path_factory):
    """Plain nnUNetv2_predict of the UGSNetTrainer model (no mirroring)."""
    import os
    import subprocess

    from nnunet_ext.io.paths import nnunet_command

    _, folder = rater_dataset
    out = tmp_path_factory.mktemp("ugs_pred")
    cmd = [nnunet_command("nnUNetv2_predict"), "-i", str(folder / "imagesTs"), "-o", str(out), "-d", str(RATER_ID),
           "-c", "3d_fullres", "-f", "0", "-tr", "UGSNetTrainer", "-p", "nnextTinyPlans", "-device", "cpu",
           "--disable_tta", "-chk", "checkpoint_final.pth"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


@pytest.mark.slow
def test_ugsnet_trainer_nnunet_train_and_plain_predict_gives_xs(rater_dataset, ugs_model, ugs_plain_prediction):
    """Plain nnUNetv2_train of UGSNetTrainer, then plain nnUNetv2_predict: its output is X_S > 0.5 of the
    rebuilt UGSNet (checked against our own forward pass of the checkpoint on nnU-Net's preprocessed input)."""
    src, folder = rater_dataset
    out = ugs_plain_prediction
    image_file = folder / "imagesTs" / "nodule_test_000_0000.nii.gz"
    pred_img = sitk.ReadImage(str(out / "nodule_test_000.nii.gz"))
    ref_img = sitk.ReadImage(str(image_file))
    assert pred_img.GetOrigin() == ref_img.GetOrigin() and pred_img.GetSpacing() == ref_img.GetSpacing()
    pred = sitk.GetArrayFromImage(pred_img)
    assert set(np.unique(pred)) <= {0, 1}
    _agrees(pred, _own_heads(ugs_model, image_file)["xs"])


@pytest.mark.slow
def test_mcm_predictor_exports_xs_hc_lc_in_input_geometry(rater_dataset, ugs_model, ugs_plain_prediction, tmp_path):
    from nnunet_ext.cli.main import main

    _, folder = rater_dataset
    out = tmp_path / "mcm"
    assert main(["predict", "-m", "mcm", "-i", str(folder / "imagesTs"), "-o", str(out), "-d", str(RATER_ID),
                 "-c", "3d_fullres", "-tr", "UGSNetTrainer", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu",
                 "--disable_tta", "--all-maps"]) == 0
    image_file = folder / "imagesTs" / "nodule_test_000_0000.nii.gz"
    ref = sitk.ReadImage(str(image_file))
    read = {}
    for suffix in ("", "_hc", "_lc", "_uncertainty", "_mcm", "_hc_probability", "_union_probability"):
        img = sitk.ReadImage(str(out / f"nodule_test_000{suffix}.nii.gz"))
        assert img.GetOrigin() == ref.GetOrigin() and img.GetDirection() == ref.GetDirection()
        read[suffix] = sitk.GetArrayFromImage(img)
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(ugs_plain_prediction / "nodule_test_000.nii.gz")))
    np.testing.assert_array_equal(read[""], plain)  # nnU-Net's own sliding window: identical to nnUNetv2_predict
    own = _own_heads(ugs_model, image_file)
    for got, logits in ((read[""], own["xs"]), (read["_hc"], own["inter"])):
        _agrees(got, logits)
    assert not np.any(read["_hc"] & read["_lc"])
    np.testing.assert_array_equal(
        read["_lc"].astype(bool), (read["_union_probability"] > 0.5) & ~read["_hc"].astype(bool)
    )
    np.testing.assert_allclose(read["_uncertainty"],
                               np.clip(read["_union_probability"] - read["_hc_probability"], 0, 1), atol=1e-6)
    np.testing.assert_allclose(read["_mcm"], 0.5 * (read["_union_probability"] + read["_hc_probability"]), atol=1e-6)
    # the union head: nnU-Net accumulates logits in float16 with Gaussian weights that are tiny at the corners of a
    # single tile, so compare the mask as for the other heads (decisive voxels must agree; a model trained inside
    # the test has many union logits near 0, 1.3 % of them flipped in one CI run) and the typical probability
    _agrees(read["_union_probability"] > 0.5, own["union"])
    sig_union = 1 / (1 + np.exp(-own["union"].astype(np.float64)))
    assert np.median(np.abs(read["_union_probability"] - sig_union)) < 1e-2


@pytest.mark.slow
def test_multi_annotation_trainer_nnunet_train(rater_dataset, nnunet_dirs):
    """Plain nnUNetv2_train of MultiAnnotationTrainer (deep supervision on), pure fusion BCE (w_Dice = 0)."""
    import torch

    _, folder = rater_dataset
    from nnunet_ext.planners.plans_edit import write_options

    pre = nnunet_dirs["nnUNet_preprocessed"] / folder.name
    write_options(pre / "nnextTinyPlans.json", ["multi_annotation.dice_weight=0"], new_identifier="nnextTinyPlansBCE")
    log = _train(RATER_ID, "MultiAnnotationTrainer", plans="nnextTinyPlansBCE")
    assert "train_loss" in log
    model = nnunet_dirs["nnUNet_results"] / folder.name / "MultiAnnotationTrainer__nnextTinyPlansBCE__2d"
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["dice_weight"] == 0.0
    assert (model / "fold_0" / "validation" / "summary.json").is_file()


def test_multi_annotation_trainer_refuses_plain_dataset(nnunet_dirs, rater_dataset):
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    from nnunet_ext.methods.multi_rater.multi_annotation_trainer import MultiAnnotationTrainer

    _, folder = rater_dataset
    pre = nnunet_dirs["nnUNet_preprocessed"] / folder.name
    plans = load_json(str(pre / "nnextTinyPlans.json"))
    ds = load_json(str(pre / "dataset.json"))
    ds.pop("nnext_raters")
    plans["continue_training"] = False  # nnunetv2 2.8.1 pops this key in __init__
    with pytest.raises(ValueError, match="needs a rater-set dataset"):
        MultiAnnotationTrainer(plans, "2d", 0, ds, torch.device("cpu"))


def test_identical_arms_initialise_from_the_same_plans(nnunet_dirs, rater_dataset):
    """Issue 22: the single-reader baseline and the no-IUCM ablation on the same rater-set plans; the paper's SGDR
    (plans rater_training) in every arm; the full-resolution output at deep-supervision weight 1."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    from nnunet_ext.methods.multi_rater.multi_annotation_trainer import SGDRScheduler, SingleReaderTrainer
    from nnunet_ext.methods.multi_rater.ugsnet_trainer import UGSNetNoIUCMTrainer

    _, folder = rater_dataset
    pre = nnunet_dirs["nnUNet_preprocessed"] / folder.name
    ds = load_json(str(pre / "dataset.json"))
    for cls in (SingleReaderTrainer, UGSNetNoIUCMTrainer):
        plans = load_json(str(pre / "nnextTinyPlans.json"))
        plans["nnext_training"] = {"rater_training": {"optimizer": "sgdr", "sgdr_period": 7}}
        plans["continue_training"] = False  # nnunetv2 2.8.1 pops this key in __init__
        trainer = cls(plans, "2d", 0, ds, torch.device("cpu"))
        trainer.initialize()
        group = trainer.optimizer.param_groups[0]
        assert isinstance(trainer.lr_scheduler, SGDRScheduler) and trainer.lr_scheduler.T_0 == 7
        assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-5, 0.9, 1e-4)
        assert trainer.loss.weight_factors[0] == 1.0 and trainer.loss.weight_factors[-1] == 0.0
        assert trainer.checkpoint_metadata()["options"]["rater_training"]["optimizer"] == "sgdr"
    assert trainer.loss.__class__.__name__ == "UGSLoss" and not hasattr(trainer.network, "faab")
    assert trainer.configuration_manager.network_arch_init_kwargs["iucm"] is False
