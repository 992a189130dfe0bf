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
    truth = {"WT": (0.58, -0.5), "ET": (0.3, -0.4)}
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
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert got["cases"] == ["c1", "c2"] and got["region_labels"] == {"WT": [1, 2], "ET": [2]}
    assert got["region_names"] == {"WT": "whole tumor", "ET": "enhancing tumor"}
    assert got["regions"]["WT"]["w2d"] == pytest.approx(0.58, abs=0.05)
    assert got["regions"]["WT"]["b"] == pytest.approx(-0.5, abs=0.03)
    assert got["regions"]["ET"]["w2d"] == pytest.approx(0.3, abs=0.08)
    assert got["regions"]["WT"]["dice"] > 0.98
    (d3 / "c2_coverage_ET.nii.gz").unlink()
    bad = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True)
    assert bad.returncode == 2 and "c2_coverage_ET.nii.gz" in bad.stderr
