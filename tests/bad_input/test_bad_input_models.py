"""Bad-input matrix (issue 13), commands that load a model: predict (``-m stock``, ``-m tta_mc``) and clicks-eval,
on tiny untrained model folders (``tests/bad_input_models.py``, ~15 s for both, once per session). Harness and
conventions: ``tests/bad_input_harness.py``; ``tests/test_predict_bad_input.py`` adds the cases of a trained model
(broken checkpoints and plans, every image defect on one case, common options, resume of one case)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from bad_input_harness import (
    DISK_FULL,
    Cell,
    G,
    cell_ids,
    ct_image,
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
    write_nan_image,
)
from bad_input_models import DATASET, DATASET_ID, PLANS, write_untrained_model

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import Geometry, write_image

MODELS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def untrained_models(tmp_path_factory):
    results = tmp_path_factory.mktemp("bad_input_models")
    for trainer in ("nnUNetTrainer", "ClickPromptErrorTrainer"):
        write_untrained_model(results, trainer)
    return results


def _model_copy(tmp: Path, mp, trainer: str) -> Path:
    """The untrained model copied into this cell's nnUNet_results (a cell may damage it)."""
    name = f"{trainer}__{PLANS}__3d_fullres"
    dst = tmp / "res" / DATASET / name
    shutil.copytree(MODELS["root"] / DATASET / name, dst, ignore=shutil.ignore_patterns(".preprocessed_stub"))
    mp.setenv("nnUNet_results", str(tmp / "res"))
    return dst


def _cases(tmp: Path) -> Path:
    return raw_dataset(tmp / "raw", DATASET_ID, n=2)


# ------------------------------------------------------------------------------------------------- predict

def _cmd_predict(tmp: Path, mp, klass: str) -> Cell | None:
    model = _model_copy(tmp, mp, "nnUNetTrainer")
    src = _cases(tmp)
    images, out = src / "imagesTr", tmp / "out"
    argv = ["predict", "-m", "stock", "-i", str(images), "-o", str(out), "-d", str(DATASET_ID), "-c", "3d_fullres",
            "-tr", "nnUNetTrainer", "-p", PLANS, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"]
    bad = images / "c1_0000.nii.gz"  # the LAST case: every input is checked before the first output
    if klass == "missing":
        return Cell(argv[:4] + [str(tmp / "nope")] + argv[5:], r"nope.*not found")
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan":  # voxel-level problems are found when a case is read: the first
        write_nan_image(images / "c0_0000.nii.gz")
        return Cell(argv, r"c0_0000\.nii\.gz: 1 NaN and 1 infinite voxel")
    if klass == "wrong_dim":
        write_image(ct_image()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: .*2D.*the model is 3D")
    if klass == "wrong_geometry":
        write_image(ct_image(), Geometry((0.01, 0.01, 2.0), G.origin), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: implausible voxel spacing")
    if klass == "malformed_json":
        (model / "plans.json").write_text('{"configurations": {')
        return Cell(argv, r"plans\.json: malformed")
    if klass == "bad_option":
        return Cell(argv + ["-step_size", "0"], r"-step_size must be in \(0, 1\]")
    if klass == "nan_option":
        return Cell(argv + ["-step_size", "nan"], r"argument -step_size: 'nan' is not a finite number")
    if klass == "output_is_file":
        return Cell(argv[:6] + [str(file_at(tmp / "out"))] + argv[7:], r"out: .*is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":  # Ctrl-C while writing the second case: the first stays and is not redone
        import nnunet_ext.io.imageio as io
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv,
                    patches=[interrupt_on_call(io, "write_image", 2)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:2] + ["tta_mc"] + argv[3:] + ["--n-samples", "2"], r"written with other settings")
    return None


# --------------------------------------------------------------------------------------------- clicks-eval

def _cmd_clicks_eval(tmp: Path, mp, klass: str) -> Cell | None:
    model = _model_copy(tmp, mp, "ClickPromptErrorTrainer")
    src = _cases(tmp)
    images, ref, out = src / "imagesTr", src / "labelsTr", tmp / "ce"
    argv = ["clicks-eval", "-i", str(images), "-ref", str(ref), "-o", str(out), "-d", str(DATASET_ID), "-c",
            "3d_fullres", "-p", PLANS, "-f", "0", "-device", "cpu", "--max-clicks", "1"]
    bad = ref / "c1.nii.gz"
    if klass == "missing":
        bad.unlink()
        return Cell(argv, r"c1\.nii\.gz: reference segmentation not found")
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, bad)
        return Cell(argv, r"c1\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "wrong_dim":
        write_image(ct_image()[0], Geometry((0.8, 0.9), (0.0, 0.0)), images / "c1_0000.nii.gz")
        return Cell(argv, r"c1_0000\.nii\.gz: .*2D")
    if klass == "wrong_geometry":  # the reference is not on the image's grid
        write_image(label_map(shape=(8, 16, 18)), G, bad)
        return Cell(argv, r"c1\.nii\.gz: (shape|grid|geometry).*differ")
    if klass == "malformed_json":
        (model / "dataset.json").write_text('{"labels": {"background": 0,')
        return Cell(argv, r"dataset\.json: malformed")
    if klass == "bad_option":
        return Cell(argv[:-1] + ["0"], r"--max-clicks must be >= 1")
    if klass == "output_is_file":
        return Cell(argv[:6] + [str(file_at(tmp / "ce"))] + argv[7:], r"ce: .*is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":  # outputs are written at the end: nothing is left, a re-run redoes all cases
        import nnunet_ext.evaluation.metrics as metrics
        return Cell(
            argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(metrics, "compute_metrics", 2)]
        )
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:-1] + ["2"], r"clicks_eval\.csv exists; pass --overwrite")
    if klass == "unknown_label":  # a reference class the model does not have
        write_image(label_map() * 5, G, bad)
        return Cell(argv, r"c1\.nii\.gz: label value\(s\) \[5\] \(75 voxel\(s\)\) not declared in the model's "
                          r"dataset\.json")
    if klass == "nan_option":
        return Cell(argv + ["--tau", "nan"], r"argument --tau: 'nan' is not a finite number")
    return None


COMMANDS = {"predict": _cmd_predict, "clicks-eval": _cmd_clicks_eval}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE: dict = {
    ("predict", "unknown_label"): "reads images only (clicks: issue 19 item 5)",
    **{(c, "dropped_case"): "not a converter: every case is read or the run is refused (see 'missing')"
       for c in ("predict", "clicks-eval")},
}
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys, untrained_models):
    MODELS["root"] = untrained_models
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)


