"""Bad-input matrix (issue 13), image / summary commands: evaluate, compare, lungmask, postprocess lung.
Harness and conventions: ``tests/bad_input_harness.py``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_input_harness import (
    CHEST_G,
    DISK_FULL,
    NAN_FLOAT,
    Cell,
    G,
    cell_ids,
    chest_ct,
    disk_full,
    file_at,
    interrupt_on_call,
    label_map,
    matrix_cells,
    run_cell,
    spoil,
    unwritable,
    workspace,  # noqa: F401 (a fixture)
)

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import Geometry, read_image, write_image


def _cmd_evaluate(tmp: Path, mp, klass: str) -> Cell | None:
    ref, pred = tmp / "ref", tmp / "pred"
    ref.mkdir()
    pred.mkdir()
    for k in range(2):
        write_image(label_map(at=(2, 4 + k, 4)), G, ref / f"c{k}.nii.gz")
        write_image(label_map(at=(2, 5 + k, 4)), G, pred / f"c{k}.nii.gz")
    out = tmp / "out" / "summary.json"
    argv = ["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q"]
    bad = pred / "c1.nii.gz"
    if klass in ("empty", "corrupt", "truncated"):
        spoil(bad, klass)
        return Cell(argv, {"empty": r"c1\.nii\.gz: empty file", "corrupt": r"c1\.nii\.gz: (not a gzip|corrupt)",
                           "truncated": r"c1\.nii\.gz: truncated"}[klass])
    if klass == "missing":
        return Cell(argv[:4] + [str(tmp / "nope")] + argv[5:], r"PRED_DIR .*nope: no such folder")
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, bad)
        return Cell(argv, r"pred/c1\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "wrong_dim":
        write_image(label_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1: size \(x,y,z\) differs")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), bad)
        return Cell(argv, r"c1: spacing \(x,y,z\) differs")
    if klass == "malformed_json":
        (tmp / "dataset.json").write_text('{"labels": {"background": 0,, }')
        return Cell(argv + ["-djfile", str(tmp / "dataset.json")], r"dataset\.json.*(malformed|line 1)")
    if klass == "bad_option":  # a float prediction: the prediction is blamed, not the reference
        write_image(label_map().astype(np.float32) * 0.5, G, bad)
        return Cell(argv, r"pred/c1\.nii\.gz: .*non-integer")
    if klass == "output_is_file":
        return Cell(argv[:-3] + ["-o", str(file_at(tmp / "f.txt") / "summary.json"), "-q"],
                    r"f\.txt: folder of the summary file \(-o\) is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"summary\.json: not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.evaluation.evaluate as ev
        return Cell(argv, r"interrupted", code=130, patches=[interrupt_on_call(ev, "compute_metrics", 1)],
                    rerun=argv)
    if klass == "unknown_label":  # 7 in a one-class dataset was scored as background without a word
        (tmp / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumor": 1}}))
        write_image(label_map() * 7, G, bad)
        return Cell(argv + ["-djfile", str(tmp / "dataset.json")],
                    r"pred/c1\.nii\.gz: label value\(s\) \[7\] \(75 voxel\(s\)\) not declared in .*dataset\.json.*"
                    r"--ignore-unknown-labels")
    if klass == "nan_option":
        return Cell(argv + ["--tau", "nan"], r"argument --tau: " + NAN_FLOAT)
    return None


def _summary(cases: dict) -> dict:
    return {"metric_per_case": [{"case": c, "metrics": {"1": {"dice": d, "hd95": 3.0, "nsd": 0.5}}}
                                for c, d in cases.items()]}


def _cmd_compare(tmp: Path, mp, klass: str) -> Cell | None:
    a, b = tmp / "a.json", tmp / "b.json"
    a.write_text(json.dumps(_summary({"x": 0.5, "y": 0.6, "z": 0.7})))
    b.write_text(json.dumps(_summary({"x": 0.6, "y": 0.65, "z": 0.9})))
    argv = ["compare", "-a", str(a), "-b", str(b), "-o", str(tmp / "out" / "cmp.json")]
    if klass == "missing":
        a.unlink()
        return Cell(argv, r"a\.json: evaluation summary not found")
    if klass == "empty":
        a.write_text("")
        return Cell(argv, r"a\.json: evaluation summary is empty")
    if klass == "corrupt":
        return Cell(["compare", "-a", "/dev/null", "-b", str(b)], r"/dev/null: not a regular file")
    if klass == "truncated":
        text = a.read_text()
        a.write_text(text[: len(text) // 2])
        return Cell(argv, r"a\.json: malformed evaluation summary \(line \d+")
    if klass == "malformed_json":
        a.write_text('{"metric_per_case": [}')
        return Cell(argv, r"a\.json: malformed evaluation summary \(line 1, column")
    if klass == "bad_option":  # a non-numeric metric value
        data = _summary({"x": 0.5, "y": 0.6, "z": 0.7})
        data["metric_per_case"][1]["metrics"]["1"]["dice"] = "n/a"
        a.write_text(json.dumps(data))
        return Cell(argv, r"a\.json: case 'y', label '1': non-numeric value\(s\) for dice")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "f.txt") / "cmp.json")], r"f\.txt: folder of the output file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"cmp\.json: not writable", patches=[unwritable()])
    if klass == "unknown_label":  # label 1 of A is not label 1 of B: evaluated with other dataset labels
        for path, name in ((a, "tumor"), (b, "lung")):
            data = json.loads(path.read_text())
            data["labels"] = {"1": {"name": name, "values": [1], "region": False}}
            path.write_text(json.dumps(data))
        return Cell(argv, r"label 1 has name 'tumor' in A and 'lung' in B")
    return None


def _lung_inputs(tmp: Path, n=2) -> tuple[Path, Path]:
    inp = tmp / "ct"
    inp.mkdir()
    for k in range(n):
        write_image(chest_ct(), CHEST_G, inp / f"c{k}_0000.nii.gz")
    return inp, tmp / "masks"


def _cmd_lungmask(tmp: Path, mp, klass: str) -> Cell | None:
    inp, out = _lung_inputs(tmp)
    argv = ["lungmask", "-i", str(inp), "-o", str(out), "--backend", "threshold"]
    bad = inp / "c1_0000.nii.gz"  # header-level problems: the LAST case (all headers are checked before writing)
    if klass == "missing":
        return Cell(["lungmask", "-i", str(tmp / "nope"), "-o", str(out)], r"nope: no such file or folder")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(bad, klass)
        return Cell(argv, {"empty": "empty file", "corrupt": "(not a gzip|corrupt)", "truncated": "truncated"}[klass])
    if klass == "nan":
        arr = chest_ct().astype(np.float32)  # voxel-level problems are found when a case is read: the first
        arr[3, 3, 3] = np.nan
        write_image(arr, CHEST_G, inp / "c0_0000.nii.gz")
        return Cell(argv, r"c0_0000\.nii\.gz: 1 NaN and 0 infinite voxel.*--nan-policy zero")
    if klass == "wrong_dim":
        write_image(chest_ct()[5], Geometry((7.0, 7.0), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: a 2D image of size \(48, 48\); expected 3D")
    if klass == "wrong_geometry":
        write_image(chest_ct(), Geometry((0.01, 0.01, 10.0), (0.0, 0.0, 0.0)), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: implausible voxel spacing")
    if klass == "bad_option":
        return Cell(argv + ["--lungmask-weights", str(tmp / "w.pth")], r"w\.pth: lungmask weights file not found")
    if klass == "output_is_file":
        return Cell(
            argv[:4] + [str(file_at(tmp / "masks"))] + argv[5:], r"masks: output folder \(-o\) is an existing file"
        )
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.io.imageio as io
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv,
                    patches=[interrupt_on_call(io, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(
            argv + ["--nan-policy", "zero"], r"written with other settings \(nan_policy: \"refuse\" -> \"zero\"\)"
        )
    return None


def _pp_inputs(tmp: Path) -> tuple[Path, Path]:
    pred, lung = tmp / "pred", tmp / "lung"
    pred.mkdir()
    lung.mkdir()
    for k in range(2):
        lab = np.zeros((14, 48, 48), np.uint8)
        lab[5:8, 20:25, 10:14] = 1
        write_image(lab, CHEST_G, pred / f"c{k}.nii.gz")
        lm = np.zeros_like(lab)
        lm[2:12, 10:38, 5:20], lm[2:12, 10:38, 28:43] = 1, 2
        write_image(lm, CHEST_G, lung / f"c{k}.nii.gz")
    return pred, lung


def _cmd_postprocess(tmp: Path, mp, klass: str) -> Cell | None:
    pred, lung = _pp_inputs(tmp)
    out = tmp / "out"
    argv = ["postprocess", "lung", "-i", str(pred), "-l", str(lung), "-o", str(out)]
    if klass == "missing":
        (lung / "c1.nii.gz").unlink()
        return Cell(argv, r"lung mask missing for case\(s\) c1")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(lung / "c1.nii.gz", klass)
        return Cell(argv, {"empty": "empty file", "corrupt": "(not a gzip|corrupt)", "truncated": "truncated"}[klass])
    if klass == "nan":
        arr = np.zeros((14, 48, 48), np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, CHEST_G, pred / "c0.nii.gz")
        return Cell(argv, r"pred/c0\.nii\.gz: 1 NaN")
    if klass == "wrong_dim":
        write_image(np.zeros((48, 48), np.uint8), Geometry((7.0, 7.0), (0.0, 0.0)), pred / "c1.nii.gz")
        return Cell(argv, r"c1\.nii\.gz: a 2D image .*expected 3D")
    if klass == "wrong_geometry":  # lung mask placed far away: no overlap with the prediction's grid
        write_image(read_image(lung / "c0.nii.gz")[0], Geometry((7.0, 7.0, 10.0), (5000.0, 0.0, 0.0)),
                    lung / "c0.nii.gz")
        return Cell(argv, r"case c0: lung mask does not overlap the prediction's grid")
    if klass == "bad_option":  # a float label map (probabilities) is not a segmentation
        write_image(np.full((14, 48, 48), 0.3, np.float32), CHEST_G, pred / "c0.nii.gz")
        return Cell(argv, r"pred/c0\.nii\.gz: \d+ non-integer voxel value")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "out"))], r"out: output folder \(-o\) is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.io.imageio as io
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv,
                    patches=[interrupt_on_call(io, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--top-k", "1"], r"written with other settings \(config\.top_k: null -> 1\)")
    if klass == "unknown_label":  # a lung mask holds 1 = right and 2 = left lung only
        lm = read_image(lung / "c0.nii.gz")[0]
        lm[0, 0, 0] = 3
        write_image(lm, CHEST_G, lung / "c0.nii.gz")
        return Cell(argv, r"lung/c0\.nii\.gz: label value\(s\) \[3\] \(1 voxel\(s\)\) not declared in a lung mask")
    if klass == "nan_option":
        return Cell(argv + ["--overlap", "nan"], r"argument --overlap: " + NAN_FLOAT)
    return None


COMMANDS = {"evaluate": _cmd_evaluate, "compare": _cmd_compare, "lungmask": _cmd_lungmask,
            "postprocess": _cmd_postprocess}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {
    ("evaluate", "other_settings"): "the output is one summary file, recomputed from its inputs on every run",
    ("compare", "nan"): "JSON null is the documented NaN of a summary", ("compare", "wrong_dim"): "no images",
    ("compare", "wrong_geometry"): "no images", ("compare", "interrupted"): "one short step, writes one file",
    ("compare", "other_settings"): "the output is one file, recomputed on every run",
    ("lungmask", "malformed_json"): "reads no JSON", ("postprocess", "malformed_json"): "reads no JSON",
    ("compare", "nan_option"): "no numeric option", ("lungmask", "nan_option"): "no numeric option",
    ("lungmask", "unknown_label"): "reads CT images only, no segmentation",
    **{(c, "dropped_case"): "not a converter: every case is read or the run is refused (see 'missing')"
       for c in ("evaluate", "compare", "lungmask", "postprocess")},
}
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys):
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)


def test_unexpected_error_one_line_traceback_with_debug(workspace, monkeypatch, capsys):
    import nnunet_ext.evaluation.compare_cli as cc

    a = workspace / "a.json"
    a.write_text(json.dumps(_summary({"x": 0.5, "y": 0.6})))
    monkeypatch.setattr(cc, "compare_summaries", lambda *a, **k: 1 / 0)
    assert main(["compare", "-a", str(a), "-b", str(a)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error: ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["compare", "-a", str(a), "-b", str(a), "--debug"])
    monkeypatch.setenv("NNEXT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["compare", "-a", str(a), "-b", str(a)])


# ------------------------------------------------------------- issue 19: compare's duplicated cases and label keys

def _compare_extra(tmp: Path, mp, klass: str) -> Cell:
    a, b = tmp / "a.json", tmp / "b.json"
    data = _summary({"x": 0.5, "y": 0.6, "z": 0.7})
    b.write_text(json.dumps(_summary({"x": 0.6, "y": 0.65, "z": 0.9})))
    argv = ["compare", "-a", str(a), "-b", str(b), "-o", str(tmp / "out" / "cmp.json")]
    if klass == "duplicated_case":  # which of the two entries would count is a silent choice
        data["metric_per_case"].append({"case": "y", "metrics": {"1": {"dice": 0.1, "hd95": 9.0, "nsd": 0.1}}})
        a.write_text(json.dumps(data))
        return Cell(argv, r"a\.json: case 'y' appears twice in metric_per_case \(entries 1 and 3\)")
    data["metric_per_case"][1]["metrics"] = {"2": data["metric_per_case"][1]["metrics"]["1"]}  # other label key
    data["labels"] = {"1": {"name": "tumor"}}
    a.write_text(json.dumps(data))
    return Cell(argv, r"a\.json: case 'y' has metrics for label key\(s\) '2', not '1'")


@pytest.mark.parametrize("klass", ["duplicated_case", "label_key"])
def test_compare_refuses_duplicated_cases_and_other_label_keys(klass, workspace, monkeypatch, capsys):
    run_cell(_compare_extra(workspace, monkeypatch, klass), f"compare x {klass}", workspace, monkeypatch, capsys)
