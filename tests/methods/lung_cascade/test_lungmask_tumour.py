"""Tumour-inclusive threshold lung masks (issue 20): the rolling-ball envelope puts solid lesions at the lung border
back into the mask, without mediastinum, heart, chest wall, diaphragm or bowel; the component filter then keeps a
perfect stage-1 prediction of those tumours under both presets.

Phantoms: ``generate_chest_case(tumour_site="pleura" | "hilum", slice_mm=5)`` (a solid tumour of radius 12 mm in
the left lung attached to the posterior pleura / against the mediastinal surface beside the hilum), resampled to
1.5 mm in-plane (CT linear, labels nearest neighbour) so that the tumour spans as many voxels as on a real CT (the
default phantom's 4.5 mm voxels make a one-voxel dilation of the lung cover most of a small tumour). Measured
(seeds 0 / 2, defaults): tumour inside the mask 0.87 (pleura) / 0.97 (hilum), without the envelope 0.22 / 0.29;
soft tissue outside the tumour 2.0 / 2.5 % of the mask (0.4 % without).
"""
import numpy as np
import pytest
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry
from nnunet_ext.methods.lung_cascade.component_filter import (
    LungFilterConfig,
    filter_components,
)
from nnunet_ext.methods.lung_cascade.lung_envelope import rolling_ball_closing
from nnunet_ext.methods.lung_cascade.lung_threshold import (
    THRESHOLD_DEFAULTS,
    threshold_lung_mask,
)
from nnunet_ext.synthetic.chest import generate_chest_case

SITES = {"pleura": 0, "hilum": 2}  # site -> seed


def fine(case, f=3):
    """The phantom with in-plane voxels ``f`` times smaller (CT linear, labels nearest neighbour)."""
    up = lambda a: np.repeat(np.repeat(a, f, 1), f, 2)
    g = case.geometry
    geo = Geometry((g.spacing[0] / f, g.spacing[1] / f, g.spacing[2]), g.origin, g.direction)
    ct = ndimage.zoom(case.images[0].astype(np.float32), (1, f, f), order=1, mode="nearest", grid_mode=True)
    return np.round(ct).astype(np.int16), up(case.label) > 0, up(case.side_maps["lungmasks"]), geo


@pytest.fixture(scope="module")
def phantoms():
    out = {}
    for site, seed in SITES.items():
        ct, tumour, ref, geo = fine(generate_chest_case(np.random.default_rng(seed), tumour_site=site, slice_mm=5.0))
        out[site] = (ct, tumour, ref, geo, threshold_lung_mask(ct, geo),
                     threshold_lung_mask(ct, geo, envelope_radius_mm=0.0))
    return out


def test_rolling_ball_fills_narrow_notches_not_broad_dents():
    """A slab of lung (1 mm voxels) with a hemispherical notch of radius 8 mm and a broad shallow dent (a sphere of
    radius 60 mm cutting 6 mm deep): a 15 mm ball fills the notch but not the dent; a 5 mm ball fills neither."""
    z, y, x = np.mgrid[:80, :120, :60]
    lung = (x < 40) & (y > 2) & (y < 118) & (z > 2) & (z < 78)
    notch = ((z - 40) ** 2 + (y - 30) ** 2 + (x - 40) ** 2) < 8 ** 2
    dent = ((z - 40) ** 2 + (y - 85) ** 2 + (x - 94) ** 2) < 60 ** 2
    lung &= ~notch & ~dent
    big, small = rolling_ball_closing(lung, (1.0, 1.0, 1.0), 15.0), rolling_ball_closing(lung, (1.0, 1.0, 1.0), 5.0)
    inside = notch & (x < 40)
    assert big[inside].mean() > 0.6 and small[inside].mean() < 0.1
    # the dent: only voxel stair-steps of its floor (measured 48 of ~3 600 voxels)
    assert max((big & dent).sum(), (small & dent).sum()) <= 0.02 * (dent & (x < 40)).sum()
    assert (big >= lung).all() and not (big & (x >= 41)).any()  # never outside the lung's hull
    # anisotropic voxels: the same geometry sampled at 2 mm in z gives the same notch filling (within sampling)
    big2 = rolling_ball_closing(lung[::2], (2.0, 1.0, 1.0), 15.0)
    assert abs(big2[inside[::2]].mean() - big[inside].mean()) < 0.1


