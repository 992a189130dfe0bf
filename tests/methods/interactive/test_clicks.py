"""Click prompts in the pure core: geometry, stamps, rasterisation, preprocessed-grid map, clicks JSON."""
import itertools
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.errors import InputError
from nnunet_ext.methods.interactive.clicks import (
    Click,
    PreprocessedGrid,
    click_indices,
    index_to_world,
    rasterize,
    rasterize_voxels,
    stamp,
    world_to_index,
)
from nnunet_ext.methods.interactive.clicks_json import load_clicks, parse_clicks, parse_point_names

LABELS = {"background": 0, "GTVp": 1, "GTVn": 2}


def _rotation(deg_z=30.0, deg_x=-20.0):
    a, b = math.radians(deg_z), math.radians(deg_x)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx @ np.diag([1, -1, 1])  # oblique, with a flip


def _image(shape_zyx=(10, 14, 12), spacing=(1.5, 0.8, 3.0), origin=(-20.0, 11.0, 5.5)):
    img = sitk.GetImageFromArray(np.zeros(shape_zyx, np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(_rotation().ravel().tolist())
    return img


def _n_ball(r, lo=None):
    """Integer points with |d|^2 <= r^2 (optionally each coordinate >= lo): brute force."""
    rng = range(-r, r + 1)
    return sum(1 for d in itertools.product(rng, rng, rng)
               if sum(v * v for v in d) <= r * r and (lo is None or min(d) >= lo))


def test_world_index_matches_simpleitk():
    img = _image()
    rng = np.random.default_rng(0)
    idx = rng.uniform(0, 9, size=(5, 3))
    world = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(i)) for i in idx])
    assert np.allclose(index_to_world(idx, img.GetOrigin(), img.GetSpacing(), img.GetDirection()), world)
    back = world_to_index(world, img.GetOrigin(), img.GetSpacing(), img.GetDirection())
    assert np.allclose(back, idx, atol=1e-9)
    assert np.allclose(back, [img.TransformPhysicalPointToContinuousIndex(tuple(w)) for w in world])


def test_stamps_analytic():
    assert stamp(3).sum() == 123 == _n_ball(3)
    edt = stamp(3, "edt")
    assert edt[3, 3, 3] == 1.0
    # rim voxel (3, 0, 0): its nearest voxel outside the ball is (4, 0, 0) -> 1; centre: (3, 1, 0) -> sqrt(10)
    assert edt[6, 3, 3] == pytest.approx(1 / math.sqrt(10))
    assert np.all((edt > 0) == (stamp(3) > 0))
    g = stamp(3, "gaussian")
    assert g.shape == (19, 19, 19) and g[9, 9, 9] == 1.0
    assert g[9, 11, 10] == pytest.approx(math.exp(-5 / 18), rel=1e-6)  # d^2 = 5, sigma = 3
    assert g[0, 9, 9] == pytest.approx(math.exp(-81 / 18))  # d = 9 = 3 sigma: still inside the cut
    assert g[0, 8, 9] == 0.0  # d^2 = 82 > (3 sigma)^2: cut
    with pytest.raises(InputError, match="encoding"):
        stamp(3, "disc")


def test_rasterize_world_click_on_oblique_image():
    img = _image()
    idx_xyz = (4, 7, 5)
    world = img.TransformIndexToPhysicalPoint(idx_xyz)
    clicks = [Click(world, "GTVn", True), Click((4, 7, 5.3), 1, False, space="voxel")]
    prompt = rasterize(clicks, img, LABELS)
    assert prompt.shape == (2, 10, 14, 12) and prompt.dtype == np.float32
    z, y, x = idx_xyz[::-1]
    assert prompt[1, z, y, x] == 1.0 and (prompt[1] == 1).sum() == 123 and (prompt[1] < 0).sum() == 0
    assert prompt[0, z, y, x] == -1.0 and (prompt[0] == -1).sum() == 123 and (prompt[0] > 0).sum() == 0


def test_opposite_clicks_cancel_and_border_clipping():
    prompt = rasterize_voxels([(0, (5, 5, 5), True), (0, (5, 5, 6), False)], (12, 12, 12), 1, radius=2)
    ball = stamp(2) > 0
    p, n = np.zeros((12, 12, 12), bool), np.zeros((12, 12, 12), bool)
    p[3:8, 3:8, 3:8] = ball
    n[3:8, 3:8, 4:9] = ball
    assert np.array_equal(prompt[0] == 1, p & ~n) and np.array_equal(prompt[0] == -1, n & ~p)
    assert np.all(prompt[0][p & n] == 0)
    corner = rasterize_voxels([([0, 1], (0, 0, 0), True)], (8, 8, 8), 2, radius=3)
    assert (corner[0] == 1).sum() == _n_ball(3, lo=0) == (corner[1] == 1).sum()


def test_click_rejections():
    img = _image()
    outside = img.TransformContinuousIndexToPhysicalPoint((-0.6, 3, 3))
    with pytest.raises(InputError, match=r"click 0 .*outside the image"):
        rasterize([Click(outside, "GTVp")], img, LABELS)
    assert click_indices([Click((-0.4, 3, 3), 1, space="voxel")], img, LABELS)[0][1][2] == pytest.approx(-0.4)
    with pytest.raises(InputError, match=r"class 'GTVx' is not a foreground class .*GTVp, GTVn"):
        rasterize([Click((1, 1, 1), "GTVx", space="voxel")], img, LABELS)
    with pytest.raises(InputError, match="class 3"):
        rasterize([Click((1, 1, 1), 3, space="voxel")], img, LABELS)
    with pytest.raises(InputError, match="must be negative"):
        Click((1, 1, 1), None, True)


