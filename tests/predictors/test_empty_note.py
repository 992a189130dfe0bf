"""nnext predict names a case whose segmentation lacks a foreground label, in one line."""
from dataclasses import dataclass

import numpy as np

from nnunet_ext.io.imageio import Geometry, write_image
from nnunet_ext.predictors.empty_note import empty_prediction_note
from nnunet_ext.predictors.loop import OutputSpec, predict_cases
from nnunet_ext.predictors.method import CaseResult, Method

DJ = {"labels": {"background": 0, "tumor": 1}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}


def test_note_names_missing_labels_and_empty_regions():
    seg = np.zeros((4, 5, 6), np.uint8)
    assert empty_prediction_note("chest_test_000", seg, DJ) == "chest_test_000: no tumor predicted"
    seg[1, 1, 1] = 1
    assert empty_prediction_note("chest_test_000", seg, DJ) is None
    hn = {"labels": {"background": 0, "GTVp": 1, "GTVn": 2, "ignore": 3}}
    assert empty_prediction_note("hn_1", seg, hn) == "hn_1: no GTVn predicted"
    brats = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}}
    assert empty_prediction_note("b", seg, brats) is None
    assert empty_prediction_note("b", 0 * seg, brats) == "b: no whole tumor or tumor core or enhancing tumor predicted"


@dataclass
class _Case:
    case_id: str
    files: tuple


class _EmptyThenFull(Method):
    name = "fake"
    takes_model = False

    @property
    def dataset_json(self):
        return DJ

    def predict_case(self, prepared, ctx):
        seg = np.zeros((4, 5, 6), np.uint8)
        if prepared.case_id.endswith("1"):
            seg[2, 2, 2] = 1
        return CaseResult(Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)), seg)


def test_case_loop_prints_the_note(tmp_path, capsys):
    cases = []
    for i in range(2):
        f = tmp_path / f"c{i}_0000.nii.gz"
        write_image(np.zeros((4, 5, 6), np.int16), Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)), f)
        cases.append(_Case(f"c{i}", (str(f),)))
    done = predict_cases(_EmptyThenFull(), cases, tmp_path / "out", OutputSpec(), progress=False)
    out = capsys.readouterr().out
    assert done == ["c0", "c1"] and "c0: no tumor predicted" in out and "c1:" not in out
