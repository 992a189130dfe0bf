"""Uncertainty-kernel search (Yang et al. 2025, sec. 2.2.2): cubic windows of high cumulative uncertainty.

A window (kernel) of ``size = (dz, dy, dx)`` voxels is placed at every position ``start`` with the window fully
inside the map (dense grid, stride 1). Its score is the sum of the uncertainty inside, from a summed-volume
table ``S`` (3D integral image, float64)::

    sum(start) = sum_{e in {0,1}^3} (-1)^(3 - |e|) S[start + e * size]     (8 look-ups per position)

Greedy selection: positions in descending order of their sum (ties: the smaller flat index of ``start``
first); a candidate is rejected if its overlap with ANY selected kernel exceeds ``overlap`` (paper: 40 %) of
the kernel volume, ``prod(size - |start_a - start_b|)^+ > overlap * prod(size)``; otherwise selected. The
search stops at ``max_kernels`` or when the best remaining sum is below the threshold: ``min_sum`` (absolute)
or ``min_fraction`` x the first kernel's sum (default 0.1, our choice: the paper only says "approached a
predefined minimum threshold"). Windows with sum <= 0 are never selected. Implementation: instead of walking
the sorted list, every selection blocks (sets to -inf) the positions that now conflict, and the next kernel
is the arg-max of what is left; both orders select exactly the same kernels (a test checks this against a
brute-force loop). A kernel larger than the map along an axis is clipped to the map (with a warning).

Indices are numpy (z, y, x) of ``SimpleITK.GetArrayFromImage``. Kernel edge in mm -> voxels:
``max(1, round(d / spacing))`` per axis (paper: 32 mm for ET and TC, 64 mm for WT at 1 mm isotropic).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Kernel", "kernel_size_voxels", "window_sums", "summed_volume_table", "search_kernels",
           "search_kernels_bruteforce", "direct_window_sums", "greedy_walk", "DEFAULT_OVERLAP", "DEFAULT_MIN_FRACTION"]

DEFAULT_OVERLAP = 0.4
DEFAULT_MIN_FRACTION = 0.1


@dataclass(frozen=True)
class Kernel:
    start: tuple[int, ...]
    size: tuple[int, ...]
    sum: float

    def to_json(self) -> dict:
        return {"start": [int(v) for v in self.start], "size": [int(v) for v in self.size], "sum": float(self.sum)}

    @classmethod
    def from_json(cls, d: dict) -> "Kernel":
        return cls(tuple(int(v) for v in d["start"]), tuple(int(v) for v in d["size"]), float(d["sum"]))

    @property
    def slicer(self) -> tuple[slice, ...]:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.size))


#: the paper's kernel edges per region (yang2025 sec. 2.2.2): 64 mm for WT, 32 mm for TC and ET
PAPER_KERNEL_MM = {"WT": 64.0, "TC": 32.0, "ET": 32.0}


def parse_kernel_sizes(text) -> dict:
    """The one meaning of ``--kernel-mm`` in every command: the cube edge in mm, ``"32"`` (every region) or
    ``"WT=64,TC=32,ET=32"`` (per region, ``*=D`` for the others) -> ``{tag or '*': mm}``; ValueError otherwise."""
    out = {}
    for part in str(text).split(","):
        key, _, value = part.rpartition("=")
        try:
            mm = float(value)
        except ValueError:
            raise ValueError(f"{text!r}: expected D or TAG=D,... (mm)") from None
        if not math.isfinite(mm):
            raise ValueError(f"{value.strip()!r} is not a finite number")
        if not mm > 0:
            raise ValueError(f"{text!r}: sizes must be > 0 mm")
        out[key.strip().upper() or "*"] = mm
    return out


def kernel_mm_for(sizes: dict, tag: str) -> float:
    """The edge for region ``tag``: its own, else ``*``, else the paper's, else 32 mm."""
    return sizes.get(tag, sizes.get("*", PAPER_KERNEL_MM.get(tag, 32.0)))


def kernel_size_voxels(kernel_mm: float | Sequence[float], spacing_zyx: Sequence[float]) -> tuple[int, ...]:
    """Edge(s) in mm -> voxels per axis: ``max(1, round(d / spacing))``."""
    mm = np.broadcast_to(np.asarray(kernel_mm, dtype=float), (len(spacing_zyx),))
    if np.any(mm <= 0):
        raise ValueError(f"kernel size must be > 0 mm, got {kernel_mm}")
    return tuple(max(1, int(round(d / s))) for d, s in zip(mm, spacing_zyx))


def summed_volume_table(u: np.ndarray) -> np.ndarray:
    """``S`` with one leading zero plane per axis: ``S[i, j, k] = u[:i, :j, :k].sum()`` (float64)."""
    s = np.zeros(tuple(n + 1 for n in u.shape), dtype=np.float64)
    inner = u.astype(np.float64, copy=True)
    for ax in range(u.ndim):
        np.cumsum(inner, axis=ax, out=inner)
    s[tuple(slice(1, None) for _ in u.shape)] = inner
    return s


