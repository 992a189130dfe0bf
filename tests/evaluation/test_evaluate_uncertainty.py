"""``nnext evaluate --uncertainty / --probabilities``, probability file IO and the reliability diagram."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.core.calibration import auroc, expected_calibration_error, top_uncertainty_dice
from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.evaluate import evaluate_folders
from nnunet_ext.evaluation.summary_io import load_summary
from nnunet_ext.evaluation.uncertainty_eval import UncertaintyOptions, roi_slices
from nnunet_ext.io.imageio import Geometry, read_probabilities, write_image, write_probabilities

GEOM = Geometry(spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))  # x, y, z -> spacing_zyx (2, 1, 1)
SHAPE = (8, 16, 16)
# reference box z 2:6, y 4:10, x 4:10; prediction shifted by 2 along x (x 6:12)
# errors: x 4:6 (missed, 48 voxels) and x 10:12 (false positive, 48 voxels)
# bbox ROI, margin 2 mm: union z 2:6 y 4:10 x 4:12 grown by (1, 2, 2) voxels -> z 1:7, y 2:12, x 2:14 = 720 voxels
ROI = (slice(1, 7), slice(2, 12), slice(2, 14))


def ref_seg():
    s = np.zeros(SHAPE, np.uint8)
    s[2:6, 4:10, 4:10] = 1
    return s


def pred_seg():
    s = np.zeros(SHAPE, np.uint8)
    s[2:6, 4:10, 6:12] = 1
    return s


def probs_of(pred):
    p1 = np.where(pred == 1, 0.8, 0.1).astype(np.float32)
    return np.stack([1 - p1, p1])


def uncertainty_maps():
    errors = ref_seg() != pred_seg()
    rng = np.random.default_rng(0)
    return {"case_000": errors.astype(np.float32) + 0.01 * rng.random(SHAPE).astype(np.float32),  # perfect ranking
            "case_001": np.full(SHAPE, 0.5, np.float32),                                         # uninformative
            "case_002": (rng.random(SHAPE) + 0.5 * errors).astype(np.float32)}                   # in between


@pytest.fixture
def folders(tmp_path):
    """REF_DIR and a predictor output folder with segmentations, uncertainty maps and probabilities."""
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    for case, unc in uncertainty_maps().items():
        write_image(ref_seg(), GEOM, ref / f"{case}.nii.gz")
        write_image(pred_seg(), GEOM, pred / f"{case}.nii.gz")
        write_image(unc, GEOM, pred / f"{case}_uncertainty.nii.gz")
        write_probabilities(probs_of(pred_seg()), GEOM, pred / f"{case}_probabilities.nii.gz")
    return ref, pred


def test_probabilities_round_trip_keeps_spatial_geometry(tmp_path):
    d = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    geom = Geometry(spacing=(0.7, 0.9, 2.5), origin=(-10.0, 5.0, 3.0), direction=tuple(d.ravel()))
    probs = np.random.default_rng(1).dirichlet([1, 1, 1], size=(4, 5, 6)).astype(np.float32).transpose(3, 0, 1, 2)
    path = tmp_path / "c_probabilities.nii.gz"
    write_probabilities(probs, geom, path)
    image = sitk.ReadImage(str(path))
    assert image.GetDimension() == 4 and image.GetSize() == (6, 5, 4, 3)  # x, y, z, class
    back, g = read_probabilities(path)
    assert back.dtype == np.float32 and np.array_equal(back, probs)
    assert g.spacing == pytest.approx(geom.spacing, abs=1e-6) and g.origin == pytest.approx(geom.origin)
    assert g.direction == pytest.approx(geom.direction) and g.matches(geom)
    with pytest.raises(ValueError, match="spatial axes"):
        write_probabilities(probs[0], geom, tmp_path / "bad.nii.gz")
    with pytest.raises(InputError, match="not found"):
        read_probabilities(tmp_path / "missing.nii.gz")


def test_roi_slices():
    assert roi_slices(ref_seg(), pred_seg(), (2.0, 1.0, 1.0), "bbox", 2.0) == ROI
    assert roi_slices(ref_seg(), pred_seg(), (2.0, 1.0, 1.0), "bbox", 100.0) == tuple(slice(0, n) for n in SHAPE)
    assert roi_slices(ref_seg(), pred_seg(), (2.0, 1.0, 1.0), "all") == tuple(slice(0, n) for n in SHAPE)
    empty = np.zeros(SHAPE, np.uint8)
    assert roi_slices(empty, empty, (2.0, 1.0, 1.0), "bbox", 2.0) == tuple(slice(0, n) for n in SHAPE)


def test_uncertainty_metrics_per_case_and_pooled(folders):
    ref, pred = folders
    opts = UncertaintyOptions(str(pred), str(pred), roi="bbox", margin_mm=2.0)
    s = evaluate_folders(ref, pred, [1], progress=False, uncertainty=opts)
    assert [r["case"] for r in s["metric_per_case"]] == ["case_000", "case_001", "case_002"]  # no side outputs
    assert all("uncertainty" not in r for r in s["metric_per_case"])
    unc = s["uncertainty"]
    per = unc["per_case"]
    errors = (ref_seg() != pred_seg())[ROI]
    assert per["case_000"]["roi_voxels"] == 720 and per["case_000"]["roi_box_zyx"] == [[1, 7], [2, 12], [2, 14]]
    assert per["case_000"]["error_fraction"] == pytest.approx(96 / 720)
    assert per["case_000"]["auroc"] == 1.0 and per["case_000"]["top_dice"] == 1.0
    assert per["case_001"]["auroc"] == 0.5
    u2 = uncertainty_maps()["case_002"][ROI]
    assert 0.5 < per["case_002"]["auroc"] < 1.0
    assert per["case_002"]["auroc"] == pytest.approx(auroc(u2, errors))
    assert per["case_002"]["top_dice"] == pytest.approx(top_uncertainty_dice(u2, errors))
    # hand-computed calibration in the ROI (720 voxels): p1 = 0.8 on the 144 predicted voxels (96 correct),
    # p1 = 0.1 on 576 others (48 of them reference foreground):
    # ECE = (144 |96/144 - 0.8| + 576 |48/576 - 0.1|) / 720 = (19.2 + 9.6) / 720 = 0.04
    # Brier = (96 * 0.08 + 48 * 1.28 + 528 * 0.02 + 48 * 1.62) / 720 = 157.44 / 720
    for case in per:
        assert per[case]["ece"] == pytest.approx(0.04, abs=1e-5)
        assert per[case]["brier"] == pytest.approx(157.44 / 720, abs=1e-5)
    assert unc["mean"]["auroc"] == pytest.approx(np.mean([per[c]["auroc"] for c in per]))
    assert unc["pooled"]["ece"] == pytest.approx(0.04, abs=1e-5)
    assert sum(unc["pooled"]["bins"]["count"]) == 3 * 720
    assert unc["settings"]["roi"] == "bbox" and unc["settings"]["ece_pooling"] == "pooled"


def test_roi_all_uses_every_voxel(folders):
    ref, pred = folders
    s = evaluate_folders(ref, pred, [1], progress=False, uncertainty=UncertaintyOptions(str(pred), roi="all"))
    per = s["uncertainty"]["per_case"]
    errors = ref_seg() != pred_seg()
    assert per["case_002"]["roi_voxels"] == 2048
    assert per["case_002"]["auroc"] == pytest.approx(auroc(uncertainty_maps()["case_002"], errors))
    assert np.isnan(per["case_002"]["ece"]) and np.isnan(s["uncertainty"]["pooled"]["ece"])  # no probabilities


def test_pooled_ece_differs_from_case_mean(folders, tmp_path):
    ref, pred = folders
    probs = probs_of(ref_seg())  # case_001: p1 = 0.8 on the reference box -> underconfident there
    write_probabilities(probs, GEOM, pred / "case_001_probabilities.nii.gz")
    s = evaluate_folders(ref, pred, [1], progress=False,
                         uncertainty=UncertaintyOptions(None, str(pred), margin_mm=2.0))
    unc = s["uncertainty"]
    # case_001: (|144 - 115.2| + |0 - 57.6|) / 720 = 0.12; cases 000 and 002: 0.04 (see above)
    assert unc["per_case"]["case_001"]["ece"] == pytest.approx(0.12, abs=1e-5)
    assert unc["mean"]["ece"] == pytest.approx((0.04 + 0.12 + 0.04) / 3, abs=1e-5)
    # pooled: bin of 0.8: |336 - 345.6| (over- and under-confidence cancel); bin of 0.1: |96 - 172.8|
    # -> (9.6 + 76.8) / 2160 = 0.04
    assert unc["pooled"]["ece"] == pytest.approx(0.04, abs=1e-5)
    ref_roi = np.concatenate([ref_seg()[ROI].ravel()] * 3)
    pooled_probs = np.concatenate([probs_of(p)[(slice(None),) + ROI].reshape(2, -1)
                                   for p in (pred_seg(), ref_seg(), pred_seg())], axis=1)
    assert unc["pooled"]["ece"] == pytest.approx(expected_calibration_error(pooled_probs, ref_roi)[0], abs=1e-6)
    assert np.isnan(unc["per_case"]["case_001"]["auroc"])  # no uncertainty folder given


def test_cli_writes_summary_csv_and_reliability_png(folders, tmp_path, capsys):
    ref, pred = folders
    out = tmp_path / "out" / "summary.json"
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q", "--uncertainty", str(pred),
               "--probabilities", str(pred), "--unc-margin", "2"])
    assert rc == 0
    s = load_summary(out)
    assert s["uncertainty"]["per_case"]["case_000"]["auroc"] == 1.0
    raw = json.loads(out.read_text())
    assert raw["uncertainty"]["mean"]["ece"] == pytest.approx(0.04, abs=1e-5)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["case"] for r in rows] == ["case_000", "case_001", "case_002"]
    assert float(rows[0]["unc_auroc"]) == 1.0 and float(rows[1]["unc_auroc"]) == 0.5
    assert float(rows[2]["unc_brier"]) == pytest.approx(157.44 / 720, abs=1e-5)
    png = tmp_path / "out" / "summary_reliability.png"  # default name beside -o
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_cli_explicit_png_and_plain_evaluate_ignores_side_outputs(folders, tmp_path, capsys):
    ref, pred = folders
    png = tmp_path / "rel.png"
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "--probabilities", str(pred),
                 "--reliability-png", str(png), "--unc-roi", "all"]) == 0
    assert png.stat().st_size > 10_000
    assert "ece_roi_pooled_over_cases" in capsys.readouterr().out
    write_image(uncertainty_maps()["case_000"], GEOM, pred / "case_000_entropy.nii.gz")  # another side output
    write_image(pred_seg(), GEOM, pred / "case_000_1.nii.gz")  # not a side output: still an unmatched case
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) == 2
    assert "case_000_1" in capsys.readouterr().err
    (pred / "case_000_1.nii.gz").unlink()
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) == 0  # side outputs are not cases
    s = json.loads((pred / "summary.json").read_text())
    assert "uncertainty" not in s and len(s["metric_per_case"]) == 3
    assert "unc_auroc" not in (pred / "summary.csv").read_text()


def test_missing_uncertainty_file_is_named(folders, capsys):
    ref, pred = folders
    (pred / "case_001_uncertainty.nii.gz").unlink()
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q", "--uncertainty", str(pred)])
    err = capsys.readouterr().err
    assert rc == 2 and "case_001" in err and "case_001_uncertainty.nii.gz" in err and "case_000" not in err
    assert len(err.strip().splitlines()) == 1


def test_shape_mismatch_is_named(folders, capsys):
    ref, pred = folders
    write_image(np.zeros((8, 16, 15), np.float32), GEOM, pred / "case_002_uncertainty.nii.gz")
    write_probabilities(np.zeros((2, 8, 15, 16), np.float32), GEOM, pred / "case_000_probabilities.nii.gz")
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q", "--uncertainty", str(pred),
               "--probabilities", str(pred)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "case_002: uncertainty shape (z,y,x) (8, 16, 15) != reference (8, 16, 16)" in err
    assert "case_000: probabilities shape (C,z,y,x) (2, 8, 15, 16)" in err


def test_bad_options(folders, tmp_path, capsys):
    ref, pred = folders
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "--reliability-png", "x.png"]) == 2
    assert "needs --probabilities" in capsys.readouterr().err
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "--uncertainty", str(tmp_path / "nope")]) == 2
    assert "UNC_DIR" in capsys.readouterr().err
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "--uncertainty", str(pred),
                 "--top-fraction", "2"]) == 2
    assert "fraction" in capsys.readouterr().err
    bad = probs_of(pred_seg()) * 3
    write_probabilities(bad, GEOM, pred / "case_000_probabilities.nii.gz")
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q", "--probabilities", str(pred)]) == 2
    assert "case_000" in capsys.readouterr().err
