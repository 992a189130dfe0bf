"""``nnext demo headneck`` pieces that need no training: dispatch with resolved defaults, the numbered steps'
reuse / redo (every command faked by one that writes the outputs the step checks), one-line failures, the
torch-thread wrapper around nnU-Net's training entry point (the figures: test_headneck_figures.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nnunet_ext.demos import headneck, steps
from nnunet_ext.demos.steps import STEP_RECORD


def test_dispatch_reaches_run_headneck_with_resolved_defaults(tmp_path, monkeypatch, capsys):
    from nnunet_ext.cli.main import main
    from nnunet_ext.demos.cli import KIND_DEFAULTS

    seen = []
    monkeypatch.setattr(headneck, "run_headneck", lambda args: seen.append(vars(args).copy()) or 0)
    assert main(["demo", "headneck", "-o", str(tmp_path / "d")]) == 0
    (args,) = seen
    for key, value in KIND_DEFAULTS["headneck"].items():
        assert args[key] == value, key
    assert args["kind"] == "headneck" and args["o"] == str(tmp_path / "d")
    assert main(["demo", "headneck", "-o", str(tmp_path / "d"), "-c", "2d", "--n-samples", "2"]) == 0
    assert (seen[-1]["c"], seen[-1]["n_samples"], seen[-1]["epochs"]) == (
        "2d", 2, KIND_DEFAULTS["headneck"]["epochs"])
    # a folder the demo did not make is refused before any step (exit 2), run_headneck is not reached
    (tmp_path / "x" / "headneck").mkdir(parents=True)
    (tmp_path / "x" / "headneck" / "mine.txt").write_text("not the demo's")
    assert main(["demo", "headneck", "-o", str(tmp_path / "x")]) == 2
    assert len(seen) == 2
    # --set reaches the kind's run as given; a bad one is refused before any step: one line, exit 2, no folder
    assert main(["demo", "headneck", "-o", str(tmp_path / "d"), "--set", "clicks.radius=2"]) == 0
    assert seen[-1]["set_options"] == ["clicks.radius=2"]
    capsys.readouterr()
    assert main(["demo", "headneck", "-o", str(tmp_path / "y"), "--set", "clicks.radius=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clicks.radius" in err[0] and "> 0" in err[0], err
    assert len(seen) == 3 and not (tmp_path / "y").exists()


class _Fake:
    """Stands in for every nnext command / nnUNetv2_train of the demo: records the calls and writes exactly the
    files the demo's steps look for."""

    def __init__(self):
        self.calls, self.plan_sets, self.pretrained = [], [], []

    def nnext(self, argv):
        argv = [str(a) for a in argv]
        self.calls.append(argv[0])
        raw = os.path.join(os.environ["nnUNet_raw"], f"Dataset{headneck.RAW_ID}_{headneck.RAW_NAME}")
        opt = dict(zip(argv, argv[1:]))
        if argv[0] == "synth":
            for sub in ("imagesTs", "labelsTs"):
                os.makedirs(os.path.join(raw, sub), exist_ok=True)
            import numpy as np

            from nnunet_ext.io.imageio import Geometry, write_image

            for f in ("imagesTs/hn_test_000_0000.nii.gz", "imagesTs/hn_test_000_0001.nii.gz",
                      "labelsTs/hn_test_000.nii.gz"):  # real images: the demo copies them through the verified writer
                write_image(np.zeros((2, 2, 2), np.uint8), Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
                            os.path.join(raw, f))
            open(os.path.join(raw, "dataset.json"), "w").close()
        elif argv[0] == "plan":
            self.plan_sets.append([b for a, b in zip(argv, argv[1:]) if a == "--set"])
            pre = os.path.join(os.environ["nnUNet_preprocessed"], os.path.basename(raw))
            os.makedirs(os.path.join(pre, f"{headneck.PLANS}_{opt['-c']}"), exist_ok=True)
            with open(os.path.join(pre, f"{headneck.PLANS}.json"), "w") as f:
                json.dump({"plans_name": headneck.PLANS, "configurations": {opt["-c"]: {"nnext_training": {
                    "num_epochs": int(opt["--epochs"])}}}}, f)
        elif argv[0] == "clicks-eval":
            self.calls[-1] = f"clicks-eval {opt['-tr']}"
            os.makedirs(opt["-o"], exist_ok=True)
            open(os.path.join(opt["-o"], "summary.json"), "w").close()
        elif argv[0] == "predict":
            os.makedirs(opt["-o"], exist_ok=True)
            for e in (".nii.gz", "_uncertainty.nii.gz"):
                open(os.path.join(opt["-o"], "hn_test_000" + e), "w").close()

    def train(self, argv, seed=None, env=None):
        assert seed == 0  # the demo's --seed
        assert not any(k.startswith("NNEXT_") for k in os.environ)  # options live in the plans, not the env
        argv = [str(a) for a in argv]
        opt = dict(zip(argv, argv[1:]))
        self.calls.append(f"train {opt['-tr']}")
        self.pretrained.append(opt.get("-pretrained_weights"))
        c = argv[1]
        model = os.path.join(os.environ["nnUNet_results"], f"Dataset{headneck.RAW_ID}_{headneck.RAW_NAME}",
                             f"{opt['-tr']}__{opt['-p']}__{c}", "fold_0")
        os.makedirs(model, exist_ok=True)
        open(os.path.join(model, "checkpoint_final.pth"), "w").close()


