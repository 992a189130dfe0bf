"""Anatomy-aware component filter on small hand-built volumes (exact expectations)."""
import warnings

import numpy as np
import pytest

from nnunet_ext.methods.lung_cascade.component_filter import (
    LungFilterConfig,
    central_zone_mask,
    filter_components,
)

SHAPE = (30, 40, 60)
SP = (1.0, 1.0, 1.0)


def lungs(shape=SHAPE):
    """Right lung (1) at x 5..24, left lung (2) at x 35..54, both z 2..17, y 5..34 -> zone x 25..34."""
    m = np.zeros(shape, np.uint8)
    m[2:18, 5:35, 5:25] = 1
    m[2:18, 5:35, 35:55] = 2
    return m


def by_reason(log):
    return sorted((c["voxels"], c["kept"], c["reason"]) for c in log["components"])


def test_central_zone_definition_exact():
    zone = central_zone_mask(lungs())
    expected = np.zeros(SHAPE, bool)
    expected[2:18, 5:35, 25:35] = True
    assert np.array_equal(zone, expected)
    # mirrored orientation (left lung at low x) gives the same band
    m = lungs()
    assert np.array_equal(central_zone_mask(np.where(m > 0, 3 - m, 0).astype(np.uint8)), expected)
    # per-slice edges: lung 1 reaching further medially in slice 10 narrows the band there only
    m[10, 5:35, 25:28] = 1
    z = central_zone_mask(m)
    assert z[10].sum() == 30 * 7 and z[11].sum() == 30 * 10
    assert not central_zone_mask(np.where(m == 2, 0, m)).any()  # one lung only: no zone


def test_inside_far_rescued_too_small():
    pred = np.zeros(SHAPE, np.uint8)
    pred[8:11, 10:13, 10:13] = 1          # inside right lung: 27 voxels
    pred[26:29, 10:13, 10:13] = 1         # 9 voxels below the lungs in z (z 26 vs lung z 17): far
    pred[8:11, 10:13, 1:4] = 1            # lateral, x 1..3, lung from x 5: distance 2, 27 voxels -> rescued
    pred[8:10, 25:27, 1:3] = 1            # lateral, distance 3, 8 voxels < 10 -> too small
    out, log = filter_components(pred, lungs(), SP, LungFilterConfig())
    assert log["n_components"] == 4 and log["n_kept"] == 2
    comps = {(c["bbox"][0][0], c["bbox"][1][0], c["bbox"][2][0]): c for c in log["components"]}
    inside, far, resc, small = comps[(8, 10, 10)], comps[(26, 10, 10)], comps[(8, 10, 1)], comps[(8, 25, 1)]
    assert (inside["kept"], inside["reason"], inside["lung_overlap"]) == (True, "lung_overlap", 1.0)
    assert (far["kept"], far["reason"], far["lung_overlap"]) == (False, "too_far", 0.0)
    assert far["distance_to_lung_vox"] is None  # 9 voxels away is beyond the 6-voxel search crop
    assert (resc["kept"], resc["reason"], resc["distance_to_lung_vox"], resc["distance_to_lung_mm"]) == \
        (True, "rescued", 2.0, 2.0)
    assert (small["kept"], small["reason"], small["distance_to_lung_vox"], small["voxels"]) == \
        (False, "too_small", 3.0, 8)
    assert inside["bbox"] == [[8, 11], [10, 13], [10, 13]] and inside["centroid"] == [9.0, 11.0, 11.0]
    expected = np.zeros(SHAPE, np.uint8)
    expected[8:11, 10:13, 10:13] = 1
    expected[8:11, 10:13, 1:4] = 1
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    # a smaller min_voxels rescues the small one; a smaller distance drops the rescued one
    _, log2 = filter_components(pred, lungs(), SP, LungFilterConfig(min_voxels=8, rescue_distance=2))
    assert by_reason(log2) == [(8, False, "too_far"), (9 * 3, False, "too_far"), (27, True, "lung_overlap"),
                               (27, True, "rescued")]