# ------------------------------- issue 19: clicks for absent cases, non-finite clicks, plans of another model

def _predict_extra(tmp: Path, mp, klass: str) -> Cell:
    import json

    trainer = "nnUNetTrainer" if klass == "plans_mismatch" else "ClickPromptErrorTrainer"
    model = _model_copy(tmp, mp, trainer)
    images = _cases(tmp) / "imagesTr"
    argv = ["predict", "-m", "stock", "-i", str(images), "-o", str(tmp / "out"), "-d", str(DATASET_ID), "-c",
            "3d_fullres", "-tr", trainer, "-p", PLANS, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"]
    if klass == "plans_mismatch":  # plans of a wider network: the layer shapes and the plans key are named
        plans = json.loads((model / "plans.json").read_text())
        plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [8, 16, 32]
        (model / "plans.json").write_text(json.dumps(plans))
        return Cell(argv, r"plans\.json: plans do not match the checkpoint .*fold_0/checkpoint_final\.pth: layer "
                          r"encoder\.stages\.0\.0\.convs\.0\.conv\.weight has shape \(4, 1, 1, 3, 3\) in the "
                          r"checkpoint, \(8, 1, 1, 3, 3\) with these plans; first differing plans key "
                          r"configurations\.3d_fullres\.architecture\.arch_kwargs\.features_per_stage: \[4, 8, 16\] in "
                          r"the checkpoint, \[8, 16, 32\] in plans\.json")
    if klass == "option_of_a_newer_version_in_plans":  # a model trained with a newer nnunet_ext: named, not internal
        _newer_checkpoint(model)
        plans = json.loads((model / "plans.json").read_text())
        plans["configurations"]["3d_fullres"].setdefault("nnext_training", {})["clicks"] = {"future_option": 1}
        (model / "plans.json").write_text(json.dumps(plans))
        return Cell(argv, r"plans\.json: plans nnext_training: unknown option clicks\.future_option; clicks has: "
                          r"p_prompt, .* \(trained with nnunet_ext 9\.9\.9, this is ")
    if klass == "option_of_a_newer_version_in_checkpoint":
        _newer_checkpoint(model, {"clicks": {"radius": 3.0, "future_option": 1}})
        return Cell(argv[:2] + ["interactive"] + argv[3:],
                    r"fold_0/checkpoint_final\.pth: checkpoint nnext\.options: unknown option clicks\.future_option; "
                    r"clicks has: .* \(trained with nnunet_ext 9\.9\.9, this is ")
    clicks = tmp / "clicks.json"
    point = {"point": [4, 5, 3], "space": "voxel", "label": 1}
    argv = argv[:2] + ["interactive"] + argv[3:] + ["--clicks", str(clicks)]
    if klass == "clicks_for_absent_case":  # a misspelt case ID would silently run the automatic branch
        clicks.write_text(json.dumps({"c0": [point], "c7": [point], "C1": [point]}))
        return Cell(argv, r"clicks\.json: clicks for 2 case\(s\) not among the inputs: C1, c7 .*--allow-missing-clicks")
    clicks.write_text('{"c0": [{"point": [NaN, 5, Infinity], "label": 1}]}')  # JSON's NaN literal, read by Python
    return Cell(argv, r"clicks\.json: c0\[0\]\.point: coordinate x = NaN, z = Infinity is not a finite number")


def _newer_checkpoint(model: Path, options: "dict | None" = None) -> None:
    """Mark fold 0's checkpoint as written by nnunet_ext 9.9.9 (and record ``options`` in it)."""
    import torch

    path = model / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt.setdefault("nnext", {})["nnunet_ext_version"] = "9.9.9"
    if options is not None:
        ckpt["nnext"].setdefault("options", {}).update(options)
    torch.save(ckpt, path)


@pytest.mark.parametrize("klass", ["plans_mismatch", "clicks_for_absent_case", "nonfinite_click",
                                   "option_of_a_newer_version_in_plans", "option_of_a_newer_version_in_checkpoint"])
def test_predict_refuses_other_plans_and_bad_clicks(klass, workspace, monkeypatch, capsys, untrained_models):
    MODELS["root"] = untrained_models
    run_cell(_predict_extra(workspace, monkeypatch, klass), f"predict x {klass}", workspace, monkeypatch, capsys)


def test_allow_missing_clicks_runs_with_a_warning(workspace, monkeypatch, capsys, untrained_models):
    import json

    MODELS["root"] = untrained_models
    cell = _predict_extra(workspace, monkeypatch, "clicks_for_absent_case")
    capsys.readouterr()
    assert main(cell.argv + ["--allow-missing-clicks"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "not among the inputs: C1, c7" in err and "running anyway" in err
    used = json.loads((workspace / "out" / "c0_clicks.json").read_text())
    assert len(used["clicks"]) == 1
