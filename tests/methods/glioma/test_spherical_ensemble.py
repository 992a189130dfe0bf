"""Spherical-projection ensemble of a slice (nnunet_ext.methods.glioma.spherical_ensemble) against direct \
computation."""
import math

import numpy as np
import pytest
import torch

from nnunet_ext.methods.glioma.spherical import forward_warp, inverse_warp, origin_grid
from nnunet_ext.methods.glioma.spherical_ensemble import ensemble_slice


def _slice(h=32, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    rr, cc = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([3 * torch.sin(2 * rr + 1) * torch.cos(cc), rr * cc + 0.1 * torch.rand(h, w, generator=g)])


def pointwise(batch):       # commutes with any warp: every projection predicts the same map
    return torch.sigmoid(torch.stack([batch[:, 0], batch[:, 0] - batch[:, 1]], 1))


def positional(batch):      # depends on the pixel position: projections disagree
    k, _, h, w = batch.shape
    cols = torch.linspace(0, 1, w).expand(k, 1, h, w)
    return torch.cat([cols, torch.sigmoid(batch[:, :1])], 1)


def test_equivariant_network_gives_the_plain_prediction_and_low_entropy():
    x = _slice()
    origins = origin_grid(x.shape[1:], 8)
    res = ensemble_slice(x, pointwise, origins, radius=30.0, bins=100, chunk=5)
    plain = pointwise(x[None])[0]
    assert res.n_origins == len(origins) == 20
    assert float((res.mean - plain).abs().mean()) < 0.01
    assert float(res.entropy.mean()) < float(ensemble_slice(x, positional, origins, 30.0).entropy.mean())


def test_histogram_entropy_and_mean_equal_direct_computation():
    x = _slice(24, 28, 1)
    origins = origin_grid(x.shape[1:], 6)
    res = ensemble_slice(x, positional, origins, radius=12.0, bins=10, chunk=3, entropy_base=2.0)
    every = inverse_warp(positional(forward_warp(x, origins, 12.0)), origins, 12.0).clamp(0, 1).numpy()  # (K, R, H, W)
    torch.testing.assert_close(res.mean, torch.from_numpy(every.mean(0)), atol=1e-5, rtol=0)
    for (r, i, j) in [(0, 5, 7), (0, 20, 3), (1, 10, 10), (0, 12, 27)]:
        counts = np.bincount(np.clip((every[:, r, i, j] * 10).astype(int), 0, 9), minlength=10)
        f = counts[counts > 0] / counts.sum()
        assert float(res.entropy[r, i, j]) == pytest.approx(float(-(f * np.log2(f)).sum()), abs=1e-5)
    np.testing.assert_allclose(res.variance.numpy(), every.var(0).mean(0), atol=1e-5)
    # normalised: divided by log(bins); a one-chunk run equals the chunked one
    norm = ensemble_slice(x, positional, origins, 12.0, bins=10, chunk=len(origins), normalise=True)
    torch.testing.assert_close(norm.entropy, res.entropy / math.log2(10), atol=1e-5, rtol=0)
    assert float(res.entropy.max()) <= math.log2(min(len(origins), 10)) + 1e-6


def test_no_origins_predicts_once_with_zero_uncertainty():
    x = _slice()
    res = ensemble_slice(x, positional, np.zeros((0, 2)), radius=10.0)
    assert res.n_origins == 0 and float(res.entropy.abs().max()) == 0.0
    torch.testing.assert_close(res.mean, positional(x[None])[0])