def test_central_zone_uses_stricter_threshold():
    pred = np.zeros(SHAPE, np.uint8)
    pred[12, 20, 16:26] = 1               # x 16..24 in the right lung (9), x 25 in the zone (1): overlap 0.9
    pred[12, 10, 4:14] = 1                # x 4 lateral outside (1), x 5..13 in the lung (9): overlap 0.9
    out, log = filter_components(pred, lungs(), SP, LungFilterConfig())
    c_central = next(c for c in log["components"] if c["bbox"][1][0] == 20)
    c_lateral = next(c for c in log["components"] if c["bbox"][1][0] == 10)
    assert (c_central["lung_overlap"], c_central["in_central_zone"], c_central["central_fraction"]) == (0.9, True, 0.1)
    assert (c_central["kept"], c_central["reason"]) == (False, "low_overlap_central")
    assert (c_lateral["lung_overlap"], c_lateral["in_central_zone"]) == (0.9, False)
    assert (c_lateral["kept"], c_lateral["reason"]) == (True, "lung_overlap")
    assert out.sum() == 10 and out[12, 10, 4:14].all()
    # the central component touches the lung (distance 0, 10 voxels): only the no-rescue-in-zone rule drops it
    assert c_central["distance_to_lung_vox"] == 0.0
    _, log_r = filter_components(pred, lungs(), SP, LungFilterConfig(rescue_in_central_zone=True))
    assert sorted(c["reason"] for c in log_r["components"]) == ["lung_overlap", "rescued"]
    # with the central threshold lowered to the normal one, both are kept
    _, log2 = filter_components(pred, lungs(), SP, LungFilterConfig(central_overlap_threshold=0.8))
    assert log2["n_kept"] == 2


def test_dilation_merge_groups_but_does_not_grow():
    pred = np.zeros(SHAPE, np.uint8)
    pred[8:11, 10:13, 10:13] = 1
    pred[8:11, 10:13, 14:17] = 1          # one empty voxel (x = 13) between them
    out, log = filter_components(pred, lungs(), SP, LungFilterConfig(merge_radius=1))
    assert log["n_components"] == 1 and log["components"][0]["voxels"] == 54
    assert log["components"][0]["bbox"] == [[8, 11], [10, 13], [10, 17]]
    assert np.array_equal(out, pred)     # intersected back: the gap voxel is not filled
    _, log0 = filter_components(pred, lungs(), SP, LungFilterConfig(merge_radius=0))
    assert [c["voxels"] for c in log0["components"]] == [27, 27]
    # radius 1 merges a Chebyshev gap of at most 3 (2 empty voxels), not 3 empty voxels
    far = np.zeros(SHAPE, np.uint8)
    far[8, 10, 10] = far[8, 10, 13] = 1
    assert filter_components(far, lungs(), SP)[1]["n_components"] == 1
    far[8, 10, 13] = 0
    far[8, 10, 14] = 1
    assert filter_components(far, lungs(), SP)[1]["n_components"] == 2


def _three_inside():
    pred = np.zeros(SHAPE, np.uint8)
    pred[3:6, 6:9, 6:9] = 1               # 27
    pred[10:12, 6:8, 6:8] = 1             # 8
    pred[5:9, 20:24, 40:44] = 1           # 64 (left lung)
    return pred


@pytest.mark.parametrize("k,kept", [(1, [64]), (2, [64, 27]), (None, [64, 27, 8]), (5, [64, 27, 8])])
def test_top_k_keeps_largest(k, kept):
    out, log = filter_components(_three_inside(), lungs(), SP, LungFilterConfig(top_k=k))
    assert sorted((c["voxels"] for c in log["components"] if c["kept"]), reverse=True) == kept
    assert all(c["reason"] == "top_k" for c in log["components"] if not c["kept"])
    assert out.sum() == sum(kept)


