"""Per-voxel statistics of N stochastic predictions, updated pass by pass (pure torch; memory flat in N).

Every pass ``i`` contributes a probability map ``P_i`` of shape ``(C, *S)`` (or a window of it, ``region``) with a
weight ``w`` (1, or nnU-Net's Gaussian window weight of shape ``region``). With ``W = sum_i w_i`` the
accumulator keeps, per voxel and in one pass over the data (West 1979, weighted Welford; Chan et al. 1979 for a
batch of passes that share one weight):

* mean        ``M = sum_i w_i P_i / W``                                   ``(C, *S)``
* variance    ``V = 1/C sum_c sum_i w_i (P_ic - M_c)^2 / W``              ``(*S)``  (isler2025 III.E)
* expected entropy ``E = sum_i w_i H(P_i) / W``; mutual information ``MI = H(M) - E >= 0`` (BALD)
* histogram   ``h_cb = sum_i w_i [P_ic in bin b] / W`` of ``B`` equal bins over [0, 1] ``(C, B, *S)``
  (yang2025 eq. 1 needs B = 100 over 1024 projections)
* votes       ``v_c = N sum_i w_i [c = argmax P_i] / W`` (softmax; ``[P_ic > 1/2]`` for sigmoid) ``(C, *S)``: the
  number of the N passes that predict class c (exact where every pass has the same weight, e.g. whole-volume
  passes; the weighted fraction of overlapping windows times N otherwise). Their pooled pairwise Dice is
  :func:`nnunet_ext.core.confidence.pooled_pairwise_dice` (issue 23)

Memory: ``(2C + 2) x dtype`` bytes per voxel with variance and MI, ``(C + 1)`` for the mean alone, plus
``C B`` for a histogram -- never ``N x C``. ``H`` is the categorical entropy (summed binary entropies for sigmoid
outputs), in nats (:func:`nnunet_ext.core.uncertainty.entropy`).
"""
from __future__ import annotations

import math

import torch

from nnunet_ext.core.uncertainty import entropy

__all__ = ["StreamingStats", "histogram_entropy"]


