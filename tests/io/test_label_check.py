"""Label values are checked wherever segmentations are read (issue 19, item 4): nnunet_ext.io.label_check itself,
``nnext evaluate`` (dataset.json labels, --ignore-unknown-labels, no dataset.json), ``evaluate-raters`` (binary
rater masks), ``compare`` (a label key with another meaning) and NaN / Inf numeric options of every command."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import typing

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry, write_image
from nnunet_ext.io.label_check import (
    check_binary,
    check_label_values,
    declared_label_values,
    unknown_to_background,
    unknown_values,
)

G = Geometry((0.8, 0.9, 2.0), (-10.0, 5.0, 3.0))


def _seg(shape=(6, 12, 12), at=(1, 2, 2), value=1):
    s = np.zeros(shape, np.uint8)
    s[at[0]:at[0] + 3, at[1]:at[1] + 4, at[2]:at[2] + 4] = value
    return s


def test_declared_values_regions_ignore_and_background():
    assert declared_label_values({"background": 0, "lung": 1, "nodule": 2}) == {0, 1, 2}
    regions = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3], "ignore": 4}
    assert declared_label_values(regions) == {0, 1, 2, 3, 4}
    with pytest.raises(InputError, match=r"dj\.json: background must be label 0, got \"background\": 1"):
        declared_label_values({"background": 1, "tumor": 0}, "dj.json")
    with pytest.raises(InputError, match=r"lacks 'background'"):
        declared_label_values({"tumor": 1})
    with pytest.raises(InputError, match=r"label 'tumor' has value 1\.5"):
        declared_label_values({"background": 0, "tumor": 1.5})


def test_unknown_values_check_and_background():
    seg = np.array([[0, 1, 7], [300, 1, 7]], np.int16)
    assert unknown_values(seg, {0, 1}) == [7, 300]
    with pytest.raises(InputError, match=r"^f\.nii\.gz: label value\(s\) \[7, 300\] \(3 voxel\(s\)\) not declared in "
                                         r"dataset\.json \(labels \[0, 1\]\)$"):
        check_label_values(seg, "f.nii.gz", {0, 1})
    check_label_values(seg, "f.nii.gz", {0, 1, 7, 300})
    assert unknown_to_background(seg, [7, 300]).tolist() == [[0, 1, 0], [0, 1, 0]]
    with pytest.raises(InputError,
                       match=r"r\.nii\.gz: rater masks must be binary 0/1, found value\(s\) \[2\] in 1 voxel"):
        check_binary(np.array([0, 1, 2, 1]), "r.nii.gz")


@pytest.fixture
def folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    for k in range(2):
        write_image(_seg(at=(1, 2 + k, 2)), G, ref / f"c{k}.nii.gz")
        write_image(_seg(at=(1, 3 + k, 2)), G, pred / f"c{k}.nii.gz")
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "tumor": 1}, "file_ending": ".nii.gz"}))
    return ref, pred, dj


def test_evaluate_refuses_undeclared_prediction_values_or_scores_them_as_background(folders, tmp_path, capsys):
    ref, pred, dj = folders
    clean = json.loads(json.dumps(_evaluate(ref, pred, dj, tmp_path / "clean.json")))
    spoiled = _seg(at=(1, 3 + 1, 2))
    spoiled[0, 0, :3] = [7, 7, 2]   # outside the tumour: 3 false-positive voxels of undeclared labels
    write_image(spoiled.astype(np.int16), G, pred / "c1.nii.gz")
    argv = ["evaluate", "-ref", str(ref), "-pred", str(pred), "-djfile", str(dj), "-o", str(tmp_path / "s.json"), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pred/c1.nii.gz: label value(s) [2, 7] (3 voxel(s)) not declared in" in err
    assert "--ignore-unknown-labels" in err
    assert not (tmp_path / "s.json").exists()
    assert main(argv + ["--ignore-unknown-labels"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "pred/c1.nii.gz: label value(s) [2, 7]" in err and "scored as background" in err
    got = json.loads((tmp_path / "s.json").read_text())
    # scored as background: exactly the clean prediction's numbers (the spoiled voxels were background there)
    assert got["mean"] == clean["mean"]
    assert any("[2, 7]" in w for w in got["warnings"])


def _evaluate(ref, pred, dj, out):
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-djfile", str(dj), "-o", str(out), "-q"]) == 0
    return json.loads(out.read_text())


def test_evaluate_without_dataset_json_knows_the_references_and_l(folders, tmp_path, capsys):
    ref, pred, _ = folders
    spoiled = _seg(at=(1, 4, 2))
    spoiled[5, 10, 10] = 3
    write_image(spoiled, G, pred / "c1.nii.gz")
    argv = ["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(tmp_path / "s.json"), "-q"]
    assert main(argv) == 2
    assert "pred/c1.nii.gz: label value(s) [3] appear in no reference and are not asked for" in capsys.readouterr().err
    assert main(argv + ["-l", "1", "3"]) == 0           # asked for: scored as its own label (all false positive)
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["metric_per_case"][1]["metrics"]["3"]["voxels_pred"] == 1
    assert main(argv + ["--ignore-unknown-labels"]) == 0
    assert "scored as background" in capsys.readouterr().err
    assert list(json.loads((tmp_path / "s.json").read_text())["labels"]) == ["1"]


def test_evaluate_refuses_background_other_than_zero_and_undeclared_l(folders, tmp_path, capsys):
    ref, pred, dj = folders
    dj.write_text(json.dumps({"labels": {"background": 1, "tumor": 0}}))
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-djfile", str(dj), "-q"]) == 2
    assert "background must be label 0" in capsys.readouterr().err
    dj.write_text(json.dumps({"labels": {"background": 0, "tumor": 1}}))
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-djfile", str(dj), "-l", "2", "-q"]) == 2
    assert "-l / --regions: label(s) [2] are not declared in" in capsys.readouterr().err


def test_evaluate_raters_refuses_non_binary_masks_and_nan_tau(tmp_path, capsys):
    pred, raters = tmp_path / "pred", tmp_path / "raters"
    pred.mkdir()
    raters.mkdir()
    write_image(_seg(), G, pred / "c0.nii.gz")
    for r in range(2):
        write_image(_seg(at=(1, 2 + r, 2)), G, raters / f"c0_rater{r}.nii.gz")
    argv = ["evaluate-raters", "-pred", str(pred), "-raters", str(raters), "-o", str(tmp_path / "o.json")]
    assert main(argv) == 0
    # union of the raters: rows 2..6 (5 x 4 x 3 = 60 voxels), prediction rows 2..5 (48): Dice 96 / 108
    assert json.loads((tmp_path / "o.json").read_text())["mean"]["dice_union"] == pytest.approx(96 / 108)
    write_image(_seg(at=(1, 3, 2), value=2), G, raters / "c0_rater1.nii.gz")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "c0_rater1.nii.gz: rater masks must be binary 0/1, found value(s) [2] in 48 voxel(s)" in err
    with pytest.raises(SystemExit) as e:  # argparse: usage + one error line, exit 2
        main(argv + ["--tau", "nan"])
    assert e.value.code == 2
    assert "argument --tau: 'nan' is not a finite number" in capsys.readouterr().err


def test_compare_refuses_a_label_key_of_another_meaning(tmp_path, capsys):
    def summary(path, name):
        rows = [{"case": c, "metrics": {"1": {"dice": d, "hd95": 1.0, "nsd": 0.5}}} for c, d in (("x", .5), ("y", .7))]
        labels = {"1": {"name": name, "values": [1], "region": False}} if name is not None else None
        path.write_text(json.dumps({"metric_per_case": rows, **({"labels": labels} if labels else {})}))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    summary(a, "GTVp")
    summary(b, "tumour")
    assert main(["compare", "-a", str(a), "-b", str(b)]) == 2
    assert "label 1 has name 'GTVp' in A and 'tumour' in B" in capsys.readouterr().err
    summary(b, None)  # B evaluated without names: nothing to contradict
    assert main(["compare", "-a", str(a), "-b", str(b)]) == 0


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_no_command_takes_a_non_finite_number():
    """Every float option of every command (sub-parsers and argument groups included) refuses nan / inf."""
    from nnunet_ext.argtypes import finite_float, refuse_nonfinite
    from nnunet_ext.cli.main import COMMANDS

    converted = 0
    for name, (module, _) in COMMANDS.items():
        parser = argparse.ArgumentParser(prog=f"nnext {name}")
        importlib.import_module(module).add_arguments(parser)
        before = sum(a.type is float for p in _parsers(parser) for a in p._actions)
        refuse_nonfinite(parser)
        assert not any(a.type is float for p in _parsers(parser) for a in p._actions), name
        converted += before
    # flags generated from option dataclasses take text and are validated by the family: nan / inf refused there
    from nnunet_ext.core.options import _base_type
    from nnunet_ext.methods.glioma.options import KernelSearchOptions, SphericalEnsembleOptions
    from nnunet_ext.methods.interactive.options import InteractiveOptions
    from nnunet_ext.methods.lung_cascade.options import CascadeOptions
    from nnunet_ext.predictors.sampling_options import SamplingOptions

    for family in (SamplingOptions, InteractiveOptions, SphericalEnsembleOptions, KernelSearchOptions,
                   CascadeOptions):
        hints = typing.get_type_hints(family)
        for f in dataclasses.fields(family):
            if _base_type(hints[f.name]) is float:
                for text in ("nan", "inf"):
                    with pytest.raises(ValueError, match="is not a finite number"):
                        family.from_mapping({f.name: text})
                converted += 1
    assert converted >= 15   # evaluate, calibrate, kernels, fusion-fit, plan, predict's option families, ...
    for text in ("nan", "inf", "-inf", "NaN"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a finite number"):
            finite_float(text)
    assert finite_float("2.5") == 2.5
