"""Temperature scaling of voxel-wise class probabilities (pure numpy / scipy; torch only if given torch tensors).

Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML 2017 (arXiv:1706.04599), sec. 4.2:
one scalar T > 0 divides the logits, ``q = softmax(z / T)``; T is fitted by minimising the negative log-likelihood
(NLL) of held-out labels. T > 1 softens over-confident predictions; argmax (the segmentation) never changes.

* **Softmax outputs** (one channel per label): ``NLL(T) = mean_v [ logsumexp_c(z_vc / T_c) - z_vy / T_y ]``.
  We only ever have probabilities (nnU-Net's ``.npz``, our ``CASE_probabilities``), so ``z = log p``: softmax is
  shift-invariant, ``softmax(log p / T) = softmax((l - logsumexp l) / T) = softmax(l / T)`` for the network's
  logits l, so one T on log p *is* temperature scaling of the logits. Applied to probabilities:
  ``p_T ∝ p ** (1 / T)`` per voxel, renormalised. ``per_class``: one ``T_c`` per channel (a diagonal "vector
  scaling" without bias, Guo sec. 4.2). Choice: it is defined on log p, ``p_T,c ∝ p_c ** (1 / T_c)``, because
  that is what can be applied to probabilities alone (on logits the per-channel shift would not cancel); it may
  change the argmax.
* **Sigmoid / region outputs** (nnU-Net region-based training): per region r, ``q_r = sigmoid(logit(p_r) / T_r)``,
  fitted with the binary NLL summed over regions; one T shared by all regions, or one per region.

The fit is over ``u = log T`` (T stays positive; the NLL is convex in ``1 / T``, hence unimodal in u): one T by
bounded Brent (``scipy.optimize.minimize_scalar``), per-class T by L-BFGS-B with the analytic gradient, started
from the shared T. Log-probabilities are floored at ``log(PROB_FLOOR)`` for the fit only (a probability of
exactly 0 on the true class would make the NLL infinite at every T); :func:`apply_temperature` is exact.

:class:`VoxelSampler` draws a seeded uniform sample of at most ``budget`` voxels from any union of case groups,
keeping at most ``budget`` voxels per group in memory (so a set of 512^3 volumes fits): every voxel gets a
uniform key from a generator seeded by ``(seed, crc32(case))``; the sample is the ``budget`` smallest keys.
The model-file side (``calibration.json``) is in :mod:`nnunet_ext.core.calibration_file`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PROB_FLOOR", "TemperatureFit", "fit_temperature", "apply_temperature", "scores_from_probabilities",
           "VoxelSampler", "T_BOUNDS"]

PROB_FLOOR = 1e-7           # log-probabilities are floored here for the fit (float32 softmax outputs reach 0)
T_BOUNDS = (1e-2, 1e2)      # search interval of T
_CHUNK = 1 << 21            # voxels per chunk in apply_temperature (bounds the temporaries)


@dataclass(frozen=True)
class TemperatureFit:
    """Result of :func:`fit_temperature`: ``temperature`` is a float (shared) or a tuple (one per channel)."""

    temperature: float | tuple[float, ...]
    nll_before: float       # NLL at T = 1
    nll_after: float        # NLL at the fitted T
    n_voxels: int
    converged: bool

    def as_array(self, n_channels: int) -> np.ndarray:
        t = np.asarray(self.temperature, dtype=np.float64)
        return np.full(n_channels, float(t)) if t.ndim == 0 else t


def scores_from_probabilities(probabilities, sigmoid: bool = False) -> np.ndarray:
    """Fit scores of probabilities ``(C, ...)``: ``log p`` (softmax) or ``logit p`` (sigmoid), floored at
    ``PROB_FLOOR`` (and ``1 - PROB_FLOOR``), float32."""
    p = np.clip(np.asarray(probabilities, dtype=np.float32), PROB_FLOOR, None if not sigmoid else 1 - PROB_FLOOR)
    return (np.log(p) - np.log1p(-p)) if sigmoid else np.log(p)


def _softmax_nll_grad(beta: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """NLL of softmax(beta_c z_c) and its gradient in beta (``beta = 1 / T``), z (C, N) float64."""
    s = z * beta[:, None]
    m = s.max(axis=0)
    e = np.exp(s - m)
    tot = e.sum(axis=0)
    lse = m + np.log(tot)
    zy = z[y, np.arange(y.size)]
    nll = float(np.mean(lse - beta[y] * zy))
    q = e / tot                                   # softmax
    grad = (q * z).mean(axis=1) - np.bincount(y, zy, minlength=z.shape[0]) / y.size
    return nll, grad


def _sigmoid_nll_grad(beta: np.ndarray, z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Binary NLL of sigmoid(beta_r z_r) summed over regions, averaged over voxels, and its gradient in beta."""
    s = z * beta[:, None]
    # -[t log sig(s) + (1 - t) log(1 - sig(s))] = softplus(s) - t s
    nll = float(np.mean((np.logaddexp(0.0, s) - t * s).sum(axis=0)))
    q = 0.5 * (1.0 + np.tanh(0.5 * s))           # sigmoid, overflow-free
    grad = ((q - t) * z).mean(axis=1)
    return nll, grad


