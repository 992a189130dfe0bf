"""Temperature scaling: the fit recovers known temperatures, apply_temperature against hand computations, the
``nnext calibrate`` command on an exact-format fake nnU-Net results folder (fold_0 / fold_1 validation npz + pkl,
gt_segmentations with a non-identity direction), npz written by nnU-Net's own exporter, agreement with
``nnext evaluate``, region outputs as NIfTI, the model-identity check of ``calibration.json``, bad input."""
import json
import pickle
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.core.calibration_file import CALIBRATION_FILE, load_calibration
from nnunet_ext.core.temperature import VoxelSampler, apply_temperature, fit_temperature
from nnunet_ext.errors import InputError


def _softmax(s):
    e = np.exp(s - s.max(0))
    return e / e.sum(0)


def _draw(q, rng):
    """One label per column of probabilities q (C, N)."""
    return (q.cumsum(0) < rng.random(q.shape[1])).sum(0)


# ---------------------------------------------------------------- core
def test_fit_recovers_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 3.0, (3, 100_000))
    for t_true in (0.5, 2.5):
        y = _draw(_softmax(z / t_true), rng)
        fit = fit_temperature(z, y)
        assert abs(fit.temperature - t_true) < 0.05 * t_true
        assert fit.nll_after < fit.nll_before
    # log-probabilities give the same T as logits (softmax is shift invariant)
    y = _draw(_softmax(z / 2.0), rng)
    logp = z - np.log(np.exp(z).sum(0))
    assert fit_temperature(logp, y).temperature == pytest.approx(fit_temperature(z, y).temperature, rel=1e-4)


def test_fit_per_class_and_sigmoid():
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 3.0, (3, 100_000))
    t_true = np.array([1.0, 2.0, 0.5])
    y = _draw(_softmax(z / t_true[:, None]), rng)
    fit = fit_temperature(z, y, per_class=True)
    np.testing.assert_allclose(fit.temperature, t_true, rtol=0.06)
    # a class absent from the labels keeps the shared T (instead of running to a bound)
    y2 = np.where(y == 2, 1, y)
    shared, per = fit_temperature(z, y2).temperature, fit_temperature(z, y2, per_class=True).temperature
    assert per[2] == pytest.approx(shared, rel=1e-9) and 0.1 < per[0] < 10
    zr = rng.normal(0.0, 4.0, (2, 100_000))
    tr = np.array([3.0, 0.7])
    targets = (rng.random(zr.shape) < 1 / (1 + np.exp(-zr / tr[:, None]))).astype(np.uint8)
    np.testing.assert_allclose(fit_temperature(zr, targets, sigmoid=True, per_class=True).temperature, tr, rtol=0.06)


def test_apply_temperature_by_hand():
    import torch

    p = np.array([[0.7, 0.0, 0.25], [0.2, 0.5, 0.25], [0.1, 0.5, 0.5]], dtype=np.float32)
    # T = 2: p ** 0.5 renormalised
    hand = np.sqrt(p.astype(np.float64))
    hand /= hand.sum(0)
    np.testing.assert_allclose(apply_temperature(p, 2.0), hand, rtol=1e-6)
    # per class T = (1, 2, 0.5): p_c ** (1 / T_c) renormalised; zeros stay zero
    hand = p.astype(np.float64) ** np.array([1.0, 0.5, 2.0])[:, None]
    hand /= hand.sum(0)
    out = apply_temperature(p, [1.0, 2.0, 0.5])
    np.testing.assert_allclose(out, hand, rtol=1e-6)
    assert out.dtype == np.float32 and out[0, 1] == 0
    t_out = apply_temperature(torch.from_numpy(p.copy()), [1.0, 2.0, 0.5])
    assert isinstance(t_out, torch.Tensor) and t_out.dtype == torch.float32
    np.testing.assert_allclose(t_out.numpy(), hand, rtol=1e-5)
    # sigmoid: sigmoid(logit(p) / T); p = 0.8, T = 2 -> sqrt(4) / (1 + sqrt(4)) = 2 / 3
    s = apply_temperature(np.array([[0.8, 0.0, 1.0]]), 2.0, sigmoid=True)
    np.testing.assert_allclose(s, [[2 / 3, 0.0, 1.0]], atol=1e-12)
    # T = 1 is the identity; a 4D (C, z, y, x) array keeps its shape
    vol = _softmax(np.random.default_rng(2).normal(size=(3, 4, 5, 6))).astype(np.float32)
    np.testing.assert_allclose(apply_temperature(vol, 1.0), vol, atol=1e-6)


