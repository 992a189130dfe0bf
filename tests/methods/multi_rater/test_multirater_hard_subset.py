"""Issue 22: evaluate-raters against the majority and the latent truth, the a-priori hard subset (reader
disagreement or case type, never a model's score) and the HU Wasserstein distance of the MCM."""
import json

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from nnunet_ext.io.imageio import Geometry, write_image
from nnunet_ext.methods.multi_rater.evaluate_raters import case_metrics, hard_cases

G = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_majority_truth_and_agreement_by_hand():
    shape = (4, 12, 12)
    r = np.stack(
        [_box(shape, (0, 0, 0), (4, 6, 6)), _box(shape, (0, 0, 0), (4, 6, 8)), _box(shape, (0, 0, 0), (4, 8, 8))]
    )
    truth = _box(shape, (0, 0, 0), (4, 6, 8))
    m = case_metrics(r[1], r, (1.0, 1.0, 1.0), truth=truth)
    assert m["dice_majority"] == 1.0 and m["dice_truth"] == 1.0  # majority (2 of 3) = reader 1 = the truth
    d01, d02, d12 = 2 * 144 / (144 + 192), 2 * 144 / (144 + 256), 2 * 192 / (192 + 256)
    assert m["reader_agreement"] == pytest.approx((d01 + d02 + d12) / 3)
    results = {"a": {"reader_agreement": 0.6}, "b": {"reader_agreement": 0.9}, "c": {"reader_agreement": 0.95}}
    info = {"a": {"type": "solid"}, "b": {"type": "part-solid"}, "c": {"type": "spiculated"}}
    assert hard_cases(results, 0.7) == {"a": ["disagreement"]}
    assert hard_cases(results, 0.7, info) == {"a": ["disagreement"], "b": ["type"]}
    assert hard_cases(results, None, info, ("spiculated",)) == {"c": ["type"]}


def test_cli_truth_hard_types_and_hu_wasserstein(tmp_path):
    from nnunet_ext.cli.main import main

    shape = (4, 12, 12)
    rng = np.random.default_rng(0)
    hu_true_hc, hu_pred_hc, hu_true_lc, hu_pred_lc = [], [], [], []
    info = {"cases": {}}
    for i, kind in enumerate(("solid", "part-solid")):
        case = f"c{i}"
        r0, r1 = _box(shape, (0, 2, 2), (4, 8, 8)), _box(shape, (0, 3, 3), (4, 10, 10))
        pred = _box(shape, (0, 2, 2), (4, 9, 9))
        hc, lc = _box(shape, (0, 3, 3), (4, 8, 8)), pred & ~_box(shape, (0, 3, 3), (4, 8, 8))
        img = rng.integers(-900, 100, shape).astype(np.int16)
        for d, arr in (("pred", pred), ("truth", r1), ("mcm", None)):
            if arr is not None:
                write_image(arr.astype(np.uint8), G, tmp_path / d / f"{case}.nii.gz")
        write_image(hc.astype(np.uint8), G, tmp_path / "mcm" / f"{case}_hc.nii.gz")
        write_image(lc.astype(np.uint8), G, tmp_path / "mcm" / f"{case}_lc.nii.gz")
        write_image(img, G, tmp_path / "images" / f"{case}_0000.nii.gz")
        for k, m in enumerate((r0, r1)):
            write_image(m.astype(np.uint8), G, tmp_path / "raters" / f"{case}_rater{k}.nii.gz")
        inter, union = r0 & r1, r0 | r1
        hu_true_hc.append(img[inter]), hu_pred_hc.append(img[hc])
        hu_true_lc.append(img[union & ~inter]), hu_pred_lc.append(img[lc])
        info["cases"][case] = {"type": kind}
    (tmp_path / "info.json").write_text(json.dumps(info))
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate-raters",
                "-pred",
                str(tmp_path / "pred"),
                "-raters",
                str(tmp_path / "raters"),
                "-o",
                str(out),
                "--truth",
                str(tmp_path / "truth"),
                "--case-info",
                str(tmp_path / "info.json"),
                "--mcm",
                str(tmp_path / "mcm"),
                "--images",
                str(tmp_path / "images"),
                "--hard-agreement",
                "0.5",
            ]
        )
        == 0
    )
    s = json.loads(out.read_text())
    truth_dice = 2 * (_box(shape, (0, 3, 3), (4, 9, 9)).sum()) / (4 * 49 + 4 * 49)
    assert s["cases"]["c0"]["dice_truth"] == pytest.approx(truth_dice)
    assert s["hard"]["cases"] == {"c1": ["type"]} and s["hard"]["n"] == 1
    assert s["hard"]["mean"]["dice_rater0"] == pytest.approx(s["cases"]["c1"]["dice_rater0"])
    assert s["hu_wasserstein"]["hc"] == pytest.approx(wasserstein_distance(np.concatenate(hu_pred_hc),
                                                                           np.concatenate(hu_true_hc)))
    assert s["hu_wasserstein"]["lc"] == pytest.approx(wasserstein_distance(np.concatenate(hu_pred_lc),
                                                                           np.concatenate(hu_true_lc)))
    assert main(["evaluate-raters", "-pred", str(tmp_path / "pred"), "-raters", str(tmp_path / "raters"),
                 "-o", str(tmp_path / "x.json"), "--truth", str(tmp_path / "nope")]) == 2
    assert not (tmp_path / "x.json").exists()
