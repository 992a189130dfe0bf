"""Uncertainty evaluation for ``nnext evaluate --uncertainty / --probabilities`` and the reliability diagram.

File conventions of the nnunet_ext predictor (in its output folder, ``E`` = the segmentation file ending):
``CASE{E}`` segmentation, ``CASE_uncertainty{E}`` float32 map on the same grid, optional
``CASE_probabilities{E}`` class probabilities written by :func:`nnunet_ext.io.imageio.write_probabilities`
(numpy ``(C, z, y, x)``, a 4D NIfTI with the class as the last SimpleITK axis; channel c = label c).

Per case, inside a region of interest (ROI):

* ``roi="bbox"`` (default): bounding box of reference | prediction foreground, grown by ``margin_mm`` on every
  side (clipped to the image); the whole image if both are empty. ``roi="all"``: every voxel. Far background
  is trivially certain and correct and would inflate AUROC and deflate ECE, hence the default.
* error mask E = (prediction != reference) in the ROI (any label confusion counts).
* ``auroc``: AUROC of the uncertainty for detecting E (NaN if the ROI holds no error or only errors);
  ``top_dice``: Dice of the |E| most uncertain ROI voxels with E (``top_fraction`` of the ROI if given);
  ``mean_uncertainty``, ``error_fraction`` = |E| / ROI voxels, ``roi_voxels``.
* with probabilities: ``ece`` (classwise one-vs-rest over the foreground classes, ``ece_pooling``) and
  multi-class ``brier`` (:mod:`nnunet_ext.core.calibration`). The reliability histograms of all cases are
  added into ``pooled.ece`` / ``pooled.bins`` (all foreground (p, outcome) pairs of all cases' ROIs).
* calibration where it matters (issue 23): ``ece_dilated_union`` / ``brier_dilated_union`` inside
  ``U = {x : dist(x, ref > 0 | pred > 0) <= calib_margin_mm}`` (the union of reference and prediction foreground
  dilated by ``calib_margin_mm``, Euclidean distance in mm, scipy's EDT with the spacing), classwise
  ``ece_dilated_union_per_class`` (one-vs-rest per foreground class). The ROI's ~10^5 near-zero background pairs
  dominate its ECE; inside U the tumour's boundary voxels count. Every figure is named for its definition in
  ``calibration`` of the summary (:func:`summarize_uncertainty`); the reliability diagram draws the pooled
  dilated-union histogram and its title names that key.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from nnunet_ext.core.calibration import (
    ECE_POOLING,
    ReliabilityBins,
    auroc,
    brier_score,
    expected_calibration_error,
    top_uncertainty_dice,
)
from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import save_figure
from nnunet_ext.io.imageio import read_header, read_image, read_probabilities

__all__ = ["UNCERTAINTY_SUFFIX", "PROBABILITIES_SUFFIX", "UNC_ROIS", "UNCERTAINTY_METRICS", "UncertaintyOptions",
           "drop_auxiliary", "check_uncertainty_inputs", "roi_slices", "case_uncertainty",
           "summarize_uncertainty", "save_reliability_diagram"]

UNCERTAINTY_SUFFIX = "_uncertainty"
PROBABILITIES_SUFFIX = "_probabilities"
UNC_ROIS = ("all", "bbox")
#: per-case keys, in CSV column order (prefixed ``unc_`` there)
UNCERTAINTY_METRICS = ("auroc", "top_dice", "ece", "brier", "ece_dilated_union", "brier_dilated_union",
                       "mean_uncertainty", "error_fraction", "roi_voxels", "dilated_union_voxels")
_MAX_NAMED = 10


@dataclass(frozen=True)
class UncertaintyOptions:
    """Where the maps are and how they are scored (see the module docstring)."""

    uncertainty_dir: str | None = None
    probabilities_dir: str | None = None
    roi: str = "bbox"
    margin_mm: float = 10.0
    n_bins: int = 15
    ece_pooling: str = "pooled"
    top_fraction: float | None = None
    calib_margin_mm: float = 5.0

    def __post_init__(self):
        if self.uncertainty_dir is None and self.probabilities_dir is None:
            raise InputError("uncertainty evaluation needs an uncertainty and / or a probabilities folder")
        if self.roi not in UNC_ROIS:
            raise InputError(f"unknown uncertainty ROI {self.roi!r}; allowed: {', '.join(UNC_ROIS)}")
        if self.ece_pooling not in ECE_POOLING:
            raise InputError(f"unknown ECE pooling {self.ece_pooling!r}; allowed: {', '.join(ECE_POOLING)}")
        if not self.margin_mm >= 0 or self.n_bins < 1 or not self.calib_margin_mm >= 0:
            raise InputError("the ROI and calibration margins must be >= 0 mm and the number of ECE bins >= 1")
        if self.top_fraction is not None and not 0 < self.top_fraction <= 1:
            raise InputError(f"the top-uncertainty fraction must be in (0, 1], got {self.top_fraction}")

    def settings(self) -> dict:
        return {"uncertainty_folder": _abs(self.uncertainty_dir), "probabilities_folder": _abs(self.probabilities_dir),
                "roi": self.roi, "margin_mm": float(self.margin_mm), "ece_bins": int(self.n_bins),
                "ece_pooling": self.ece_pooling, "ece_classes": "foreground (1..C-1), one-vs-rest",
                "calib_margin_mm": float(self.calib_margin_mm),
                "top_dice_k": "error voxels" if self.top_fraction is None else f"{self.top_fraction:g} of ROI",
                "auroc": "rank formula, ties averaged (scipy.stats.rankdata)"}


def _abs(path):
    return None if path is None else os.path.abspath(path)


def drop_auxiliary(preds: dict[str, str], refs: dict[str, str]) -> dict[str, str]:
    """Drop predictor side outputs: ``X_<letters>`` (``X_uncertainty``, ``X_probabilities``, ``X_entropy``, ...)
    when ``X`` is itself a prediction and no reference is named ``X_<letters>``."""
    def aux(case):
        m = re.fullmatch(r"(.+)_[A-Za-z]+", case)
        return case not in refs and m is not None and m.group(1) in preds
    return {c: p for c, p in preds.items() if not aux(c)}


def _shape_spacing_zyx(path: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    shape, geometry = read_header(path)
    return shape, tuple(geometry.spacing)[::-1]


def check_uncertainty_inputs(pairs: dict[str, tuple[str, str]], options: UncertaintyOptions,
                             file_ending: str = ".nii.gz") -> dict[str, tuple[str | None, str | None]]:
    """``{case: (uncertainty file, probabilities file)}``; InputError naming missing files / mismatched shapes."""
    folders = [(options.uncertainty_dir, UNCERTAINTY_SUFFIX, "UNC_DIR"),
               (options.probabilities_dir, PROBABILITIES_SUFFIX, "PROB_DIR")]
    for folder, _, role in folders:
        if folder is not None and not os.path.isdir(folder):
            raise InputError(f"{role} {folder}: no such folder")
    out, missing, errors = {}, [], []
    for case, (ref_file, _) in pairs.items():
        files = []
        for folder, suffix, role in folders:
            path = None if folder is None else os.path.join(folder, case + suffix + file_ending)
            if path is not None and not os.path.isfile(path):
                missing.append(f"{case} ({path})")
                path = None
            files.append(path)
        out[case] = (files[0], files[1])
        if files[0] is None and files[1] is None:
            continue
        ref_shape, ref_spacing = _shape_spacing_zyx(ref_file)
        if files[0] is not None:
            shape, spacing = _shape_spacing_zyx(files[0])
            if shape != ref_shape:
                errors.append(f"{case}: uncertainty shape (z,y,x) {shape} != reference {ref_shape}")
            elif not np.allclose(spacing, ref_spacing, rtol=1e-3):
                errors.append(f"{case}: uncertainty spacing (z,y,x) {spacing} != reference {ref_spacing}")
        if files[1] is not None:
            shape, _ = _shape_spacing_zyx(files[1])
            if len(shape) != len(ref_shape) + 1 or shape[1:] != ref_shape:
                errors.append(f"{case}: probabilities shape (C,z,y,x) {shape} does not match reference (z,y,x) "
                              f"{ref_shape}")
    if missing:
        more = f", ... ({len(missing) - _MAX_NAMED} more)" if len(missing) > _MAX_NAMED else ""
        raise InputError(f"{len(missing)} uncertainty / probability file(s) missing: "
                         + ", ".join(missing[:_MAX_NAMED]) + more)
    if errors:
        more = f"; ... ({len(errors) - _MAX_NAMED} more)" if len(errors) > _MAX_NAMED else ""
        raise InputError(f"shape mismatch in {len(errors)} case(s): " + "; ".join(errors[:_MAX_NAMED]) + more)
    return out


def roi_slices(ref: np.ndarray, pred: np.ndarray, spacing_zyx, roi: str = "bbox",
               margin_mm: float = 10.0) -> tuple[slice, ...]:
    """Box of the ROI: everything (``all``) or the bbox of ``ref > 0 | pred > 0`` grown by ``margin_mm``."""
    full = tuple(slice(0, n) for n in ref.shape)
    fg = (ref > 0) | (pred > 0)
    if roi == "all" or not fg.any():
        return full
    box = []
    for axis, n in enumerate(ref.shape):
        hit = np.flatnonzero(fg.any(axis=tuple(a for a in range(ref.ndim) if a != axis)))
        grow = int(math.ceil(margin_mm / float(spacing_zyx[axis]) - 1e-9))
        box.append(slice(max(0, int(hit[0]) - grow), min(n, int(hit[-1]) + 1 + grow)))
    return tuple(box)


def case_uncertainty(case: str, ref: np.ndarray, pred: np.ndarray, spacing_zyx, unc_file: str | None,
                     prob_file: str | None, options: UncertaintyOptions) -> dict:
    """Per-case uncertainty metrics; ``"_bins"`` holds the case's :class:`ReliabilityBins` (None without \
probabilities)."""
    box = roi_slices(ref, pred, spacing_zyx, options.roi, options.margin_mm)
    r, p = ref[box], pred[box]
    errors = r != p
    out = {m: float("nan") for m in UNCERTAINTY_METRICS}
    out.update(roi_voxels=int(errors.size), error_fraction=float(errors.mean()) if errors.size else float("nan"),
               error_voxels=int(errors.sum()), roi_box_zyx=[[s.start, s.stop] for s in box], _bins=None)
    if unc_file is not None:
        unc, _ = read_image(unc_file, kind="map")
        if unc.shape != ref.shape:
            raise InputError(f"{case}: uncertainty shape (z,y,x) {unc.shape} != reference {ref.shape}")
        if unc.min() < 0:  # entropy, variance and MI are >= 0: a negative map is not an uncertainty map
            raise InputError(
                f"{unc_file}: {int((unc < 0).sum())} negative uncertainty value(s) (min {float(unc.min()):.4g});"
                " uncertainty maps (entropy, variance, mutual information) are >= 0"
            )
        u = unc[box].astype(np.float64)
        if not np.isfinite(u).all():
            raise InputError(f"{case}: {unc_file} holds NaN or infinite values")
        out.update(auroc=auroc(u, errors), top_dice=top_uncertainty_dice(u, errors, options.top_fraction),
                   mean_uncertainty=float(u.mean()))
    if prob_file is not None:
        probs, _ = read_probabilities(prob_file)
        if probs.shape[1:] != ref.shape:
            raise InputError(f"{case}: probabilities shape (C,z,y,x) {probs.shape} does not match reference "
                             f"(z,y,x) {ref.shape}")
        pb = probs[(slice(None),) + box]
        if not np.isfinite(pb).all() or pb.min() < -1e-3 or pb.max() > 1 + 1e-3:
            raise InputError(f"{case}: {prob_file} holds values outside [0, 1]; are these probabilities?")
        top = int(max(r.max(initial=0), p.max(initial=0)))
        if top >= probs.shape[0]:
            raise InputError(f"{case}: label {top} present but {prob_file} has only {probs.shape[0]} classes")
        ece, bins = expected_calibration_error(pb, r, options.n_bins, pooling=options.ece_pooling)
        out.update(ece=ece, brier=brier_score(pb, r), _bins=bins)
        union = dilated_union(ref, pred, spacing_zyx, options.calib_margin_mm)
        per_class = {c: expected_calibration_error(probs, ref, options.n_bins, [c], mask=union)[1]
                     for c in range(1, probs.shape[0])}
        pooled_union = sum(per_class.values(), ReliabilityBins.empty(options.n_bins))
        eces = [b.ece for b in per_class.values() if b.count.sum()]
        out.update(ece_dilated_union=(pooled_union.ece if options.ece_pooling == "pooled"
                                      else float(np.mean(eces)) if eces else float("nan")),
                   brier_dilated_union=brier_score(probs, ref, mask=union), dilated_union_voxels=int(union.sum()),
                   ece_dilated_union_per_class={str(c): b.ece for c, b in per_class.items()},
                   _bins_union=pooled_union, _bins_union_class=per_class)
    return out


