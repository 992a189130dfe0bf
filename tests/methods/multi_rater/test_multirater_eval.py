"""nnext evaluate-raters: per-rater / union / intersection scores, HC / LC, Complex-Nodule Validation, HU KDE."""
import json

import numpy as np
import pytest

from nnunet_ext.io.imageio import Geometry, write_image
from nnunet_ext.methods.multi_rater.evaluate_raters import case_metrics, complex_nodule_validation, overlap_scores


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_case_metrics_against_hand_counts():
    shape = (6, 20, 20)
    r0, r1 = _box(shape, (1, 2, 2), (5, 12, 12)), _box(shape, (1, 4, 4), (5, 14, 14))  # 400 voxels each
    raters = np.stack([r0, r1])
    pred = r0.copy()
    m = case_metrics(pred, raters, (1.0, 1.0, 1.0), tau=1.0, hc=r0 & r1, lc=(r0 | r1) & ~(r0 & r1))
    inter, union = (r0 & r1).sum(), (r0 | r1).sum()  # 256, 544
    assert m["dice_rater0"] == 1.0 and m["nsd_rater0"] == 1.0
    assert m["dice_each"][1] == pytest.approx(2 * inter / 800)
    assert m["dice_union"] == pytest.approx(2 * 400 / (400 + union))
    assert m["iou_intersection"] == pytest.approx(inter / 400)
    assert m["dice_rater_mean"] == pytest.approx((1 + 2 * inter / 800) / 2)
    assert m["dice_hc"] == 1.0 and m["dice_lc"] == 1.0 and m["n_raters"] == 2
    assert overlap_scores(np.zeros(3, bool), np.zeros(3, bool), (1,), 1.0)["dice"] == 1.0


def test_complex_nodule_validation_picks_hard_baseline_cases():
    base = {"a": {"dice_rater0": 0.5, "iou_rater0": 0.3}, "b": {"dice_rater0": 0.75, "iou_rater0": 0.6},
            "c": {"dice_rater0": 0.9, "iou_rater0": 0.8}}
    meth = {"a": {"dice_rater0": 0.7, "iou_rater0": 0.5}, "b": {"dice_rater0": 0.85, "iou_rater0": 0.7},
            "c": {"dice_rater0": 0.88, "iou_rater0": 0.78}}
    out = complex_nodule_validation(base, meth)
    assert out["below_60"]["cases"] == ["a"] and out["below_60"]["method_dice_rater0"] == pytest.approx(0.7)
    assert out["below_80"]["cases"] == ["a", "b"]
    assert out["below_80"]["baseline_dice_rater0"] == pytest.approx(0.625)


def test_cli_writes_summary_csv_and_kde(tmp_path):
    from nnunet_ext.cli.main import main

    rng = np.random.default_rng(0)
    g = Geometry((0.7, 0.7, 0.8), (-10.0, 5.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    shape = (8, 24, 24)
    for d in ("pred", "raters", "mcm", "images", "base"):
        (tmp_path / d).mkdir()
    for i in range(3):
        r = [_box(shape, (2, 4 + i, 4), (6, 14 + i + k, 14 + k)) for k in range(3)]
        for k, m in enumerate(r):
            write_image(m.astype(np.uint8), g, tmp_path / "raters" / f"c{i}_rater{k}.nii.gz")
        write_image(r[1].astype(np.uint8), g, tmp_path / "pred" / f"c{i}.nii.gz")
        write_image(r[0].astype(np.uint8), g, tmp_path / "base" / f"c{i}.nii.gz")
        inter, union = np.logical_and.reduce(r), np.logical_or.reduce(r)
        write_image(inter.astype(np.uint8), g, tmp_path / "mcm" / f"c{i}_hc.nii.gz")
        write_image((union & ~inter).astype(np.uint8), g, tmp_path / "mcm" / f"c{i}_lc.nii.gz")
        hu = np.where(inter, 20, np.where(union, -500, -850)) + rng.normal(0, 20, shape)
        write_image(hu.astype(np.int16), g, tmp_path / "images" / f"c{i}_0000.nii.gz")
    assert main(["evaluate-raters", "-pred", str(tmp_path / "base"), "-raters", str(tmp_path / "raters"),
                 "-o", str(tmp_path / "base.json")]) == 0
    assert main(["evaluate-raters", "-pred", str(tmp_path / "pred"), "-raters", str(tmp_path / "raters"),
                 "-o", str(tmp_path / "s.json"), "--mcm", str(tmp_path / "mcm"), "--images", str(tmp_path / "images"),
                 "--kde-png", str(tmp_path / "kde.png"), "--baseline", str(tmp_path / "base.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["mean"]["dice_hc"] == 1.0 and s["mean"]["dice_lc"] == 1.0
    assert s["cases"]["c0"]["dice_each"][1] == 1.0
    assert json.loads((tmp_path / "base.json").read_text())["mean"]["dice_rater0"] == 1.0
    assert s["complex_nodules"]["below_60"]["n"] == 0  # the baseline is perfect on rater 0
    assert (tmp_path / "kde.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "s.csv").is_file()


def test_cli_bad_input(tmp_path, capsys):
    from nnunet_ext.cli.main import main

    assert main(["evaluate-raters", "-pred", str(tmp_path / "nope"), "-raters", str(tmp_path), "-o",
                 str(tmp_path / "s.json")]) == 2
    assert "-pred folder not found" in capsys.readouterr().err
    assert main(["evaluate-raters", "-pred", str(tmp_path), "-raters", str(tmp_path), "-o", str(tmp_path / "s.json"),
                 "--kde-png", "x.png"]) == 2


def test_demo_nodule_overview_png_and_dispatch(tmp_path, monkeypatch):
    import argparse

    from nnunet_ext.demos import cli as demo
    from nnunet_ext.demos.nodule import overview_png

    shape = (5, 20, 20)
    raters = np.stack([_box(shape, (1, 4, 4), (4, 12 + k, 12 + k)) for k in range(3)])
    z = overview_png(np.full(shape, -800.0), raters, raters[1], raters.all(0), raters.any(0) & ~raters.all(0),
                     tmp_path / "c.png", "case")
    assert z == 1 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    called = {}
    monkeypatch.setattr("nnunet_ext.demos.nodule.run_nodule", lambda a: called.setdefault("args", a) and 0)
    assert demo.run(parser.parse_args(["nodule", "-o", str(tmp_path)])) == 0 and called["args"].kind == "nodule"
    assert parser.parse_args([]).kind == "chest"