def test_voxel_sampler_is_uniform_over_the_union_and_order_free():
    s1, s2 = VoxelSampler(budget=50, seed=3), VoxelSampler(budget=50, seed=3)
    data = {c: np.arange(i * 100, i * 100 + 100, dtype=np.float32)[None] for i, c in enumerate("abc")}
    for c in "abc":
        s1.add("g0" if c != "c" else "g1", c, data[c], np.zeros(100, np.int64))
    for c in "cba":
        s2.add("g0" if c != "c" else "g1", c, data[c], np.zeros(100, np.int64))
    a, _, n = s1.sample(["g0", "g1"])
    b, _, _ = s2.sample(["g1", "g0"])
    assert n == 300 and a.shape == (1, 50)
    np.testing.assert_array_equal(np.sort(a), np.sort(b))
    # the union sample equals the 50 smallest keys of all 300 voxels (brute force)
    keys = np.concatenate([np.random.default_rng([3, __import__("zlib").crc32(c.encode())]).random(100) for c in "abc"])
    values = np.concatenate([data[c][0] for c in "abc"])
    np.testing.assert_array_equal(np.sort(a[0]), np.sort(values[np.argsort(keys)[:50]]))
    # slab by slab with the threshold pre-filter (what calibrate does) gives the same sample
    s3 = VoxelSampler(budget=50, seed=3)
    for c in "abc":
        stream = s3.key_stream(c)
        for lo, hi in ((0, 30), (30, 31), (31, 100)):
            k = stream.random(hi - lo)
            sel = np.flatnonzero(k < s3.threshold("g0" if c != "c" else "g1"))
            s3.add("g0" if c != "c" else "g1", c, data[c][:, lo:hi][:, sel], np.zeros(sel.size, np.int64),
                   keys=k[sel], n_voxels=hi - lo)
    c3, _, n3 = s3.sample(["g0", "g1"])
    assert n3 == 300
    np.testing.assert_array_equal(np.sort(c3), np.sort(a))


# ---------------------------------------------------------------- fake nnU-Net results folder
TR, PL, CF = "nnUNetTrainer", "nnUNetPlans", "3d_fullres"
SHAPE = (6, 9, 7)                      # (z, y, x): non-cubic so a transposed npz cannot pass
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
T_TRUE = 2.0                           # written probabilities are softmax(l * T_TRUE): over-confident


def _write_label(arr, path):
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin((10.0, -5.0, 3.0))
    img.SetDirection(DIRECTION)
    sitk.WriteImage(img, str(path), True)


