"""What the lung cascade and ``nnext postprocess lung`` print per case (issue 20, item 3): the stage-1 line with
the filter's reasons, "no tumour predicted", the lung-mask backend that ran (auto falling back says so), and
undefined metrics printed as 'undefined', never 'nan'."""
import json

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import write_image
from nnunet_ext.methods.lung_cascade.cascade_predictor import CascadeMethod
from nnunet_ext.methods.lung_cascade.cascade_report import (
    lung_backend_line,
    metric_text,
    no_tumour_line,
    reason_summary,
    stage1_line,
)
from nnunet_ext.predictors.method import CaseResult
from nnunet_ext.synthetic.chest import generate_chest_case

LOG = {"components": [{"kept": True, "reason": "lung_overlap"}, {"kept": False, "reason": "too_far"},
                      {"kept": False, "reason": "top_k"}, {"kept": False, "reason": "too_far"}]}


def test_stage1_line_and_reasons():
    assert reason_summary(LOG["components"]) == "1 lung_overlap; dropped: 2 too_far, 1 top_k"
    assert stage1_line("c1", LOG, 1) == "c1: stage 1: 4 components, 1 kept (1 lung_overlap; dropped: 2 too_far, " \
                                        "1 top_k), 1 ROI"
    assert stage1_line("c2", {"components": []}, 0) == "c2: stage 1: 0 components, 0 kept, 0 ROIs"
    one = {"components": [{"kept": True, "reason": "rescued"}]}
    assert stage1_line("c3", one, 1) == "c3: stage 1: 1 component, 1 kept (1 rescued), 1 ROI"


def test_no_tumour_line_names_the_step():
    assert no_tumour_line("c", LOG, 12) is None
    assert no_tumour_line("c", {"components": []}, 0) == "c: no tumour predicted (stage 1 found no tumour voxel)"
    dropped = {"components": [{"kept": False, "reason": "too_far"}] * 2}
    assert no_tumour_line("c", dropped, 0) == ("c: no tumour predicted (the component filter dropped all 2 "
                                               "stage-1 components)")
    assert no_tumour_line("c", LOG, 0) == "c: no tumour predicted (stage 2 found no tumour voxel in the ROIs)"


def test_metric_text():
    assert metric_text(float("nan")) == "undefined" and metric_text(None) == "undefined"
    assert metric_text(np.float32("nan")) == "undefined"
    assert metric_text(0.123456) == "0.1235" and metric_text(3, "d") == "3"
    assert lung_backend_line("threshold", "threshold") == "lung masks: threshold"
    assert lung_backend_line("auto", "threshold", "lungmask unusable: x") == \
        "lung masks: auto -> threshold (lungmask unusable: x)"


def _bare_cascade(lung):
    """A CascadeMethod without models: only what lung_mask() and report() use."""
    m = CascadeMethod.__new__(CascadeMethod)
    m.lung, m.lungmask_weights = lung, None
    return m


def test_cascade_reports_the_backend_that_ran(capsys, monkeypatch, tmp_path):
    """``--lung-masks auto`` without lungmask weights: the threshold backend runs, the console says so and why
    (once, not per case), and the case log records it; an empty output prints 'no tumour predicted'."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached R231 weights
    case = generate_chest_case(np.random.default_rng(0))
    m = _bare_cascade("auto")
    mask, entry = m.lung_mask(None, case.images[0][None], case.geometry)
    assert entry["backend"] == "threshold" and entry["source"] == "computed (threshold)"
    assert entry["fallback"].startswith("lungmask unusable: ")
    assert set(np.unique(mask)) == {0, 1, 2}
    seg = np.zeros(mask.shape, np.uint8)
    flog = {"components": [{"kept": False, "reason": "too_far"}]}
    result = CaseResult(case.geometry, seg, jsons={"cascade": {"lung": entry, "filter": flog, "rois": []}})
    m.report("case_a", result)
    m.report("case_b", result)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lung masks: auto -> threshold (lungmask unusable: ")
    assert out[1:] == ["case_a: stage 1: 1 component, 0 kept (dropped: 1 too_far), 0 ROIs",
                       "case_a: no tumour predicted (the component filter dropped all 1 stage-1 component)",
                       "case_b: stage 1: 1 component, 0 kept (dropped: 1 too_far), 0 ROIs",
                       "case_b: no tumour predicted (the component filter dropped all 1 stage-1 component)"]
    m = _bare_cascade("threshold")
    _, entry = m.lung_mask(None, case.images[0][None], case.geometry)
    assert "fallback" not in entry
    seg[0, 0, 0] = 1
    m.report("c", CaseResult(case.geometry, seg, jsons={"cascade": {"lung": entry, "filter": LOG, "rois": [{}]}}))
    assert capsys.readouterr().out.splitlines() == [
        "lung masks: threshold",
        "c: stage 1: 4 components, 1 kept (1 lung_overlap; dropped: 2 too_far, 1 top_k), 1 ROI"]


def test_postprocess_prints_reasons_and_empty_cases(tmp_path, capsys):
    case = generate_chest_case(np.random.default_rng(1))
    for d in ("pred", "lung"):
        (tmp_path / d).mkdir()
    write_image(case.label, case.geometry, tmp_path / "pred" / "a.nii.gz")
    write_image(np.zeros_like(case.label), case.geometry, tmp_path / "pred" / "b.nii.gz")
    for n in ("a", "b"):
        write_image(case.side_maps["lungmasks"], case.geometry, tmp_path / "lung" / f"{n}.nii.gz")
    assert main(["postprocess", "lung", "-i", str(tmp_path / "pred"), "-l", str(tmp_path / "lung"), "-o",
                 str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    n = json.loads((tmp_path / "out" / "postprocess_log.json").read_text())["cases"]["a"]["n_components"]
    assert out[0].startswith(f"a: {n} component") and "kept (" in out[0]
    assert out[1:] == ["b: 0 components, 0 kept", "b: no tumour predicted (stage 1 found no tumour voxel)"]


@pytest.mark.parametrize("value, text", [(float("nan"), "AUROC: not defined"), (0.5, "AUROC 0.5")])
def test_evaluate_prints_undefined_not_nan(value, text):
    from nnunet_ext.evaluation.cli import _unc_line

    unc = {"settings": {"roi": "pred"}, "mean": {"auroc": value, "top_dice": value, "ece": value, "brier": value},
           "pooled": {"ece": value}, "calibration": {"ece_dilated_union_pooled_over_cases": value}}
    line = _unc_line(unc)
    assert text in line and "nan" not in line
