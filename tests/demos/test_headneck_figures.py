"""The figures of ``nnext demo headneck`` (``nnunet_ext.demos.headneck_figures``): the slice the before / after
panel shows, one panel per training stage, atomic writes."""
from __future__ import annotations

import numpy as np

from nnunet_ext.demos.headneck_figures import before_after_png, stages_png


def test_before_after_png_picks_the_clicked_slice(tmp_path):
    import matplotlib.image as mpimg

    shape = (8, 24, 24)
    ref = np.zeros(shape, np.uint8)
    ref[2:6, 6:14, 6:14] = 1
    ref[3, 4:16, 4:16] = 1  # the largest reference slice
    ref[4:6, 16:20, 16:20] = 2
    before = np.zeros_like(ref)
    before[2:6, 7:13, 7:13] = 1
    after = ref.copy()
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 20, shape).astype(np.float32)
    u_before = np.zeros(shape, np.float32)
    u_before[2:6, 5:15, 5:15] = 0.6
    u_after = u_before / 3
    path = tmp_path / "before_after.png"
    clicks = [(5, 18, 18, True), (5, 10, 10, True), (2, 1, 1, False)]
    assert before_after_png(ct, ref, before, after, u_before, u_after, clicks, path, "case") == 5
    img = mpimg.imread(path)
    assert img.ndim == 3 and 0.8 < img.shape[0] / img.shape[1] < 1.3  # 2 x 2 panels
    assert not [p for p in tmp_path.iterdir() if p.name != "before_after.png"]  # atomic: no temp file left
    # without clicks: the slice with the largest reference area
    assert before_after_png(ct, ref, before, after, u_before, u_after, [], path) == 3
    # empty reference, no clicks: the middle slice
    z = before_after_png(ct, np.zeros_like(ref), before, after, u_before, u_after, [], path)
    assert z == shape[0] // 2


def test_stages_png_draws_one_panel_per_stage(tmp_path):
    import matplotlib.image as mpimg

    curve = {"GTVp": {"0": 0.5, "1": 0.6}, "GTVn": {"0": 0.1, "1": 0.4}}
    path = tmp_path / "dice_vs_clicks_stages.png"
    stages_png({"stage1": curve, "stage2": curve, "stage3": curve}, path)
    img = mpimg.imread(path)
    assert img.shape[1] / img.shape[0] > 2.5  # three panels side by side
    assert [p.name for p in tmp_path.iterdir()] == ["dice_vs_clicks_stages.png"]  # atomic: no temp file left