def test_empty_lung_mask_warns_and_falls_back_to_top_k():
    with pytest.warns(UserWarning, match="lung mask is empty"):
        out, log = filter_components(_three_inside(), np.zeros(SHAPE, np.uint8), SP, LungFilterConfig(top_k=1))
    assert len(log["warnings"]) == 1 and "empty" in log["warnings"][0]
    assert by_reason(log) == [(8, False, "top_k"), (27, False, "top_k"), (64, True, "no_lung_mask")]
    assert out.sum() == 64 and out[5:9, 20:24, 40:44].all()
    # a component far outside any lung is kept too: the lung filters are skipped
    pred = np.zeros(SHAPE, np.uint8)
    pred[27, 1, 1] = 1
    with pytest.warns(UserWarning):
        out, _ = filter_components(pred, np.zeros(SHAPE, np.uint8), SP)
    assert np.array_equal(out, pred)


def test_no_components_gives_empty_output():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, log = filter_components(np.zeros(SHAPE, np.uint8), lungs(), SP)
    assert out.shape == SHAPE and out.dtype == np.uint8 and not out.any()
    assert (log["n_components"], log["n_kept"], log["components"]) == (0, 0, [])


def test_rescue_unit_mm_vs_vox_with_anisotropic_spacing():
    pred = np.zeros(SHAPE, np.uint8)
    pred[8:11, 10:13, 0:3] = 1            # x 0..2, lung from x 5: 3 voxels away along x
    lung = lungs()
    # coarse x spacing 3 mm: 3 vox = 9 mm -> rescued in vox, too far in mm
    _, lv = filter_components(pred, lung, (1.0, 1.0, 3.0), LungFilterConfig(rescue_unit="vox"))
    _, lm = filter_components(pred, lung, (1.0, 1.0, 3.0), LungFilterConfig(rescue_unit="mm"))
    assert (lv["components"][0]["reason"], lv["components"][0]["distance_to_lung_vox"]) == ("rescued", 3.0)
    assert lm["components"][0]["reason"] == "too_far"
    # fine x spacing 0.5 mm, 9 voxels away: too far in vox, 4.5 mm -> rescued in mm
    pred2 = np.zeros(SHAPE, np.uint8)
    lung2 = np.zeros(SHAPE, np.uint8)
    lung2[2:18, 5:35, 20:40] = 1
    lung2[2:18, 5:35, 45:55] = 2
    pred2[8:11, 10:13, 9:12] = 1          # x 9..11, right lung from x 20: 9 voxels -> 8 empty voxels between
    _, lv2 = filter_components(pred2, lung2, (1.0, 1.0, 0.5), LungFilterConfig(rescue_unit="vox"))
    _, lm2 = filter_components(pred2, lung2, (1.0, 1.0, 0.5), LungFilterConfig(rescue_unit="mm"))
    assert lv2["components"][0]["reason"] == "too_far"
    assert (lm2["components"][0]["reason"], lm2["components"][0]["distance_to_lung_mm"]) == ("rescued", 4.5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        filter_components(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), SP)
    with pytest.raises(ValueError, match="rescue_unit"):
        LungFilterConfig(rescue_unit="cm")
    with pytest.raises(ValueError, match="top_k"):
        LungFilterConfig(top_k=0)


@pytest.mark.parametrize("radius,union_find", [(1, True), (2, True), (1, False), (2, False)])
def test_merge_equals_full_dilation_grouping(radius, union_find, monkeypatch):
    """Both merge paths (union-find, full dilation for many specks) give the partition of the dilated mask."""
    import cc3d
    from scipy import ndimage

    from nnunet_ext.methods.lung_cascade import component_filter as cf
    from nnunet_ext.methods.lung_cascade.component_filter import _label_components
    monkeypatch.setattr(cf, "_UNION_FIND_MAX", 10**9 if union_find else 0)

    rng = np.random.default_rng(radius)
    fg = rng.random((24, 24, 24)) < 0.01
    ours = _label_components(fg, radius)
    full = cc3d.connected_components(ndimage.binary_dilation(fg, np.ones((2 * radius + 1,) * 3)).astype(np.uint8),
                                     connectivity=26)
    a, b = ours[fg], full[fg]
    pairs = set(zip(a.tolist(), b.tolist()))
    assert len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))   # a bijection between the groupings
    assert len(pairs) < fg.sum()                                          # and some merging did happen
    assert not ours[~fg].any()