@pytest.fixture
def fake_results(tmp_path, monkeypatch):
    """Dataset777: model folder with fold_0 / fold_1 validation outputs exactly as nnU-Net 2.8.1 writes them
    (``np.savez_compressed(CASE.npz, probabilities=(C, z, y, x) float32)``, ``CASE.pkl`` properties,
    ``CASE.nii.gz`` segmentation) and references in nnUNet_preprocessed/.../gt_segmentations."""
    roots = {k: tmp_path / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for k, v in roots.items():
        monkeypatch.setenv(k, str(v))
    name = "Dataset777_Fake"
    model = roots["nnUNet_results"] / name / f"{TR}__{PL}__{CF}"
    gt = roots["nnUNet_preprocessed"] / name / "gt_segmentations"
    gt.mkdir(parents=True)
    model.mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps({"plans_name": PL, "configurations": {CF: {"patch_size": [8, 8, 8]}}}))
    (model / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"background": 0, "a": 1, "b": 2},
                "file_ending": ".nii.gz",
                "channel_names": {"0": "CT"},
                "numTraining": 8,
            }
        )
    )
    rng = np.random.default_rng(0)
    for fold in (0, 1):
        vdir = model / f"fold_{fold}" / "validation"
        vdir.mkdir(parents=True)
        for i in range(4):
            case = f"case_{fold}{i}"
            logits = rng.normal(0.0, 1.5, (3,) + SHAPE)
            blob = np.zeros(SHAPE, bool)
            blob[1:4, 2:6, 1:5] = True
            logits[1][blob] += 2.0
            logits[0][~blob] += 12.0                 # certain background outside: the bbox ROI is a proper sub-box
            labels = _draw(_softmax(logits.reshape(3, -1)), rng).reshape(SHAPE)
            probs = _softmax(logits * T_TRUE).astype(np.float32)
            np.savez_compressed(vdir / f"{case}.npz", probabilities=probs)
            with open(vdir / f"{case}.pkl", "wb") as f:
                pickle.dump({"spacing": [2.5, 0.7, 0.8], "shape_before_cropping": SHAPE,
                             "bbox_used_for_cropping": [[0, s] for s in SHAPE]}, f)
            _write_label(probs.argmax(0), vdir / f"{case}.nii.gz")
            _write_label(labels, gt / f"{case}.nii.gz")
    return model


def _calibrate(*extra):
    return main(["calibrate", "-d", "777", "-c", CF, "-tr", TR, "-p", PL, "-q", *extra])


def test_calibrate_on_fake_nnunet_validation(fake_results):
    assert _calibrate("--roi", "all") == 0
    data = json.loads((fake_results / CALIBRATION_FILE).read_text())
    assert abs(data["temperature"] - T_TRUE) < 0.25
    assert data["fitted_on"]["n_cases"] == 8 and data["fitted_on"]["voxels"] == 8 * np.prod(SHAPE)
    assert data["model"]["trainer"] == TR and data["model"]["plans_identifier"] == PL
    held = data["held_out"]["per_group"]
    assert set(held) == {"fold_0", "fold_1"} and held["fold_0"]["fitted_on"] == ["fold_1"]
    for v in held.values():                  # cross-fitted T lowers ECE, Brier and NLL on the held-out fold
        assert v["ece_after"] < v["ece_before"] and v["brier_after"] < v["brier_before"]
        assert v["nll_after"] < v["nll_before"]
    # the predictor side: loaded for the same model and applied
    cal = load_calibration(fake_results, PL, TR, CF)
    probs = np.load(fake_results / "fold_0" / "validation" / "case_00.npz")["probabilities"]
    np.testing.assert_allclose(
        cal.apply(probs, sigmoid=False), apply_temperature(probs, data["temperature"]), atol=1e-7
    )
    # existing file kept without --overwrite; per-class fit with --fit-folds 0 evaluates fold 1 with that T
    assert _calibrate() == 2
    assert _calibrate("--per-class", "--fit-folds", "0", "--overwrite") == 0
    data = json.loads((fake_results / CALIBRATION_FILE).read_text())
    assert len(data["temperature"]) == 3 and data["fitted_on"]["groups"] == ["fold_0"]
    assert list(data["held_out"]["per_group"]) == ["fold_1"]
    assert data["held_out"]["per_group"]["fold_1"]["temperature"] == data["temperature"]


