"""Issue 23: failure-detection metrics (AURC, AUROC, Spearman) and ``failure_detection`` of ``nnext evaluate``."""
import json
import math

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.core.failure_detection import aurc, aurc_optimal, failure_auroc, risk_coverage, spearman
from nnunet_ext.io.imageio import Geometry, write_image


def test_aurc_auroc_spearman_hand_computed():
    conf, dice = [0.9, 0.8, 0.3], [1.0, 0.2, 0.6]
    risk = 1 - np.array(dice)  # 0, 0.8, 0.4 in confidence order: selective risks 0, 0.4, 0.4
    assert aurc(conf, risk) == pytest.approx((0 + 0.4 + 0.4) / 3)
    assert aurc_optimal(risk) == pytest.approx((0 + 0.2 + 0.4) / 3)  # risks sorted 0, 0.4, 0.8
    assert failure_auroc(conf, dice, 0.5) == pytest.approx(0.5)  # the failure ranks between the two others
    assert spearman(conf, dice) == pytest.approx(0.5)  # rank differences 0, 1, -1: 1 - 6 * 2 / 24
    # ties are accepted together: {0.9} then {0.5, 0.5}
    cov, sel = risk_coverage([0.5, 0.5, 0.9], [1.0, 0.0, 0.0])
    assert cov.tolist() == pytest.approx([1 / 3, 1.0]) and sel.tolist() == pytest.approx([0.0, 1 / 3])
    assert aurc([0.5, 0.5, 0.9], [1.0, 0.0, 0.0]) == pytest.approx(2 / 9)
    assert math.isnan(failure_auroc([0.1, 0.2], [0.9, 0.8]))  # no failure
    assert failure_auroc([0.2, 0.9], [0.1, 0.9]) == 1.0


GEOM = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))


def _write_case(ref_dir, pred_dir, case, pred):
    ref = np.zeros((4, 12, 12), np.uint8)
    ref[1:3, 2:6, 2:6] = 1
    write_image(ref, GEOM, ref_dir / f"{case}.nii.gz")
    write_image(pred.astype(np.uint8), GEOM, pred_dir / f"{case}.nii.gz")


