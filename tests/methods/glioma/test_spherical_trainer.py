"""SphericalProjectionTransform and the SphericalProjection trainers (2d, brain phantoms, TinyPlanner)."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from nnunet_ext.methods.glioma.spherical_trainer import RegionBCELoss, select_region
from nnunet_ext.methods.glioma.spherical_transform import SphericalProjectionTransform

BRAIN_ID = 631
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
    from nnunet_ext.methods.glioma.spherical import forward_warp
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
    # 2d for the spherical model, 3d_fullres for the refinement model; short schedules (any nnext trainer honours them)
    plan_and_preprocess(BRAIN_ID, "TinyPlanner", ["2d", "3d_fullres"], num_processes=1,
                        schedule={"num_epochs": 2, "num_iterations_per_epoch": 4, "num_val_iterations_per_epoch": 1})
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
def test_kernel_refiner_bce_trainer_is_the_papers_3d_setup(brain_2d, nnunet_dirs):
    """KernelRefinerBCETrainer: 3D, three sigmoid regions, BCE only (deep supervision), Adam at refiner.lr."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from nnunet_ext.planners.plans_edit import write_options
    from nnunet_ext.trainers.registry import load_trainer

    pre = nnunet_dirs["nnUNet_preprocessed"] / brain_2d.name
    dataset_json = json.loads((pre / "dataset.json").read_text())
    cls = load_trainer("KernelRefinerBCETrainer")

    def build(configuration, plans_name=TINY):
        plans = json.loads((pre / f"{plans_name}.json").read_text())
        plans["continue_training"] = False
        return cls(plans, configuration, 0, dataset_json, device=torch.device("cpu"))

    tr = build("3d_fullres")
    tr.initialize()
    assert tr.label_manager.has_regions and len(tr.label_manager.foreground_regions) == 3
    out = tr.network(torch.zeros(1, 4, *tr.configuration_manager.patch_size))
    assert out[0].shape[1] == 3 and out[0].ndim == 5                      # 3D, one sigmoid channel per region
    assert isinstance(tr.loss, DeepSupervisionWrapper) and isinstance(tr.loss.loss, RegionBCELoss)
    assert isinstance(tr.optimizer, torch.optim.Adam) and tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert not any(isinstance(m, torch.nn.Dropout3d) for m in tr.network.modules())
    # the learning rate is a plans option (section refiner), recorded in the checkpoint metadata
    write_options(pre / f"{TINY}.json", ["refiner.lr=3e-4"], ["3d_fullres"], new_identifier="nnextTinyRefinerLR")
    tr2 = build("3d_fullres", "nnextTinyRefinerLR")
    tr2.initialize()
    assert tr2.optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert tr2.checkpoint_metadata()["options"]["refiner"] == {"lr": 3e-4}
    with pytest.raises(ValueError, match="3D configurations only"):
        build("2d")