def test_background_click_hits_every_class():
    img = _image()
    prompt = rasterize([Click((3, 3, 3), None, False, "voxel")], img, LABELS, radius=1)
    assert (prompt == -1).sum() == 2 * 7


def test_preprocessed_grid_hand_example():
    # image index (z, y, x) = (4, 6, 8); transpose (2, 0, 1) -> (8, 4, 6); crop start (2, 1, 0) -> (6, 3, 6);
    # resample cropped (10, 8, 12) -> (20, 8, 6): p = (c + 0.5) * s - 0.5 with s = (2, 1, 0.5)
    grid = PreprocessedGrid((2, 0, 1), ((2, 12), (1, 9), (0, 12)), (10, 8, 12), (20, 8, 6))
    assert np.allclose(grid.map_index([4, 6, 8]), [12.5, 3.0, 2.75])
    props = {"bbox_used_for_cropping": [[2, 12], [1, 9], [0, 12]],
             "shape_after_cropping_and_before_resampling": (10, 8, 12)}
    assert PreprocessedGrid.from_properties(props, [2, 0, 1], (20, 8, 6)) == grid


def test_parse_our_format_and_keyed(tmp_path):
    per_case = [{"point": [1.5, -2, 30], "label": "GTVp"},
                {"point": [3, 4, 5], "space": "voxel", "label": 2, "positive": False},
                {"point": [3, 4, 5], "space": "voxel", "positive": False}]
    parsed = parse_clicks(per_case)
    assert parsed == {None: [Click((1.5, -2, 30), "GTVp", True, "world"), Click((3, 4, 5), 2, False, "voxel"),
                             Click((3, 4, 5), None, False, "voxel")]}
    f = tmp_path / "clicks.json"
    f.write_text(json.dumps({"case_1": per_case[:1], "case_2": []}))
    keyed = load_clicks(f)
    assert list(keyed) == ["case_1", "case_2"] and keyed["case_1"][0].label == "GTVp"


def test_parse_grand_challenge_points():
    gc = {"version": {"major": 1, "minor": 0}, "type": "Multiple points",
          "points": [{"point": [109, 103, 35], "name": "tumor"}, {"point": [84, 84, 26], "name": "background"},
                     {"point": [1, 2, 3], "name": "node"}]}
    clicks = parse_clicks(gc)[None]
    assert clicks[0] == Click((109, 103, 35), 1, True, "voxel")
    assert clicks[1] == Click((84, 84, 26), None, False, "voxel")
    assert clicks[2].label == "node" and clicks[2].positive
    names = parse_point_names(["tumor=GTVp", "node=-GTVn", "bg=-"])
    clicks = parse_clicks(gc, names=names, gc_space="world")[None]
    assert clicks[0] == Click((109, 103, 35), "GTVp", True, "world")
    assert clicks[2] == Click((1, 2, 3), "GTVn", False, "world")
    with pytest.raises(InputError, match="NAME=CLASS"):
        parse_point_names(["tumor"])


@pytest.mark.parametrize("obj, message", [
    ({"c1": [{"point": [1, 2]}]}, r"c1\[0\]\.label: missing"),
    ({"c1": [{"point": [1, "a", 3], "label": 1}]}, r"c1\[0\]\.point: expected a list of 3 numbers"),
    ({"c1": [{"label": 1}]}, r"c1\[0\]\.point: missing"),
    ({"c1": [{"point": [1, 2, 3], "label": 1, "space": "mm"}]}, r"c1\[0\]\.space"),
    ({"c1": [{"point": [1, 2, 3], "label": 1, "positive": "yes"}]}, r"c1\[0\]\.positive"),
    ({"c1": [{"point": [1, 2, 3], "label": 1, "colour": "red"}]}, r"c1\[0\]: unknown field"),
    ({"c1": 5}, r"c1: expected a list"),
    ({"type": "Multiple points", "points": [{"point": [1, 2, 3]}]}, r"points\[0\]\.name"),
    ({"type": "Multiple points", "points": {}}, r"\.points: expected a list"),
    ({"type": "Point", "point": [1, 2, 3]}, r"\.type: only 'Multiple points'"),
])
def test_malformed_json_names_the_field(obj, message):
    with pytest.raises(InputError, match=message):
        parse_clicks(obj, "f.json")


def test_json_syntax_error_names_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"c1": [\n  {"point": [1, 2, 3],}\n]}')
    with pytest.raises(InputError, match=r"bad.json: not valid JSON \(line 2"):
        load_clicks(f)
    with pytest.raises(InputError, match="not found"):
        load_clicks(tmp_path / "missing.json")


def test_disc_stamp_for_2d_configurations():
    prompt = rasterize_voxels([(0, (4, 5, 5), True)], (8, 11, 11), 1, radius=3, stamp_ndim=2)
    assert (prompt[0] == 1).sum() == 29 and prompt[0, 4].sum() == 29  # |d| <= 3 in the plane: 29 pixels