class StreamingStats:
    """Weighted running mean / variance / expected entropy / histogram of probability maps.

    ``shape``: spatial shape ``S``; ``n_classes``: C. Switch statistics off that are not needed (``variance``,
    ``expected_entropy``, ``bins=0``) to save memory. ``dtype=torch.float16`` halves the accumulators (as
    nnU-Net's); the weight sum is always float32.
    """

    def __init__(self, shape, n_classes: int, *, sigmoid: bool = False, variance: bool = True,
                 expected_entropy: bool = True, bins: int = 0, dtype: torch.dtype = torch.float32,
                 device: "torch.device | str" = "cpu", mean: bool = True,
                 votes: bool = False):
        if bins < 0:
            raise ValueError(f"bins must be >= 0, got {bins}")
        if not mean and variance:
            raise ValueError("the variance needs the running mean (mean=True)")
        shape = tuple(int(s) for s in shape)
        self.shape, self.n_classes, self.sigmoid, self.bins = shape, int(n_classes), bool(sigmoid), int(bins)
        self.dtype, self.device = dtype, torch.device(device)
        self.weight = torch.zeros(shape, dtype=torch.float32, device=self.device)
        #: ``mean=False`` keeps only the weights (and what else is asked): a caller that blends its own output
        self._mean = torch.zeros((self.n_classes, *shape), dtype=dtype, device=self.device) if mean else None
        self._m2 = torch.zeros_like(self._mean) if variance else None
        self._h = torch.zeros(shape, dtype=dtype, device=self.device) if expected_entropy else None
        self._hist = (torch.zeros((self.n_classes, self.bins, *shape), dtype=dtype, device=self.device)
                      if self.bins else None)
        #: weighted vote counts (C, *S), float32 (counts up to N must stay exact)
        self._votes = (torch.zeros((self.n_classes, *shape), dtype=torch.float32, device=self.device)
                       if votes else None)
        self.n_updates = 0

    # -- update ----------------------------------------------------------------------------------------------
    def update(self, passes: torch.Tensor, weight: "torch.Tensor | float | None" = None, region=None) -> None:
        """Add ``passes`` ``(n, C, *R)`` (probabilities) with ``weight`` (scalar or ``R``) at ``region``.

        ``region``: tuple of slices (or ints, e.g. the slice index of a 2D window) into ``S`` (default the whole
        volume, ``R = S``). The n passes share the
        weight; they are combined with the running statistics by Chan's parallel formula.
        """
        region = tuple(region) if region is not None else tuple(slice(None) for _ in self.shape)
        target = self.weight[region].shape  # an int index (a slice of a 2D configuration) drops that axis
        if passes.ndim != len(target) + 2 or passes.shape[1] != self.n_classes or passes.shape[2:] != target:
            raise ValueError(f"passes must be (n, {self.n_classes}, *{tuple(target)}), got {tuple(passes.shape)}")
        p = passes.to(device=self.device, dtype=torch.float32)
        n = p.shape[0]
        w = torch.ones(p.shape[2:], device=self.device) if weight is None else (
            torch.as_tensor(weight, dtype=torch.float32, device=self.device).expand(p.shape[2:]))
        w_old = self.weight[region]
        w_new = w_old + n * w
        if self._mean is not None:
            batch_mean = p.mean(0)
            mean = self._mean[(slice(None), *region)]
            delta = batch_mean - mean.float()
            frac = (n * w / w_new.clamp_min(1e-30))[None]
            if self._m2 is not None:
                batch_m2 = ((p - batch_mean[None]) ** 2).sum(0) * w[None]
                m2 = self._m2[(slice(None), *region)]
                m2 += (batch_m2 + delta ** 2 * (w_old * n * w / w_new.clamp_min(1e-30))[None]).to(self.dtype)
            mean += (delta * frac).to(self.dtype)
        if self._h is not None:
            self._h[region] += (entropy(p, 1, self.sigmoid).sum(0) * w).to(self.dtype)
        if self._hist is not None:
            self._add_histogram(p, w, region)
        if self._votes is not None:
            self._add_votes(p, w, region)
        self.weight[region] = w_new
        self.n_updates += n

    def _add_histogram(self, p: torch.Tensor, w: torch.Tensor, region) -> None:
        hist = self._hist[(slice(None), slice(None), *region)]
        work = hist if hist.is_contiguous() else hist.contiguous()  # a window of a volume is a strided view
        flat = work.view(self.n_classes, self.bins, -1)
        idx = (p * self.bins).long().clamp_(0, self.bins - 1)  # bin b = [b/B, (b+1)/B), last bin closed
        src = w.reshape(1, 1, -1).expand(self.n_classes, 1, -1).to(self.dtype)
        for i in range(p.shape[0]):
            flat.scatter_add_(1, idx[i].reshape(self.n_classes, 1, -1), src)
        if work is not hist:
            hist.copy_(work)

    def _add_votes(self, p: torch.Tensor, w: torch.Tensor, region) -> None:
        if self.sigmoid:
            hits = (p > 0.5).float().sum(0)
        else:
            hits = torch.zeros_like(p[0])
            one = torch.ones_like(p[0, :1])
            for i in range(p.shape[0]):
                hits.scatter_add_(0, p[i].argmax(0, keepdim=True), one)
        self._votes[(slice(None), *region)] += hits * w[None]

    # -- results ---------------------------------------------------------------------------------------------
    def _check(self) -> torch.Tensor:
        if self.n_updates == 0:
            raise RuntimeError("no pass was added")
        return self.weight.clamp_min(1e-30)

    def mean(self) -> torch.Tensor:
        """``M``, float32 ``(C, *S)``."""
        self._check()
        if self._mean is None:
            raise RuntimeError("the mean was not accumulated (mean=False)")
        return self._mean.float()

    def variance(self) -> torch.Tensor:
        """Class-averaged weighted variance ``V``, float32 ``(*S)``."""
        if self._m2 is None:
            raise RuntimeError("variance was not accumulated (variance=False)")
        return (self._m2.float() / self._check()[None]).clamp_min(0).mean(0)

    def expected_entropy(self) -> torch.Tensor:
        if self._h is None:
            raise RuntimeError("expected entropy was not accumulated (expected_entropy=False)")
        return self._h.float() / self._check()

    def entropy(self) -> torch.Tensor:
        """Predictive entropy ``H(M)`` of the running mean."""
        return entropy(self.mean(), 0, self.sigmoid)

    def mutual_information(self) -> torch.Tensor:
        """``H(M) - E``, clamped at 0 (round-off)."""
        return (self.entropy() - self.expected_entropy()).clamp_min(0)

    def histogram(self) -> torch.Tensor:
        """Normalised histogram ``(C, B, *S)`` (sums to 1 over bins where a pass was added)."""
        if self._hist is None:
            raise RuntimeError("no histogram was accumulated (bins=0)")
        return self._hist.float() / self._check()[None, None]

    def votes(self, n_members: int) -> torch.Tensor:
        """Vote counts ``(C, *S)`` of ``n_members`` passes (module docstring), float32."""
        if self._votes is None:
            raise RuntimeError("votes were not accumulated (votes=False)")
        return self._votes / self._check()[None] * float(n_members)

    @property
    def bytes_per_voxel(self) -> float:
        tensors = [self.weight, self._mean, self._m2, self._h, self._hist, self._votes]
        total = sum(t.numel() * t.element_size() for t in tensors if t is not None)
        return total / max(1, math.prod(self.shape))


def histogram_entropy(hist: torch.Tensor, base: float = math.e, normalise: bool = False, dim: int = 1) -> torch.Tensor:
    """Shannon entropy ``-sum_b q_b log q_b`` over the non-empty bins of normalised histograms along ``dim``.

    ``base``: logarithm base (default e: nats, the unit of every nnunet_ext map; 2 = bits); ``normalise``: divide by
    ``log(B)`` so the result lies in [0, 1].
    """
    q = hist.float()
    h = -torch.xlogy(q, q).sum(dim) / math.log(base)
    if normalise:
        h = h / (math.log(q.shape[dim]) / math.log(base))
    return h
