"""Issue 23: streamed pooled pairwise Dice, confidence rows, flags and confidence.csv of nnext predict."""
import csv
import itertools
import json
import math

import numpy as np
import pytest
import torch

from nnunet_ext.core.confidence import (
    COLUMNS,
    boundary_band,
    components,
    confidence_rows,
    pairwise_dice_direct,
    pooled_pairwise_dice,
    uncertainty_max,
)
from nnunet_ext.core.streaming import StreamingStats


def test_streamed_pairwise_dice_equals_the_direct_sum_over_pairs():
    # three passes over 1 x 4 voxels: A1 = {0, 1}, A2 = {1, 2}, A3 = {1}
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=bool)
    # pairs: (1,2) 2*1/(2+2), (1,3) 2*1/(2+1), (2,3) 2*1/(2+1): pooled = 6 / 10
    assert pairwise_dice_direct(masks) == pytest.approx(0.6)
    votes = masks.sum(0)  # [1, 3, 1, 0]: sum v(v-1) = 6, (N-1) sum v = 2 * 5
    assert pooled_pairwise_dice(votes, 3) == pytest.approx(0.6)
    rng = np.random.default_rng(0)
    for n in (2, 3, 7):
        m = rng.random((n, 5, 6)) < 0.4
        assert pooled_pairwise_dice(m.sum(0), n) == pytest.approx(pairwise_dice_direct(m), abs=1e-12)
        region = rng.random((5, 6)) < 0.5
        assert pooled_pairwise_dice(m.sum(0), n, region) == pytest.approx(pairwise_dice_direct(m[:, region]))
    assert pooled_pairwise_dice(np.zeros(4), 3) == 1.0  # every pass empty: all pairs both-empty
    assert math.isnan(pooled_pairwise_dice(np.ones(4), 1))


def test_streaming_votes_count_argmax_of_every_pass_in_chunks():
    g = torch.Generator().manual_seed(1)
    passes = torch.softmax(3 * torch.randn(6, 3, 4, 5, generator=g), 1)
    stats = StreamingStats((4, 5), 3, votes=True, variance=False, expected_entropy=False)
    for chunk in (passes[:1], passes[1:4], passes[4:]):
        stats.update(chunk)
    votes = stats.votes(6)
    expected = torch.stack([(passes.argmax(1) == c).sum(0) for c in range(3)]).float()
    assert torch.equal(votes, expected)
    for c in range(3):
        assert pooled_pairwise_dice(votes[c].numpy(), 6) == pytest.approx(
            pairwise_dice_direct((passes.argmax(1) == c).numpy()))


def test_components_and_boundary_band():
    m = np.zeros((1, 5, 7), dtype=bool)
    m[0, 1:3, 1:3] = True
    m[0, 3, 3] = True  # diagonal neighbour: same component under 26- (8-) connectivity
    m[0, 0, 6] = True
    labels, n = components(m)
    assert n == 2 and labels[0, 1, 1] == labels[0, 3, 3] != labels[0, 0, 6]
    band = boundary_band(np.pad(np.ones((3, 3), bool), 2))
    assert band.sum() == 5 * 5 - 1  # the 5x5 dilation minus the eroded centre
    assert uncertainty_max("entropy", 3) == pytest.approx(math.log(3))
    assert uncertainty_max("entropy", 2, sigmoid=True) == pytest.approx(2 * math.log(2))


def _rows_by(rows):
    return {(r["label"], r["component"]): r for r in rows}


def test_rows_single_pass_confidence_and_flags():
    seg = np.zeros((6, 8), dtype=np.uint8)
    seg[1:4, 1:4] = 1  # 9 voxels, inside
    seg[5, 7] = 1  # one voxel on the border: small, touches_border
    u = np.full(seg.shape, 0.1)
    u[5, 6:] = 0.6
    rows = _rows_by(confidence_rows("c1", seg, u, (2.0, 0.5), [1, 2], u_max=0.8, map_name="entropy", min_voxels=5))
    assert set(rows) == {(1, 0), (1, 1), (1, 2), (2, 0)}
    whole, inner, corner, empty = rows[1, 0], rows[1, 1], rows[1, 2], rows[2, 0]
    assert whole["voxels"] == 10 and whole["volume_mm3"] == pytest.approx(10.0)
    assert inner["confidence"] == pytest.approx(1 - 0.1 / 0.8) and inner["flag"] == "ok"
    assert inner["mean_uncertainty"] == pytest.approx(0.1) and inner["confidence_source"] == "uncertainty"
    # the corner voxel and its dilation [4:6, 6:8]: 4 voxels, 2 at 0.6 (row 5) and 2 at 0.1
    assert corner["confidence"] == pytest.approx(1 - 0.35 / 0.8)
    assert corner["flag"] == "touches_border;small"
    assert "touches_border" in whole["flag"]
    # label 2 absent: empty, confidence from the most uncertain voxel of the case
    assert empty["voxels"] == 0 and empty["confidence"] == pytest.approx(1 - 0.6 / 0.8)
    assert empty["flag"] == "empty;low_confidence" and math.isnan(empty["mean_uncertainty"])
    low = _rows_by(confidence_rows("c1", seg, u * 8, (1, 1), [1], u_max=0.8, map_name="entropy"))
    assert low[1, 1]["confidence"] == 0.0 and low[1, 1]["flag"] == "low_confidence;small"


