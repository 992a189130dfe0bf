"""Calibration / uncertainty-quality metrics against hand-computed examples (nnunet_ext.core.calibration)."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.core.calibration import (
    ReliabilityBins,
    auroc,
    brier_score,
    expected_calibration_error,
    reliability_bins,
    top_uncertainty_dice,
)


def two_class(p1, labels):
    p1 = np.asarray(p1, dtype=np.float32)
    return np.stack([1 - p1, p1]), np.asarray(labels)


# 8 voxels, 2 classes. Foreground confidences p1 and labels:
#   p1 = 0.9 x4, labels 1 1 1 0 -> bin 13 of 15 ([0.867, 0.933)): n 4, conf 0.9, acc 0.75
#   p1 = 0.1 x4, labels 0 0 0 1 -> bin 1 ([0.067, 0.133)):          n 4, conf 0.1, acc 0.25
#   ECE = 4/8 |0.75 - 0.9| + 4/8 |0.25 - 0.1| = 0.075 + 0.075 = 0.15
#   Brier per voxel: correct (0.1^2 + 0.1^2) = 0.02 (6 voxels), wrong (0.9^2 + 0.9^2) = 1.62 (2 voxels)
#   Brier = (6 * 0.02 + 2 * 1.62) / 8 = 3.36 / 8 = 0.42
P8, Y8 = two_class([0.9] * 4 + [0.1] * 4, [1, 1, 1, 0, 0, 0, 0, 1])


def test_ece_and_bins_hand_computed():
    ece, bins = expected_calibration_error(P8, Y8)
    assert ece == pytest.approx(0.15, abs=1e-6)
    assert bins.count.tolist() == [0, 4] + [0] * 11 + [4, 0]
    assert bins.mean_confidence[13] == pytest.approx(0.9) and bins.accuracy[13] == pytest.approx(0.75)
    assert bins.mean_confidence[1] == pytest.approx(0.1) and bins.accuracy[1] == pytest.approx(0.25)
    assert np.isnan(bins.accuracy[7]) and np.isnan(bins.mean_confidence[7])
    assert bins.edges[0] == 0.0 and bins.edges[-1] == 1.0 and len(bins.edges) == 16
    d = bins.as_dict()
    assert d["count"][13] == 4 and d["accuracy"][1] == pytest.approx(0.25)


def test_brier_hand_computed_and_perfect():
    assert brier_score(P8, Y8) == pytest.approx(0.42, abs=1e-6)
    onehot = np.stack([Y8 == 0, Y8 == 1]).astype(np.float32)
    assert brier_score(onehot, Y8) == 0.0
    assert brier_score(1 - onehot, Y8) == pytest.approx(2.0)
    mask = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # 3 x 0.02 + 1.62 over 4 voxels
    assert brier_score(P8, Y8, mask=mask) == pytest.approx((3 * 0.02 + 1.62) / 4, abs=1e-6)


def test_perfect_calibration_gives_zero_ece():
    # confidences 0.2 (1 of 5 positive) and 0.8 (4 of 5 positive) and exact 0 / 1
    p1 = [0.2] * 5 + [0.8] * 5 + [0.0, 1.0]
    y = [1, 0, 0, 0, 0] + [1, 1, 1, 1, 0] + [0, 1]
    ece, bins = expected_calibration_error(*two_class(p1, y))
    assert ece == pytest.approx(0.0, abs=1e-6)
    assert bins.count[0] == 1 and bins.count[-1] == 1  # p = 1.0 falls in the last, closed bin
    # overconfident version of the same outcomes is penalised: |0.2 - 0| * 5/12 + |0.8 - 1| * 5/12
    ece_bad, _ = expected_calibration_error(*two_class([0.0] * 5 + [1.0] * 5 + [0.0, 1.0], y))
    assert ece_bad == pytest.approx((5 * 0.2 + 5 * 0.2) / 12, abs=1e-6)


def test_ece_pooling_over_foreground_classes():
    # 3 classes, 4 voxels, labels 0 2 1 2:
    probs = np.array([[0.4, 0.4, 0.4, 0.4], [0.6, 0.0, 0.6, 0.0], [0.0, 0.6, 0.0, 0.6]])
    labels = np.array([0, 2, 1, 2])
    # class 1 pairs (0.6,0) (0,0) (0.6,1) (0,0): bin 9 |1 - 1.2| = 0.2, bin 0 |0 - 0| -> ECE_1 = 0.2 / 4 = 0.05
    # class 2 pairs (0,0) (0.6,1) (0,0) (0.6,1): bin 9 |2 - 1.2| = 0.8               -> ECE_2 = 0.8 / 4 = 0.2
    # mean = 0.125; pooled histogram (8 pairs): bin 9 |3 - 2.4| = 0.6 -> 0.6 / 8 = 0.075 (over- and
    # under-confidence of the two classes partly cancel in the shared bin: pooled <= mean always)
    pooled, bins = expected_calibration_error(probs, labels)
    mean, bins_mean = expected_calibration_error(probs, labels, pooling="mean")
    assert pooled == pytest.approx(0.075) and mean == pytest.approx(0.125)
    assert bins.count.sum() == 8 and bins.count[9] == 4 and bins.accuracy[9] == pytest.approx(0.75)
    assert np.array_equal(bins_mean.count, bins.count)  # returned bins are the pooled histogram either way
    assert expected_calibration_error(probs, labels, classes=[1])[0] == pytest.approx(0.05)
    assert expected_calibration_error(probs, labels, classes=[2])[0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="pooling"):
        expected_calibration_error(probs, labels, pooling="max")


def test_bins_pool_across_cases_by_addition():
    a = reliability_bins(P8, Y8)
    b = reliability_bins(*two_class([0.9] * 4, [1, 1, 1, 1]))  # bin 13: 4 more, conf 0.9, acc 1
    pooled = a + b
    assert pooled.count[13] == 8 and pooled.accuracy[13] == pytest.approx(7 / 8)
    # pooled ECE = (|7 - 7.2| + |1 - 0.4|) / 12
    assert pooled.ece == pytest.approx((0.2 + 0.6) / 12)
    assert np.isnan(ReliabilityBins.empty().ece)
    with pytest.raises(ValueError, match="different bins"):
        a + ReliabilityBins.empty(10)


def test_input_validation():
    with pytest.raises(ValueError, match=r"\(C, \*S\)"):
        brier_score(np.zeros((2, 4)), np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="labels must lie"):
        expected_calibration_error(*two_class([0.5, 0.5], [0, 2]))


def test_auroc_hand_computed_with_and_without_ties():
    # positives {0.35, 0.8} vs negatives {0.1, 0.4}: pairs won 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3/4
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # ties count 1/2: positives {0.5, 0.9} vs negatives {0.5, 0.2}: 0.5 + 1 + 1 + 1 -> 3.5 / 4
    assert auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 200).astype(float)  # many ties
    t = rng.random(200) < s / 6
    assert auroc(s, t) == pytest.approx(roc_auc_score(t, s), abs=1e-12)


def test_auroc_extremes():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc(np.full(6, 0.3), [0, 1, 0, 1, 1, 0]) == 0.5
    assert np.isnan(auroc([0.1, 0.5], [0, 0])) and np.isnan(auroc([0.1, 0.5], [1, 1]))
    assert auroc(np.array([[0.1, 0.9], [0.2, 0.8]]), np.array([[0, 1], [0, 1]])) == 1.0  # any shape


def test_top_uncertainty_dice():
    u = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.0])
    e = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    # k = |E| = 3 -> top {0, 1, 2}; |T & E| = 2 -> 2 * 2 / (3 + 3)
    assert top_uncertainty_dice(u, e) == pytest.approx(2 / 3)
    # fraction 1/6 -> k = 1 -> top {0}: 2 * 1 / (1 + 3)
    assert top_uncertainty_dice(u, e, fraction=1 / 6) == pytest.approx(0.5)
    # ties at the k-th value: lowest flat index first -> k = 1 picks voxel 0 (not an error)
    assert top_uncertainty_dice([0.5, 0.5, 0.5, 0.1], [0, 0, 1, 0]) == 0.0
    assert top_uncertainty_dice([0.5, 0.5, 0.5, 0.1], [1, 0, 0, 0]) == 1.0
    assert top_uncertainty_dice(u, np.zeros(6, bool)) == 1.0  # both empty
    assert top_uncertainty_dice(u, np.zeros(6, bool), fraction=0.5) == 0.0
    assert top_uncertainty_dice(u, u > 0.5) == 1.0  # uncertainty ranks the errors perfectly
    with pytest.raises(ValueError, match="fraction"):
        top_uncertainty_dice(u, e, fraction=1.5)