def test_evaluate_failure_detection_on_a_hand_made_folder(tmp_path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir(), pred_dir.mkdir()
    good = np.zeros((4, 12, 12))  # exact + a false lesion
    good[1:3, 2:6, 2:6] = 1
    good[1:3, 9:11, 9:11] = 1
    half = np.zeros((4, 12, 12))  # Dice 0.5
    half[1:3, 2:6, 4:8] = 1
    empty = np.zeros((4, 12, 12))  # Dice 0
    for case, pred in (("a", good), ("b", half), ("c", empty)):
        _write_case(ref_dir, pred_dir, case, pred)
    # component numbering of core.confidence.components: a has 1 = the true lesion (scanned first), 2 = false
    rows = ["case,label,component,voxels,volume_mm3,mean_uncertainty,boundary_uncertainty,pairwise_dice,n_members,"
            "confidence,confidence_source,uncertainty_map,flag",
            "a,1,0,40,40,0.1,0.2,,1,0.9,uncertainty,entropy,ok", "a,1,1,32,32,0.1,0.2,,1,0.95,uncertainty,entropy,ok",
            "a,1,2,8,8,0.5,0.5,,1,0.3,uncertainty,entropy,small",
            "b,1,0,32,32,0.1,0.2,,1,0.4,uncertainty,entropy,low_confidence",
            "b,1,1,32,32,0.1,0.2,,1,0.4,uncertainty,entropy,low_confidence",
            "c,1,0,0,0,,,,1,0.7,uncertainty,entropy,empty"]
    (pred_dir / "confidence.csv").write_text("\n".join(rows) + "\n")
    assert main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-q", "--fail-dice", "0.6"]) == 0
    summary = json.loads((pred_dir / "summary.json").read_text())
    fd = summary["failure_detection"]["per_label"]["1"]
    dice = {c["case"]: c["metrics"]["1"]["dice"] for c in summary["metric_per_case"]}
    assert dice["a"] == pytest.approx(2 * 32 / 72) and dice["b"] == pytest.approx(0.5) and dice["c"] == 0
    # every case fails at 0.6 except none: a has Dice 0.889 -> passes; b and c fail
    assert fd["n_cases"] == 3 and fd["n_failures"] == 2
    assert fd["auroc_failure"] == 1.0  # a (0.9) above both failures (0.7, 0.4)
    r = {"a": 1 - dice["a"], "b": 0.5, "c": 1.0}
    expected = (r["a"] + (r["a"] + r["c"]) / 2 + (r["a"] + r["b"] + r["c"]) / 3) / 3  # order a, c, b
    assert fd["aurc"] == pytest.approx(expected)
    assert fd["aurc_optimal"] == pytest.approx((r["a"] + (r["a"] + r["b"]) / 2 + sum(r.values()) / 3) / 3)
    assert fd["spearman_confidence_dice"] == pytest.approx(0.5)  # ranks conf a>c>b, dice a>b>c
    comps = fd["components"]
    assert comps["n_true_positive"] == 2 and comps["n_false_positive"] == 1
    assert comps["auroc_true_positive"] == 1.0  # true lesions 0.95 and 0.4 vs false 0.3
    assert (pred_dir / "summary_risk_coverage.png").stat().st_size > 0


def test_calibration_keys_inside_the_dilated_union(tmp_path):
    from nnunet_ext.evaluation.evaluate import evaluate_folders
    from nnunet_ext.evaluation.uncertainty_eval import UncertaintyOptions, save_reliability_diagram
    from nnunet_ext.io.imageio import write_probabilities

    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir(), pred_dir.mkdir()
    seg = np.zeros((1, 10, 10), np.uint8)
    seg[0, 3:6, 3:6] = 1
    write_image(seg, GEOM, ref_dir / "a.nii.gz")
    write_image(seg, GEOM, pred_dir / "a.nii.gz")
    p1 = np.where(seg == 1, 0.8, 0.1).astype(np.float32)
    write_probabilities(np.stack([1 - p1, p1]), GEOM, pred_dir / "a_probabilities.nii.gz")
    opts = UncertaintyOptions(probabilities_dir=str(pred_dir), roi="all", calib_margin_mm=1.0)
    s = evaluate_folders(str(ref_dir), str(pred_dir), uncertainty=opts, progress=False)
    cal = s["uncertainty"]["calibration"]
    # union dilated by 1 mm (Euclidean): the 3x3 square and 4 strips of 3 = 21 voxels, 9 at p 0.8 (hit), 12 at 0.1
    per = s["uncertainty"]["per_case"]["a"]
    assert per["dilated_union_voxels"] == 21
    assert per["ece_dilated_union"] == pytest.approx((9 * 0.2 + 12 * 0.1) / 21)
    assert per["brier_dilated_union"] == pytest.approx((9 * 0.08 + 12 * 0.02) / 21)
    assert per["ece"] == pytest.approx((9 * 0.2 + 91 * 0.1) / 100)  # the whole image: background dominates
    assert cal["ece_dilated_union_pooled_over_cases"] == pytest.approx(per["ece_dilated_union"])
    assert cal["ece_dilated_union_pooled_over_cases_per_class"]["1"] == pytest.approx(per["ece_dilated_union"])
    assert cal["ece_roi_pooled_over_cases"] == pytest.approx(per["ece"]) == cal["ece_roi_mean_over_cases"]
    assert cal["brier_roi_mean_over_cases"] == pytest.approx((9 * 0.08 + 91 * 0.02) / 100)
    assert cal["reliability_diagram"] == "ece_dilated_union_pooled_over_cases"
    bins = s["uncertainty"]["pooled"]["bins_dilated_union"]
    assert sum(bins["count"]) == 21
    save_reliability_diagram(bins, tmp_path / "r.png", ece_name="ece_dilated_union_pooled_over_cases")