@pytest.mark.parametrize("site", list(SITES))
def test_tumour_at_the_lung_border_is_inside_the_mask(phantoms, site):
    ct, tumour, ref, _, m, m0 = phantoms[site]
    assert THRESHOLD_DEFAULTS["envelope_radius_mm"] == 20.0
    assert (m0 > 0)[tumour].mean() < 0.35  # what a threshold alone gives: the solid tumour is not "lung"
    assert (m > 0)[tumour].mean() >= 0.8
    assert (m == 2)[tumour].mean() >= 0.8  # labelled as the lung it belongs to (left)
    # outside the reference lungs (mediastinum, heart, aorta, spine, chest wall) the envelope adds <= 3 % of the
    # mask (measured 2.3 % at the hilum: hilar and aortic corners of the phantom)
    lung = m > 0
    assert (lung & (m0 == 0) & (ref == 0)).sum() <= 0.03 * lung.sum()
    # soft tissue (> -300 HU) outside the tumour: <= 5 % of the mask (the target on real CT)
    assert ((ct > -300) & lung & ~tumour).sum() / lung.sum() <= 0.05
    for label in (1, 2):
        a, b = m == label, ref == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.93


def test_envelope_takes_no_gas_or_abdomen():
    """Lung bases with stomach, colon and bowel gas below (thorax-abdomen scan) and a pleural tumour: the envelope
    adds nothing below the lungs (diaphragm, liver, bowel) and no gas."""
    c = generate_chest_case(np.random.default_rng(3), fov="thorax-abdomen", gas=("stomach", "colon", "bowel"),
                            tumour_site="pleura")
    ct, ref, gas = c.images[0], c.side_maps["lungmasks"], c.side_maps["gasmasks"]
    m = threshold_lung_mask(ct, c.geometry)
    assert gas.any() and not m[gas > 0].any()
    lowest = np.nonzero(ref.any(axis=(1, 2)))[0].min()  # z up = superior: below the lungs = lower slices
    assert not m[:lowest].any()
    assert (ref[m > 0] > 0).mean() >= 0.97


@pytest.mark.parametrize("preset", ["paper", "isler-code"])
@pytest.mark.parametrize("site", list(SITES))
def test_filter_keeps_the_reference_tumour(phantoms, site, preset):
    """A perfect stage-1 prediction (the reference itself) survives the filter with the threshold lung mask.

    On these phantoms (5 mm slices, 12 mm tumours) the filters' own slack -- isler-code's 3x3x3 lung dilation
    reaches 5 mm above and below, the paper preset's 5-voxel rescue -- keeps the tumour even with the
    threshold-only mask (overlap 0.69-0.86); the real 48 ml mass of RESULTS.md (issue 20) is where the envelope
    decides (isler-code: 0 of 24 644 voxels kept without it). This test guards the outcome, the test above the
    mask."""
    _, tumour, _, geo, m, _ = phantoms[site]
    cfg = LungFilterConfig.from_options(preset=preset)
    kept, log = filter_components(tumour.astype(np.uint8), m, geo.spacing[::-1], cfg)
    assert log["n_components"] == 1 and log["n_kept"] == 1
    assert np.array_equal(kept > 0, tumour)


@pytest.mark.parametrize("site", list(SITES))
def test_phantom_tumour_site(site):
    c = generate_chest_case(np.random.default_rng(SITES[site]), tumour_site=site)
    (t,) = c.info["tumours"]
    assert t["location"] == site and t["side"] == "left" and t["touches_pleura"]
    assert t["fraction_in_lung"] == 1.0 and c.info["options"] == {"tumour_site": site}
    assert ((c.label > 0) & (c.side_maps["lungmasks"] == 2)).sum() == (c.label > 0).sum()
    assert np.median(c.images[0][c.label > 0]) > -100  # solid
    with pytest.raises(InputError, match="tumour_site"):
        generate_chest_case(np.random.default_rng(0), tumour_site="liver")