def test_calibrate_ece_before_equals_nnext_evaluate(fake_results, tmp_path):
    """The held-out 'before' ECE / Brier of a fold equal what ``nnext evaluate`` reports for the same probabilities
    (same ROI: bbox of reference | prediction + 10 mm; ECE pooled over the fold's cases; Brier per voxel)."""
    from nnunet_ext.evaluation.evaluate import evaluate_folders
    from nnunet_ext.evaluation.uncertainty_eval import UncertaintyOptions
    from nnunet_ext.io.imageio import read_image, write_probabilities

    assert _calibrate("--margin", "2") == 0
    held = json.loads((fake_results / CALIBRATION_FILE).read_text())["held_out"]["per_group"]["fold_0"]
    vdir, pred = fake_results / "fold_0" / "validation", tmp_path / "pred"
    gt = fake_results.parents[2] / "nnUNet_preprocessed" / "Dataset777_Fake" / "gt_segmentations"
    ref = tmp_path / "ref"
    ref.mkdir()
    pred.mkdir()
    for f in sorted(vdir.glob("*.npz")):
        shutil.copy(vdir / f"{f.stem}.nii.gz", pred / f"{f.stem}.nii.gz")
        shutil.copy(gt / f"{f.stem}.nii.gz", ref / f"{f.stem}.nii.gz")
        _, geometry = read_image(gt / f"{f.stem}.nii.gz")
        write_probabilities(np.load(f)["probabilities"], geometry, pred / f"{f.stem}_probabilities.nii.gz")
    summary = evaluate_folders(ref, pred, [1, 2], progress=False,
                               uncertainty=UncertaintyOptions(probabilities_dir=str(pred), margin_mm=2.0))
    unc = summary["uncertainty"]
    assert held["ece_before"] == pytest.approx(unc["pooled"]["ece"], abs=1e-6)
    n = np.array([v["roi_voxels"] for v in unc["per_case"].values()])
    brier = np.array([v["brier"] for v in unc["per_case"].values()])
    assert held["brier_before"] == pytest.approx(float((n * brier).sum() / n.sum()), abs=1e-6)
    assert n.sum() == held["voxels"] < 4 * np.prod(SHAPE)       # the bbox ROI is a proper sub-box


def test_foreign_calibration_file_is_refused(fake_results, tmp_path):
    assert _calibrate() == 0
    assert load_calibration(fake_results, PL, TR, CF) is not None
    with pytest.raises(InputError, match="another model.*trainer 'nnUNetTrainer'"):
        load_calibration(fake_results, PL, "MCDropoutTrainer", CF)
    with pytest.raises(InputError, match="another model.*plans"):
        load_calibration(fake_results, "nnextTinyPlans", TR, CF)
    plans = json.loads((fake_results / "plans.json").read_text())
    plans["configurations"][CF]["patch_size"] = [16, 16, 16]       # same names, other plans content
    (fake_results / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(InputError, match="plans.json content"):
        load_calibration(fake_results, PL, TR, CF)
    # no file -> None
    assert load_calibration(tmp_path, PL, TR, CF) is None


def test_calibrate_folder_mode(fake_results, tmp_path, capsys):
    vdir = fake_results / "fold_0" / "validation"
    ref = fake_results.parents[2] / "nnUNet_preprocessed" / "Dataset777_Fake" / "gt_segmentations"
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--probabilities", str(vdir), "-ref", str(ref), "-o", str(out), "--n-splits", "2"]) == 0
    data = json.loads(out.read_text())
    assert data["model"] is None and set(data["held_out"]["per_group"]) == {"split_0", "split_1"}
    assert data["fitted_on"]["n_cases"] == 4
    assert "T = " in capsys.readouterr().out
    # a file without a model is refused by the predictor
    shutil.copy(out, fake_results / CALIBRATION_FILE)
    with pytest.raises(InputError, match="without a model"):
        load_calibration(fake_results, PL, TR, CF)


def test_calibrate_regions_on_nifti_probabilities(tmp_path):
    """Sigmoid (region) outputs as our CASE_probabilities.nii.gz: per-region T recovered, ECE lowered."""
    from nnunet_ext.io.imageio import Geometry, write_probabilities

    rng = np.random.default_rng(5)
    prob_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    ref_dir.mkdir()
    geometry = Geometry((0.8, 0.7, 2.5), (10.0, -5.0, 3.0), DIRECTION)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    for i in range(6):
        l0, l1 = rng.normal(0.0, 2.0, (2,) + SHAPE)
        t0, t1 = rng.random(SHAPE) < sig(l0), rng.random(SHAPE) < sig(l1)
        labels = np.where(t1, 2, np.where(t0, 1, 0))
        q_whole = 1 - (1 - sig(l0)) * (1 - sig(l1))                 # P(label in {1, 2})
        logit_whole = np.log(q_whole) - np.log1p(-q_whole)
        probs = np.stack([sig(T_TRUE * logit_whole), sig(T_TRUE * l1)])  # over-confident by T_TRUE
        write_probabilities(probs, geometry, prob_dir / f"c{i}_probabilities.nii.gz")
        _write_label(labels, ref_dir / f"c{i}.nii.gz")
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--probabilities", str(prob_dir), "-ref", str(ref_dir), "--regions", "1,2", "2",
                 "--per-class", "--roi", "all", "--n-splits", "3", "-o", str(out), "-q"]) == 0
    data = json.loads(out.read_text())
    assert data["nonlinearity"] == "sigmoid" and data["regions"] == [[1, 2], [2]]
    np.testing.assert_allclose(data["temperature"], [T_TRUE, T_TRUE], rtol=0.15)
    for v in data["held_out"]["per_group"].values():
        assert v["ece_after"] < v["ece_before"] and v["nll_after"] < v["nll_before"]