def test_rows_multi_pass_use_pooled_pairwise_dice_per_component():
    masks = np.zeros((3, 1, 4, 9), dtype=bool)
    masks[:, 0, 1:3, 1:3] = True  # lesion A: every pass agrees
    masks[0, 0, 1:3, 6:8] = True  # lesion B: one pass of three
    masks[1, 0, 1:2, 6:8] = True
    votes = masks.sum(0)
    seg = (votes >= 2).astype(np.uint8)  # majority: A and the row [1, 6:8] of B
    rows = _rows_by(confidence_rows("c", seg, np.zeros(seg.shape), (1, 1, 1), [1], votes={1: votes}, n_members=3))
    assert rows[1, 0]["pairwise_dice"] == pytest.approx(pairwise_dice_direct(masks))
    assert rows[1, 1]["pairwise_dice"] == 1.0 and rows[1, 1]["confidence"] == 1.0
    region_b = np.zeros(seg.shape, bool)
    region_b[0, 1:3, 6:8] = True
    assert rows[1, 2]["pairwise_dice"] == pytest.approx(pairwise_dice_direct(masks[:, region_b]))
    assert rows[1, 2]["confidence_source"] == "pairwise_dice" and rows[1, 2]["n_members"] == 3
    assert set(rows[1, 0]) == set(COLUMNS)


def test_predict_writes_confidence_csv(trained_chest_model, chest_dataset, tmp_path):
    from nnunet_ext.cli.main import main

    out = tmp_path / "mc"
    args = ["predict", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501", "-c", "3d_fullres",
            "-tr", "MCDropoutTrainer", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu", "-m", "tta_mc",
            "--n-samples", "3", "--tta", "none"]
    assert main(args) == 0
    with open(out / "confidence.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    cases = sorted({r["case"] for r in rows})
    assert len(cases) == 2
    for r in rows:
        assert 0 <= float(r["confidence"]) <= 1 and r["n_members"] == "3"
        empty = r["voxels"] == "0"  # nothing predicted: 1 - max probability, at most the pairwise Dice
        assert r["confidence_source"] == ("max_probability" if empty else "pairwise_dice") and r["flag"]
        assert float(r["confidence"]) <= float(r["pairwise_dice"]) + 1e-6 and ("empty" in r["flag"]) == empty
    from nnunet_ext.predictors.confidence_table import foreground_labels

    labels, _ = foreground_labels(json.loads((out / "dataset.json").read_text()))
    whole = [r for r in rows if r["component"] == "0"]
    assert sorted((r["case"], r["label"]) for r in whole) == sorted(itertools.product(cases, map(str, labels)))
    # one row per predicted component besides: their voxels add up to the structure's
    for case, label in itertools.product(cases, map(str, labels)):
        parts = [int(r["voxels"]) for r in rows if (r["case"], r["label"]) == (case, label) and r["component"] != "0"]
        assert sum(parts) == int(next(r["voxels"] for r in whole if (r["case"], r["label"]) == (case, label)))


def test_map_labels_name_the_unit():
    from nnunet_ext.core.uncertainty import map_label

    assert map_label("entropy") == "predictive entropy (nats)"
    assert map_label("mi") == "mutual information (nats)"
    assert map_label("entropy_WT") == "predictive entropy WT (nats)"
    assert map_label(None) == "uncertainty (unit unknown)"


def test_empty_structure_confidence_from_the_most_suspicious_voxel():
    seg = np.zeros((1, 4, 4), np.uint8)
    probs = np.zeros((2, 1, 4, 4))
    probs[1, 0, 2, 2] = 0.3  # the missed tumour's best voxel
    probs[0] = 1 - probs[1]
    single = confidence_rows("c", seg, np.zeros(seg.shape), (1, 1, 1), [1], probabilities=probs)[0]
    assert single["confidence"] == pytest.approx(0.7) and single["confidence_source"] == "max_probability"
    votes = np.zeros(seg.shape)
    votes[0, 2, 2] = 1  # one pass of three predicted one voxel: D = 0 over the case
    multi = confidence_rows("c", seg, None, (1, 1, 1), [1], votes={1: votes}, n_members=3, probabilities=probs)[0]
    assert multi["pairwise_dice"] == 0.0 and multi["confidence"] == 0.0 and multi["flag"] == "empty;low_confidence"
    agreed = confidence_rows("c", seg, None, (1, 1, 1), [1], votes={1: 0 * votes}, n_members=3,
                             probabilities=probs)[0]
    assert agreed["pairwise_dice"] == 1.0 and agreed["confidence"] == pytest.approx(0.7)
