"""Analytic tests of the pure metric core (overlap, surface distances, paired statistics)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage, stats

from nnunet_ext.core.overlap import confusion_counts, overlap_metrics
from nnunet_ext.core.stats import compare_paired, pearson, spearman, wilcoxon_paired
from nnunet_ext.core.surface import boundary_band, boundary_dice, surface_distances, surface_metrics, surface_voxels
from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.metrics import (
    METRIC_NAMES,
    compute_metrics,
    label_key,
    labels_from_dataset_json,
    mask_of,
    normalize_labels,
    parse_label_key,
)

ANISO = (2.0, 0.7, 0.7)  # (z, y, x) mm


def ellipsoid_grid(shape, spacing):
    """Physical coordinates (mm) of voxel centres, centred on the middle voxel."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij")


def ball(radius, shape=(21, 57, 57), spacing=ANISO):
    z, y, x = ellipsoid_grid(shape, spacing)
    return z ** 2 + y ** 2 + x ** 2 <= radius ** 2


def cube(shape, lo, hi):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


# ---------------------------------------------------------------- overlap
def test_hand_computed_overlap():
    ref = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], dtype=bool)
    pred = np.array([[0, 1, 1, 0], [0, 1, 0, 0]], dtype=bool)
    c = confusion_counts(ref, pred)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 3)
    m = overlap_metrics(ref, pred)
    assert m["dice"] == pytest.approx(4 / 7)
    assert m["iou"] == pytest.approx(2 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 4)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert (m["voxels_ref"], m["voxels_pred"]) == (4, 3)


def test_identical_masks_are_perfect():
    m = compute_metrics(ball(8.0), ball(8.0), ANISO)
    assert (m["dice"], m["iou"], m["hd"], m["hd95"], m["assd"], m["nsd"], m["boundary_dice"]) == (1, 1, 0, 0, 0, 1, 1)
    assert list(m) == list(METRIC_NAMES)


def test_disjoint_masks():
    shape = (10, 10, 10)
    a, b = cube(shape, (0, 0, 0), (3, 3, 3)), cube(shape, (6, 6, 6), (9, 9, 9))
    m = compute_metrics(a, b, (1.0, 1.0, 1.0), tau=1.0)
    assert (m["dice"], m["iou"], m["sensitivity"], m["nsd"], m["boundary_dice"]) == (0, 0, 0, 0, 0)
    # farthest surface voxels: corner (0,0,0) of a to the nearest surface voxel (6,6,6) of b
    assert m["hd"] == pytest.approx(math.sqrt(3 * 36))


@pytest.mark.parametrize("penalty", [374.0, 100.0])
def test_empty_mask_policy(penalty):
    shape = (6, 7, 8)
    empty, full = np.zeros(shape, bool), cube(shape, (1, 1, 1), (4, 4, 4))
    both = compute_metrics(empty, empty, ANISO, penalty=penalty)
    assert (both["dice"], both["iou"], both["hd"], both["hd95"], both["nsd"], both["boundary_dice"]) == (
        1,
        1,
        0,
        0,
        1,
        1,
    )
    assert math.isnan(both["sensitivity"]) and math.isnan(both["precision"])
    assert both["specificity"] == 1 and both["accuracy"] == 1 and both["volume_ref_mm3"] == 0

    missed = compute_metrics(full, empty, ANISO, penalty=penalty)  # prediction empty
    assert (missed["dice"], missed["iou"], missed["nsd"], missed["boundary_dice"]) == (0, 0, 0, 0)
    assert missed["hd"] == missed["hd95"] == missed["assd"] == penalty
    assert missed["sensitivity"] == 0 and math.isnan(missed["precision"])

    spurious = compute_metrics(empty, full, ANISO, penalty=penalty)  # reference empty
    assert (spurious["dice"], spurious["hd"], spurious["hd95"], spurious["nsd"]) == (0, penalty, penalty, 0)
    assert math.isnan(spurious["sensitivity"]) and spurious["precision"] == 0
    assert spurious["volume_pred_mm3"] == pytest.approx(27 * 2.0 * 0.7 * 0.7)


