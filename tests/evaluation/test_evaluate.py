"""Folder evaluation, ``nnext evaluate`` and ``nnext compare`` on small segmentations written with SimpleITK."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from nnunet_ext.cli.main import main
from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.evaluate import GeometryWarning, evaluate_folders
from nnunet_ext.evaluation.metrics import METRIC_NAMES, compute_metrics
from nnunet_ext.evaluation.summary_io import load_summary
from nnunet_ext.io.imageio import Geometry, write_image

GEOM = Geometry(spacing=(0.7, 0.8, 2.0), origin=(0.0, 0.0, 0.0))  # x, y, z
SHAPE = (8, 16, 16)  # z, y, x


def seg_case(seed: int, shift: int = 0) -> np.ndarray:
    """Label 1: a box; label 2: a smaller box inside it (shifted by ``shift`` voxels along x)."""
    rng = np.random.default_rng(seed)
    s = np.zeros(SHAPE, dtype=np.uint8)
    z0, y0, x0 = rng.integers(1, 3), rng.integers(1, 5), rng.integers(1, 5)
    s[z0:z0 + 5, y0:y0 + 9, x0 + shift:x0 + shift + 9] = 1
    s[z0 + 1:z0 + 4, y0 + 2:y0 + 6, x0 + shift + 2:x0 + shift + 6] = 2
    return s


@pytest.fixture
def folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    for i in range(3):
        write_image(seg_case(i), GEOM, ref / f"case_{i:03d}.nii.gz")
        write_image(seg_case(i, shift=i), GEOM, pred / f"case_{i:03d}.nii.gz")
    return ref, pred


def test_evaluate_folders_matches_compute_metrics(folders):
    ref, pred = folders
    s = evaluate_folders(ref, pred, [1, 2, (1, 2)], tau=1.0, penalty=50.0, progress=False)
    assert list(s["labels"]) == ["1", "2", "1,2"] and s["labels"]["1,2"]["region"]
    assert [r["case"] for r in s["metric_per_case"]] == ["case_000", "case_001", "case_002"]
    rec = s["metric_per_case"][2]
    assert rec["spacing_zyx"] == pytest.approx([2.0, 0.8, 0.7])
    expected = compute_metrics(np.isin(seg_case(2), (1, 2)), np.isin(seg_case(2, 2), (1, 2)), (2.0, 0.8, 0.7), tau=1.0)
    assert rec["metrics"]["1,2"] == pytest.approx(expected)
    assert rec["metrics"]["1,2"]["hd"] == pytest.approx(2 * 0.7)  # shift of 2 voxels along x
    assert s["metric_per_case"][0]["metrics"]["1"]["dice"] == 1.0  # shift 0
    dices = [r["metrics"]["2"]["dice"] for r in s["metric_per_case"]]
    assert s["mean"]["2"]["dice"] == pytest.approx(np.mean(dices))
    assert s["median"]["2"]["dice"] == pytest.approx(np.median(dices))
    assert s["foreground_mean"]["dice"] == pytest.approx(np.mean([s["mean"][k]["dice"] for k in ("1", "2", "1,2")]))


def test_default_labels_empty_cases_and_nan_aware_mean(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    a = seg_case(0)
    no_two = np.where(a == 2, 1, a).astype(np.uint8)  # label 2 absent from this reference
    write_image(a, GEOM, ref / "c1.nii.gz"), write_image(a, GEOM, pred / "c1.nii.gz")
    write_image(no_two, GEOM, ref / "c2.nii.gz"), write_image(a, GEOM, pred / "c2.nii.gz")  # spurious label 2
    # label 2 absent on both sides
    write_image(no_two, GEOM, ref / "c3.nii.gz"), write_image(no_two, GEOM, pred / "c3.nii.gz")
    s = evaluate_folders(ref, pred, None, penalty=99.0, progress=False)
    assert list(s["labels"]) == ["1", "2"]
    m = {r["case"]: r["metrics"]["2"] for r in s["metric_per_case"]}
    assert (m["c2"]["dice"], m["c2"]["hd95"], m["c2"]["nsd"]) == (0.0, 99.0, 0.0)
    assert (m["c3"]["dice"], m["c3"]["hd95"], m["c3"]["nsd"]) == (1.0, 0.0, 1.0)
    assert math.isnan(m["c2"]["sensitivity"]) and math.isnan(m["c3"]["sensitivity"])
    assert s["mean"]["2"]["sensitivity"] == 1.0  # nanmean: only c1 defines it
    assert s["mean"]["2"]["dice"] == pytest.approx(2 / 3)


def test_cli_writes_json_and_csv(folders, tmp_path, capsys):
    ref, pred = folders
    out = tmp_path / "out" / "summary.json"
    out.parent.mkdir()
    out.write_text("old")  # replaced
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-l", "1", "2", "-o", str(out), "--tau", "1.5",
               "--penalty", "200", "-q"])
    assert rc == 0
    s = json.loads(out.read_text())  # strict JSON
    assert s["settings"]["tau_mm"] == 1.5 and s["settings"]["penalty_mm"] == 200
    assert len(s["metric_per_case"]) == 3 and set(s["mean"]) == set(s["median"]) == {"1", "2"}
    assert set(s["metric_per_case"][0]["metrics"]["1"]) == set(METRIC_NAMES)
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert len(rows) == 3 * 2
    assert {(r["case"], r["label"]) for r in rows} == {(f"case_{i:03d}", k) for i in range(3) for k in ("1", "2")}
    first = next(r for r in rows if r["case"] == "case_001" and r["label"] == "2")
    assert float(first["dice"]) == pytest.approx(s["metric_per_case"][1]["metrics"]["2"]["dice"])
    assert not list(out.parent.glob(".tmp-*"))


def test_cli_regions_and_dataset_json(folders, tmp_path):
    ref, pred = folders
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2], "core": 2}, "file_ending": ".nii.gz"}))
    out = tmp_path / "s.json"
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-djfile", str(dj), "-o", str(out), "-q"]) == 0
    s = load_summary(out)
    assert s["labels"] == {"1,2": {"name": "whole", "values": [1, 2], "region": True},
                           "2": {"name": "core", "values": [2], "region": True}}
    out2 = tmp_path / "s2.json"
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "--regions", "1,2", "2", "-o", str(out2), "-q"]) == 0
    s2 = load_summary(out2)
    assert s2["mean"]["1,2"]["dice"] == pytest.approx(s["mean"]["1,2"]["dice"])


def test_multiprocessing_gives_same_result(folders):
    ref, pred = folders
    one = evaluate_folders(ref, pred, [1, 2], progress=False)
    two = evaluate_folders(ref, pred, [1, 2], num_processes=2, progress=False)
    assert [r["metrics"] for r in one["metric_per_case"]] == [r["metrics"] for r in two["metric_per_case"]]


def test_missing_cases_are_named(folders, capsys):
    ref, pred = folders
    (pred / "case_001.nii.gz").unlink()
    write_image(seg_case(5), GEOM, pred / "case_009.nii.gz")
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) == 2
    err = capsys.readouterr().err
    assert "missing in PRED_DIR" in err and "case_001" in err
    assert "missing in REF_DIR" in err and "case_009" in err
    assert len(err.strip().splitlines()) == 1


def test_shape_and_spacing_mismatch_are_named(folders, capsys):
    ref, pred = folders
    write_image(np.zeros((8, 16, 17), np.uint8), GEOM, pred / "case_001.nii.gz")
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) == 2
    err = capsys.readouterr().err
    assert "case_001" in err and "(16, 16, 8)" in err and "(17, 16, 8)" in err
    write_image(seg_case(1), Geometry((0.7, 0.8, 3.0), (0, 0, 0)), pred / "case_001.nii.gz")
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) == 2
    err = capsys.readouterr().err
    assert "case_001" in err and "spacing" in err and "(0.7, 0.8, 2)" in err and "(0.7, 0.8, 3)" in err


def test_origin_mismatch_only_warns(folders, capsys):
    ref, pred = folders
    write_image(seg_case(1, 1), Geometry(GEOM.spacing, (5.0, 0.0, 0.0)), pred / "case_001.nii.gz")
    with pytest.warns(GeometryWarning, match="case_001: origin"):
        s = evaluate_folders(ref, pred, [1], progress=False)
    assert len(s["warnings"]) == 1
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-l", "1", "-q"]) == 0
    assert "warning: case_001: origin differs" in capsys.readouterr().err


def test_bad_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "-ref", str(tmp_path / "nope"), "-pred", str(tmp_path / "empty"), "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["evaluate", "-ref", str(tmp_path / "empty"), "-pred", str(tmp_path / "empty"), "-q"]) == 2
    assert "no '*.nii.gz' files" in capsys.readouterr().err
    with pytest.raises(InputError):
        evaluate_folders(tmp_path / "empty", tmp_path / "nope", [1])


def _summary_file(tmp_path, name, dice_by_case):
    cases = [{"case": c, "metrics": {"1": {"dice": d, "hd95": 10 * (1 - d) if d is not None else None}}}
             for c, d in dice_by_case.items()]
    path = tmp_path / name
    path.write_text(json.dumps({"labels": {"1": {"name": "tumour", "values": [1], "region": False}},
                                "metric_per_case": cases}))
    return path


def test_compare_cli(tmp_path, capsys):
    rng = np.random.default_rng(3)
    da = rng.uniform(0.5, 0.9, 12)
    db = np.clip(da + rng.normal(0.05, 0.03, 12), 0, 1)
    a = _summary_file(tmp_path, "a.json", {f"c{i:02d}": float(v) for i, v in enumerate(da)} | {"only_a": 0.5})
    b_cases = {f"c{i:02d}": float(v) for i, v in enumerate(db)}
    b_cases["c11"] = None  # NaN pair is dropped
    b = _summary_file(tmp_path, "b.json", b_cases)
    out = tmp_path / "cmp.json"
    assert main(["compare", "-a", str(a), "-b", str(b), "-m", "Dice", "hd95", "-l", "tumour", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Wilcoxon p" in text and "12 common case(s); only in A: 1" in text
    res = json.loads(out.read_text())
    dice = next(r for r in res["results"] if r["metric"] == "dice")
    assert dice["n"] == 11
    assert dice["mean_difference"] == pytest.approx(np.mean(db[:11] - da[:11]))
    assert dice["wilcoxon"]["pvalue"] == pytest.approx(stats.wilcoxon(db[:11], da[:11]).pvalue)
    assert dice["spearman"]["statistic"] == pytest.approx(stats.spearmanr(da[:11], db[:11]).statistic)
    assert dice["pearson"]["statistic"] == pytest.approx(stats.pearsonr(da[:11], db[:11]).statistic)
    assert main(["compare", "-a", str(a), "-b", str(a), "-m", "dice"]) == 0  # identical: p = 1, no crash
    assert main(["compare", "-a", str(a), "-b", str(b), "-m", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main(["compare", "-a", str(a), "-b", str(tmp_path / "missing.json")]) == 2