def _one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err, err


def test_calibrate_bad_input(fake_results, capsys):
    base = ["calibrate", "-d", "777", "-c", CF, "-tr", TR, "-p", PL, "-q"]
    _one_line_error(capsys, base[:5] + ["-tr", "Nope"], "no such model folder")
    _one_line_error(capsys, base + ["-f", "3"], "no validation folder; train with nnUNetv2_train 777 3d_fullres 3")
    vdir = fake_results / "fold_1" / "validation"
    for f in vdir.glob("*.npz"):
        f.unlink()
    _one_line_error(capsys, base, "fold_1/validation: no .npz probabilities")
    _one_line_error(capsys, base + ["-f", "0", "--fit-folds", "1"], "only fold 0 is read")
    # a transposed (C, x, y, z) npz: one line naming the file and both shapes
    f0 = fake_results / "fold_0" / "validation" / "case_00.npz"
    p = np.load(f0)["probabilities"]
    np.savez_compressed(f0, probabilities=p.transpose(0, 3, 2, 1))
    _one_line_error(capsys, base + ["-f", "0"], "case_00.npz have shape (C, *S) (3, 7, 9, 6)")
    np.savez_compressed(f0, softmax=p)
    _one_line_error(capsys, base + ["-f", "0"], "no 'probabilities' array")
    _one_line_error(capsys, ["calibrate", "-q"], "give a model")


