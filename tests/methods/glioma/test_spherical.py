"""Spherical-projection warp (nnunet_ext.methods.glioma.spherical): analytic inverse, border, magnification, origins."""
import math

import numpy as np
import pytest
import torch

from nnunet_ext.methods.glioma.spherical import (
    center_magnification,
    forward_radius,
    forward_warp,
    inverse_radius,
    inverse_warp,
    origin_grid,
    sampling_grid,
)


def _smooth_image(h=64, w=80, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    rr, cc = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    chans = []
    for _ in range(c):
        a, b, p = torch.rand(3, generator=g)
        chans.append(torch.sin(2.0 * (1 + a) * rr + p) * torch.cos(1.5 * (1 + b) * cc) + rr * cc)
    return torch.stack(chans)


def _grid_to_pixels(grid, h, w):
    return torch.stack([(grid[..., 1] + 1) * (h - 1) / 2, (grid[..., 0] + 1) * (w - 1) / 2], -1)


def test_radius_maps_are_inverse_monotone_and_keep_r_max():
    r_max, radius = 90.0, 40.0
    r = np.linspace(0, r_max, 1001)
    rp = forward_radius(r, r_max, radius)
    assert np.all(np.diff(rp) > 0)                        # strictly monotone
    assert rp[-1] == pytest.approx(r_max, rel=1e-12)       # the border maps to itself
    np.testing.assert_allclose(inverse_radius(rp, r_max, radius), r, atol=1e-9)
    assert rp[10] > r[10]                                  # magnified near the origin


def _ray_length_numpy(o, pix, h, w):
    """Independent reference: distance from o through pix to the border rectangle (pixel centres)."""
    d = pix - o
    n = np.hypot(d[:, 0], d[:, 1])
    u = d / np.maximum(n, 1e-300)[:, None]
    t = np.full(len(pix), np.inf)
    for ax, hi in ((0, h - 1), (1, w - 1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.minimum(t, np.where(u[:, ax] > 1e-12, (hi - o[ax]) / u[:, ax], np.inf))
            t = np.minimum(t, np.where(u[:, ax] < -1e-12, -o[ax] / u[:, ax], np.inf))
    return n, u, t


def test_sampling_grids_follow_the_formula_on_each_ray():
    h, w, radius = 48, 70, 20.0
    origins = np.array([[3, 5], [24, 35], [47, 0], [10, 69], [30.5, 12.25]])
    fwd = _grid_to_pixels(sampling_grid(origins, (h, w), radius, dtype=torch.float64), h, w).numpy()
    inv = _grid_to_pixels(sampling_grid(origins, (h, w), radius, inverse=True, dtype=torch.float64), h, w).numpy()
    pix = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2).astype(float)
    for k, o in enumerate(origins):
        n, u, r_max = _ray_length_numpy(o, pix, h, w)
        r_max = np.where(n > 0, r_max, 0.0)  # the origin pixel itself (if on the grid) stays put
        a = np.sqrt(radius ** 2 + r_max ** 2)
        want_fwd = o + u * (radius * n / np.sqrt(a ** 2 - n ** 2))[:, None]   # T^-1 on the same ray
        want_inv = o + u * (n * a / np.sqrt(radius ** 2 + n ** 2))[:, None]   # T on the same ray
        np.testing.assert_allclose(fwd[k].reshape(-1, 2), want_fwd, atol=1e-9)
        np.testing.assert_allclose(inv[k].reshape(-1, 2), want_inv, atol=1e-9)
    # every source position lies inside the image: the field of view is kept
    for g in (fwd, inv):
        assert g[..., 0].min() >= -1e-9 and g[..., 0].max() <= h - 1 + 1e-9
        assert g[..., 1].min() >= -1e-9 and g[..., 1].max() <= w - 1 + 1e-9


def _magnified_region(o, h, w, radius):
    """Pixels where the forward warp magnifies (dT/dr >= 1): there nothing is lost to resampling."""
    pix = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2).astype(float)
    n, _, r_max = _ray_length_numpy(o, pix, h, w)
    a = np.sqrt(radius ** 2 + np.where(n > 0, r_max, 0.0) ** 2)
    return torch.from_numpy((a * radius ** 2 / (radius ** 2 + n ** 2) ** 1.5 >= 1).reshape(h, w))


def test_inverse_of_forward_is_identity_inside_the_field_of_view():
    x = _smooth_image()                                   # values in about [-1, 2]
    h, w = x.shape[1:]
    origins = origin_grid(x.shape[1:], 16)
    for radius, tol in ((30.0, 0.04), (64.0, 0.02)):
        y = forward_warp(x, origins, radius=radius)
        back = inverse_warp(y, origins, radius=radius)
        err = (back - x.unsqueeze(0)).abs()
        assert float((y - x.unsqueeze(0)).abs().mean()) > 0.05   # the warp did change the image
        assert float(err.mean()) < 0.003                          # two bilinear resamplings of a smooth image
        for k, o in enumerate(origins):                           # exact up to interpolation where magnified
            m = _magnified_region(o, h, w, radius)
            assert m.float().mean() > 0.1 and float(err[k][:, m].max()) < tol


def test_warps_of_a_ramp_are_the_analytic_source_coordinates():
    # bilinear interpolation reproduces affine functions exactly: warping the coordinate ramp must give the
    # float64 sampling positions of the formula, for both directions and every origin of the batch
    h, w = 40, 56
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    x = torch.stack([rr, cc])
    origins = np.array([[12, 40], [20, 20], [0, 0]])
    for inverse, fn in ((False, forward_warp), (True, inverse_warp)):
        src = x if not inverse else x.expand(3, 2, h, w)
        got = fn(src, origins, radius=15.0)
        want = _grid_to_pixels(sampling_grid(origins, (h, w), 15.0, inverse=inverse, dtype=torch.float64), h, w)
        torch.testing.assert_close(got, want.permute(0, 3, 1, 2), atol=2e-4, rtol=0)
    # one point by hand: origin (20, 20), pixel (20, 35) on the +col ray (r' = 15, r_max = 35, R = 15)
    y = forward_warp(x, origins, radius=15.0)
    r_src = 15.0 * 15.0 / math.sqrt(15.0 ** 2 + 35.0 ** 2 - 15.0 ** 2)
    assert float(y[1, 1, 20, 35]) == pytest.approx(20.0 + r_src, abs=1e-4)
    assert float(y[1, 0, 20, 35]) == pytest.approx(20.0, abs=1e-4)


def test_border_maps_to_itself():
    x = _smooth_image(50, 60)
    origins = np.array([[10, 45], [25, 30], [1, 58]])      # strictly inside: the border is fixed pointwise
    for radius in (10.0, 40.0):
        y = forward_warp(x, origins, radius=radius)
        back = inverse_warp(x.expand(3, *x.shape), origins, radius=radius)
        for k in range(len(origins)):
            for sl in (np.s_[:, 0, :], np.s_[:, -1, :], np.s_[:, :, 0], np.s_[:, :, -1]):
                torch.testing.assert_close(y[k][sl], x[sl], atol=1e-4, rtol=0)
                torch.testing.assert_close(back[k][sl], x[sl], atol=1e-4, rtol=0)
    # an origin on the border: the border row through it is a ray, magnified along itself but kept in the row
    g = _grid_to_pixels(sampling_grid(np.array([[49, 59]]), (50, 60), 10.0, dtype=torch.float64), 50, 60)
    np.testing.assert_allclose(g[0, -1, :, 0].numpy(), 49, atol=1e-9)
    np.testing.assert_allclose(g[0, :, -1, 1].numpy(), 59, atol=1e-9)


@pytest.mark.parametrize("radius", [20.0, 64.0])
def test_center_magnification_measured_numerically(radius):
    h, w = 129, 161
    o = np.array([[64, 70]])
    # image = column index; at the origin's row the warped image's slope d x / d col' = 1 / magnification
    x = torch.arange(w, dtype=torch.float64).expand(1, h, w).clone()
    y = forward_warp(x, o, radius=radius)[0, 0]
    # one-sided differences (the two sides are different rays); T^-1 is odd in r', so the error is O(r'^2)
    r_max = w - 1 - 70                        # along +col
    measured = 1.0 / float(y[64, 71] - y[64, 70])
    assert measured == pytest.approx(center_magnification(r_max, radius), rel=5e-3)
    assert measured > 1.0
    # along -col the ray is 70 px long: a different magnification
    left = 1.0 / float(y[64, 70] - y[64, 69])
    assert left == pytest.approx(center_magnification(70, radius), rel=5e-3)
    assert center_magnification(r_max, radius) == pytest.approx(math.sqrt(1 + (r_max / radius) ** 2))


def test_warped_ramp_is_monotone_along_rays():
    h, w = 64, 64
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    o = np.array([[20, 30]])
    dist = torch.sqrt((rr - 20) ** 2 + (cc - 30) ** 2)[None]
    y = forward_warp(dist, o, radius=12.0)[0, 0]
    for row in (y[20, 30:], y[20, :31].flip(0), y[20:, 30], y[:21, 30].flip(0)):
        assert bool((torch.diff(row) > 0).all())
    assert bool((y[20, 31:40] < dist[0, 20, 31:40]).all())   # magnified: a point shows what was closer


def test_origin_grid_counts_and_mask():
    assert origin_grid((256, 256), 8).shape == (1024, 2)
    assert origin_grid((256, 256), 16).shape == (256, 2)
    g = origin_grid((240, 200), 8)
    assert g.shape == (30 * 25, 2) and g.min() == 4 and g[:, 0].max() == 236
    mask = np.zeros((256, 256), bool)
    mask[100:164, 40:80] = True
    m = origin_grid((256, 256), 8, mask)
    assert len(m) == 8 * 5 and mask[m[:, 0], m[:, 1]].all()
    assert len(origin_grid((256, 256), 8, np.zeros((256, 256)))) == 0


def test_batched_equals_one_at_a_time_and_chunking():
    x = _smooth_image(40, 48, c=3, seed=2)
    origins = origin_grid(x.shape[1:], 8)
    batched = forward_warp(x, origins, radius=[10.0 + k for k in range(len(origins))])
    chunked = forward_warp(x, origins, radius=[10.0 + k for k in range(len(origins))], memory_budget=1)
    single = torch.cat([forward_warp(x, origins[k:k + 1], radius=10.0 + k) for k in range(len(origins))])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)
    torch.testing.assert_close(chunked, single, atol=1e-6, rtol=0)
    back = inverse_warp(batched, origins, radius=[10.0 + k for k in range(len(origins))], memory_budget=1)
    back1 = torch.cat([inverse_warp(batched[k:k + 1], origins[k:k + 1], radius=10.0 + k)
                       for k in range(len(origins))])
    torch.testing.assert_close(back, back1, atol=1e-6, rtol=0)


