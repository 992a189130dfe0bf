"""Test-time augmentations: exact / interpolation-level inverses, sampling, batching (nnunet_ext.core.tta)."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from nnunet_ext.core.tta import (
    Flip,
    GaussianNoise,
    Identity,
    Rotate,
    TTAPolicy,
    apply_each,
    invert_each,
    parse_tta,
    spatial_planes,
)


def gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def centred_grid(shape):
    """Voxel-centre coordinates relative to the patch centre, one tensor per axis."""
    return torch.meshgrid(*[torch.arange(n, dtype=torch.float64) + 0.5 - n / 2 for n in shape], indexing="ij")


def blob(shape, centre, sigma):
    coords = centred_grid(shape)
    return torch.exp(-sum((c - m) ** 2 for c, m in zip(coords, centre)) / (2 * sigma ** 2)).float()


def two_class_probs(shape, centre, sigma=4.0):
    """Smooth softmax-normalised 2-class probability map (C=2, *S) of a Gaussian blob."""
    logit = 6.0 * blob(shape, centre, sigma) - 3.0
    return torch.softmax(torch.stack([-logit, logit]), dim=0)


def centroid(img):
    coords = centred_grid(img.shape)
    w = img.double()
    return [float((w * c).sum() / w.sum()) for c in coords]


@pytest.mark.parametrize("shape", [(2, 7, 9), (2, 5, 6, 7)])
def test_flip_is_an_exact_involution_on_each_spatial_axis(shape):
    x = torch.randn(shape, generator=gen(1))
    d = len(shape) - 1
    for axis in range(-d, 0):
        f = Flip(axis)
        y = f.apply(x)
        assert not torch.equal(y, x)
        assert torch.equal(y, torch.flip(x, dims=(x.ndim + axis,)))
        assert torch.equal(f.invert(y), x)
        batched = f.apply(x[None].repeat(3, *([1] * x.ndim)))  # (B, C, *S): same spatial axis
        assert torch.equal(batched[1], y)


def test_flip_rejects_non_negative_axis_and_too_few_dims():
    with pytest.raises(ValueError, match="counted from the end"):
        Flip(0).apply(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="needs a tensor"):
        Flip(-3).apply(torch.zeros(4, 4))


@pytest.mark.parametrize("angle", [5.0, -4.0, 30.0])
def test_rotation_moves_off_centre_blob_by_r_theta(angle):
    shape, r = (48, 64), 16.0  # non-square patch: the rotation must still be rigid
    img = blob(shape, (0.0, r), 2.5)[None]
    out = Rotate((-2, -1), angle).apply(img)[0]
    th = math.radians(angle)
    cy, cx = centroid(out)
    assert cy == pytest.approx(-r * math.sin(th), abs=0.05)
    assert cx == pytest.approx(r * math.cos(th), abs=0.05)
    # displacement ~ r * theta (the chord), clearly not a no-op
    moved = math.hypot(cy - 0.0, cx - r)
    assert moved == pytest.approx(2 * r * math.sin(abs(th) / 2), abs=0.05)
    assert moved > 0.5 * r * abs(th)


def test_rotation_with_spacing_is_rigid_in_mm():
    shape, r = (40, 64), 14.0  # offset along the x axis (1 mm voxels); y voxels are 2 mm
    img = blob(shape, (0.0, r), 2.0)[None]
    th = math.radians(20.0)
    cy, cx = centroid(Rotate((-2, -1), 20.0, spacing=(2.0, 1.0)).apply(img)[0])
    assert cy * 2.0 == pytest.approx(-r * math.sin(th), abs=0.1)  # mm along y
    assert cx == pytest.approx(r * math.cos(th), abs=0.1)
    cy_index, _ = centroid(Rotate((-2, -1), 20.0).apply(img)[0])
    assert abs(cy_index * 2.0 + r * math.sin(th)) > 1.0  # index space differs in mm


def test_rotation_3d_acts_in_its_plane_only():
    shape, r = (24, 28, 32), 8.0
    img = blob(shape, (0.0, 0.0, r), 2.0)[None]  # offset along x
    th = math.radians(5.0)
    cz, cy, cx = centroid(Rotate((-3, -1), 5.0).apply(img)[0])  # z-x plane
    assert (cz, cy, cx) == pytest.approx((-r * math.sin(th), 0.0, r * math.cos(th)), abs=0.03)
    cz, cy, cx = centroid(Rotate((-3, -2), 5.0).apply(img)[0])  # z-y plane: x offset unchanged
    assert (cz, cy, cx) == pytest.approx((0.0, 0.0, r), abs=0.03)


@pytest.mark.parametrize("shape,plane", [((40, 48), (-2, -1)), ((20, 32, 36), (-3, -1)), ((20, 32, 36), (-2, -1))])
def test_rotate_then_invert_recovers_smooth_probabilities(shape, plane):
    """Two bilinear resamplings low-pass the map: measured interior error 0.037 for a transition of ~4 voxels
    (max slope 0.25 / voxel, sigma 6); it grows to 0.07 at slope 0.35 and 0.10 at slope 0.40 (sigma 4, 3)."""
    p = two_class_probs(shape, (4.0,) * len(shape), sigma=6.0)
    rot = Rotate(plane, 5.0)
    moved = rot.apply(p)
    back = rot.invert(moved)
    interior = tuple(slice(4, n - 4) for n in shape)
    err = (back - p)[(slice(None),) + interior].abs().max().item()
    assert err < 0.05
    assert (moved - p).abs().max().item() > 3 * err  # the forward rotation really changed the map
    assert torch.allclose(back.sum(0), torch.ones(shape), atol=1e-5)  # linear interpolation keeps sum 1


def test_noise_has_requested_std_and_is_seed_reproducible():
    x = torch.full((1, 64, 64, 16), 3.0)
    a = GaussianNoise(0.1, seed=7).apply(x)
    assert (a - x).std().item() == pytest.approx(0.1, rel=0.03)
    assert (a - x).mean().item() == pytest.approx(0.0, abs=0.003)
    assert torch.equal(a, GaussianNoise(0.1, seed=7).apply(x))
    assert not torch.allclose(a, GaussianNoise(0.1, seed=8).apply(x))
    assert a.dtype == x.dtype and a.device == x.device
    p = torch.rand(2, 4, 4)
    assert torch.equal(GaussianNoise(0.1, seed=7).invert(p), p)


def test_sample_is_reproducible_and_draws_every_kind():
    policy = TTAPolicy()
    a = policy.sample(300, gen(3), spatial_dims=3)
    assert a == policy.sample(300, gen(3), spatial_dims=3)
    assert a != policy.sample(300, gen(4), spatial_dims=3)
    counts = Counter(type(t).__name__ for t in a)
    assert set(counts) == {"GaussianNoise", "Flip", "Rotate"}
    assert min(counts.values()) > 60  # uniform over 3 kinds: ~100 each
    assert {t.axis for t in a if isinstance(t, Flip)} == {-3, -2, -1}
    assert {t.plane for t in a if isinstance(t, Rotate)} == set(spatial_planes(3))
    angles = [t.angle for t in a if isinstance(t, Rotate)]
    assert max(abs(v) for v in angles) <= 5.0 and min(angles) < -3 and max(angles) > 3
    assert len({t.seed for t in a if isinstance(t, GaussianNoise)}) == counts["GaussianNoise"]
    assert all(t.std == 0.1 for t in a if isinstance(t, GaussianNoise))


def test_sample_restricted_kinds_2d_spacing_and_identity():
    flips = TTAPolicy(kinds=("flip",)).sample(50, gen(0), spatial_dims=2)
    assert all(isinstance(t, Flip) for t in flips) and {t.axis for t in flips} == {-2, -1}
    rots = TTAPolicy(kinds=("rotate",), max_angle_deg=3.0).sample(20, gen(0), 3, spacing=(3.0, 0.8, 0.7))
    assert all(isinstance(t, Rotate) and abs(t.angle) <= 3.0 for t in rots)
    assert {t.plane: t.spacing for t in rots} == {(-3, -2): (3.0, 0.8), (-3, -1): (3.0, 0.7), (-2, -1): (0.8, 0.7)}
    ident = TTAPolicy(kinds=()).sample(4, gen(0), spatial_dims=3)
    assert ident == [Identity()] * 4
    x = torch.randn(2, 4, 5, 6, generator=gen(1))
    xs = apply_each(ident, x)
    assert xs.shape == (4, 2, 4, 5, 6) and all(torch.equal(xs[i], x) for i in range(4))
    assert torch.equal(invert_each(ident, xs), xs)


def test_policy_validation():
    with pytest.raises(ValueError, match="allowed: noise, flip, rotate"):
        TTAPolicy(kinds=("flip", "zoom"))
    with pytest.raises(ValueError, match="spatial_dims"):
        TTAPolicy().sample(2, gen(0), spatial_dims=4)
    with pytest.raises(ValueError, match="spacing"):
        TTAPolicy().sample(2, gen(0), spatial_dims=3, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="plane"):
        Rotate((-1, -2), 3.0)


@pytest.mark.parametrize("spatial", [(12, 14), (8, 10, 12)])
def test_batched_apply_and_invert_equal_per_item_results(spatial):
    x = torch.randn(2, *spatial, generator=gen(5))
    ts = TTAPolicy().sample(12, gen(6), spatial_dims=len(spatial))
    xs = apply_each(ts, x)
    assert xs.shape == (12, 2, *spatial)
    for i, t in enumerate(ts):
        assert torch.equal(xs[i], t.apply(x))
    p = torch.softmax(torch.randn(12, 3, *spatial, generator=gen(7)), dim=1)
    back = invert_each(ts, p)
    for i, t in enumerate(ts):
        assert torch.equal(back[i], t.invert(p[i]))
    changed = [i for i, t in enumerate(ts) if not isinstance(t, GaussianNoise)]
    assert changed and all(not torch.equal(back[i], p[i]) for i in changed)
    with pytest.raises(ValueError, match="transforms for a batch"):
        invert_each(ts[:3], p)


def test_batched_tensor_apply_matches_unbatched_for_rotation():
    x = torch.randn(3, 2, 10, 12, generator=gen(2))  # (B, C, Y, X)
    rot = Rotate((-2, -1), 4.0)
    assert torch.allclose(rot.apply(x)[1], rot.apply(x[1]), atol=1e-6)


def test_pipeline_flip_round_trips_exactly():
    """A spatially equivariant 'network' (per-voxel softmax) gives back p exactly under flip passes."""
    x = torch.randn(1, 6, 8, 10, generator=gen(9))  # (C=1, Z, Y, X)
    net = lambda t: torch.softmax(torch.cat([t, -t], dim=1), dim=1)  # noqa: E731
    ts = TTAPolicy(kinds=("flip",)).sample(6, gen(1), spatial_dims=3)
    out = invert_each(ts, net(apply_each(ts, x)))
    assert len({t.axis for t in ts}) > 1
    assert torch.equal(out, net(x[None]).expand(6, -1, -1, -1, -1))


def test_parse_tta():
    assert parse_tta("noise,flip,rotate") == ("noise", "flip", "rotate")
    assert parse_tta(" Flip , rotate ") == ("flip", "rotate")
    assert parse_tta("none") == () and parse_tta("") == ()
    with pytest.raises(ValueError, match="allowed: noise, flip, rotate"):
        parse_tta("flip,mirror")
    with pytest.raises(ValueError, match="repeated"):
        parse_tta("flip,flip")