# ---------------------------------------------------------------- surface distances
def test_concentric_spheres_anisotropic():
    r1, r2 = 8.0, 16.0
    inner, outer = ball(r1), ball(r2)
    voxel_diag = math.sqrt(sum(s * s for s in ANISO))
    m = compute_metrics(inner, outer, ANISO, tau=2.0)
    assert abs(m["hd"] - (r2 - r1)) <= voxel_diag
    assert abs(m["hd95"] - (r2 - r1)) <= voxel_diag
    assert m["hd95"] <= m["hd"]
    for r, v in ((r1, m["volume_ref_mm3"]), (r2, m["volume_pred_mm3"])):
        assert v == pytest.approx(4 / 3 * math.pi * r ** 3, rel=0.03)
    assert m["nsd"] == 0.0  # tau = 2 < R2 - R1 - voxel diagonal
    assert compute_metrics(inner, outer, ANISO, tau=r2 - r1 + voxel_diag)["nsd"] == 1.0
    assert m["dice"] == pytest.approx((2 * r1 ** 3) / (r1 ** 3 + r2 ** 3), rel=0.05)
    assert m["sensitivity"] == 1.0  # inner lies inside outer


@pytest.mark.parametrize("axis,shift", [(0, 3), (2, 2), (1, 5)])
def test_translated_cube_hd_is_the_shift(axis, shift):
    shape = (20, 24, 24)
    lo, hi = [4, 5, 6], [12, 15, 16]
    a = cube(shape, lo, hi)
    lo[axis] += shift
    hi[axis] += shift
    b = cube(shape, lo, hi)
    m = compute_metrics(a, b, ANISO)
    assert m["hd"] == pytest.approx(shift * ANISO[axis], abs=1e-9)
    assert m["hd95"] <= m["hd"] + 1e-12


def test_cropping_does_not_change_values():
    shape = (12, 14, 16)
    a, b = cube(shape, (2, 3, 4), (9, 8, 12)), cube(shape, (3, 5, 4), (11, 12, 10))
    small = compute_metrics(a, b, ANISO)
    big_a, big_b = (np.pad(m, ((5, 0), (0, 9), (3, 4))) for m in (a, b))
    big = compute_metrics(big_a, big_b, ANISO)
    for k in ("hd", "hd95", "assd", "nsd", "boundary_dice", "dice", "tp", "fp", "fn"):
        assert big[k] == pytest.approx(small[k], abs=1e-12), k
    # touching the image border: border counts as background for the surface
    edge = np.ones((3, 4, 5), bool)
    assert surface_voxels(edge).sum() == edge.size - 1 * 2 * 3


