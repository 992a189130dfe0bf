"""Simulated-click evaluation protocols (errors / autopet / each-lesion) on hand-built label maps."""
import numpy as np
import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.methods.interactive.click_protocols import ClickProtocol, as_clicks
from nnunet_ext.methods.interactive.click_simulation import hotspot_clicks, lesion_clicks
from nnunet_ext.methods.interactive.clicks import Click


def _reference():
    ref = np.zeros((24, 24, 24), np.int64)
    ref[2:7, 2:7, 2:7] = 1  # GTVp, 5^3, centre (4, 4, 4)
    ref[14:17, 3:6, 18:21] = 1  # GTVp, 3^3, centre (15, 4, 19)
    ref[10:13, 15:18, 5:8] = 2  # GTVn, 3^3, centre (11, 16, 6)
    return ref


def _pet(ref):
    pet = np.zeros(ref.shape, np.float32)
    pet[ref > 0] = 20.0
    pet[18:21, 18:21, 2:5] = 10.0  # hot spot A, 27 voxels, centre (19, 19, 3)
    pet[5, 20, 20] = 8.0  # hot spot B, 1 voxel
    return pet


def test_lesion_and_hotspot_clicks():
    ref = _reference()
    assert lesion_clicks(ref, (1, 2)) == [(0, (4, 4, 4), True), (0, (15, 4, 19), True), (1, (11, 16, 6), True)]
    assert lesion_clicks(ref, (1, 2), max_per_class=1) == [(0, (4, 4, 4), True), (1, (11, 16, 6), True)]
    # 28 hot voxels among ~13.6k non-lesion voxels: the 99th percentile is 0, so both hot spots qualify
    assert hotspot_clicks(_pet(ref), ref, 5, percentile=99.0) == [(None, (19, 19, 3), False),
                                                                 (None, (5, 20, 20), False)]
    assert hotspot_clicks(_pet(ref), ref, 1, percentile=99.0) == [(None, (19, 19, 3), False)]


def test_each_lesion_protocol():
    p = ClickProtocol("each-lesion", _reference(), (1, 2), max_clicks=5)
    assert p.n_steps == 1
    assert p.step(1) == lesion_clicks(_reference(), (1, 2))
    with pytest.raises(ValueError, match="outside 1..1"):
        p.step(2)


def test_autopet_protocol_is_cumulative():
    ref = _reference()
    p = ClickProtocol("autopet", ref, (1, 2), max_clicks=3, image=_pet(ref), hotspot_percentile=99.0)
    one = [(0, (4, 4, 4), True), (1, (11, 16, 6), True), (None, (19, 19, 3), False)]
    assert p.step(1) == one
    assert p.step(2) == one + [(0, (15, 4, 19), True), (None, (5, 20, 20), False)]
    assert p.step(3) == p.step(2)  # no third GTVp lesion, no third hot spot
    no_pet = ClickProtocol("autopet", ref, (1, 2), max_clicks=2)
    assert no_pet.step(1) == one[:2]


def test_errors_protocol_follows_the_prediction():
    ref = _reference()
    p = ClickProtocol("errors", ref, (1, 2), max_clicks=3)
    first = p.step(1, np.zeros_like(ref))  # nothing predicted: the largest missed lesion of each class
    assert first == [(0, (4, 4, 4), True), (1, (11, 16, 6), True)]
    pred = ref.copy()
    pred[14:17, 3:6, 18:21] = 0  # second GTVp still missed
    pred[20:23, 10:15, 10:13] = 1  # a false GTVp, 3 x 5 x 3, centre (21, 12, 11), larger than the miss
    second = p.step(2, pred)
    assert second == first + [(0, (21, 12, 11), False)]
    assert p.step(3, ref) == second  # no errors left: nothing added
    with pytest.raises(ValueError, match="in order"):
        ClickProtocol("errors", ref, (1, 2)).step(2, ref)
    with pytest.raises(ValueError, match="previous step's prediction"):
        ClickProtocol("errors", ref, (1, 2)).step(1)


def test_as_clicks_and_bad_protocols():
    clicks = as_clicks([(0, (4, 5, 6), True), (None, (1, 2, 3), False)], (1, 2))
    assert clicks == [Click((6, 5, 4), 1, True, "voxel"), Click((3, 2, 1), None, False, "voxel")]
    with pytest.raises(InputError, match="unknown click protocol"):
        ClickProtocol("random", _reference(), (1,))
    with pytest.raises(InputError, match="max-clicks"):
        ClickProtocol("errors", _reference(), (1,), max_clicks=0)
    with pytest.raises(InputError, match="differs from the reference"):
        ClickProtocol("autopet", _reference(), (1,), image=np.zeros((2, 2, 2)))


def test_prune_unclicked_drops_far_components_of_clicked_classes():
    from nnunet_ext.methods.interactive.click_simulation import prune_unclicked

    seg = np.zeros((10, 40, 40), np.uint8)
    seg[4:6, 4:8, 4:8] = 1  # near the click at (5, 6, 6)
    seg[4:6, 4:8, 30:34] = 1  # 24 voxels along x from the click's x = 6 -> nearest voxel x = 30: 24 * 2 mm = 48 mm
    seg[4:6, 30:34, 30:34] = 2  # class 2 has no positive click: kept
    out, dropped = prune_unclicked(seg, [(1, (5, 6, 6))], max_distance_mm=20.0, spacing=(3.0, 2.0, 2.0))
    assert dropped == [{"label": 1, "voxels": 32, "distance_mm": 48.0}]
    assert (out == 1).sum() == 32 and (out == 2).sum() == 32 and (seg == 1).sum() == 64
    assert np.array_equal(prune_unclicked(seg, [(1, (5, 6, 6))], 50.0, (3.0, 2.0, 2.0))[0], seg)
    assert np.array_equal(prune_unclicked(seg, [], 1.0)[0], seg)
