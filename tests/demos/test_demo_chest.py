"""``nnext demo`` (chest, ``nnunet_ext.demos.cli``): the user's ``--set`` options reach the plans the training
reads and are part of the plan step's settings. The plan step runs for real (5 + 1 phantoms, TinyPlanner 2d); the
training is stopped at once (a failing ``nnUNetv2_train``), so nothing trains here."""
import json

from nnunet_ext.cli.main import main

ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_n_proc_DA")


def test_set_options_are_written_into_the_plans_and_recorded(tmp_path, monkeypatch, capsys):
    for var in ENV:  # the demo points nnU-Net's variables at its folder: restore them afterwards
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("nnunet_ext.demos.steps.run_child", lambda cmd, **kw: 3)  # the training fails at once
    argv = ["demo", "-o", str(tmp_path), "-n", "5", "--n-test", "1", "--epochs", "2", "--iterations", "2"]
    assert main(argv + ["--set", "dropout.p=0.3", "--set", "dropout.p=0.25"]) == 1
    plans = next((tmp_path / "nnUNet_preprocessed").glob("Dataset990_*/nnextTinyPlans.json"))
    block = json.loads(plans.read_text())["configurations"]["2d"]["nnext_training"]
    assert block["dropout"]["p"] == 0.25  # in the order given: the last one wins, as nnext plan --set
    record = json.loads((tmp_path / ".nnext_demo_plan.json").read_text())
    assert record["settings"]["set"] == ["dropout.p=0.3", "dropout.p=0.25"]
    capsys.readouterr()
    assert main(argv) == 1  # without --set: the plan is redone, and said so; the phantoms are reused
    out = capsys.readouterr().out
    assert "reusing synth" in out and "redoing plan (settings changed: set)" in out, out
    config = json.loads(plans.read_text())["configurations"]["2d"]
    assert "dropout" not in config.get("nnext_training", {})  # planned afresh, without the option
