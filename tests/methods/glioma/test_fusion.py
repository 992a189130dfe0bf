"""2D/3D fusion (nnunet_ext.methods.glioma.fusion): eq. 2 by hand, composite mean, vectorised Dice, PSO recovery."""
import math

import numpy as np
import pytest

from nnunet_ext.methods.glioma.fusion import FusionParams, composite_3d, fit_case, fit_fusion, fuse, fusion_dice


def test_fuse_by_hand():
    p2d = np.array([0.2, 0.7, 0.9, 0.4], np.float32)
    p3d = np.array([0.8, 0.1, 0.0, 0.6], np.float32)
    covered = np.array([True, True, False, True])
    out = fuse(p2d, p3d, covered, FusionParams(0.58, 0.42, -0.5))
    want = [1 / (1 + math.exp(-(0.58 * 0.2 + 0.42 * 0.8 - 0.5))), 1 / (1 + math.exp(-(0.58 * 0.7 + 0.42 * 0.1 - 0.5))),
            0.9, 1 / (1 + math.exp(-(0.58 * 0.4 + 0.42 * 0.6 - 0.5)))]
    np.testing.assert_allclose(out, want, atol=1e-6)
    assert out.dtype == np.float32


def test_composite_mean_over_overlapping_kernels():
    crops = [np.full((2, 2), 0.2), np.full((2, 2), 0.6)]
    p3d, count = composite_3d((3, 4), [np.s_[0:2, 0:2], np.s_[1:3, 1:3]], crops)
    assert count.tolist() == [[1, 1, 0, 0], [1, 2, 1, 0], [0, 1, 1, 0]]
    assert p3d[1, 1] == pytest.approx(0.4) and p3d[0, 0] == pytest.approx(0.2) and p3d[2, 2] == pytest.approx(0.6)
    assert p3d[0, 3] == 0


def _direct_dice(p2d, p3d, covered, ref, params):
    pred = fuse(p2d, p3d, covered, params) > 0.5
    den = pred.sum() + ref.sum()
    return 1.0 if den == 0 else 2 * (pred & ref).sum() / den


def test_vectorised_dice_equals_direct_per_particle():
    rng = np.random.default_rng(0)
    cases, raw = [], []
    for _ in range(3):
        p2d, p3d = rng.random(500).astype(np.float32), rng.random(500).astype(np.float32)
        covered = rng.random(500) < 0.4
        ref = rng.random(500) < 0.3
        cases.append(fit_case(p2d, p3d, covered, ref))
        raw.append((p2d, p3d, covered, ref))
    w2d, w3d, b = rng.random(7) * 3, rng.random(7) * 3, rng.normal(0, 1, 7)
    got = fusion_dice(cases, w2d, w3d, b, chunk_voxels=100)  # several chunks
    for i in range(7):
        want = np.mean([_direct_dice(*r, FusionParams(w2d[i], w3d[i], b[i])) for r in raw])
        assert got[i] == pytest.approx(want, abs=1e-12)
    # empty reference and empty prediction -> Dice 1
    empty = fit_case(np.zeros(5, np.float32), np.zeros(5, np.float32), np.ones(5, bool), np.zeros(5, bool))
    assert fusion_dice([empty], [1.0], [1.0], [-1.0])[0] == 1.0