def _brute_surface(mask):
    """Mask voxels with a 6-neighbour outside the mask (outside the image counts as outside)."""
    p = np.pad(mask, 1)
    inner = np.ones_like(mask)
    for ax in range(mask.ndim):
        for step in (-1, 1):
            inner &= np.roll(p, step, axis=ax)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def test_brute_force_directed_distances():
    rng = np.random.default_rng(0)
    spacing = (1.5, 0.8, 1.1)
    shape = (9, 11, 13)
    a = ndimage.gaussian_filter(rng.random(shape), 1.2) > 0.5
    b = ndimage.gaussian_filter(rng.random(shape), 1.2) > 0.5
    assert a.any() and b.any()
    pa = np.argwhere(_brute_surface(a)) * spacing
    pb = np.argwhere(_brute_surface(b)) * spacing
    assert np.array_equal(_brute_surface(a), surface_voxels(a))
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    d_ab, d_ba = d.min(1), d.min(0)
    sd = surface_distances(a, b, spacing)
    np.testing.assert_allclose(np.sort(sd.ref_to_pred), np.sort(d_ab), atol=1e-9)
    np.testing.assert_allclose(np.sort(sd.pred_to_ref), np.sort(d_ba), atol=1e-9)
    tau = 1.0
    m = surface_metrics(a, b, spacing, tau=tau)
    assert m["hd"] == pytest.approx(max(d_ab.max(), d_ba.max()))
    assert m["hd95"] == pytest.approx(max(np.percentile(d_ab, 95, method="linear"),
                                          np.percentile(d_ba, 95, method="linear")))
    assert m["assd"] == pytest.approx((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
    assert m["nsd"] == pytest.approx(((d_ab <= tau).sum() + (d_ba <= tau).sum()) / (d_ab.size + d_ba.size))


def test_boundary_band_and_dice_by_hand():
    shape, one = (12, 12, 12), (1.0, 1.0, 1.0)
    a = cube(shape, (1, 1, 1), (11, 11, 11))  # 10^3 cube
    assert boundary_band(a, one, 1.0).sum() == 10 ** 3 - 8 ** 3
    assert boundary_band(a, one, 2.0).sum() == 10 ** 3 - 6 ** 3
    assert boundary_band(a, one, 0.0).sum() == 10 ** 3 - 8 ** 3  # the surface is always in the band
    b = cube(shape, (1, 1, 2), (11, 11, 12))  # shifted by one voxel along x
    # bands overlap on (a & b) minus the union of the interiors: 10*10*9 - 8*8*9
    assert boundary_dice(a, b, one, 1.0) == pytest.approx(2 * (900 - 576) / (2 * 488))
    assert boundary_dice(a, a, one, 1.0) == 1.0


# ---------------------------------------------------------------- labels and regions
def test_regions_and_label_keys():
    seg = np.array([0, 1, 2, 3, 3, 2, 0])
    assert mask_of(seg, (1, 2, 3)).sum() == 5 and mask_of(seg, (2, 3)).sum() == 4 and mask_of(seg, 3).sum() == 2
    ref = np.array([[0, 1, 2, 3, 3, 2, 0]])
    pred = np.array([[0, 2, 2, 3, 1, 0, 0]])
    sp = (1.0, 1.0)
    wt = compute_metrics(mask_of(ref, (1, 2, 3)), mask_of(pred, (1, 2, 3)), sp)
    assert wt["dice"] == pytest.approx(2 * 4 / (5 + 4))
    tc = compute_metrics(mask_of(ref, (2, 3)), mask_of(pred, (2, 3)), sp)
    assert tc["dice"] == pytest.approx(2 * 2 / (4 + 3))
    assert [label_key(x) for x in normalize_labels([1, (1, 2, 3), "2,3"])] == ["1", "1,2,3", "2,3"]
    assert parse_label_key("(1, 2, 3)") == (1, 2, 3) and parse_label_key("4") == 4
    with pytest.raises(InputError):
        normalize_labels([1, "1"])
    with pytest.raises(InputError):
        normalize_labels([-1])


def test_labels_from_dataset_json(tmp_path):
    import json
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                                         "enhancing": 3, "ignore": 4}}))
    labels, names = labels_from_dataset_json(dj)
    assert labels == [(1, 2, 3), (2, 3), (3,)]
    assert names == {"1,2,3": "whole tumor", "2,3": "tumor core", "3": "enhancing"}
    dj.write_text(json.dumps({"labels": {"background": 0, "lung": 1, "nodule": 2}}))
    assert labels_from_dataset_json(dj) == ([1, 2], {"1": "lung", "2": "nodule"})


# ---------------------------------------------------------------- statistics
def test_stats_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=25)
    b = a + rng.normal(0.3, 0.5, size=25)
    w, ref = wilcoxon_paired(a, b), stats.wilcoxon(b, a)
    assert (w.statistic, w.pvalue, w.n) == pytest.approx((ref.statistic, ref.pvalue, 25))
    assert spearman(a, b).statistic == pytest.approx(stats.spearmanr(a, b).statistic)
    assert spearman(a, b).pvalue == pytest.approx(stats.spearmanr(a, b).pvalue)
    assert pearson(a, b).statistic == pytest.approx(stats.pearsonr(a, b).statistic)
    assert pearson(a, b).pvalue == pytest.approx(stats.pearsonr(a, b).pvalue)
    s = compare_paired(a, b)
    assert s["n"] == 25 and s["mean_difference"] == pytest.approx(np.mean(b - a))


def test_stats_nan_and_degenerate_inputs():
    a = [1.0, 2.0, np.nan, 4.0, 5.0, 7.0]
    b = [1.5, None, 3.0, 4.2, 6.0, 9.0]
    kept_a, kept_b = [1.0, 4.0, 5.0, 7.0], [1.5, 4.2, 6.0, 9.0]
    assert pearson(a, b).statistic == pytest.approx(stats.pearsonr(kept_a, kept_b).statistic)
    assert pearson(a, b).n == 4 and wilcoxon_paired(a, b).n == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = wilcoxon_paired([1, 2, 3], [1, 2, 3])
        assert (same.statistic, same.pvalue, same.n) == (0.0, 1.0, 3)
        const = spearman([1, 1, 1, 1], [1, 2, 3, 4])
        assert math.isnan(const.statistic) and math.isnan(const.pvalue)
        assert math.isnan(pearson([1, 2, 3], [5, 5, 5]).statistic)
        assert math.isnan(pearson([1.0], [2.0]).statistic)
        none = wilcoxon_paired([np.nan], [1.0])
        assert none.n == 0 and math.isnan(none.pvalue)
        assert math.isnan(compare_paired([], [])["mean_difference"])
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2, 3])