def fit_temperature(scores, targets, *, per_class: bool = False, sigmoid: bool = False,
                    bounds: tuple[float, float] = T_BOUNDS) -> TemperatureFit:
    """Fit T minimising the NLL of ``softmax(scores / T)`` (or ``sigmoid`` per region) on voxels.

    ``scores``: ``(C, N)`` logits or log-probabilities (softmax) / logits (sigmoid, see
    :func:`scores_from_probabilities`). ``targets``: ``(N,)`` integer labels in ``[0, C)`` (softmax) or ``(C, N)``
    0/1 region memberships (sigmoid). ``per_class``: one T per channel; a channel without positive (or, for
    regions, without negative) voxels keeps the shared T. T is searched in ``bounds``.
    """
    from scipy.optimize import minimize, minimize_scalar

    z = np.asarray(scores, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"scores must be (C, N) with N > 0; got shape {z.shape}")
    n_ch, n = z.shape
    if sigmoid:
        t = np.asarray(targets, dtype=np.float64)
        if t.shape != z.shape:
            raise ValueError(f"sigmoid targets must have the scores' shape {z.shape}; got {t.shape}")
        nll_grad = lambda beta: _sigmoid_nll_grad(beta, z, t)  # noqa: E731
    else:
        y = np.asarray(targets).astype(np.int64).reshape(-1)
        if y.size != n or y.min() < 0 or y.max() >= n_ch:
            raise ValueError(f"labels must be ({n},) in [0, {n_ch}); got shape {y.shape}, range "
                             f"{int(y.min())}..{int(y.max())}")
        nll_grad = lambda beta: _softmax_nll_grad(beta, z, y)  # noqa: E731
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    nll_before = nll_grad(np.ones(n_ch))[0]
    res = minimize_scalar(lambda u: nll_grad(np.full(n_ch, np.exp(-u)))[0], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-6})
    u_shared, converged = float(res.x), bool(res.success)
    if not per_class:
        return TemperatureFit(float(np.exp(u_shared)), nll_before, float(res.fun), n, converged)

    def objective(u):
        beta = np.exp(-u)
        nll, g_beta = nll_grad(beta)
        return nll, -beta * g_beta                # d/du = d/dbeta * dbeta/du, beta = exp(-u)

    # a channel whose outcome never (or, for regions, always) occurs would drive its T to a bound: keep it at the
    # shared T instead
    if sigmoid:
        seen = (t.max(axis=1) > 0) & (t.min(axis=1) < 1)
    else:
        seen = np.bincount(y, minlength=n_ch) > 0
    bounds_u = [(lo, hi) if ok else (u_shared, u_shared) for ok in seen]
    res = minimize(objective, np.full(n_ch, u_shared), jac=True, method="L-BFGS-B", bounds=bounds_u,
                   options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
    return TemperatureFit(tuple(float(v) for v in np.exp(res.x)), nll_before, float(res.fun), n,
                          bool(res.success) and converged)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def apply_temperature(probabilities, temperature, sigmoid: bool = False):
    """Temperature-scaled probabilities of ``probabilities`` ``(C, *S)`` (numpy or torch, same type and dtype back).

    Softmax: ``p_T,c = p_c ** (1 / T_c) / sum_k p_k ** (1 / T_k)`` (= ``softmax(log p / T)``; zeros stay zero).
    Sigmoid: ``p_T,r = sigmoid(logit(p_r) / T_r)``. ``temperature``: a scalar or one value per channel.
    Computed in float32 (float64 input: float64), in chunks of voxels; float16 input comes back as float16.
    """
    t = np.asarray(temperature, dtype=np.float64).reshape(-1)
    n_ch = probabilities.shape[0]
    if t.size not in (1, n_ch) or not np.all(t > 0):
        raise ValueError(f"temperature must be > 0, one value or one per channel ({n_ch}); got {t.tolist()}")
    beta = np.array(np.broadcast_to(1.0 / t, (n_ch,)))
    if _is_torch(probabilities):
        import torch

        p = probabilities
        work = p.float() if p.dtype not in (torch.float32, torch.float64) else p
        b = torch.as_tensor(beta, dtype=work.dtype, device=work.device).view(-1, *([1] * (p.ndim - 1)))
        if sigmoid:
            out = torch.sigmoid(torch.logit(work) * b)
        else:
            out = torch.softmax(torch.log(work.clamp_min(0)) * b, dim=0)
        return out.to(p.dtype)
    p = np.asarray(probabilities)
    dtype = np.float64 if p.dtype == np.float64 else np.float32
    flat = p.reshape(n_ch, -1)
    out = np.empty(flat.shape, dtype=dtype)
    b = beta.astype(dtype)[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, flat.shape[1], _CHUNK):
            x = np.clip(flat[:, start:start + _CHUNK].astype(dtype), 0, 1)
            if sigmoid:
                s = (np.log(x) - np.log1p(-x)) * b    # logit; 0 -> -inf, 1 -> +inf
                out[:, start:start + _CHUNK] = 0.5 * (1.0 + np.tanh(0.5 * s))
            else:
                s = np.log(x) * b
                s -= s.max(axis=0, keepdims=True)
                e = np.exp(s)
                out[:, start:start + _CHUNK] = e / e.sum(axis=0, keepdims=True)
    return out.reshape(p.shape).astype(p.dtype if p.dtype.kind == "f" else dtype, copy=False)


@dataclass
class _Kept:
    keys: np.ndarray
    scores: np.ndarray      # (C, n) float32
    targets: np.ndarray     # (n,) labels or (C, n) memberships


@dataclass
class VoxelSampler:
    """Seeded uniform sample of at most ``budget`` voxels over any union of groups (see the module docstring).

    ``add(group, case, scores (C, N), targets (N,) or (C, N))``; ``sample(groups) -> (scores, targets, n_total)``
    where ``n_total`` counts every voxel added to those groups. Independent of the order of ``add`` calls. For big
    cases draw keys slab by slab from :meth:`key_stream` and convert / add only keys below :meth:`threshold`.
    """

    budget: int = 1_000_000
    seed: int = 0
    _groups: dict = field(default_factory=dict)
    _totals: dict = field(default_factory=dict)

    def key_stream(self, case: str) -> np.random.Generator:
        """The generator of ``case``'s voxel keys (``.random(n)`` in voxel order, in one call or in slabs)."""
        return np.random.default_rng([int(self.seed), zlib.crc32(case.encode("utf-8"))])

    def threshold(self, group) -> float:
        """Keys >= this can no longer enter ``group``'s sample (the largest kept key once the budget is full)."""
        kept = self._groups.get(group)
        return 1.0 if kept is None or kept.keys.size < self.budget else float(kept.keys.max())

    def add(self, group, case: str, scores, targets, keys=None, n_voxels: int | None = None) -> None:
        """Add voxels of ``case`` to ``group``. Without ``keys`` they are drawn from :meth:`key_stream`; callers
        that pre-filter by :meth:`threshold` pass the kept voxels' ``keys`` and ``n_voxels`` (all voxels seen)."""
        scores = np.asarray(scores, dtype=np.float32)
        targets = np.asarray(targets)
        if keys is None:
            keys = self.key_stream(case).random(scores.shape[1])
        self._totals[group] = self._totals.get(group, 0) + int(scores.shape[1] if n_voxels is None else n_voxels)
        old = self._groups.get(group)
        if old is not None:
            keys = np.concatenate([old.keys, keys])
            scores = np.concatenate([old.scores, scores], axis=1)
            targets = np.concatenate([old.targets, targets], axis=-1)
        self._groups[group] = self._smallest(keys, scores, targets)

    def _smallest(self, keys, scores, targets) -> _Kept:
        if keys.size > self.budget:
            idx = np.argpartition(keys, self.budget - 1)[: self.budget]
            idx.sort()
            keys, scores, targets = keys[idx], scores[:, idx], targets[..., idx]
        return _Kept(keys, scores, targets)

    def sample(self, groups) -> tuple[np.ndarray, np.ndarray, int]:
        kept = [self._groups[g] for g in groups if g in self._groups]
        if not kept:
            raise ValueError(f"no voxels in groups {list(groups)}")
        union = self._smallest(np.concatenate([k.keys for k in kept]),
                               np.concatenate([k.scores for k in kept], axis=1),
                               np.concatenate([k.targets for k in kept], axis=-1))
        return union.scores, union.targets, int(sum(self._totals.get(g, 0) for g in groups))
