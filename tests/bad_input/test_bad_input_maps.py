"""Bad-input matrix (issue 13), commands on maps, probabilities and rater masks: kernels, kernel-dataset (folder
of uncertainty maps), fusion-fit, calibrate (folder mode), evaluate-raters. Harness:
``tests/bad_input/bad_input_harness.py``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_input_harness import (
    DISK_FULL,
    NAN_FLOAT,
    Cell,
    G,
    cell_ids,
    disk_full,
    file_at,
    interrupt_on_call,
    label_map,
    matrix_cells,
    raw_dataset,
    run_cell,
    spoiled_cell,
    unwritable,
    workspace,  # noqa: F401 (a fixture)
)

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import Geometry, write_image


def unc_map(shape=(8, 16, 16), seed=0):
    u = np.random.default_rng(seed).random(shape).astype(np.float32) * 0.1
    u[2:5, 4:9, 4:9] += 0.8
    return u


def _nan_map(shape=(8, 16, 16)):
    u = unc_map(shape)
    u[1, 1, 1] = np.nan
    return u


def _common_cells(klass, argv, bad: Path, out_name: str):
    """Cells every map command shares: the file ``bad`` spoiled, NaN, 2D, implausible spacing, unwritable."""
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan":
        write_image(_nan_map(), G, bad)
        return Cell(argv, bad.name.replace(".", r"\.") + r": 1 NaN and 0 infinite voxel")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, out_name + r": not writable", patches=[unwritable()])
    return None


# ------------------------------------------------------------------------------------------------- kernels

def _cmd_kernels(tmp: Path, mp, klass: str) -> Cell | None:
    u = tmp / "unc.nii.gz"
    write_image(unc_map(), G, u)
    out = tmp / "out" / "kernels.json"
    argv = ["kernels", "-u", str(u), "-o", str(out), "--kernel-mm", "4"]
    if klass == "missing":
        u.unlink()
        return Cell(argv, r"unc\.nii\.gz: .*not found")
    if klass == "wrong_dim":
        write_image(unc_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), u)
        return Cell(argv, r"unc\.nii\.gz: expected a 3D uncertainty map, got 2D")
    if klass == "wrong_geometry":
        write_image(unc_map(), Geometry((0.001, 0.9, 2.0), G.origin), u)
        return Cell(argv, r"unc\.nii\.gz: implausible voxel spacing")
    if klass == "bad_option":  # a negative "uncertainty" is no uncertainty (issue 13: negative maps were scored)
        write_image(unc_map() - 1.0, G, u)
        return Cell(argv, r"unc\.nii\.gz: \d+ voxel value\(s\) outside \[0, inf\]")
    if klass == "output_is_file":
        return Cell(
            argv[:4] + [str(file_at(tmp / "f.txt") / "kernels.json")] + argv[5:],
            r"f\.txt: folder of the output file \(-o\) is an existing file",
        )
    if klass == "interrupted":
        import nnunet_ext.methods.glioma.kernels as ck
        return Cell(argv, "interrupted", code=130, patches=[interrupt_on_call(ck, "search_kernels", 0)], rerun=argv)
    if klass == "other_settings":  # an existing output is kept unless --overwrite
        assert main(argv) == 0
        return Cell(argv[:-1] + ["8"], r"kernels\.json: exists; pass --overwrite")
    if klass == "nan_option":
        return Cell(argv[:-1] + ["nan"], r"--kernel-mm: " + NAN_FLOAT)
    return _common_cells(klass, argv, u, r"kernels\.json")


# ------------------------------------------------------------------------------------------ kernel-dataset

def _cmd_kernel_dataset(tmp: Path, mp, klass: str) -> Cell | None:
    src = raw_dataset(tmp / "raw")
    unc = tmp / "unc"
    unc.mkdir()
    for k in range(2):
        write_image(unc_map(seed=k), G, unc / f"c{k}_entropy_r1.nii.gz")
    argv = ["kernel-dataset", "-d", "901", "-t", "905", "--uncertainty-from", str(unc), "--kernel-mm", "4",
            "--max-kernels", "2", "--no-progress"]
    bad = unc / "c1_entropy_r1.nii.gz"
    if klass == "missing":
        bad.unlink()
        return Cell(argv, r"c1_entropy_r1\.nii\.gz: missing \(uncertainty of case c1")
    if klass == "wrong_dim":
        write_image(unc_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_entropy_r1\.nii\.gz: not on the grid of the label")
    if klass == "wrong_geometry":
        write_image(unc_map(), Geometry((0.8, 0.9, 3.0), G.origin), bad)
        return Cell(argv, r"c1_entropy_r1\.nii\.gz: not on the grid of the label")
    if klass == "malformed_json":
        (src / "dataset.json").write_text('{"labels": {"background": 0, "tumor": 1}, "file_ending": ".nii.gz",}')
        return Cell(argv, r"dataset\.json: malformed dataset\.json \(line 1")
    if klass == "bad_option":
        return Cell(argv + ["--overlap", "2"], r"--overlap: must be in \[0, 1\], got 2")
    if klass == "output_is_file":  # the final dataset path is taken by a file: the swap fails, nothing is left
        file_at(tmp / "raw" / "Dataset905_BadKernels")
        return Cell(argv, r"Dataset905_BadKernels: is a file, expected a folder")
    if klass == "interrupted":
        import nnunet_ext.io.crop_dataset as crops  # the crops' writer
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(crops, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:8] + ["6"] + argv[9:], r"dataset ID 905 already exists.*--overwrite")
    if klass == "unknown_label":  # the second case's label holds a 5 the dataset does not declare
        write_image(label_map() * 5, G, src / "labelsTr" / "c1.nii.gz")
        return Cell(argv, r"labelsTr/c1\.nii\.gz: label value\(s\) \[5\] \(75 voxel\(s\)\) not declared in "
                          r".*dataset\.json \(labels \[0, 1\]\)")
    if klass == "nan_option":
        return Cell(argv + ["--overlap", "nan"], r"--overlap: " + NAN_FLOAT)
    return _common_cells(klass, argv, bad, r"c0_k0000_0000\.nii\.gz")


# --------------------------------------------------------------------------------------------- fusion-fit

def _fusion_inputs(tmp: Path):
    p2d, p3d, ref = tmp / "p2d", tmp / "p3d", tmp / "ref"
    for d in (p2d, p3d, ref):
        d.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        lab = label_map(at=(2, 4 + k, 4))
        write_image(lab, G, ref / f"c{k}.nii.gz")
        p = np.clip(lab * 0.7 + rng.random(lab.shape) * 0.3, 0, 1).astype(np.float32)
        write_image(p, G, p2d / f"c{k}_prob_r1.nii.gz")
        write_image(np.clip(p + 0.1, 0, 1), G, p3d / f"c{k}_p3d_r1.nii.gz")
        write_image(np.ones(lab.shape, np.uint8), G, p3d / f"c{k}_coverage_r1.nii.gz")
    (p2d / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumor": 1}}))
    return p2d, p3d, ref


def _cmd_fusion_fit(tmp: Path, mp, klass: str) -> Cell | None:
    p2d, p3d, ref = _fusion_inputs(tmp)
    out = tmp / "out" / "fusion.json"
    argv = ["fusion-fit", "--pred2d", str(p2d), "--pred3d", str(p3d), "-ref", str(ref), "-o", str(out),
            "--allow-in-sample", "--particles", "4", "--iters", "3"]  # --allow-in-sample: folders without provenance
    bad = p3d / "c1_p3d_r1.nii.gz"
    if klass == "missing":
        bad.unlink()
        return Cell(argv, r"c1_p3d_r1\.nii\.gz: missing \(case c1\)")
    if klass == "wrong_dim":
        write_image(unc_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_p3d_r1\.nii\.gz: not on the grid of the reference c1\.nii\.gz")
    if klass == "wrong_geometry":
        write_image(unc_map(), Geometry((0.8, 0.9, 3.0), G.origin), bad)
        return Cell(argv, r"c1_p3d_r1\.nii\.gz: not on the grid of the reference c1\.nii\.gz")
    if klass == "malformed_json":
        (p2d / "dataset.json").write_text('{"labels": {"background": 0,')
        return Cell(argv, r"dataset\.json: cannot read its 'labels' \(JSONDecodeError: .*line 1")
    if klass == "bad_option":  # a "probability" of 1.7 is not one
        write_image(unc_map() + 1.0, G, bad)
        return Cell(argv, r"c1_p3d_r1\.nii\.gz: \d+ voxel value\(s\) outside \[0, 1\]")
    if klass == "output_is_file":
        return Cell(
            argv[:8] + [str(file_at(tmp / "f.txt") / "fusion.json")] + argv[9:],
            r"f\.txt: folder of the output file \(-o\) is an existing file",
        )
    if klass == "interrupted":
        import nnunet_ext.methods.glioma.fusion as cf
        return Cell(argv, "interrupted", code=130, patches=[interrupt_on_call(cf, "fit_fusion", 0)], rerun=argv)
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:-1] + ["4"], r"fusion\.json: exists; pass --overwrite")
    if klass == "unknown_label":  # a reference value in no region would be background of every region
        write_image(label_map() * 3, G, ref / "c1.nii.gz")
        return Cell(argv, r"ref/c1\.nii\.gz: label value\(s\) \[3\] .*not declared in .*dataset\.json")
    if klass == "nan_option":
        return Cell(argv + ["--weight-max", "nan"], r"argument --weight-max: " + NAN_FLOAT)
    return _common_cells(klass, argv, bad, r"fusion\.json")


# ---------------------------------------------------------------------------------------------- calibrate

def _calibrate_inputs(tmp: Path):
    from nnunet_ext.io.imageio import write_probabilities

    probs, ref = tmp / "probs", tmp / "ref"
    probs.mkdir()
    ref.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        lab = label_map(at=(2, 3 + k, 4))
        write_image(lab, G, ref / f"c{k}.nii.gz")
        p1 = np.clip(lab * 0.6 + rng.random(lab.shape) * 0.4, 0, 1).astype(np.float32)
        write_probabilities(np.stack([1 - p1, p1]), G, probs / f"c{k}_probabilities.nii.gz")
    return probs, ref


def _cmd_calibrate(tmp: Path, mp, klass: str) -> Cell | None:
    probs, ref = _calibrate_inputs(tmp)
    out = tmp / "out" / "calibration.json"
    argv = ["calibrate", "--probabilities", str(probs), "-ref", str(ref), "-o", str(out), "-q", "--voxels", "1000",
            "--n-splits", "3"]
    bad = probs / "c1_probabilities.nii.gz"
    if klass == "missing":
        (ref / "c1.nii.gz").unlink()
        return Cell(argv, r"ref: no reference for 1 case\(s\) \(c1;")
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, ref / "c1.nii.gz")
        return Cell(argv, r"c1\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "wrong_dim":  # a 3D label map given as the probabilities
        write_image(label_map(), G, bad)
        return Cell(argv, r"c1_probabilities\.nii\.gz: .*(shape|classes|4D)")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), ref / "c1.nii.gz")
        return Cell(argv, r"c1: .*differ in spacing")
    if klass == "malformed_json":
        (tmp / "dataset.json").write_text('{"labels": {"background": 0, "tumor": 1}')
        return Cell(argv + ["-djfile", str(tmp / "dataset.json")], r"dataset\.json: .*(malformed|line 1)")
    if klass == "bad_option":
        return Cell(argv + ["--regions", "1,x"], r"--regions 1,x: regions are comma-separated integers")
    if klass == "output_is_file":
        return Cell(argv[:6] + [str(file_at(tmp / "f.txt") / "calibration.json")] + argv[7:],
                    r"f\.txt: folder of the calibration file \(-o\) is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"calibration\.json: not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.evaluation.calibrate as cal
        return Cell(argv, "interrupted", code=130, patches=[interrupt_on_call(cal, "read_probabilities", 1)],
                    rerun=argv)
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--per-class"], r"calibration\.json exists; pass --overwrite")
    if klass == "unknown_label":  # a class the two-channel probabilities do not have
        write_image(label_map() * 5, G, ref / "c1.nii.gz")
        return Cell(argv, r"c1\.nii\.gz: label 5 present but the probabilities have only 2 classes")
    if klass == "nan_option":
        return Cell(argv + ["--margin", "nan"], r"argument --margin: " + NAN_FLOAT)
    return None


# ---------------------------------------------------------------------------------------- evaluate-raters

def _cmd_evaluate_raters(tmp: Path, mp, klass: str) -> Cell | None:
    pred, raters = tmp / "pred", tmp / "raters"
    pred.mkdir()
    raters.mkdir()
    for k in range(2):
        write_image(label_map(at=(2, 4 + k, 4)), G, pred / f"c{k}.nii.gz")
        for r in range(3):
            write_image(label_map(at=(2, 4 + k, 4 + r)), G, raters / f"c{k}_rater{r}.nii.gz")
    out = tmp / "out" / "raters.json"
    argv = ["evaluate-raters", "-pred", str(pred), "-raters", str(raters), "-o", str(out)]
    bad = raters / "c1_rater2.nii.gz"
    if klass == "missing":
        return Cell(argv[:2] + [str(tmp / "nope")] + argv[3:], r"nope: -pred folder not found")
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, bad)
        return Cell(argv, r"c1_rater2\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "wrong_dim":
        write_image(label_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_rater2\.nii\.gz: geometry differs from the prediction c1\.nii\.gz")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), bad)
        return Cell(argv, r"c1_rater2\.nii\.gz: geometry differs from the prediction c1\.nii\.gz")
    if klass == "malformed_json":
        (tmp / "base.json").write_text('{"cases": {')
        return Cell(argv + ["--baseline", str(tmp / "base.json")], r"base\.json: malformed .*\(line 1")
    if klass == "bad_option":
        return Cell(argv + ["--tau", "0"], r"--tau must be > 0")
    if klass == "output_is_file":
        return Cell(argv[:6] + [str(file_at(tmp / "f.txt") / "raters.json")],
                    r"f\.txt: folder of the summary file \(-o\) is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"raters\.csv: not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.methods.multi_rater.evaluate_raters as mr
        return Cell(argv, "interrupted", code=130, patches=[interrupt_on_call(mr, "case_metrics", 1)], rerun=argv)
    if klass == "unknown_label":  # a rater mask holding 2 was counted as foreground (union Dice 1.000 -> 0.838)
        write_image(label_map() * 2, G, bad)
        return Cell(argv, r"c1_rater2\.nii\.gz: rater masks must be binary 0/1, found value\(s\) \[2\] in 75 voxel")
    if klass == "nan_option":
        return Cell(argv + ["--tau", "nan"], r"argument --tau: " + NAN_FLOAT)
    return None


COMMANDS = {"kernels": _cmd_kernels, "kernel-dataset": _cmd_kernel_dataset, "fusion-fit": _cmd_fusion_fit,
            "calibrate": _cmd_calibrate, "evaluate-raters": _cmd_evaluate_raters}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {
    ("kernels", "malformed_json"): "reads no JSON",
    ("evaluate-raters", "other_settings"): "the output is one summary (+ its CSV), recomputed on every run",
    ("kernels", "unknown_label"): "reads an uncertainty map, no segmentation",
    **{(c, "dropped_case"): "not a converter: every case is read or the run is refused (see 'missing')"
       for c in ("kernels", "kernel-dataset", "fusion-fit", "calibrate", "evaluate-raters")},
}
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys):
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)