def test_nearest_keeps_labels_and_dtype():
    lab = torch.zeros(1, 32, 32, dtype=torch.uint8)
    lab[0, 10:20, 12:22] = 3
    lab[0, 12:15, 14:16] = 1
    y = forward_warp(lab, np.array([[15, 17]]), radius=8.0, mode="nearest")
    assert y.dtype == torch.uint8 and set(torch.unique(y).tolist()) <= {0, 1, 3}
    assert int((y == 3).sum()) > int((lab == 3).sum())   # magnified around an origin inside the object


_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _DEVICES)
def test_float32_on_device_matches_float64_reference(device):
    # the float32 grids (default, also used on the GPU) against the float64 grids on the CPU
    x = _smooth_image(64, 64)
    o = origin_grid((64, 64), 8)
    got = forward_warp(x.to(device), o, 20.0).cpu()
    ref = torch.nn.functional.grid_sample(x.double().expand(len(o), *x.shape),
                                          sampling_grid(o, (64, 64), 20.0, dtype=torch.float64),
                                          align_corners=True, padding_mode="border").float()
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    assert got.device.type == "cpu" and forward_warp(x.to(device), o[:1]).device.type == device


def test_bad_input():
    x = torch.zeros(1, 10, 10)
    with pytest.raises(ValueError, match="inside the image"):
        forward_warp(x, np.array([[10, 2]]))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        forward_warp(torch.zeros(10, 10), np.array([[1, 2]]))
    with pytest.raises(ValueError, match="radius must be > 0"):
        forward_warp(x, np.array([[1, 2]]), radius=0)
    with pytest.raises(ValueError, match="2 origins"):
        inverse_warp(torch.zeros(1, 1, 10, 10), np.array([[1, 2], [3, 4]]))
