"""``nnext demo nodule`` end to end on a tiny schedule: outputs, per-step times, settings-checked reuse, a redo
that names the changed setting, and a failing training that stops the demo with exit 1."""
import argparse
import json

import pytest

from nnunet_ext.demos import cli as demo

ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_n_proc_DA")
STEPS = ("synth", "convert", "plan", "train", "predict")


def _run(tmp_path, *extra) -> int:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return demo.run(parser.parse_args(["nodule", "-o", str(tmp_path), "-n", "5", "--n-test", "1", "--epochs", "1",
                                       "--iterations", "2", *extra]))


@pytest.mark.slow
def test_demo_nodule_runs_reuses_and_redoes(tmp_path, monkeypatch, capfd):
    for var in ENV:  # the demo points nnU-Net's variables at its folder: restore them afterwards
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = tmp_path / "nodule"

    assert _run(tmp_path) == 0
    summary = json.loads((root / "summary.json").read_text())
    case = next(iter(summary["cases"]))
    assert (root / f"{case}.png").read_bytes()[:4] == b"\x89PNG" and (root / "hu_kde.png").is_file()
    d = summary["demo"]
    assert set(d["timings_s"]) == {f"{s}_s" for s in (*STEPS, "evaluate", "total")} == set(d["cpu_s"])
    assert d["iterations"] == 2 and d["max_tokens"] == 256 and len(d["load_average"]) == 3
    checkpoint = next((root / "nnUNet_results").rglob("fold_0/checkpoint_final.pth"))
    model_plans = json.loads((checkpoint.parents[1] / "plans.json").read_text())  # the grid the model trained with
    assert model_plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["max_tokens"] == 256
    stamp = checkpoint.stat().st_mtime_ns
    capfd.readouterr()

    assert _run(tmp_path) == 0  # same settings: every step reused, the model untouched
    out = capfd.readouterr().out
    assert all(f"reusing {s} (same settings)" in out for s in STEPS), out[-2000:]
    assert checkpoint.stat().st_mtime_ns == stamp

    # another schedule: data kept, plans / model redone (and the settings named); a failing nnUNetv2_train
    # stops the demo with exit 1 and leaves no train record behind
    monkeypatch.setattr("nnunet_ext.demos.steps.run_child", lambda cmd, **kw: 3)
    assert _run(tmp_path, "--iterations", "3", "--set", "ugsnet.max_tokens=128") == 1
    captured = capfd.readouterr()
    assert "reusing synth" in captured.out and "reusing convert" in captured.out
    assert "redoing plan (settings changed: iterations, set)" in captured.out
    plans = next((root / "nnUNet_preprocessed").rglob("nnextTinyPlans.json"))  # the user's --set after the demo's
    assert json.loads(plans.read_text())["configurations"]["2d"]["nnext_training"]["ugsnet"]["max_tokens"] == 128
    assert "redoing train (settings changed: iterations, set)" in captured.out
    assert "nnUNetv2_train failed" in captured.err
    assert not (root / ".nnext_demo_train.json").exists() and not checkpoint.exists()