def _synthetic(w_true, b_true, seed=0, n_cases=4, n=4000):
    """References built from a known fusion: the optimum (Dice 1) is at the true parameters."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_cases):
        p2d, p3d = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
        covered = rng.random(n) < 0.7
        ref = np.where(covered, w_true * p2d + (1 - w_true) * p3d + b_true > 0, p2d > 0.5)
        cases.append(fit_case(p2d, p3d, covered, ref))
    return cases


def test_pso_recovers_known_weights_sum_to_one():
    cases = _synthetic(0.7, -0.45)
    params = fit_fusion(cases, particles=20, iters=50, sum_to_one=True, bias_max=2.0, seed=0)
    assert params.dice > 0.995 and params.dice > params.dice_2d + 0.05
    assert params.w2d == pytest.approx(0.7, abs=0.03) and params.w3d == pytest.approx(0.3, abs=0.03)
    assert params.b == pytest.approx(-0.45, abs=0.02)
    # reproducible with the same seed
    again = fit_fusion(cases, particles=20, iters=50, sum_to_one=True, bias_max=2.0, seed=0)
    assert (again.w2d, again.b) == (params.w2d, params.b)


def test_pso_free_weights_recover_the_direction():
    cases = _synthetic(0.32, -0.5, seed=1)
    params = fit_fusion(cases, particles=20, iters=60, sum_to_one=False, weight_max=5.0, bias_max=5.0, seed=1)
    assert params.w2d >= 0 and params.w3d >= 0 and params.dice > 0.99
    s = params.w2d + params.w3d  # identifiable up to a positive factor
    assert params.w2d / s == pytest.approx(0.32, abs=0.04) and params.b / s == pytest.approx(-0.5, abs=0.04)


def test_params_json_round_trip_and_missing_key():
    p = FusionParams(0.5, 0.5, -0.5, dice=0.9, dice_2d=0.8, extra={"particles": 20})
    d = p.to_json()
    assert d["particles"] == 20 and FusionParams.from_json(d).w3d == 0.5
    with pytest.raises(ValueError, match="'b'"):
        FusionParams.from_json({"w2d": 1, "w3d": 1})


def test_fusion_fit_cli(tmp_path):
    import json
    import subprocess
    import sys

    from nnunet_ext.io.imageio import Geometry, write_image

    geom = Geometry((1.0, 1.2, 2.0), (-10.0, 5.0, 3.0), (0, 1, 0, 1, 0, 0, 0, 0, 1))
    rng = np.random.default_rng(0)
    d2, d3, ref = (tmp_path / n for n in ("p2d", "p3d", "ref"))
    for case in ("c1", "c2"):
        p2d = rng.random((2, 6, 20, 20)).astype(np.float32)
        p3d = rng.random((2, 6, 20, 20)).astype(np.float32)
        cov = (rng.random((2, 6, 20, 20)) < 0.6).astype(np.float32) * 2
        # label 1 alone belongs to WT, label 2 to WT and ET: build labels consistent with both fusions
        wt = np.where(cov[0] > 0, 0.58 * p2d[0] + 0.42 * p3d[0] - 0.5 > 0, p2d[0] > 0.5)
        et = np.where(cov[1] > 0, 0.3 * p2d[1] + 0.7 * p3d[1] - 0.4 > 0, p2d[1] > 0.5) & wt
        p2d[1][(~wt) & (cov[1] == 0)] = 0.1  # ET outside WT: predicted background there
        p3d[1][(~wt)] = 0.0
        p2d[1][(~wt)] = 0.0
        lab = np.where(et, 2, np.where(wt, 1, 0)).astype(np.uint8)
        for r, tag in enumerate(("WT", "ET")):
            write_image(p2d[r], geom, d2 / f"{case}_prob_{tag}.nii.gz")
            write_image(p3d[r], geom, d3 / f"{case}_p3d_{tag}.nii.gz")
            write_image(cov[r], geom, d3 / f"{case}_coverage_{tag}.nii.gz")
        write_image(lab, geom, ref / f"{case}.nii.gz")
    (d2 / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole tumor": [1, 2],
                                                            "enhancing tumor": [2]},
                                                 "regions_class_order": [1, 2]}))
    out = tmp_path / "fusion.json"
    cmd = [sys.executable, "-m", "nnunet_ext.cli.main", "fusion-fit", "--pred2d", str(d2), "--pred3d", str(d3),
           "-ref", str(ref), "-o", str(out), "--sum-to-one", "--bias-max", "2"]
    refused = subprocess.run(cmd, capture_output=True, text=True)   # no provenance: in-sample cannot be ruled out
    assert refused.returncode == 2 and "no predict_settings.json" in refused.stderr and not out.exists()
    cmd += ["--allow-in-sample", "--objective", "mean"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert got["objective"] == "mean" and got["p2d"] == "mean" and got["out_of_fold"] is False
    assert got["cases"] == ["c1", "c2"] and got["region_labels"] == {"WT": [1, 2], "ET": [2]}
    assert got["region_names"] == {"WT": "whole tumor", "ET": "enhancing tumor"}
    assert got["regions"]["WT"]["w2d"] == pytest.approx(0.58, abs=0.05)
    assert got["regions"]["WT"]["b"] == pytest.approx(-0.5, abs=0.03)
    assert got["regions"]["ET"]["w2d"] == pytest.approx(0.3, abs=0.08)
    assert got["regions"]["WT"]["dice"] > 0.98
    (d3 / "c2_coverage_ET.nii.gz").unlink()
    bad = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True)
    assert bad.returncode == 2 and "c2_coverage_ET.nii.gz" in bad.stderr


def test_global_objective_pools_counts_and_binary_p2d():
    rng = np.random.default_rng(3)
    cases, raw = [], []
    for n in (50, 2000):  # a small and a large case: the two objectives differ
        p2d, p3d = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
        covered, ref = rng.random(n) < 0.5, rng.random(n) < 0.4
        cases.append(fit_case(p2d, p3d, covered, ref))
        raw.append((p2d, p3d, covered, ref))
    w2d, w3d, b = [0.6, 2.0], [0.4, 1.0], [-0.5, -1.2]
    got = fusion_dice(cases, w2d, w3d, b, objective="global")
    for i in range(2):
        preds = [fuse(*r[:3], FusionParams(w2d[i], w3d[i], b[i])) > 0.5 for r in raw]
        tp = sum(int((p & r[3]).sum()) for p, r in zip(preds, raw))
        size = sum(int(p.sum()) + int(r[3].sum()) for p, r in zip(preds, raw))
        assert got[i] == pytest.approx(2 * tp / size, abs=1e-12)
    assert not np.allclose(got, fusion_dice(cases, w2d, w3d, b, objective="mean"))
    # binary P2D: eq. 2 sees the 2D mask (0 / 1), in the fit and in fuse alike
    p2d, p3d, covered, ref = raw[1]
    binary = fit_case(p2d, p3d, covered, ref, p2d_mode="binary")
    assert set(np.unique(binary.p2d).tolist()) <= {0.0, 1.0}
    params = FusionParams(1.0, 1.0, -1.5, p2d="binary")            # covered: foreground iff 2D yes and P3D > 0.5
    fused = fuse(p2d, p3d, covered, params) > 0.5
    np.testing.assert_array_equal(fused[covered], ((p2d > 0.5) & (p3d > 0.5))[covered])
    np.testing.assert_array_equal(fused[~covered], (p2d > 0.5)[~covered])
    direct = 2 * (fused & ref).sum() / (fused.sum() + ref.sum())
    assert fusion_dice([binary], [1.0], [1.0], [-1.5])[0] == pytest.approx(direct, abs=1e-12)
    assert FusionParams.from_json(params.to_json()).p2d == "binary"
    with pytest.raises(ValueError, match="p2d"):
        FusionParams.from_json({"w2d": 1, "w3d": 1, "b": 0, "p2d": "median"})


def test_fusion_fit_refuses_in_sample_cases(tmp_path, monkeypatch):
    """Prediction folders whose predict_settings.json name model folds: a case a fold trained on is refused; the
    out-of-fold layout (one folder per fold, each with the cases its fold held out) is accepted."""
    import json

    from nnunet_ext.cli.main import main
    from nnunet_ext.io.imageio import Geometry, write_image

    raw, pre, res = (tmp_path / n for n in ("raw", "pre", "res"))
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    cases = ["b0", "b1", "b2", "b3"]
    src_splits = [{"train": ["b2", "b3"], "val": ["b0", "b1"]}, {"train": ["b0", "b1"], "val": ["b2", "b3"]}]
    (pre / "Dataset701_Brain").mkdir(parents=True)
    (pre / "Dataset701_Brain" / "splits_final.json").write_text(json.dumps(src_splits))
    # the crop dataset: crops named as kernel-dataset names them, its split grouped by source case
    from nnunet_ext.io.splits import grouped_splits

    crops = {f"{c}_k{i:04d}": c for i, c in enumerate(cases + cases)}
    (raw / "Dataset702_BrainKernels").mkdir(parents=True)
    (raw / "Dataset702_BrainKernels" / "kernel_info.json").write_text(
        json.dumps({"crops": {cid: {"case": c} for cid, c in crops.items()}}))
    (pre / "Dataset702_BrainKernels").mkdir(parents=True)
    (pre / "Dataset702_BrainKernels" / "splits_final.json").write_text(json.dumps(grouped_splits(crops, src_splits)))
    m2, m3 = res / "Dataset701_Brain" / "T2__P__2d", res / "Dataset702_BrainKernels" / "T3__P__3d_fullres"
    geom = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    rng = np.random.default_rng(0)
    ref = tmp_path / "ref"

    def predict(folder, fold, which):
        folder.mkdir(parents=True)
        settings = {"method": {"model2d": {"model_folder": str(m2), "folds": [fold]},
                               "model3d": {"model_folder": str(m3), "folds": [fold]}}}
        (folder / "predict_settings.json").write_text(json.dumps(settings))
        (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole tumor": [1, 2]}}))
        for c in which:
            p = rng.random((4, 6, 6)).astype(np.float32)
            write_image(p, geom, folder / f"{c}_p2d_WT.nii.gz")
            write_image(np.clip(p + 0.1, 0, 1), geom, folder / f"{c}_p3d_WT.nii.gz")
            write_image(np.ones_like(p), geom, folder / f"{c}_coverage_WT.nii.gz")
            write_image((p > 0.5).astype(np.uint8), geom, ref / f"{c}.nii.gz")

    oof = [tmp_path / "oof0", tmp_path / "oof1"]
    predict(oof[0], "0", ["b0", "b1"])
    predict(oof[1], "1", ["b2", "b3"])
    out = tmp_path / "fusion.json"
    argv = ["fusion-fit", "--pred2d", *map(str, oof), "--pred3d", *map(str, oof), "-ref", str(ref), "-o", str(out),
            "--particles", "4", "--iters", "3"]
    assert main(argv) == 0
    fit = json.loads(out.read_text())
    assert fit["out_of_fold"] and fit["cases"] == cases and fit["objective"] == "global"
    # the same cases predicted by fold 1 (trained on b0, b1): refused in one line, nothing written
    wrong = tmp_path / "insample"
    predict(wrong, "1", ["b0", "b1"])
    bad = ["fusion-fit", "--pred2d", str(wrong), "--pred3d", str(wrong), "-ref", str(ref), "-o",
           str(tmp_path / "bad.json")]
    from nnunet_ext.errors import InputError
    from nnunet_ext.methods.glioma import fusion_cli

    with pytest.raises(InputError, match=r"case b0 was predicted by .*T2__P__2d fold 1, which trained on it"):
        fusion_cli.run(fusion_cli_args(bad))
    assert not (tmp_path / "bad.json").exists()
    assert main(bad + ["--allow-in-sample"]) == 0
    # fold all trained on every case of its dataset
    for name, ids in (("Dataset701_Brain", cases), ("Dataset702_BrainKernels", crops)):
        (raw / name / "imagesTr").mkdir(parents=True)
        (raw / name / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
        for c in ids:
            (raw / name / "imagesTr" / f"{c}_0000.nii.gz").write_bytes(b"")
    every = tmp_path / "all"
    predict(every, "all", ["b0"])
    with pytest.raises(InputError, match="fold all, which trained on it"):
        fusion_cli.run(fusion_cli_args(["fusion-fit", "--pred2d", str(every), "--pred3d", str(every), "-ref",
                                        str(ref), "-o", str(tmp_path / "all.json")]))


def fusion_cli_args(argv):
    import argparse

    from nnunet_ext.methods.glioma import fusion_cli

    parser = argparse.ArgumentParser()
    fusion_cli.add_arguments(parser)
    return parser.parse_args(argv[1:])
