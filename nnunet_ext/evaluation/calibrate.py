"""Temperature calibration of a trained model on its cross-validation outputs (``nnext calibrate``).

Inputs, per case: class probabilities ``(C, *S)`` (nnU-Net's ``CASE.npz`` key ``probabilities``, written by
``nnUNetv2_train --npz`` into ``fold_k/validation`` and by ``nnUNetv2_predict --save_probabilities``; axes in the
order of the reader's array, i.e. ``(C, z, y, x)`` for SimpleITK files, ``(C, 1, y, x)`` for 2D images; or our
``CASE_probabilities.nii.gz``) and the reference segmentation in the same (original) geometry
(``nnUNet_preprocessed/DatasetX/gt_segmentations``).

Voxels: inside the ROI of ``nnext evaluate`` (bbox of reference | prediction grown by ``margin_mm``, or ``all``),
ignore-label voxels excluded. Cases form *groups* (the folds; with a single fold or a folder of probabilities,
``n_splits`` round-robin splits of the sorted cases). Cross-fitting: for every group g, T_g is fitted on a seeded
sample of the fit groups other than g (:class:`~nnunet_ext.core.temperature.VoxelSampler`) and ECE / Brier / NLL
before and after are measured on *all* ROI voxels of g (ECE pooled over g's cases, Brier and NLL voxel means);
``mean`` averages the groups. The final T is fitted on all fit groups. Region (sigmoid) outputs: Brier is the
voxel mean of ``sum_r (p_r - t_r)^2``, ECE pools one-vs-rest pairs of every region, NLL is summed binary NLL.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from nnunet_ext.core.calibration import ReliabilityBins, reliability_bins
from nnunet_ext.core.temperature import VoxelSampler, apply_temperature, fit_temperature, scores_from_probabilities
from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.uncertainty_eval import roi_slices
from nnunet_ext.io.imageio import read_image, read_probabilities

__all__ = ["LabelSpec", "CaseSource", "CalibrationOptions", "label_spec_from_dataset_json", "load_case", "roi_slabs",
           "calibrate_cases"]


@dataclass(frozen=True)
class LabelSpec:
    """Channels of the probabilities: softmax over labels ``0..C-1``, or sigmoid ``regions`` (label tuples)."""

    regions: tuple[tuple[int, ...], ...] | None = None
    ignore_label: int | None = None
    names: tuple[str, ...] | None = None

    @property
    def sigmoid(self) -> bool:
        return self.regions is not None


def label_spec_from_dataset_json(path: str) -> LabelSpec:
    """Label spec as nnU-Net's ``LabelManager`` reads ``dataset.json``: regions when any label value is a list of
    more than one label (background and ``ignore`` skipped, in file order)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            labels = json.load(f)["labels"]
        items = list(labels.items())
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise InputError(f"{path}: cannot read a 'labels' dict from it ({type(e).__name__}: {e})") from None
    from nnunet_ext.io.label_check import declared_label_values

    declared_label_values(labels, path)  # background 0, non-negative integer values (one-line errors)
    ignore = labels.get("ignore")
    has_regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for v in labels.values())
    if not has_regions:
        names = sorted(((int(v), k) for k, v in items if k != "ignore"), key=lambda kv: kv[0])
        return LabelSpec(None, ignore, tuple(k for _, k in names))
    regions, names = [], []
    for k, v in items:
        vals = tuple(int(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
        if k == "ignore" or set(vals) == {0}:
            continue
        regions.append(vals)
        names.append(k)
    return LabelSpec(tuple(regions), ignore, tuple(names))


@dataclass(frozen=True)
class CaseSource:
    case: str
    group: str
    probabilities: str   # .npz (key 'probabilities') or a 4D image of nnext's write_probabilities
    reference: str


@dataclass(frozen=True)
class CalibrationOptions:
    per_class: bool = False
    roi: str = "bbox"
    margin_mm: float = 10.0
    voxel_budget: int = 1_000_000
    seed: int = 0
    n_bins: int = 15
    ece_pooling: str = "pooled"


def _read_npz(path: str) -> np.ndarray:
    try:
        with np.load(path) as f:
            if "probabilities" not in f.files:
                raise InputError(f"{path}: no 'probabilities' array (keys: {', '.join(f.files) or 'none'}); "
                                 "expected nnU-Net's --npz / --save_probabilities output")
            return np.asarray(f["probabilities"], dtype=np.float32)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot be read as .npz ({type(e).__name__}: {e})") from None


def load_case(src: CaseSource, spec: LabelSpec) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(probabilities (C, *S) float32, reference S (its integer dtype), spacing of S)``; one-line InputErrors
    for unreadable files, shape / geometry / channel mismatches and labels without a channel (the values are
    checked slab by slab in :func:`roi_slabs`)."""
    ref, geometry = read_image(src.reference)
    if ref.dtype.kind not in "iu":
        if not np.array_equal(ref, np.round(ref)):
            raise InputError(f"{src.reference}: not a label image (non-integer values)")
        ref = ref.astype(np.int32)
    if src.probabilities.endswith(".npz"):
        probs = _read_npz(src.probabilities)
    else:
        probs, prob_geometry = read_probabilities(src.probabilities)
        if len(prob_geometry.spacing) != len(geometry.spacing):
            raise InputError(f"{src.probabilities}: a {len(prob_geometry.spacing) + 1}D image, i.e. (C, *S) with "
                             f"{len(prob_geometry.spacing)}D S; the reference {os.path.basename(src.reference)} is "
                             f"{len(geometry.spacing)}D (expected classes on an extra last axis)")
        if not prob_geometry.matches(geometry, atol=1e-3):
            raise InputError(f"{src.case}: {src.probabilities} and {src.reference} differ in spacing / origin / "
                             "direction")
    spacing = tuple(float(s) for s in geometry.spacing)[::-1]
    if probs.ndim == ref.ndim + 2 and probs.shape[1] == 1:   # 2D data: nnU-Net adds a leading singleton axis
        ref, spacing = ref[None], (1.0,) + spacing
    if probs.shape[1:] != ref.shape:
        raise InputError(f"{src.case}: probabilities {src.probabilities} have shape (C, *S) {probs.shape}, "
                         f"reference {src.reference} has shape {ref.shape}")
    n_expected = len(spec.regions) if spec.sigmoid else (len(spec.names) if spec.names else None)
    if n_expected is not None and probs.shape[0] != n_expected:
        raise InputError(f"{src.probabilities}: {probs.shape[0]} channels, the labels define {n_expected} "
                         f"({'regions' if spec.sigmoid else 'classes'})")
    if not spec.sigmoid and ref.size and int(ref.max()) >= probs.shape[0]:
        labels = np.unique(ref)
        bad = [int(v) for v in labels if v >= probs.shape[0] and v != spec.ignore_label]
        if bad:
            raise InputError(f"{src.reference}: label {bad[-1]} present but the probabilities have only "
                             f"{probs.shape[0]} classes")
    if ref.size and int(ref.min()) < 0:
        raise InputError(f"{src.reference}: negative labels")
    if spec.sigmoid:  # a value in no region would silently be background of every region
        from nnunet_ext.io.label_check import check_label_values

        known = {0, *(v for r in spec.regions for v in r)} | ({spec.ignore_label} if spec.ignore_label is not None
                                                               else set())
        check_label_values(ref, src.reference, known, "the dataset's regions")
    return probs, ref, spacing


def roi_slabs(src: CaseSource, probs, ref, spacing, spec: LabelSpec, options: CalibrationOptions,
              slab_voxels: int = 1 << 21):
    """Yield the case's ROI voxels slab by slab along the first spatial axis: ``(probabilities (C, n) float32,
    labels (n,))``, ignore-label voxels dropped, so memory stays at the volume plus one slab."""
    fg = np.zeros(ref.shape, bool)
    for z in range(ref.shape[0]):      # prediction foreground per slice (background wins ties, as argmax)
        pz = probs[:, z]
        fg[z] = (pz > 0.5).any(axis=0) if spec.sigmoid else pz[1:].max(axis=0, initial=-1.0) > pz[0]
    box = roi_slices(ref, fg, spacing, options.roi, options.margin_mm)
    del fg
    per_z = max(1, int(np.prod([s.stop - s.start for s in box[1:]])))
    step = max(1, slab_voxels // per_z)
    for z0 in range(box[0].start, box[0].stop, step):
        sl = (slice(z0, min(z0 + step, box[0].stop)),) + box[1:]
        p = probs[(slice(None),) + sl].reshape(probs.shape[0], -1)
        r = ref[sl].reshape(-1)
        if spec.ignore_label is not None:
            keep = r != spec.ignore_label
            p, r = p[:, keep], r[keep]
        if not np.isfinite(p).all() or (p.size and (p.min() < -1e-3 or p.max() > 1 + 1e-3)):
            raise InputError(f"{src.probabilities}: values outside [0, 1]; are these probabilities?")
        yield p, r


def _targets(labels, spec: LabelSpec):
    if not spec.sigmoid:
        return labels
    return np.stack([np.isin(labels, reg) for reg in spec.regions]).astype(np.uint8)


@dataclass
class _Scores:
    """Sums for ECE (per-channel bins), Brier and NLL of one group, before or after calibration."""

    bins: list = field(default_factory=list)
    brier: float = 0.0
    nll: float = 0.0
    n: int = 0

    def add(self, p, t, spec: LabelSpec, n_bins: int):
        p = np.asarray(p, dtype=np.float64)
        t = t.astype(np.int64) if not spec.sigmoid else t
        if spec.sigmoid:
            per = [reliability_bins(np.stack([1 - p[r], p[r]]), t[r], n_bins, [1]) for r in range(p.shape[0])]
            self.brier += float(((p - t) ** 2).sum())
            q = np.clip(p, 1e-12, 1 - 1e-12)
            self.nll += float(-(t * np.log(q) + (1 - t) * np.log1p(-q)).sum())
        else:
            per = [reliability_bins(p, t, n_bins, [c]) for c in range(1, p.shape[0])]
            p_true = p[t, np.arange(t.size)]
            self.brier += float(((p ** 2).sum(0) - 2 * p_true + 1).sum())
            self.nll += float(-np.log(np.clip(p_true, 1e-12, None)).sum())
        self.bins = per if not self.bins else [a + b for a, b in zip(self.bins, per)]
        self.n += int(t.shape[-1])

    def summary(self, pooling: str) -> dict:
        if not self.n:
            return {"ece": float("nan"), "brier": float("nan"), "nll": float("nan")}
        if pooling == "pooled":
            ece = sum(self.bins, ReliabilityBins.empty(self.bins[0].count.size)).ece
        else:
            eces = [b.ece for b in self.bins if b.count.sum()]
            ece = float(np.mean(eces)) if eces else float("nan")
        return {"ece": ece, "brier": self.brier / self.n, "nll": self.nll / self.n}


def _progress(items, desc, quiet):
    if quiet:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", leave=False)


def _fit(sampler, groups, spec, options):
    try:
        scores, targets, total = sampler.sample(groups)
    except ValueError:
        raise InputError(f"no ROI voxels in {', '.join(groups)} to fit on") from None
    fit = fit_temperature(scores, targets, per_class=options.per_class, sigmoid=spec.sigmoid)
    return fit, int(scores.shape[1]), total


def calibrate_cases(sources: list[CaseSource], spec: LabelSpec, options: CalibrationOptions,
                    fit_groups: list[str] | None = None, quiet: bool = True) -> dict:
    """Fit T (cross-fitted per group and on all fit groups); returns the JSON-ready fit / held-out blocks."""
    groups = sorted({s.group for s in sources}, key=_group_order)
    fit_groups = groups if fit_groups is None else [g for g in groups if g in set(fit_groups)]
    if not fit_groups:
        raise InputError("no cases to fit on (check --fit-folds)")
    sampler = VoxelSampler(options.voxel_budget, options.seed)
    n_channels = None
    for src in _progress([s for s in sources if s.group in fit_groups], "sampling voxels", quiet):
        probs, ref, spacing = load_case(src, spec)
        if n_channels is None:
            n_channels = probs.shape[0]
        elif probs.shape[0] != n_channels:
            raise InputError(f"{src.probabilities}: {probs.shape[0]} channels, earlier cases have {n_channels}")
        keys = sampler.key_stream(src.case)
        for p, labels in roi_slabs(src, probs, ref, spacing, spec, options):
            k = keys.random(labels.size)
            sel = np.flatnonzero(k < sampler.threshold(src.group))
            sampler.add(src.group, src.case, scores_from_probabilities(p[:, sel], spec.sigmoid),
                        _targets(labels[sel], spec), keys=k[sel], n_voxels=labels.size)
    held_out_t = {}
    for g in groups:
        others = [f for f in fit_groups if f != g]
        if others:
            held_out_t[g] = (_fit(sampler, others, spec, options), others)
    stats = {g: (_Scores(), _Scores()) for g in held_out_t}
    cases_of = {g: [s.case for s in sources if s.group == g] for g in groups}
    for src in _progress([s for s in sources if s.group in held_out_t], "held-out scores", quiet):
        probs, ref, spacing = load_case(src, spec)
        (fit, _, _), _ = held_out_t[src.group]
        before, after = stats[src.group]
        for p, labels in roi_slabs(src, probs, ref, spacing, spec, options):
            t = _targets(labels, spec)
            before.add(p, t, spec, options.n_bins)
            after.add(apply_temperature(p, fit.as_array(p.shape[0]), spec.sigmoid), t, spec, options.n_bins)
    per_group = {}
    for g, ((fit, n_sampled, _), others) in held_out_t.items():
        before, after = (s.summary(options.ece_pooling) for s in stats[g])
        per_group[g] = {"fitted_on": others, "temperature": fit.temperature, "fit_voxels": n_sampled,
                        "cases": len(cases_of[g]), "voxels": stats[g][0].n,
                        **{f"{k}_before": v for k, v in before.items()},
                        **{f"{k}_after": v for k, v in after.items()}}
    keys = [f"{m}_{w}" for m in ("ece", "brier", "nll") for w in ("before", "after")]
    mean = {k: float(np.nanmean([v[k] for v in per_group.values()])) for k in keys} if per_group else {}
    fit, n_sampled, total = _fit(sampler, fit_groups, spec, options)
    fitted_cases = [c for g in fit_groups for c in cases_of[g]]
    return {
        "temperature": fit.temperature, "n_channels": int(n_channels),
        "fitted_on": {"groups": fit_groups, "cases": fitted_cases, "n_cases": len(fitted_cases),
                      "voxels": n_sampled, "voxels_available": total, "nll_before": fit.nll_before,
                      "nll_after": fit.nll_after, "converged": fit.converged},
        "held_out": {"per_group": per_group, "mean": mean,
                     "note": None if per_group else "a single group: no held-out evaluation possible"},
    }


def _group_order(name: str):
    tail = name.rsplit("_", 1)[-1]
    return (0, int(tail), name) if tail.isdigit() else (1, 0, name)


def describe_options(options: CalibrationOptions, spec: LabelSpec) -> dict:
    """The settings block of ``calibration.json``."""
    return {"roi": options.roi, "margin_mm": float(options.margin_mm), "voxel_budget": int(options.voxel_budget),
            "seed": int(options.seed), "ece_bins": int(options.n_bins), "ece_pooling": options.ece_pooling,
            "ece_classes": "foreground classes (or regions), one-vs-rest",
            "ignore_label": spec.ignore_label, "scores": "logit(p)" if spec.sigmoid else "log(p)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