def _args(o, **kw):
    import argparse

    from nnunet_ext.demos.cli import KIND_DEFAULTS

    return argparse.Namespace(**{"o": str(o), "seed": 0, "overwrite": False, "kind": "headneck",
                                 **KIND_DEFAULTS["headneck"], **kw})


@pytest.fixture
def fake(monkeypatch, tmp_path):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / "unused" / var))  # restored after the test (use_workspace sets them)
    f = _Fake()
    monkeypatch.setattr(headneck, "_nnext", f.nnext)
    monkeypatch.setattr(headneck, "_train", f.train)
    monkeypatch.setattr(headneck, "_demo_clicks", lambda raw, evald, case: [
        {"point": [3, 4, 5], "space": "voxel", "label": "GTVp", "positive": True}])
    monkeypatch.setattr(headneck, "_figure_and_summary", lambda *a: {"dice_vs_clicks": {}})
    return f


TRAIN3 = ["train ClickPromptTrainer", "train ClickPromptAutoTrainer", "train ClickPromptErrorTrainer"]
EVAL3 = ["clicks-eval ClickPromptTrainer", "clicks-eval ClickPromptAutoTrainer", "clicks-eval ClickPromptErrorTrainer"]


def test_steps_reused_only_with_matching_settings(tmp_path, fake, capsys, monkeypatch):
    assert headneck.run_headneck(_args(tmp_path)) == 0
    # the paper's three stages, each from the previous one's checkpoint, then every stage evaluated
    assert fake.calls == ["synth", "plan", *TRAIN3, *EVAL3, "predict", "predict"]
    results = tmp_path / "headneck" / "nnUNet_results" / f"Dataset{headneck.RAW_ID}_{headneck.RAW_NAME}"
    assert fake.pretrained == [None, str(results / "ClickPromptTrainer__nnextTinyPlans__3d_fullres" / "fold_0" /
                                         "checkpoint_final.pth"),
                               str(results / "ClickPromptAutoTrainer__nnextTinyPlansStage2__3d_fullres" / "fold_0" /
                                   "checkpoint_final.pth")]
    pre = tmp_path / "headneck" / "nnUNet_preprocessed" / f"Dataset{headneck.RAW_ID}_{headneck.RAW_NAME}"
    epochs = _args(tmp_path).epochs
    assert headneck.stage_epochs(epochs) == {"stage1": epochs, "stage2": epochs // 4, "stage3": epochs // 2}
    for stage, n in (("Stage2", epochs // 4), ("Stage3", epochs // 2)):
        plans = json.loads((pre / f"nnextTinyPlans{stage}.json").read_text())
        block = plans["configurations"]["3d_fullres"]["nnext_training"]
        assert plans["plans_name"] == f"nnextTinyPlans{stage}" and block["num_epochs"] == n
        assert block["optimizer"]["warmup_epochs"] == max(1, n // 10)
    for stage in ("", "Stage2", "Stage3"):  # the demo evaluates its test phantoms, not nnU-Net's validation fold
        plans = json.loads((pre / f"nnextTinyPlans{stage}.json").read_text())
        assert plans["configurations"]["3d_fullres"]["nnext_training"]["final_validation"] is False
    out = capsys.readouterr().out
    assert "[1/8] headneck" in out and "[8/8] headneck" in out
    summary = json.loads((tmp_path / "headneck" / "results" / "summary.json").read_text())
    assert set(summary["timings_s"]) == {"synth_s", "plan_s", "train_stage1_s", "train_stage2_s", "train_stage3_s",
                                         "clicks_eval_s", "predict_s", "figure_s", "total_s"}
    assert set(summary["load_average_1min"]) == {"start", "end"}
    # same settings: every step reused, nothing run
    fake.calls.clear()
    assert headneck.run_headneck(_args(tmp_path)) == 0
    assert fake.calls == []
    assert capsys.readouterr().out.count("(same settings)") == 7
    # more MC passes: only the interactive predictions are redone, and the changed setting is named
    assert headneck.run_headneck(_args(tmp_path, n_samples=3)) == 0
    assert fake.calls == ["predict", "predict"]
    assert "redoing predict (settings changed: n_samples)" in capsys.readouterr().out
    # a longer schedule: plan and everything after it, not the phantoms
    fake.calls.clear()
    assert headneck.run_headneck(_args(tmp_path, n_samples=3, epochs=5)) == 0
    assert fake.calls == ["plan", *TRAIN3, *EVAL3, "predict", "predict"]
    # the optimiser is a plans option written by the plan step (--set): plan and everything after it
    assert fake.plan_sets[-1] == headneck.training_options(5) == [
        "optimizer.name=adamw", "optimizer.warmup_epochs=1", "optimizer.adamw_lr=0.003", "clicks.radius=1.5",
        "clicks.min_error_mm3=216.0"]
    assert headneck.training_options(30)[1] == "optimizer.warmup_epochs=3"
    fake.calls.clear()
    monkeypatch.setattr(headneck, "training_options", lambda epochs: ["optimizer.name=adamw",
                                                                        "optimizer.warmup_epochs=2"])
    assert headneck.run_headneck(_args(tmp_path, n_samples=3, epochs=5)) == 0
    assert fake.calls == ["plan", *TRAIN3, *EVAL3, "predict", "predict"]
    assert "redoing plan (settings changed: options)" in capsys.readouterr().out
    assert fake.plan_sets[-1] == ["optimizer.name=adamw", "optimizer.warmup_epochs=2"]
    # a missing output is redone even with a matching record: that stage and the stages after it
    fake.calls.clear()
    model = next(
        (tmp_path / "headneck" / "nnUNet_results").rglob("ClickPromptAutoTrainer*/fold_0/checkpoint_final.pth")
    )
    model.unlink()
    assert headneck.run_headneck(_args(tmp_path, n_samples=3, epochs=5)) == 0
    assert fake.calls == [*TRAIN3[1:], *EVAL3, "predict", "predict"]  # that stage, what depends on it
    # --overwrite starts afresh
    fake.calls.clear()
    assert headneck.run_headneck(_args(tmp_path, n_samples=3, epochs=5, overwrite=True)) == 0
    assert fake.calls[0] == "synth" and len(fake.calls) == 10


def test_set_options_follow_the_demos_own_and_a_change_redoes_the_plan(tmp_path, fake, capsys):
    """``--set`` options are written after the demo's options (the user's value wins in nnext plan's --set), are
    recorded with the plan step (another --set redoes plan and everything after it, not the phantoms) and are
    named in summary.json."""
    ours = headneck.training_options(_args(tmp_path).epochs)
    assert headneck.run_headneck(_args(tmp_path, set_options=["clicks.radius=2"])) == 0
    assert fake.plan_sets[-1] == [*ours, "clicks.radius=2"]
    summary = json.loads((tmp_path / "headneck" / "results" / "summary.json").read_text())
    assert summary["plans_set"] == ["clicks.radius=2"]
    fake.calls.clear()
    capsys.readouterr()
    assert headneck.run_headneck(_args(tmp_path, set_options=["clicks.radius=2"])) == 0
    assert fake.calls == []
    assert headneck.run_headneck(_args(tmp_path, set_options=["clicks.previous_prediction=true"])) == 0
    assert fake.calls == ["plan", *TRAIN3, *EVAL3, "predict", "predict"]
    assert fake.plan_sets[-1] == [*ours, "clicks.previous_prediction=true"]
    assert "redoing plan (settings changed: options)" in capsys.readouterr().out
    fake.calls.clear()
    assert headneck.run_headneck(_args(tmp_path)) == 0  # no --set (a namespace without it): the demo's own again
    assert fake.calls[0] == "plan" and fake.plan_sets[-1] == ours


def test_failed_step_is_one_line_and_leaves_no_record(tmp_path, fake, monkeypatch, capsys):
    assert headneck.run_headneck(_args(tmp_path)) == 0
    capsys.readouterr()

    def broken(argv, seed=None, env=None):
        raise headneck.StepFailed("nnUNetv2_train failed (exit 3; see its output above)")

    monkeypatch.setattr(headneck, "_train", broken)
    assert headneck.run_headneck(_args(tmp_path, epochs=7)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nnext demo headneck: error: nnUNetv2_train failed (exit 3; see its output above)"]
    # the record of the step being redone was dropped first: the old settings cannot reuse a half-made step
    assert not (tmp_path / "headneck" / STEP_RECORD.format("train")).exists()
    assert (tmp_path / "headneck" / STEP_RECORD.format("synth")).exists()


def test_nnext_and_train_return_codes_become_step_failures(tmp_path, monkeypatch):
    with pytest.raises(headneck.StepFailed, match=r"nnext clicks-eval failed \(exit 2"):
        headneck._nnext(["clicks-eval", "-i", tmp_path / "none", "-ref", tmp_path / "none", "-o", tmp_path / "o",
                         "-d", "999", "-c", "2d"])
    seen = []

    def run(cmd, name="", env=None):
        seen.append(cmd)
        return 5

    monkeypatch.setattr(steps, "run_child", run)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with pytest.raises(headneck.StepFailed, match=r"nnUNetv2_train failed \(exit 5"):
        headneck._train([995, "2d", "0"])
    assert seen[-1][:2] == [sys.executable, "-c"] and seen[-1][3:] == ["3", "-", "995", "2d", "0"]
    with pytest.raises(headneck.StepFailed):
        headneck._train([995, "2d", "0"], seed=4)
    assert seen[-1][3:5] == ["3", "4"]
    monkeypatch.delenv("OMP_NUM_THREADS")  # unset: TRAIN_THREADS (2) torch threads, not nnU-Net's every core
    monkeypatch.setattr(steps.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    with pytest.raises(headneck.StepFailed):
        headneck._train([995, "2d", "0"])
    assert seen[-1][3:] == ["2", "-", "995", "2d", "0"]
    monkeypatch.setattr(steps.os, "sched_getaffinity", lambda pid: {0})  # never more threads than usable CPUs
    with pytest.raises(headneck.StepFailed):
        headneck._train([995, "2d", "0"])
    assert seen[-1][3] == "1"
    assert steps.train_command([995, "2d", "0"])[1:] == ["995", "2d", "0"]  # neither: nnU-Net's own script


def test_thread_wrapper_pins_torch_threads_and_reaches_the_training_entry():
    """The wrapper's torch.set_num_threads ignores nnU-Net's cpu_count() request; it seeds torch and numpy."""
    probe = steps._TRAIN_WITH_THREADS.split("from nnunetv2")[0] + (
        "torch.set_num_threads(64); print(torch.get_num_threads(), torch.initial_seed(), numpy.random.randint(1000))")
    out = subprocess.run([sys.executable, "-c", probe, "1", "7"], capture_output=True, text=True, check=True).stdout
    import numpy

    numpy.random.seed(7)
    assert out.split() == ["1", "7", str(numpy.random.randint(1000))]
    out = subprocess.run([sys.executable, "-c", probe, "1", "-"], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "1" and out.split()[1] != "7"  # "-": not seeded
    # the entry point the wrapper imports exists in the installed nnU-Net (importing it here would cost ~40 s)
    import importlib.util

    spec = importlib.util.find_spec("nnunetv2.run.run_training")
    assert spec is not None and "def run_training_entry(" in open(spec.origin).read()
