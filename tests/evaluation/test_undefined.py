"""nnext evaluate says in words which prediction is empty and which metric is undefined, and never prints nan."""
import numpy as np

from nnunet_ext.cli.main import main
from nnunet_ext.evaluation.undefined import metric_text
from nnunet_ext.io.imageio import Geometry, write_image

GEOM = Geometry(spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))


def _box() -> np.ndarray:
    s = np.zeros((6, 12, 12), dtype=np.uint8)
    s[1:4, 3:8, 3:8] = 1
    return s


def test_metric_text_names_the_reason_instead_of_nan():
    assert metric_text("ece", float("nan")) == "ECE: not defined, no foreground"
    assert metric_text("ece", 0.03125) == "ECE 0.03125"
    assert metric_text("auroc", None).startswith("AUROC: not defined, no voxel errors")


def test_evaluate_names_the_empty_prediction_and_the_undefined_auroc(tmp_path, capsys):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    for case, predicted in (("chest_test_000", np.zeros_like(_box())), ("chest_test_001", _box())):
        write_image(_box(), GEOM, ref / f"{case}.nii.gz")
        write_image(predicted, GEOM, pred / f"{case}.nii.gz")
        write_image(np.zeros(_box().shape, np.float32), GEOM, pred / f"{case}_uncertainty.nii.gz")
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(tmp_path / "s.json"), "-l", "1",
               "--uncertainty", str(pred), "-q"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "nnext evaluate: chest_test_000: no label 1 predicted (Dice 0, HD95 = the penalty)" in err
    assert "chest_test_001: no" not in err
    # not quiet: the printed table and uncertainty line hold no nan (case 001 has no errors: AUROC undefined)
    write_image(_box(), GEOM, pred / "chest_test_000.nii.gz")
    rc = main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(tmp_path / "s.json"), "-l", "1",
               "--uncertainty", str(pred)])
    out = capsys.readouterr()
    assert rc == 0 and "nan" not in out.out.lower() and "no label 1 predicted" not in out.err
    assert "AUROC: not defined, no voxel errors in the ROI" in out.out