def window_sums(u: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Sum of ``u`` in every window of ``size`` fully inside ``u``: array of shape ``u.shape - size + 1``."""
    s = summed_volume_table(u)
    n = [a - b + 1 for a, b in zip(u.shape, size)]
    out = np.zeros(n, dtype=np.float64)
    d = u.ndim
    for corner in range(2 ** d):
        e = [(corner >> ax) & 1 for ax in range(d)]
        sl = tuple(slice(e[ax] * size[ax], e[ax] * size[ax] + n[ax]) for ax in range(d))
        sign = -1.0 if (d - sum(e)) % 2 else 1.0
        out += sign * s[sl]
    return out


def _clip_size(shape, size) -> tuple[int, ...]:
    size = tuple(int(v) for v in size)
    if len(size) != len(shape) or min(size) < 1:
        raise ValueError(f"kernel size {size} must have {len(shape)} entries >= 1")
    clipped = tuple(min(a, b) for a, b in zip(size, shape))
    if clipped != size:
        warnings.warn(f"kernel {size} voxels is larger than the map {tuple(shape)}; clipped to {clipped}",
                      stacklevel=3)
    return clipped


def _check_threshold(min_fraction, min_sum):
    if min_fraction is not None and min_sum is not None:
        raise ValueError("give min_fraction or min_sum, not both")
    if min_fraction is None and min_sum is None:
        min_fraction = DEFAULT_MIN_FRACTION
    return min_fraction, min_sum


def search_kernels(u: np.ndarray, size: Sequence[int], overlap: float = DEFAULT_OVERLAP,
                   min_fraction: float | None = None, min_sum: float | None = None,
                   max_kernels: int | None = None) -> list[Kernel]:
    """Greedy non-overlapping high-uncertainty kernels of ``u`` (see the module docstring), in selection order."""
    u = np.asarray(u)
    if u.ndim < 1 or u.size == 0:
        raise ValueError(f"uncertainty map must be a non-empty array, got shape {u.shape}")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    min_fraction, min_sum = _check_threshold(min_fraction, min_sum)
    size = _clip_size(u.shape, size)
    sums = window_sums(u, size)
    volume = float(np.prod(size))
    limit = overlap * volume
    flat = sums.reshape(-1)  # view: blocking writes -inf into it
    kernels: list[Kernel] = []
    threshold = min_sum
    while max_kernels is None or len(kernels) < max_kernels:
        i = int(np.argmax(flat))  # first maximum = smallest flat index among ties
        best = float(flat[i])
        if not best > 0 or (threshold is not None and best < threshold):
            break
        start = np.unravel_index(i, sums.shape)
        kernels.append(Kernel(tuple(int(v) for v in start), size, best))
        if threshold is None:
            threshold = min_fraction * best
        # block every position whose overlap with this kernel exceeds the limit (itself included)
        lo = [max(0, s - n + 1) for s, n in zip(start, size)]
        hi = [min(m, s + n) for s, n, m in zip(start, size, sums.shape)]
        ov = np.ones([h - l for l, h in zip(lo, hi)], dtype=np.float64)
        for ax, (l, h, s, n) in enumerate(zip(lo, hi, start, size)):
            shape = [1] * len(size)
            shape[ax] = h - l
            ov = ov * (n - np.abs(np.arange(l, h) - s)).reshape(shape)
        box = sums[tuple(slice(l, h) for l, h in zip(lo, hi))]
        box[ov > limit] = -np.inf
    return kernels


def direct_window_sums(u: np.ndarray, size: Sequence[int], starts=None) -> np.ndarray:
    """Reference: the sum of every window (or of ``starts``), each summed voxel by voxel with numpy."""
    u = np.asarray(u, dtype=np.float64)
    if starts is None:
        starts = list(np.ndindex(*[a - b + 1 for a, b in zip(u.shape, size)]))
    return np.array([u[tuple(slice(s, s + k) for s, k in zip(st, size))].sum() for st in starts])


def greedy_walk(sums: np.ndarray, starts: np.ndarray, size: Sequence[int], overlap: float,
                min_fraction: float | None, min_sum: float | None, max_kernels: int | None) -> list[Kernel]:
    """Reference greedy selection: stable descending sort, then every candidate checked against every
    selected kernel."""
    order = np.argsort(-sums, kind="stable")
    volume = float(np.prod(size))
    kernels: list[Kernel] = []
    chosen = np.zeros((0, len(size)), dtype=np.int64)
    threshold = min_sum
    for i in order:
        if max_kernels is not None and len(kernels) >= max_kernels:
            break
        best = float(sums[i])
        if not best > 0 or (threshold is not None and best < threshold):
            break
        st = starts[i]
        if len(chosen):
            ov = np.prod(np.clip(np.asarray(size) - np.abs(chosen - st), 0, None), axis=1)
            if (ov > overlap * volume).any():  # overlap with every selected kernel, checked explicitly
                continue
        kernels.append(Kernel(tuple(int(v) for v in st), tuple(size), best))
        chosen = np.vstack([chosen, st[None]])
        if threshold is None:
            threshold = min_fraction * best
    return kernels


def search_kernels_bruteforce(u: np.ndarray, size: Sequence[int], overlap: float = DEFAULT_OVERLAP,
                              min_fraction: float | None = None, min_sum: float | None = None,
                              max_kernels: int | None = None) -> list[Kernel]:
    """Reference implementation: every window summed directly, a stable sort, the greedy walk with an explicit
    overlap check against every selected kernel. Slow (tests and ``benchmarks/bench_kernels.py`` only)."""
    u = np.asarray(u, dtype=np.float64)
    min_fraction, min_sum = _check_threshold(min_fraction, min_sum)
    size = _clip_size(u.shape, size)
    starts = np.array(list(np.ndindex(*[a - b + 1 for a, b in zip(u.shape, size)])), dtype=np.int64)
    return greedy_walk(direct_window_sums(u, size, starts), starts, size, overlap, min_fraction, min_sum,
                       max_kernels)