# ---------------------------------------------------------------- CLI: nnext postprocess lung

def _write(path, arr, spacing_xyz=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    from nnunet_ext.io.imageio import Geometry, write_image
    write_image(arr, Geometry(tuple(spacing_xyz), tuple(origin)), path)


def _cli_case(tmp_path):
    pred = np.zeros(SHAPE, np.uint8)
    pred[8:12, 10:13, 10:13] = 1          # inside: kept, 36 voxels
    pred[26:29, 10:13, 10:13] = 1         # far: dropped
    pred[8:11, 10:13, 1:4] = 1            # rescued
    for d in ("pred", "lung", "out"):
        (tmp_path / d).mkdir()
    _write(tmp_path / "pred" / "c1.nii.gz", pred, (0.8, 0.8, 2.0), (1.0, 2.0, 3.0))
    _write(tmp_path / "lung" / "c1.nii.gz", lungs(), (0.8, 0.8, 2.0), (1.0, 2.0, 3.0))
    return pred


def _run(tmp_path, *extra):
    from nnunet_ext.cli.main import main
    return main(["postprocess", "lung", "-i", str(tmp_path / "pred"), "-l", str(tmp_path / "lung"),
                 "-o", str(tmp_path / "out"), *extra])


def test_cli_writes_filtered_mask_and_log(tmp_path, capsys):
    import json

    from nnunet_ext.io.imageio import read_image
    pred = _cli_case(tmp_path)
    assert _run(tmp_path) == 0
    out, geo = read_image(tmp_path / "out" / "c1.nii.gz")
    expected = pred.copy()
    expected[26:29] = 0
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    assert np.allclose(geo.spacing, (0.8, 0.8, 2.0)) and np.allclose(geo.origin, (1.0, 2.0, 3.0))
    log = json.loads((tmp_path / "out" / "postprocess_log.json").read_text())
    assert log["config"]["overlap_threshold"] == 0.8 and log["config"]["top_k"] is None
    c1 = log["cases"]["c1"]
    assert (c1["n_components"], c1["n_kept"], c1["lung_resampled"]) == (3, 2, False)
    assert np.allclose(c1["spacing_zyx"], [2.0, 0.8, 0.8])
    assert sorted(c["reason"] for c in c1["components"]) == ["lung_overlap", "rescued", "too_far"]
    # an existing output is kept without --overwrite (its log entry too) only when it checks out (issue 19)
    (tmp_path / "out" / "c1.nii.gz").write_bytes(b"sentinel")
    assert _run(tmp_path, "--top-k", "1") == 2  # other settings: refused by the stale-output guard, nothing touched
    assert (tmp_path / "out" / "c1.nii.gz").read_bytes() == b"sentinel"
    capsys.readouterr()
    assert _run(tmp_path) == 0  # same settings, but the output is not an image: recomputed, and said so
    assert "c1: recomputing (c1.nii.gz: read back: not a gzip file" in capsys.readouterr().out
    assert np.array_equal(read_image(tmp_path / "out" / "c1.nii.gz")[0], expected)
    kept = (tmp_path / "out" / "c1.nii.gz").stat().st_mtime_ns
    assert _run(tmp_path) == 0  # a valid output is kept
    assert "exists, kept" in capsys.readouterr().out and (tmp_path / "out" / "c1.nii.gz").stat().st_mtime_ns == kept
    assert json.loads((tmp_path / "out" / "postprocess_log.json").read_text())["cases"]["c1"]["n_kept"] == 2
    assert _run(tmp_path, "--top-k", "1", "--overwrite", "--rescue-unit", "mm") == 0
    out, _ = read_image(tmp_path / "out" / "c1.nii.gz")
    assert out.sum() == 36 and out[8:12, 10:13, 10:13].all()
    log = json.loads((tmp_path / "out" / "postprocess_log.json").read_text())
    assert log["config"]["top_k"] == 1 and log["config"]["rescue_unit"] == "mm"
    # 2 voxels along x at 0.8 mm = 1.6 mm: still rescued in mm, then removed by Top-1
    assert sorted(c["reason"] for c in log["cases"]["c1"]["components"]) == ["lung_overlap", "too_far", "top_k"]
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_cli_missing_lung_mask_names_case(tmp_path, capsys):
    _cli_case(tmp_path)
    _write(tmp_path / "pred" / "c2.nii.gz", np.zeros(SHAPE, np.uint8))
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err
    assert "c2" in err and "lung mask missing" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "c1.nii.gz").exists()