@pytest.fixture(scope="module")
def spherical_model(brain_2d, nnunet_dirs):
    """SphericalProjectionTrainer, fold all, trained by the plain nnUNetv2_train command; its options come from
    the plans (``nnext_training.spherical`` of the 2d configuration), no environment variable."""
    from nnunet_ext.io.paths import nnunet_command
    from nnunet_ext.planners.plans_edit import write_options

    plans_json = nnunet_dirs["nnUNet_preprocessed"] / brain_2d.name / f"{TINY}.json"
    write_options(plans_json, ["spherical.p=0.8", "spherical.radius=[8,24]"], ["2d"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNEXT_")}

    cmd = [nnunet_command("nnUNetv2_train"), str(BRAIN_ID), "2d", "all", "-tr", "SphericalProjectionTrainer",
           "-p", TINY, "-device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return nnunet_dirs["nnUNet_results"] / brain_2d.name / f"SphericalProjectionTrainer__{TINY}__2d"


@pytest.mark.slow
def test_nnunetv2_train_spherical_projection_2d(spherical_model):
    model = spherical_model
    ckpt = torch.load(model / "fold_all" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["nnext"]["spherical_p"] == 0.8 and ckpt["nnext"]["spherical_radius"] == [8.0, 24.0]
    assert ckpt["nnext"]["options"]["spherical"] == {"p": 0.8, "radius": [8.0, 24.0], "lr": 1e-5}
    assert ckpt["nnext"]["loss"] == "DeepSupervisionWrapper"
    log = "".join(p.read_text() for p in (model / "fold_all").glob("training_log_*.txt"))
    assert "spherical projection: p = 0.8, R in (8.0, 24.0) px" in log
    losses = [float(v) for v in ckpt["logging"]["train_losses"]]
    assert len(losses) >= 2 and all(np.isfinite(losses))
    assert json.loads((model / "dataset.json").read_text())["regions_class_order"] == [1, 2, 3]


@pytest.mark.slow
def test_predict_spherical_outputs(spherical_model, brain_2d, tmp_path):
    import SimpleITK as sitk

    out = tmp_path / "sph"
    import sys

    cmd = [sys.executable, "-m", "nnunet_ext.cli.main", "predict", "-m", "spherical", "-i", str(brain_2d / "imagesTs"),
           "-o", str(out), "-d", str(BRAIN_ID), "-c", "2d", "-tr", "SphericalProjectionTrainer", "-p", TINY,
           "-f", "all", "-device", "cpu", "--stride", "16", "--save-probabilities", "--all-maps"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    case = sorted(p.name[:-12] for p in (brain_2d / "imagesTs").glob("*_0000.nii.gz"))[0]
    img = sitk.ReadImage(str(brain_2d / "imagesTs" / f"{case}_0000.nii.gz"))
    read = lambda s: sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}{s}.nii.gz")))  # noqa: E731
    seg = sitk.ReadImage(str(out / f"{case}.nii.gz"))
    assert seg.GetOrigin() == pytest.approx(img.GetOrigin()) and seg.GetSpacing() == pytest.approx(img.GetSpacing())
    probs = {t: read(f"_prob_{t}") for t in ("WT", "TC", "ET")}
    ents = {t: read(f"_entropy_{t}") for t in ("WT", "TC", "ET")}
    for t in probs:
        assert probs[t].min() >= 0 and probs[t].max() <= 1
        assert ents[t].min() >= -1e-5 and ents[t].max() <= np.log(100) + 1e-4  # nats (the default base e)
    np.testing.assert_allclose(read("_entropy"), sum(ents.values()), atol=1e-4)
    np.testing.assert_allclose(read("_uncertainty"), read("_entropy"), atol=1e-6)
    # the segmentation paints WT -> 1, TC -> 2, ET -> 3 where the mean probability exceeds 0.5
    want = np.zeros_like(read(""))
    for label, t in zip((1, 2, 3), ("WT", "TC", "ET")):
        want[probs[t] > 0.5] = label
    assert (want == read("")).mean() > 0.999
    info = json.loads((out / f"{case}_spherical.json").read_text())
    assert info["stride"] == 16 and info["n_origins"] > 0 and len(info["origins_per_slice"]) >= 1
    # a stride that leaves no origin inside the ROI: one line, exit 2
    bad = subprocess.run(cmd[:cmd.index("--stride") + 1] + ["400"] + cmd[cmd.index("--stride") + 2:] +
                         ["-o", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no origin inside the ROI" in bad.stderr


@pytest.fixture(scope="module")
def refine_model(brain_2d, nnunet_dirs):
    """A 3D region model for -m kernel_refine (MCDropoutTrainer on the whole phantoms, fold all; any 3D region
    model works there, the paper's is trained on nnext kernel-dataset crops)."""
    from nnunet_ext.io.paths import nnunet_command

    cmd = [nnunet_command("nnUNetv2_train"), str(BRAIN_ID), "3d_fullres", "all", "-tr", "MCDropoutTrainer", "-p",
           TINY, "-device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return f"{BRAIN_ID},3d_fullres,MCDropoutTrainer,{TINY},all"


@pytest.mark.slow
def test_kernel_dataset_crops_keep_geometry(spherical_model, brain_2d, nnunet_dirs):
    import sys

    import SimpleITK as sitk

    nnext = [sys.executable, "-m", "nnunet_ext.cli.main"]
    m2 = f"{BRAIN_ID},2d,SphericalProjectionTrainer,{TINY},all"
    kd = subprocess.run(nnext + ["kernel-dataset", "-d", str(BRAIN_ID), "-t", "632", "--uncertainty-from", m2,
                                 "--kernel-mm", "24", "--max-kernels", "2", "--stride", "16", "--no-progress"],
                        capture_output=True, text=True)
    assert kd.returncode == 0, kd.stdout[-2000:] + kd.stderr[-2000:]
    kfolder = nnunet_dirs["nnUNet_raw"] / "Dataset632_NnextBrainKernels"
    info = json.loads((kfolder / "kernel_info.json").read_text())
    assert 1 <= len(info["crops"]) <= 4 * 3 * 2 and info["regions"] == ["WT", "TC", "ET"]
    dj = json.loads((kfolder / "dataset.json").read_text())
    assert dj["numTraining"] == len(info["crops"]) and dj["regions_class_order"] == [1, 2, 3]
    # nnU-Net's splits_final.json comes with the crops, grouped by source case (4 source cases: 4 folds)
    from nnunet_ext.io.splits import leaks

    groups = {cid: c["case"] for cid, c in info["crops"].items()}
    splits = json.loads((kfolder / "splits_final.json").read_text())
    assert len(splits) == min(5, len(set(groups.values()))) and leaks(splits, groups) == []
    assert (
        sorted(k for s in splits for k in s["val"]) == sorted(groups) and info["splits"]["grouped_by"] == "source case"
    )
    for crop_id, crop in sorted(info["crops"].items())[:3]:
        z, y, x = crop["start"]
        dz, dy, dx = crop["size"]
        assert crop["size"] == [7, 8, 8]                                    # 24 mm at 3.5 / 3 / 3 mm
        for c, suffix in ((1, "_0001.nii.gz"), (None, ".nii.gz")):
            sub = "imagesTr" if c is not None else "labelsTr"
            src = sitk.ReadImage(str(brain_2d / sub / f"{crop['case']}{suffix}"))
            cut = sitk.ReadImage(str(kfolder / sub / f"{crop_id}{suffix}"))
            np.testing.assert_array_equal(sitk.GetArrayFromImage(cut),
                                          sitk.GetArrayFromImage(src)[z:z + dz, y:y + dy, x:x + dx])
            assert cut.GetOrigin() == pytest.approx(src.TransformIndexToPhysicalPoint((x, y, z)))  # exact geometry
            assert cut.GetDirection() == pytest.approx(src.GetDirection())


@pytest.mark.slow
def test_kernel_refine_and_fusion_fit(spherical_model, refine_model, brain_2d, tmp_path):
    """-m kernel_refine (spherical ensemble -> kernels -> 3D model -> eq. 2) and nnext fusion-fit on its outputs."""
    import sys

    import SimpleITK as sitk

    from nnunet_ext.methods.glioma.fusion import FusionParams, fuse

    nnext = [sys.executable, "-m", "nnunet_ext.cli.main"]
    m2 = f"{BRAIN_ID},2d,SphericalProjectionTrainer,{TINY},all"
    out = tmp_path / "refined"
    base = nnext + ["predict", "-m", "kernel_refine", "-i", str(brain_2d / "imagesTs"), "-device", "cpu",
                    "--model2d", m2, "--model3d", refine_model, "--stride", "16", "--kernel-mm", "24",
                    "--max-kernels", "3"]
    pr = subprocess.run(base + ["-o", str(out)], capture_output=True, text=True)
    assert pr.returncode == 0, pr.stdout[-2000:] + pr.stderr[-2000:]
    case = sorted(p.name[:-12] for p in (brain_2d / "imagesTs").glob("*_0000.nii.gz"))[0]
    read = lambda s: sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}_{s}.nii.gz")))  # noqa: E731
    log = json.loads((out / f"{case}_kernels.json").read_text())
    for tag in ("WT", "TC", "ET"):
        p2d, p3d, cov, prob = read(f"p2d_{tag}"), read(f"p3d_{tag}"), read(f"coverage_{tag}"), read(f"prob_{tag}")
        assert len(log[tag]["kernels"]) <= 3 and int((cov > 0).sum()) == log[tag]["covered_voxels"]
        assert np.all(p3d[cov == 0] == 0)
        np.testing.assert_allclose(prob, fuse(p2d, p3d, cov > 0, FusionParams(5.0, 5.0, -5.0)), atol=1e-5)
    assert any(log[t]["covered_voxels"] > 0 for t in ("WT", "TC", "ET"))
    # PSO fit on these outputs: test cases, which neither fold-all model trained on (the out-of-fold check passes;
    # in practice: out-of-fold predictions of the training cases), then its parameters applied
    params = tmp_path / "fusion.json"
    ff = subprocess.run(nnext + ["fusion-fit", "--pred2d", str(out), "--pred3d", str(out), "-ref",
                                 str(brain_2d / "labelsTs"), "-o", str(params), "--iters", "5", "--particles", "6"],
                        capture_output=True, text=True)
    assert ff.returncode == 0, ff.stdout[-2000:] + ff.stderr[-2000:]
    fitted = json.loads(params.read_text())["regions"]
    assert set(fitted) == {"WT", "TC", "ET"} and all(v["w2d"] >= 0 and v["w3d"] >= 0 for v in fitted.values())
    # fusion parameters for a region the 2D model lacks: one line, exit 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"regions": {"XX": {"w2d": 1, "w3d": 1, "b": 0}}}))
    err = subprocess.run(base + ["-o", str(tmp_path / "bad"), "--fusion", str(bad)], capture_output=True, text=True)
    assert err.returncode == 2 and "XX" in err.stderr
