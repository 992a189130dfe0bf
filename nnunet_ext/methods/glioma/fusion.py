"""2D / 3D probability fusion and its PSO fit (Yang et al. 2025, sec. 2.2.3, eq. 2).

Per region, on voxels covered by at least one 3D kernel::

    P3D_composite = mean of the 3D kernel probabilities over the kernels covering the voxel
    p_fused       = sigmoid(w2D * P2D + w3D * P3D_composite + b)

and ``p_fused = P2D`` on uncovered voxels. A voxel is foreground when ``p_fused > 0.5``, i.e. on covered
voxels ``w2D P2D + w3D P3D + b > 0``.

Fit (:func:`fit_fusion`): particle swarm optimisation (``pyswarms.single.GlobalBestPSO``, paper: 20 particles,
50 iterations) of ``(w2D, w3D, b)`` with ``w2D, w3D >= 0`` maximising, per region, the Dice over the fitting cases:

* ``objective="global"`` (default, the paper's "global DSC", sec. 3.1): one Dice of the pooled counts,
  ``2 sum_c TP_c / (2 sum_c TP_c + sum_c FP_c + sum_c FN_c)``, large tumours weigh more;
* ``objective="mean"``: the mean of the per-case Dice (what the test table reports; small tumours weigh as much).

Choices the paper leaves open (documentation/methods/glioma.md):

* the bias ``b`` is part of the particle (the paper's particle is ``(w2D, w3D)``, its eq. 2 has a ``b``): with
  ``w >= 0`` and no bias every covered voxel has ``w2D P2D + w3D P3D >= 0``, i.e. ``p_fused >= 0.5``, so the fused
  region would swallow every kernel; the bias sets the decision threshold;
* ``p2d="mean"`` (default): P2D enters eq. 2 as the mean probability of the spherical ensemble, so a 2D vote of 0.55
  and one of 0.99 differ; ``p2d="binary"``: the paper's wording (sec. 2.2.1, "binarized when the mean exceeds 0.5"),
  P2D in {0, 1}, so on covered voxels the fused decision is a threshold on P3D shifted by w2D where 2D says yes.

The objective is vectorised over particles: per case the uncovered voxels contribute fixed TP / FP / FN counts
and only the covered voxels are re-thresholded for all particles at once. The Dice depends only on the sign of
``w2D P2D + w3D P3D + b``, so ``(w2D, w3D, b)`` is identifiable only up to a positive factor; the option
``sum_to_one`` (the paper's fitted weights sum to one: 0.58 / 0.42, 0.32 / 0.68, 0.70 / 0.30) removes that
freedom by searching ``(w2D, b)`` with ``w3D = 1 - w2D``, ``0 <= w2D <= 1``. Without it the weights live in
``[0, weight_max]`` and the bias in ``[-bias_max, bias_max]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

#: Clerc-Kennedy constriction coefficients (inertia 0.7298, cognitive = social = 1.49618), a standard PSO choice
PSO_OPTIONS = {"w": 0.7298, "c1": 1.49618, "c2": 1.49618}
#: how P2D enters eq. 2 (module docstring) and the fit objectives
P2D_MODES = ("mean", "binary")
OBJECTIVES = ("global", "mean")

__all__ = [
    "region_tags",
    "PSO_OPTIONS",
    "P2D_MODES",
    "OBJECTIVES",
    "p2d_input",
    "FusionParams",
    "fuse",
    "composite_3d",
    "FitCase",
    "fit_case",
    "fusion_dice",
    "fit_fusion",
]


@dataclass
class FusionParams:
    w2d: float
    w3d: float
    b: float
    dice: float | None = None        # mean Dice of the fused result on the fitting cases
    dice_2d: float | None = None     # Dice (same objective) of P2D > 0.5 alone on the same cases
    p2d: str = "mean"                # how P2D enters eq. 2: "mean" probability or "binary" (mean > 0.5)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FusionParams":
        for key in ("w2d", "w3d", "b"):
            if key not in d:
                raise ValueError(f"fusion parameters lack {key!r}")
        p2d = d.get("p2d", "mean")
        if p2d not in P2D_MODES:
            raise ValueError(f"fusion parameter p2d must be one of {P2D_MODES}, got {p2d!r}")
        return cls(float(d["w2d"]), float(d["w3d"]), float(d["b"]), d.get("dice"), d.get("dice_2d"), p2d)


_TAG_KEYWORDS = (("WT", "whole"), ("TC", "core"), ("ET", "enhanc"))


def region_tags(labels: dict) -> list[tuple[str, str, tuple[int, ...]]]:
    """``[(tag, name, labels)]`` for the regions of a dataset.json ``labels`` dict, in nnU-Net's order (the
    order of the probability channels). Tags: WT / TC / ET when the name says so ("whole", "core", "enhanc"),
    else ``r1, r2, ...`` (position). Plain integer labels count as one-label regions."""
    out = []
    for name, value in labels.items():
        if name == "ignore":
            continue
        vals = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else (value,)))
        if set(vals) == {0}:
            continue
        out.append((name, tuple(dict.fromkeys(vals))))
    tags = []
    for i, (name, _) in enumerate(out):
        hit = [t for t, kw in _TAG_KEYWORDS if kw in name.lower()]
        tags.append(hit[0] if len(hit) == 1 else f"r{i + 1}")
    if len(set(tags)) != len(tags):
        tags = [f"r{i + 1}" for i in range(len(out))]
    return [(t, n, v) for t, (n, v) in zip(tags, out)]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def p2d_input(p2d: np.ndarray, mode: str = "mean") -> np.ndarray:
    """P2D as eq. 2 takes it: the mean probability, or (``"binary"``) the 2D mask ``P2D > 0.5`` as 0 / 1."""
    if mode not in P2D_MODES:
        raise ValueError(f"p2d must be one of {P2D_MODES}, got {mode!r}")
    return (p2d > 0.5).astype(np.float32) if mode == "binary" else p2d


def fuse(p2d: np.ndarray, p3d: np.ndarray, covered: np.ndarray, params: FusionParams) -> np.ndarray:
    """Eq. 2: ``sigmoid(w2D P2D + w3D P3D + b)`` where ``covered``, ``P2D`` elsewhere (float32); P2D inside eq. 2
    as ``params.p2d`` says (:func:`p2d_input`)."""
    z = params.w2d * p2d_input(p2d, params.p2d).astype(np.float64) + params.w3d * p3d.astype(np.float64) + params.b
    return np.where(covered, _sigmoid(z), p2d).astype(np.float32)


def composite_3d(shape: Sequence[int], slicers: Sequence[tuple], crops: Sequence[np.ndarray]):
    """Mean of the kernel probabilities over overlapping kernels -> ``(P3D composite, coverage count)``.

    ``slicers[i]`` places ``crops[i]`` (the kernel's probabilities, spatial shape of the kernel) in ``shape``;
    P3D is 0 where no kernel covers a voxel (coverage 0)."""
    acc = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.int32)
    for sl, crop in zip(slicers, crops):
        acc[sl] += crop
        count[sl] += 1
    p3d = np.divide(acc, count, out=np.zeros_like(acc), where=count > 0)
    return p3d.astype(np.float32), count


@dataclass
class FitCase:
    """One case reduced to what the objective needs: covered voxels and the fixed counts of the rest."""
    p2d: np.ndarray       # (n,) covered voxels
    p3d: np.ndarray       # (n,)
    ref: np.ndarray       # (n,) bool
    tp: int               # uncovered voxels: P2D > 0.5 against the reference
    fp: int
    fn: int


def fit_case(p2d: np.ndarray, p3d: np.ndarray, covered: np.ndarray, ref: np.ndarray, p2d_mode: str = "mean") -> FitCase:
    """One case for the fit; ``p2d_mode``: how P2D enters eq. 2 on covered voxels (:func:`p2d_input`)."""
    covered = np.asarray(covered, bool)
    ref = np.asarray(ref, bool)
    pred_out = (p2d > 0.5) & ~covered
    ref_out = ref & ~covered
    return FitCase(p2d_input(p2d[covered], p2d_mode).astype(np.float32), p3d[covered].astype(np.float32), ref[covered],
                   int((pred_out & ref_out).sum()), int((pred_out & ~ref_out).sum()), int((~pred_out & ref_out).sum()))


def _dice(tp, fp, fn):
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)  # both empty -> 1


def fusion_dice(cases: Sequence[FitCase], w2d, w3d, b, chunk_voxels: int = 2 ** 24,
                objective: str = "mean") -> np.ndarray:
    """Dice over ``cases`` for every particle: ``w2d, w3d, b`` of shape (P,) -> (P,); ``objective`` ``"mean"``
    (mean of the per-case Dice) or ``"global"`` (Dice of the counts pooled over the cases)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    w2d, w3d, b = (np.atleast_1d(np.asarray(v, np.float32)) for v in (w2d, w3d, b))
    total = np.zeros(len(w2d), np.float64)
    pooled = [np.zeros(len(w2d), np.int64) for _ in range(3)]
    step = max(1, chunk_voxels // max(len(w2d), 1))
    for c in cases:
        tp = np.full(len(w2d), c.tp, np.int64)
        fp = np.full(len(w2d), c.fp, np.int64)
        fn = np.full(len(w2d), c.fn, np.int64)
        for s in range(0, len(c.ref), step):
            p2, p3, r = c.p2d[s:s + step], c.p3d[s:s + step], c.ref[s:s + step]
            pred = (w2d[:, None] * p2[None] + w3d[:, None] * p3[None] + b[:, None]) > 0
            hit = pred[:, r].sum(1)
            tp += hit
            fp += pred.sum(1) - hit
            fn += int(r.sum()) - hit
        total += _dice(tp, fp, fn)
        for acc, v in zip(pooled, (tp, fp, fn)):
            acc += v
    return _dice(*pooled).astype(np.float64) if objective == "global" else total / max(len(cases), 1)


def fit_fusion(cases: Sequence[FitCase], particles: int = 20, iters: int = 50, sum_to_one: bool = False,
               weight_max: float = 10.0, bias_max: float = 10.0, seed: int = 0,
               options: dict | None = None, objective: str = "global", p2d: str = "mean") -> FusionParams:
    """PSO fit of ``(w2D, w3D, b)`` maximising the Dice (``objective``) of ``cases`` (see the module docstring);
    ``p2d`` is only recorded (the cases were reduced with it by :func:`fit_case`)."""
    from pyswarms.single import GlobalBestPSO

    if not cases:
        raise ValueError("no cases to fit the fusion on")
    if sum_to_one:
        lb, ub = np.array([0.0, -bias_max]), np.array([1.0, bias_max])
        unpack = lambda x: (x[:, 0], 1.0 - x[:, 0], x[:, 1])  # noqa: E731
    else:
        lb, ub = np.array([0.0, 0.0, -bias_max]), np.array([weight_max, weight_max, bias_max])
        unpack = lambda x: (x[:, 0], x[:, 1], x[:, 2])  # noqa: E731
    rng = np.random.default_rng(seed)
    init = lb + rng.random((particles, len(lb))) * (ub - lb)
    # pyswarms draws its velocities / coefficients from numpy's global generator: seed it for reproducibility
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        opt = GlobalBestPSO(n_particles=particles, dimensions=len(lb), bounds=(lb, ub), init_pos=init,
                            options=options or dict(PSO_OPTIONS))
        cost, pos = opt.optimize(lambda x: -fusion_dice(cases, *unpack(x), objective=objective), iters=iters,
                                 verbose=False)
    finally:
        np.random.set_state(state)
    w2d, w3d, b = (float(v[0]) for v in unpack(np.asarray(pos, float)[None]))
    # 2D alone: P2D > 0.5 everywhere (on covered voxels too), i.e. eq. 2 with w2D = 1, w3D = 0, b = -0.5
    base = float(fusion_dice(cases, [1.0], [0.0], [-0.5], objective=objective)[0])
    return FusionParams(w2d, w3d, b, dice=float(-cost), dice_2d=base, p2d=p2d,
                        extra={"particles": particles, "iters": iters, "sum_to_one": sum_to_one,
                               "objective": objective})