def test_cli_resamples_lung_mask_with_warning_or_refuses(tmp_path, capsys):
    import json

    from nnunet_ext.io.imageio import read_image
    _cli_case(tmp_path)
    # the same lungs at half the resolution in x (spacing doubled, size halved): resampled onto the prediction
    half = lungs()[:, :, ::2]
    _write(tmp_path / "lung" / "c1.nii.gz", half, (0.8 * 2, 0.8, 2.0), (1.0 + 0.4, 2.0, 3.0))
    assert _run(tmp_path) == 0
    err = capsys.readouterr().err
    assert "c1" in err and "resampled with nearest neighbour" in err
    c1 = json.loads((tmp_path / "out" / "postprocess_log.json").read_text())["cases"]["c1"]
    assert c1["lung_resampled"] is True and "resampled" in c1["warnings"][0]
    out, _ = read_image(tmp_path / "out" / "c1.nii.gz")
    assert out[8:11, 10:13, 10:13].all() and not out[26:29].any()
    # a lung mask placed far away: empty after resampling -> refused, naming the case
    _write(tmp_path / "lung" / "c1.nii.gz", lungs(), (0.8, 0.8, 2.0), (500.0, 2.0, 3.0))
    assert _run(tmp_path, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "case c1" in err and "does not overlap" in err


def test_cli_requires_filter_name(tmp_path, capsys):
    from nnunet_ext.cli.main import main
    with pytest.raises(SystemExit) as e:
        main(["postprocess", "-i", "x"])
    assert e.value.code == 2


def test_cube_dilate_matches_scipy():
    from scipy import ndimage

    from nnunet_ext.methods.lung_cascade.component_filter import _cube_dilate
    rng = np.random.default_rng(5)
    m = rng.random((9, 7, 11)) < 0.02
    for r in (1, 2, 3):
        assert np.array_equal(_cube_dilate(m, r), ndimage.binary_dilation(m, np.ones((2 * r + 1,) * 3)))


def test_cli_empty_lung_mask_warns_and_applies_top_k(tmp_path, capsys):
    import json

    from nnunet_ext.io.imageio import read_image
    pred = _cli_case(tmp_path)
    _write(tmp_path / "lung" / "c1.nii.gz", np.zeros(SHAPE, np.uint8), (0.8, 0.8, 2.0), (1.0, 2.0, 3.0))
    assert _run(tmp_path, "--top-k", "2") == 0
    assert "c1: warning: lung mask is empty" in capsys.readouterr().err
    out, _ = read_image(tmp_path / "out" / "c1.nii.gz")
    expected = pred.copy()
    expected[26:29] = 0                   # 36, 27, 27 voxels: the tie at 27 goes to the lower id (first in C order)
    assert np.array_equal(out, expected)
    c1 = json.loads((tmp_path / "out" / "postprocess_log.json").read_text())["cases"]["c1"]
    assert sorted(c["reason"] for c in c1["components"]) == ["no_lung_mask", "no_lung_mask", "top_k"]
    assert "lung mask is empty" in c1["warnings"][0]
