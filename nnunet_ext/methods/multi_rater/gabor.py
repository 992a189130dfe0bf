"""A fixed real Gabor filter bank for 2D / 3D feature maps (the feature-aware filter Γ of UGS-Net's R_Uni and
R_LC branches, Yang & Wang sec. III-C, after Luan et al., Gabor convolutional networks).

Kernel for direction u (unit vector), scale σ and wavelength λ = ``wavelength_factor`` · σ, on the voxel
grid x ∈ {−r..r}^d with r = ceil(2 σ_max):

    raw(x)  = exp(−|x|² / 2σ²) · cos(2π (u·x) / λ)
    k(x)    = (raw(x) − mean(raw)) / Σ|raw − mean(raw)|          (zero mean, unit L1 norm)

Zero mean makes Γ respond to texture and edges, not to the local intensity level (the classic DC removal);
the L1 normalisation keeps all scales on one range. Directions: 2D u = (sin θ, cos θ) in (y, x) order, θ ∈ {0°, 45°,
90°, 135°} from the x axis; 3D the 3 axes
and the 6 face diagonals (9 directions). Scales σ ∈ {1, 2} voxels, λ = 2.5 σ (about a one-octave bandwidth).
Distances are in voxels (nnU-Net's patches are resampled to the target spacing). The bank is fixed
(a buffer, not trained); UGS-Net mixes its responses with a learned 1x1 convolution.
The authors' released code uses a 1x1 kernel, for which every Gabor kernel is constant: no filtering happens.
We follow the paper's description instead.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SCALES = (1.0, 2.0)
WAVELENGTH_FACTOR = 2.5


def gabor_directions(ndim: int) -> np.ndarray:
    """Unit directions (n, ndim): 2D four angles, 3D three axes + six face diagonals."""
    if ndim == 2:
        return np.array([[math.sin(t), math.cos(t)] for t in np.deg2rad([0.0, 45.0, 90.0, 135.0])])
    if ndim == 3:
        dirs = [np.eye(3)[i] for i in range(3)]
        for i, j in itertools.combinations(range(3), 2):
            for s in (1.0, -1.0):
                v = np.zeros(3)
                v[i], v[j] = 1.0, s
                dirs.append(v / math.sqrt(2.0))
        return np.stack(dirs)
    raise ValueError(f"Gabor bank supports 2D and 3D, got ndim={ndim}")


def gabor_kernel(direction, sigma: float, wavelength: float, radius: int) -> np.ndarray:
    """One zero-mean, L1-normalised real Gabor kernel of shape (2r+1,)*ndim (formula in the module doc)."""
    u = np.asarray(direction, dtype=np.float64)
    grids = np.meshgrid(*[np.arange(-radius, radius + 1, dtype=np.float64)] * u.size, indexing="ij")
    proj = sum(g * c for g, c in zip(grids, u))
    r2 = sum(g * g for g in grids)
    raw = np.exp(-r2 / (2 * sigma ** 2)) * np.cos(2 * np.pi * proj / wavelength)
    raw = raw - raw.mean()
    return raw / np.abs(raw).sum()


def gabor_bank(ndim: int, scales=DEFAULT_SCALES, wavelength_factor: float = WAVELENGTH_FACTOR) -> np.ndarray:
    """(n_directions · n_scales, (2r+1,)*ndim) kernels, direction-major."""
    radius = int(math.ceil(2 * max(scales)))
    return np.stack([gabor_kernel(u, s, wavelength_factor * s, radius)
                     for u in gabor_directions(ndim) for s in scales])


class GaborBank(torch.nn.Module):
    """Depthwise fixed Gabor filtering: (B, C, *sp) -> (B, C·F, *sp), channel c's F responses adjacent."""

    def __init__(self, channels: int, ndim: int, scales=DEFAULT_SCALES, wavelength_factor: float = WAVELENGTH_FACTOR):
        super().__init__()
        bank = torch.as_tensor(gabor_bank(ndim, scales, wavelength_factor), dtype=torch.float32)
        self.channels, self.ndim, self.n_filters = channels, ndim, bank.shape[0]
        self.padding = bank.shape[-1] // 2
        self.register_buffer("weight", bank[:, None], persistent=False)

    @property
    def out_channels(self) -> int:
        return self.channels * self.n_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # every channel gets the same F kernels: fold channels into the batch and run one dense conv with F
        # output channels (much faster on CPU than the equivalent grouped conv)
        conv = F.conv2d if self.ndim == 2 else F.conv3d
        b, c = x.shape[:2]
        y = conv(x.reshape(b * c, 1, *x.shape[2:]), self.weight.to(x.dtype), padding=self.padding)
        return y.reshape(b, c * self.n_filters, *x.shape[2:])
