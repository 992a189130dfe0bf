"""``nnext plan``: planners run programmatically, schedule overrides, bad input."""
import json

import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.planners.registry import PLANNERS


def test_unknown_planner_lists_known_ones(chest_dataset, capsys):
    assert main(["plan", "-d", "501", "-pl", "NoSuchPlanner"]) == 2
    err = capsys.readouterr().err
    assert "unknown planner 'NoSuchPlanner'" in err
    assert all(name in err for name in PLANNERS)


def test_missing_dataset_is_named_with_known_ones(chest_dataset, capsys):
    assert main(["plan", "-d", "777"]) == 2
    err = capsys.readouterr().err
    assert "dataset 777 not found" in err and chest_dataset.name in err


def test_resenc_m_dropout_planner_and_schedule(chest_dataset, nnunet_dirs):
    assert main(["plan", "-d", "501", "-pl", "MCDropoutResEncPlannerM", "--no_pp", "-np", "1",
                 "--dropout-p", "0.1", "--epochs", "7"]) == 0
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name
                        / "nnextMCDropoutResEncUNetMPlans.json").read_text())
    assert plans["nnext_training"] == {"num_epochs": 7}
    for name, cfg in plans["configurations"].items():
        arch = cfg.get("architecture")
        if arch is None:  # inherits_from
            continue
        assert arch["network_class_name"].endswith("ResidualEncoderUNet"), name
        kw = arch["arch_kwargs"]
        assert kw["dropout_op"] == ("torch.nn.Dropout3d" if "3d" in name else "torch.nn.Dropout2d")
        assert kw["dropout_op_kwargs"]["p"] == pytest.approx(0.1)
        assert "dropout_op" in arch["_kw_requires_import"]


def test_bad_schedule_and_dropout_values(chest_dataset, capsys):
    assert main(["plan", "-d", "501", "--epochs", "0", "--no_pp"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["plan", "-d", "501", "-pl", "TinyPlanner", "--dropout-p", "0.2", "--no_pp"]) == 2
    assert "has no dropout" in capsys.readouterr().err


def test_fingerprint_sample_count_is_applied_and_estimates_nnunets_statistics(chest_dataset, nnunet_dirs, capsys):
    """TinyPlanner samples 1e6 foreground voxels for the intensity statistics (nnU-Net: 1e8, ~6 s per phantom):
    the extractor really samples that many per case, and the percentiles / mean agree with a 10x larger sample
    to < 1 % (mean, median) / 5 % (0.5 and 99.5 percentiles) of the foreground standard deviation."""
    from nnunet_ext.planners.run import _fingerprint_extractor
    from nnunet_ext.planners.tiny import TinyPlanner

    path = nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name / "dataset_fingerprint.json"
    original = path.read_text()
    try:
        stats = {}
        for n in (10**5, 10**6):
            extractor = _fingerprint_extractor(n)(chest_dataset.name, 1)
            assert extractor.num_foreground_voxels_for_intensitystats == n
            fingerprint = extractor.run(overwrite_existing=True)
            stats[n] = next(iter(fingerprint["foreground_intensity_properties_per_channel"].values()))
        assert TinyPlanner.fingerprint_foreground_samples == 10**6
        small, large = stats[10**5], stats[10**6]
        for key, tolerance in (("mean", 0.01), ("median", 0.01), ("percentile_00_5", 0.05), ("percentile_99_5", 0.05)):
            assert abs(small[key] - large[key]) < tolerance * large["std"], (key, small[key], large[key])
    finally:
        path.write_text(original)
    assert main(["plan", "-d", "501", "--fingerprint-samples", "10", "--no_pp"]) == 2
    assert "--fingerprint-samples must be in [1000, 1e9], got 10" in capsys.readouterr().err
