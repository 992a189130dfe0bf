"""Otsu's threshold of a feature map and a differentiable Otsu filter (Γ of UGS-Net's R_HC branch, Yang &
Wang sec. III-C; N. Otsu, IEEE T-SMC 1979).

Threshold per (sample, channel) from the map's histogram, the same algorithm as
``skimage.filters.threshold_otsu`` (``nbins`` equal bins between min and max, bin centres c_i, class weights
w0(t) = Σ_{i<=t} h_i, w1(t) = Σ_{i>t} h_i and means μ0, μ1; t* = argmax w0·w1·(μ0 − μ1)², threshold c_{t*}).
The histogram is computed in torch (vectorised over all maps, no CPU round trip) and carries no gradient.

Filter: Γ(x) = x · σ((x − t*) / τ), τ = ``temperature`` · (max − min) — a soft step that keeps the
above-threshold (high-response) part of each map and passes gradients to x everywhere. The authors' released
code instead applies fixed thresholds ±0.5 outside the graph; we follow the paper's Otsu description.
"""
from __future__ import annotations

import torch

DEFAULT_BINS = 256
DEFAULT_TEMPERATURE = 0.05


@torch.no_grad()
def otsu_threshold(x: torch.Tensor, nbins: int = DEFAULT_BINS) -> torch.Tensor:
    """Otsu thresholds of ``x`` (N, M) row by row -> (N,). Constant rows get their value."""
    x = x.detach().float()
    lo, hi = x.min(1).values, x.max(1).values
    span = (hi - lo).clamp_min(1e-12)
    idx = ((x - lo[:, None]) / span[:, None] * nbins).floor().long().clamp_(0, nbins - 1)
    hist = torch.zeros(x.shape[0], nbins, device=x.device, dtype=torch.float64)
    hist.scatter_add_(1, idx, torch.ones_like(x, dtype=torch.float64))
    edges = lo[:, None].double() + span[:, None].double() * torch.arange(nbins + 1, device=x.device) / nbins
    centres = 0.5 * (edges[:, :-1] + edges[:, 1:])
    w0 = hist.cumsum(1)
    w1 = hist.flip(1).cumsum(1).flip(1)
    m0 = (hist * centres).cumsum(1) / w0.clamp_min(1e-12)
    m1 = (hist * centres).flip(1).cumsum(1).flip(1) / w1.clamp_min(1e-12)
    between = w0[:, :-1] * w1[:, 1:] * (m0[:, :-1] - m1[:, 1:]) ** 2
    t = centres.gather(1, between.argmax(1, keepdim=True))[:, 0].to(x.dtype)
    return torch.where(hi > lo, t, lo)


class OtsuFilter(torch.nn.Module):
    """Γ(x) = x · σ((x − t) / τ) with t = Otsu threshold of each (sample, channel) map (module doc)."""

    def __init__(self, nbins: int = DEFAULT_BINS, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__()
        self.nbins, self.temperature = nbins, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        flat = x.reshape(b * c, -1)
        t = otsu_threshold(flat, self.nbins)
        with torch.no_grad():
            tau = (self.temperature * (flat.max(1).values - flat.min(1).values)).clamp_min(1e-6)
        shape = (b, c) + (1,) * (x.ndim - 2)
        return x * torch.sigmoid((x - t.reshape(shape).to(x.dtype)) / tau.reshape(shape).to(x.dtype))