def dilated_union(ref: np.ndarray, pred: np.ndarray, spacing_zyx, margin_mm: float) -> np.ndarray:
    """``dist(x, ref > 0 | pred > 0) <= margin_mm`` (Euclidean, in mm); empty when both are empty."""
    from scipy import ndimage

    fg = (ref > 0) | (pred > 0)
    if not fg.any():
        return fg
    return ndimage.distance_transform_edt(~fg, sampling=[float(s) for s in spacing_zyx]) <= float(margin_mm) + 1e-9


def summarize_uncertainty(records: list[dict], options: UncertaintyOptions) -> dict:
    """Pop ``record["uncertainty"]`` from every record -> ``{"settings", "per_case", "mean", "pooled"}``."""
    per_case, pooled, union, union_class = {}, None, None, {}
    for record in records:
        values = record.pop("uncertainty")
        bins = values.pop("_bins")
        if bins is not None:
            pooled = bins if pooled is None else pooled + bins
        b = values.pop("_bins_union", None)
        if b is not None:
            union = b if union is None else union + b
        for c, bc in values.pop("_bins_union_class", {}).items():
            union_class[c] = union_class[c] + bc if c in union_class else bc
        per_case[record["case"]] = values
    mean = {}
    for m in UNCERTAINTY_METRICS:
        arr = np.array([v[m] for v in per_case.values()], dtype=float)
        mean[m] = float(np.nanmean(arr)) if arr.size and not np.isnan(arr).all() else float("nan")
    nan = float("nan")
    roi = f"ROI {options.roi}" + (f" +{options.margin_mm:g} mm" if options.roi == "bbox" else "")
    u = f"union of reference and prediction dilated by {options.calib_margin_mm:g} mm"
    calibration = {
        "ece_roi_mean_over_cases": mean["ece"],
        "ece_roi_pooled_over_cases": nan if pooled is None else pooled.ece,
        "ece_dilated_union_mean_over_cases": mean["ece_dilated_union"],
        "ece_dilated_union_pooled_over_cases": nan if union is None else union.ece,
        "ece_dilated_union_pooled_over_cases_per_class": {str(c): b.ece for c, b in sorted(union_class.items())},
        "brier_roi_mean_over_cases": mean["brier"],
        "brier_dilated_union_mean_over_cases": mean["brier_dilated_union"],
        "reliability_diagram": "ece_dilated_union_pooled_over_cases",
        "definitions": {
            "ece": f"classwise one-vs-rest over the foreground classes, {options.n_bins} equal bins, "
                   f"{options.ece_pooling} over classes",
            "roi": roi, "dilated_union": u,
            "mean_over_cases": "NaN-aware mean of the per-case values",
            "pooled_over_cases": "one histogram of every (p, outcome) pair of all cases",
            "brier": "multi-class, mean over voxels of sum_c (p_c - [label = c])^2",
            "per_class": "one-vs-rest ECE of that class alone, pooled over cases"}}
    return {"settings": options.settings(), "per_case": per_case, "mean": mean, "calibration": calibration,
            "pooled": {"ece": nan if pooled is None else pooled.ece,
                       "bins": None if pooled is None else pooled.as_dict(),
                       "bins_dilated_union": None if union is None else union.as_dict()}}


