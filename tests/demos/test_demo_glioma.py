"""``nnext demo glioma`` pieces that need no training: dispatch with resolved defaults, the stale-settings
reuse / redo of its steps, the Dice / HD95 per region and the overview PNG."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.demos import glioma


def _phantom():
    """Reference with WT (label 1 shell) > TC (2) > ET (3) nested boxes on a 12 x 24 x 24 grid."""
    ref = np.zeros((12, 24, 24), np.uint8)
    ref[2:10, 4:20, 4:20] = 1
    ref[5, 2:22, 2:22] = 1  # the largest whole-tumour slice
    ref[4:8, 8:16, 8:16] = 2
    ref[5:7, 10:14, 10:14] = 3
    return ref


def test_dispatch_reaches_run_glioma_with_resolved_defaults(tmp_path, monkeypatch):
    from nnunet_ext.cli.main import main
    from nnunet_ext.demos.cli import KIND_DEFAULTS

    seen = []
    monkeypatch.setattr(glioma, "run_glioma", lambda args: seen.append(vars(args).copy()) or 0)
    assert main(["demo", "glioma", "-o", str(tmp_path / "d")]) == 0
    (args,) = seen
    for key, value in KIND_DEFAULTS["glioma"].items():
        assert args[key] == value, key
    assert args["kind"] == "glioma" and args["c"] is None and args["o"] == str(tmp_path / "d")
    assert main(["demo", "glioma", "-o", str(tmp_path / "d"), "--epochs", "3", "-n", "5"]) == 0
    assert (seen[-1]["epochs"], seen[-1]["n"], seen[-1]["iterations"]) == (3, 5, KIND_DEFAULTS["glioma"]["iterations"])
    # glioma trains its own configurations: -c is refused before any step runs (exit 2)
    assert main(["demo", "glioma", "-o", str(tmp_path / "d"), "-c", "2d"]) == 2
    assert len(seen) == 2


def test_region_metrics_against_hand_computation():
    ref = _phantom()
    spacing = (3.5, 3.0, 3.0)
    same = glioma.region_metrics(ref, {t: np.isin(ref, l) for t, l in glioma.REGIONS.items()}, spacing)
    assert all(m == {"dice": 1.0, "hd95": 0.0} for m in same.values())
    # ET predicted one voxel too wide along x (2 x 4 x 5 vs 2 x 4 x 4): Dice = 2*32 / (32 + 40)
    et = np.zeros_like(ref, bool)
    et[5:7, 10:14, 10:15] = True
    out = glioma.region_metrics(ref, {"WT": ref > 0, "TC": ref >= 2, "ET": et}, spacing)
    assert out["ET"]["dice"] == pytest.approx(64 / 72)
    assert out["ET"]["hd95"] == pytest.approx(3.0)  # the extra column is one x voxel (3 mm) away
    assert out["WT"]["dice"] == 1.0


def test_overview_png_marks_the_slice_with_most_kernels(tmp_path):
    import matplotlib.image as mpimg

    ref = _phantom()
    rng = np.random.default_rng(0)
    flair = rng.random(ref.shape).astype(np.float32) + (ref > 0)
    entropy = np.zeros(ref.shape, np.float32)
    entropy[2:10, 4:20, 4:20] = 1.0
    fused = {t: np.isin(ref, l) for t, l in glioma.REGIONS.items()}
    kernels = {"WT": [{"start": [3, 2, 2], "size": [4, 8, 8]}, {"start": [5, 12, 12], "size": [4, 8, 8]}],
               "TC": [{"start": [6, 8, 8], "size": [2, 8, 8]}], "ET": []}
    path = tmp_path / "overview.png"
    z = glioma.overview_png(flair, ref, fused, entropy, kernels, path, "case")
    assert z == 6  # slice 6 is crossed by all three kernels (5 and 7 by two)
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[1] > 2 * img.shape[0]  # three panels side by side
    assert not list(tmp_path.glob(".*"))  # written atomically, nothing half-written left
    # without kernels: the slice with the largest reference whole tumour
    entropy[:] = 0
    assert glioma.overview_png(flair, ref, fused, entropy, {"WT": []}, path) == 5


def test_tune_plans_sets_3d_patch_and_per_configuration_oversampling(tmp_path):
    import json

    from nnunet_ext.trainers.schedule import PLANS_KEY, training_schedule

    strides3 = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    plans = {PLANS_KEY: {"num_epochs": 15, "oversample_foreground_percent": 1.0},
             "configurations": {"2d": {"patch_size": [64, 56]},
                                "3d_fullres": {"patch_size": [32, 64, 56],
                                               "architecture": {"arch_kwargs": {"strides": strides3}}}}}
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    assert glioma.tune_plans(path) == {"patch_3d": [24, 48, 48], "oversample_foreground_percent": 0.33}
    tuned = json.loads(path.read_text())
    assert tuned["configurations"]["3d_fullres"]["patch_size"] == [24, 48, 48]   # the 3D baseline's own patch
    assert tuned["configurations"]["2d"]["patch_size"] == [64, 56]
    for c in ("2d", "3d_fullres"):  # the configuration's block wins over the plans-level 1.0; the rest is kept
        assert training_schedule(tuned, c) == {"num_epochs": 15, "oversample_foreground_percent": 0.33}
    with pytest.raises(ValueError, match="divisible"):
        glioma.tune_plans(path, patch=(12, 32, 32))


def test_set_options_reach_both_configurations_after_the_demos_own(tmp_path, monkeypatch):
    """``--set`` is written into the plans of both configurations after the demo's own (refiner.lr stays unless
    set) and recorded with the plan step. Synthesis and planning run for real (5 + 1 phantoms); the first
    training fails at once, so nothing trains."""
    import json

    from nnunet_ext.cli.main import main

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_n_proc_DA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("nnunet_ext.demos.steps.run_child", lambda cmd, **kw: 3)
    assert main(["demo", "glioma", "-o", str(tmp_path), "-n", "5", "--n-test", "1", "--epochs", "1",
                 "--iterations", "1", "--set", "spherical.p=0.25"]) == 1
    root = tmp_path / "glioma"
    plans = json.loads(next((root / "nnUNet_preprocessed").glob(f"Dataset*/{glioma.PLANS}.json")).read_text())
    for c in ("2d", "3d_fullres"):
        assert plans["configurations"][c]["nnext_training"]["spherical"]["p"] == 0.25, c
    assert plans["configurations"]["3d_fullres"]["nnext_training"]["refiner"]["lr"] == glioma.REFINER_LR
    record = json.loads((root / ".nnext_demo_plan.json").read_text())
    assert record["settings"]["set"] == ["spherical.p=0.25"]