# ---------------------------------------------------------------- nnU-Net's own exporter
def test_calibrate_reads_npz_written_by_nnunet_exporter(tmp_path, monkeypatch):
    """nnU-Net 2.8.1's ``export_prediction_from_logits`` (what ``nnUNetv2_train --npz`` calls for every validation
    case) writes the npz from network logits in the transposed, cropped grid (transpose_forward = [2, 0, 1], a
    crop box); calibrate must read it in the reference's geometry and recover the over-confidence T.
    (Training a model with --npz costs minutes on 2 cores, so the exporter is driven directly.)"""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    roots = {k: tmp_path / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for k, v in roots.items():
        monkeypatch.setenv(k, str(v))
    name, shape = "Dataset778_Exported", (10, 14, 12)
    gt = roots["nnUNet_preprocessed"] / name / "gt_segmentations"
    model = roots["nnUNet_results"] / name / f"{TR}__{PL}__{CF}"
    gt.mkdir(parents=True)
    dataset_json = {"labels": {"background": 0, "tumour": 1}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"},
                    "numTraining": 4}
    tf, tb = [2, 0, 1], [1, 2, 0]
    box = [[1, 9], [2, 13], [0, 11]]                       # crop in the original (z, y, x) array
    spacing_zyx = [2.5, 0.7, 0.8]
    plans = {
        "dataset_name": name,
        "plans_name": PL,
        "original_median_spacing_after_transp": [1, 1, 1],
        "original_median_shape_after_transp": [1, 1, 1],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": tf,
        "transpose_backward": tb,
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {},
        "configurations": {
            CF: {
                "data_identifier": "x",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": [8, 8, 8],
                "median_image_size_in_voxels": [8, 8, 8],
                "spacing": [spacing_zyx[i] for i in tf],
                "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "batch_dice": False,
                "architecture": {},
            }
        },
    }
    model.mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps(plans))
    (model / "dataset.json").write_text(json.dumps(dataset_json))
    pm = PlansManager(plans)
    cm = pm.get_configuration(CF)
    rng = np.random.default_rng(7)
    crop = tuple(slice(a, b) for a, b in box)
    inside = np.zeros(shape, bool)
    inside[crop] = True
    for fold in (0, 1):
        vdir = model / f"fold_{fold}" / "validation"
        vdir.mkdir(parents=True)
        for i in range(3):
            case = f"ex_{fold}{i}"
            logits = rng.normal(0.0, 1.5, (2,) + shape)
            logits[1] -= 1.0
            labels = np.zeros(shape, np.int64)
            labels[crop] = _draw(_softmax(logits[(slice(None),) + crop].reshape(2, -1)), rng).reshape(
                [b - a for a, b in box])
            img = sitk.GetImageFromArray(labels.astype(np.uint8))
            img.SetSpacing(spacing_zyx[::-1])
            img.SetDirection(DIRECTION)
            sitk.WriteImage(img, str(gt / f"{case}.nii.gz"))
            _, props = SimpleITKIO().read_seg(str(gt / f"{case}.nii.gz"))
            # nnU-Net transposes first, then crops: shape and box are in the transposed frame
            props.update(shape_before_cropping=[shape[j] for j in tf], bbox_used_for_cropping=[box[j] for j in tf],
                         shape_after_cropping_and_before_resampling=[box[j][1] - box[j][0] for j in tf])
            net = (T_TRUE * logits[(slice(None),) + crop]).transpose([0] + [j + 1 for j in tf])  # network grid
            export_prediction_from_logits(torch_tensor(net), props, cm, pm, dataset_json, str(vdir / case),
                                          save_probabilities=True, num_threads_torch=1)
            written = np.load(vdir / f"{case}.npz")["probabilities"]
            assert written.shape == (2,) + shape                          # original axis order, uncropped
            np.testing.assert_array_equal(written[0][~inside], 1.0)       # background outside nnU-Net's crop
            np.testing.assert_allclose(written[(slice(None),) + crop],
                                       _softmax(T_TRUE * logits[(slice(None),) + crop]), atol=1e-5)
    assert main(["calibrate", "-d", "778", "-c", CF, "-tr", TR, "-p", PL, "-q", "--roi", "all"]) == 0
    data = json.loads((model / CALIBRATION_FILE).read_text())
    assert abs(data["temperature"] - T_TRUE) < 0.3
    for v in data["held_out"]["per_group"].values():
        assert v["ece_after"] < v["ece_before"] and v["nll_after"] < v["nll_before"]
    assert load_calibration(model, PL, TR, CF).temperature.tolist() == [data["temperature"]] * 2


def torch_tensor(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