def save_reliability_diagram(bins: dict | ReliabilityBins, path: str | os.PathLike, title: str | None = None,
                             ece_name: str = "ECE") -> str:
    """Reliability diagram PNG: accuracy per confidence bin (bars) vs the diagonal, and a log-count histogram.

    ``bins``: :class:`ReliabilityBins` or its ``as_dict()`` (as stored under ``uncertainty.pooled.bins``). The
    title's ECE is computed from exactly these bins; ``ece_name`` says which figure that is (the summary key).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = bins.as_dict() if isinstance(bins, ReliabilityBins) else bins
    edges = np.asarray(d["edges"], dtype=float)
    count = np.asarray(d["count"], dtype=float)
    conf = np.array([np.nan if v is None else v for v in d["mean_confidence"]], dtype=float)
    acc = np.array([np.nan if v is None else v for v in d["accuracy"]], dtype=float)
    width, left = np.diff(edges), edges[:-1]
    n = count.sum()
    ece = float(np.nansum(count * np.abs(acc - conf)) / n) if n else float("nan")
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        filled = count > 0
        ax.bar(left[filled], acc[filled], width=width[filled], align="edge", color="tab:blue",
               edgecolor="black", linewidth=0.6, label="accuracy (fraction positive)")
        ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled], width=width[filled], align="edge",
               color="tab:red", alpha=0.3, edgecolor="tab:red", hatch="//", label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
               title=(title + "\n" if title else "") + f"{ece_name} = {ece:.4f} (these bars, {int(n)} voxel-class "
                                                        "pairs)")
        ax.legend(loc="upper left", fontsize=8)
        axh.bar(left, np.maximum(count, 0), width=width, align="edge", color="grey", edgecolor="black",
                linewidth=0.6)
        if count.max(initial=0) > 0:
            from matplotlib.ticker import NullFormatter

            axh.set_yscale("log")
            axh.set_ylim(0.7, count.max() * 2)
            axh.yaxis.set_minor_formatter(NullFormatter())
        axh.set(xlabel="confidence (foreground class probability)", ylabel="count")
        fig.tight_layout()
        path = os.fspath(path)
        save_figure(fig, path, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
