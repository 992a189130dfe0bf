"""Evaluate a folder of predicted segmentations against a folder of references (``nnext evaluate``).

Cases are matched by file name minus ``file_ending``. Before any metric is computed, every pair's header is
checked: a case present on one side only, a differing shape or a differing spacing (relative tolerance 1e-3)
is an :class:`InputError` naming the cases and both values (metrics would be wrong or meaningless). A
differing origin or direction only gives a warning (``GeometryWarning``, also listed under ``"warnings"`` in
the summary): metrics are computed in voxel space, so they stay well defined, but the pairing may be wrong.

Summary layout (see :func:`evaluate_folders`)::

    {"settings": {"reference_folder", "prediction_folder", "file_ending", "tau_mm", "penalty_mm",
                  "boundary_width_mm", "hd_percentile", "percentile_method", "num_cases"},
     "labels": {"1": {"name": ..., "values": [1], "region": false}, ...},       # "1,2,3" for a region
     "metric_per_case": [{"case": "case_001", "reference_file": ..., "prediction_file": ...,
                          "shape_zyx": [...], "spacing_zyx": [...], "labels_in_reference": [...],
                          "metrics": {"1": {"dice": ..., ...}}}],              # keys: metrics.METRIC_NAMES
     "mean": {"1": {"dice": ..., ...}}, "median": {...}, "foreground_mean": {"dice": ..., ...},
     "warnings": [...]}

``mean`` / ``median`` are NaN-aware (``nanmean`` / ``nanmedian`` over cases; NaN only if every case is NaN);
``foreground_mean`` is the NaN-aware mean over the labels other than 0 of the per-label means.

With ``uncertainty=UncertaintyOptions(...)`` the summary also holds ``"uncertainty": {"settings", "per_case":
{case: {...}}, "mean": {...}, "pooled": {"ece", "bins"}}`` (:mod:`.uncertainty_eval`). Predictor side outputs
``CASE_uncertainty``, ``CASE_probabilities``, ``CASE_entropy``, ... (``CASE_<letters>`` beside a ``CASE``
prediction, with no reference of that name) in PRED_DIR are skipped, not taken for cases.
"""
from __future__ import annotations

import multiprocessing
import os
import warnings
from typing import Iterable, Sequence

import numpy as np

from nnunet_ext.core.surface import DEFAULT_PENALTY_MM
from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.metrics import METRIC_NAMES, compute_metrics, label_key, mask_of, normalize_labels
from nnunet_ext.evaluation.summary_io import write_summary
from nnunet_ext.evaluation.uncertainty_eval import (
    UncertaintyOptions,
    case_uncertainty,
    check_uncertainty_inputs,
    drop_auxiliary,
    summarize_uncertainty,
)
from nnunet_ext.io.imageio import read_header, read_image
from nnunet_ext.io.label_check import check_label_values, unknown_to_background, unknown_values

__all__ = ["GeometryWarning", "UnknownLabelWarning", "evaluate_folders", "evaluate_case", "find_cases", "aggregate"]

_MAX_NAMED = 10  # cases named in one error message


class GeometryWarning(UserWarning):
    """Reference and prediction of a case differ in origin or direction."""


class UnknownLabelWarning(UserWarning):
    """A label value the dataset does not declare was scored as background (``--ignore-unknown-labels``)."""


_UNKNOWN_HINT = ("; fix the file or dataset.json, or pass --ignore-unknown-labels to score them as background")


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMED])
    return shown + (f", ... ({len(names) - _MAX_NAMED} more)" if len(names) > _MAX_NAMED else "")


def find_cases(folder: str | os.PathLike, file_ending: str = ".nii.gz", role: str = "folder") -> dict[str, str]:
    """``{case_id: path}`` of the files in ``folder`` ending in ``file_ending`` (hidden files skipped)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputError(f"{role} {folder}: no such folder")
    return {name[: -len(file_ending)]: os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith(file_ending) and not name.startswith(".") and len(name) > len(file_ending)
            and os.path.isfile(os.path.join(folder, name))}


def _fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _check_pairs(pairs: dict[str, tuple[str, str]]) -> list[str]:
    """Raise InputError for shape / spacing mismatches (all listed); return origin / direction warnings."""
    errors, notes = [], []
    for case, (ref_file, pred_file) in pairs.items():
        (shape_r, g_r), (shape_p, g_p) = read_header(ref_file), read_header(pred_file)
        size_r, size_p = shape_r[::-1], shape_p[::-1]
        if size_r != size_p:
            errors.append(f"{case}: size (x,y,z) differs: REF {_fmt(size_r)} vs PRED {_fmt(size_p)}")
        elif not np.allclose(g_r.spacing, g_p.spacing, rtol=1e-3, atol=0):
            errors.append(f"{case}: spacing (x,y,z) differs: REF {_fmt(g_r.spacing)} vs PRED {_fmt(g_p.spacing)}")
        else:
            if not np.allclose(g_r.origin, g_p.origin, rtol=0, atol=1e-3):
                notes.append(f"{case}: origin differs: REF {_fmt(g_r.origin)} vs PRED {_fmt(g_p.origin)}")
            if g_r.direction and g_p.direction and not np.allclose(g_r.direction, g_p.direction, atol=1e-4):
                notes.append(f"{case}: direction differs: REF {_fmt(g_r.direction)} vs PRED {_fmt(g_p.direction)}")
    if errors:
        more = f"; ... ({len(errors) - _MAX_NAMED} more)" if len(errors) > _MAX_NAMED else ""
        raise InputError(f"geometry mismatch in {len(errors)} case(s): " + "; ".join(errors[:_MAX_NAMED]) + more)
    return notes


def _labels_present(seg: np.ndarray, case: str) -> list[int]:
    """Non-zero labels of a segmentation read with ``kind="label"`` (integer-valued, >= 0: the integrity layer
    names the offending file, reference or prediction)."""
    return [int(v) for v in np.unique(seg) if v > 0]


def _known_values(seg: np.ndarray, path: str, declared: set[int] | None, source: str, ignore_unknown: bool,
                  notes: list[str]) -> np.ndarray:
    """``seg`` with its label values checked against ``declared`` (:mod:`nnunet_ext.io.label_check`): unknown
    values refused naming the file, or with ``ignore_unknown`` set to background and noted."""
    if declared is None:
        return seg
    bad = unknown_values(seg, declared)
    if not bad:
        return seg
    if not ignore_unknown:
        check_label_values(seg, path, declared, source, _UNKNOWN_HINT)
    notes.append(f"{path}: label value(s) {bad} ({int(np.isin(seg, bad).sum())} voxel(s)) not declared in {source}: "
                 "scored as background (--ignore-unknown-labels)")
    return unknown_to_background(seg, bad)


def evaluate_case(case: str, ref_file: str, pred_file: str, labels_or_regions: list | None, tau: float = 2.0,
                  penalty: float = DEFAULT_PENALTY_MM, boundary_width: float | None = None,
                  uncertainty: tuple | None = None, declared: set[int] | None = None,
                  label_source: str = "dataset.json", ignore_unknown: bool = False) -> dict:
    """Metrics of one case for every label / region; ``None`` = every non-zero label in reference or prediction.

    ``uncertainty``: ``(uncertainty file, probabilities file, UncertaintyOptions)`` adds ``record["uncertainty"]``.
    ``declared``: the label values the dataset declares (``label_source`` says where); other values are refused,
    or with ``ignore_unknown`` scored as background (``record["label_notes"]`` says so).
    """
    notes: list[str] = []
    ref, g_ref = read_image(ref_file, kind="label")
    ref = _known_values(ref, ref_file, declared, label_source, ignore_unknown, notes)
    pred, _ = read_image(pred_file, kind="label")
    pred = _known_values(pred, pred_file, declared, label_source, ignore_unknown, notes)
    if ref.shape != pred.shape:  # guards against files changed since the header check
        raise InputError(f"{case}: shape (z,y,x) differs: REF {ref.shape} vs PRED {pred.shape}")
    spacing_zyx = tuple(float(s) for s in g_ref.spacing[::-1])
    labels_ref = _labels_present(ref, case)
    todo = labels_or_regions
    if todo is None:
        todo = sorted(set(labels_ref) | set(_labels_present(pred, case)))
    metrics = {label_key(lr): compute_metrics(mask_of(ref, lr), mask_of(pred, lr), spacing_zyx, tau=tau,
                                              penalty=penalty, boundary_width=boundary_width) for lr in todo}
    absent = [label_key(lr) for lr in todo if not mask_of(ref, lr).any() and not mask_of(pred, lr).any()]
    record = {"case": case, "reference_file": os.path.abspath(ref_file),
              "prediction_file": os.path.abspath(pred_file), "shape_zyx": list(ref.shape),
              "spacing_zyx": list(spacing_zyx), "labels_in_reference": labels_ref,
              "labels_in_prediction": _labels_present(pred, case), "absent": absent, "metrics": metrics}
    if notes:
        record["label_notes"] = notes
    if uncertainty is not None:
        record["uncertainty"] = case_uncertainty(case, ref, pred, spacing_zyx, *uncertainty)
    return record


def _absent_in(record: dict, key: str) -> bool:
    """Label ``key`` (a single label, auto-detected mode) in neither the case's reference nor its prediction."""
    from nnunet_ext.evaluation.metrics import parse_label_key

    values = parse_label_key(key)
    values = set(values if isinstance(values, tuple) else (values,))
    return not (values & set(record["labels_in_reference"])) and not (values & set(record["labels_in_prediction"]))


def _evaluate_case_star(args: tuple) -> dict:
    *positional, keywords = args
    return evaluate_case(*positional, **keywords)


def _quiet_stat(fn, values: list[float]) -> float:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or np.all(np.isnan(arr)):
        return float("nan")
    return float(fn(arr))


def aggregate(records: list[dict], keys: list[str]) -> tuple[dict, dict, dict]:
    """NaN-aware per-label ``mean`` and ``median`` over cases, and ``foreground_mean`` over labels != "0"."""
    mean, median = {}, {}
    for key in keys:
        mean[key], median[key] = {}, {}
        for m in METRIC_NAMES:
            values = [r["metrics"][key][m] for r in records]
            mean[key][m] = _quiet_stat(np.nanmean, values)
            median[key][m] = _quiet_stat(np.nanmedian, values)
    fg = [k for k in keys if k != "0"]
    foreground_mean = {m: _quiet_stat(np.nanmean, [mean[k][m] for k in fg]) for m in METRIC_NAMES}
    return mean, median, foreground_mean


def evaluate_folders(ref_dir: str | os.PathLike, pred_dir: str | os.PathLike,
                     labels_or_regions: Sequence | None = None, tau: float = 2.0,
                     penalty: float = DEFAULT_PENALTY_MM, num_processes: int = 1, *,
                     boundary_width: float | None = None, file_ending: str = ".nii.gz",
                     output_file: str | os.PathLike | None = None, label_names: dict[str, str] | None = None,
                     progress: bool = True, uncertainty: UncertaintyOptions | None = None,
                     declared_labels: Iterable[int] | None = None, label_source: str = "dataset.json",
                     ignore_unknown_labels: bool = False) -> dict:
    """Evaluate every case of ``pred_dir`` against ``ref_dir``; return (and optionally write) the summary.

    ``labels_or_regions``: ints (labels) and / or tuples of ints (regions); ``None`` = every non-zero label
    found in the references. ``output_file``: ``summary.json`` path; ``summary.csv`` is written beside it.
    Raises :class:`InputError` for missing folders, unmatched cases, no cases and shape / spacing mismatches.
    ``uncertainty``: also score the uncertainty maps / probabilities (:mod:`.uncertainty_eval`).

    Label values (:mod:`nnunet_ext.io.label_check`): with ``declared_labels`` (a dataset.json's values, named by
    ``label_source``) every reference and prediction may hold only those; without, a prediction may hold only
    values found in some reference or asked for in ``labels_or_regions``. Other values are an InputError naming
    the file and the values, or with ``ignore_unknown_labels`` scored as background with a warning per file
    (also listed under ``"warnings"``).
    """
    if tau < 0 or penalty < 0 or (boundary_width is not None and boundary_width < 0):
        raise InputError("tau, penalty and boundary width must be >= 0")
    ref_dir, pred_dir = os.fspath(ref_dir), os.fspath(pred_dir)
    refs = find_cases(ref_dir, file_ending, "REF_DIR")
    preds = drop_auxiliary(find_cases(pred_dir, file_ending, "PRED_DIR"), refs)
    if not refs:
        raise InputError(f"REF_DIR {ref_dir}: no '*{file_ending}' files (see --file-ending)")
    if not preds:
        raise InputError(f"PRED_DIR {pred_dir}: no '*{file_ending}' files (see --file-ending)")
    problems = []
    missing_pred = sorted(set(refs) - set(preds))
    missing_ref = sorted(set(preds) - set(refs))
    if missing_pred:
        problems.append(f"{len(missing_pred)} case(s) missing in PRED_DIR {pred_dir}: {_name_list(missing_pred)}")
    if missing_ref:
        problems.append(f"{len(missing_ref)} case(s) missing in REF_DIR {ref_dir}: {_name_list(missing_ref)}")
    if problems:
        raise InputError("; ".join(problems))
    chosen = None if labels_or_regions is None else normalize_labels(labels_or_regions)
    pairs = {case: (refs[case], preds[case]) for case in sorted(refs)}
    notes = _check_pairs(pairs)
    for note in notes:
        warnings.warn(note, GeometryWarning, stacklevel=2)

    aux = {} if uncertainty is None else check_uncertainty_inputs(pairs, uncertainty, file_ending)
    declared = None if declared_labels is None else {int(v) for v in declared_labels}
    keywords = {"declared": declared, "label_source": label_source, "ignore_unknown": ignore_unknown_labels}
    tasks = [(case, r, p, chosen, tau, penalty, boundary_width,
              None if uncertainty is None else (*aux[case], uncertainty), keywords) for case, (r, p) in pairs.items()]
    records = _run(tasks, num_processes, progress)
    if declared is None:  # no dataset.json: the references and the asked-for labels are what is known
        records = _check_undeclared(records, tasks, chosen, ignore_unknown_labels, num_processes, progress)
    for record in records:
        for note in record.get("label_notes", []):
            notes.append(note)
            warnings.warn(note, UnknownLabelWarning, stacklevel=2)

    if chosen is None:
        found = sorted({v for r in records for v in r["labels_in_reference"]})
        if not found:
            raise InputError(f"REF_DIR {ref_dir}: the references hold no non-zero label; pass -l or --regions")
        chosen = found
        for record in records:  # labels absent from this case on both sides: the both-empty values
            shape, spacing = record["shape_zyx"], record["spacing_zyx"]
            empty = np.zeros(shape, dtype=bool)
            record["metrics"] = {label_key(lr): record["metrics"].get(label_key(lr)) or compute_metrics(
                empty, empty, spacing, tau=tau, penalty=penalty, boundary_width=boundary_width) for lr in chosen}
    keys = [label_key(lr) for lr in chosen]
    for record in records:
        record["absent"] = [k for k in keys if k in record.get("absent", []) or k not in record["metrics"]
                            or (labels_or_regions is None and _absent_in(record, k))]
    nowhere = [k for k in keys if all(k in r["absent"] for r in records)]
    if nowhere:
        found = sorted({v for r in records for v in r["labels_in_reference"] + r["labels_in_prediction"]})
        raise InputError(f"label / region {', '.join(nowhere)} is absent from every reference and every prediction "
                         f"(labels present: {', '.join(map(str, found)) or 'none'}); its Dice would be the "
                         "meaningless both-empty value 1: check -l / --regions")
    absent_cases = {k: sum(k in r["absent"] for r in records) for k in keys}
    absent_cases = {k: n for k, n in absent_cases.items() if n}
    names = label_names or {}
    mean, median, foreground_mean = aggregate(records, keys)
    summary = {
        "settings": {"reference_folder": os.path.abspath(ref_dir), "prediction_folder": os.path.abspath(pred_dir),
                     "file_ending": file_ending, "tau_mm": float(tau), "penalty_mm": float(penalty),
                     "boundary_width_mm": float(tau if boundary_width is None else boundary_width),
                     "hd_percentile": 95, "percentile_method": "numpy.percentile, method='linear'",
                     "num_cases": len(records)},
        "labels": {label_key(lr): {"name": names.get(label_key(lr)),
                                   "values": list(lr) if isinstance(lr, tuple) else [lr],
                                   "region": isinstance(lr, tuple)} for lr in chosen},
        "metric_per_case": records, "mean": mean, "median": median, "foreground_mean": foreground_mean,
        "absent_cases": absent_cases, "warnings": notes,
    }
    if uncertainty is not None:
        summary["uncertainty"] = summarize_uncertainty(records, uncertainty)
    if output_file is not None:
        write_summary(summary, output_file)
    return summary


def _check_undeclared(records: list[dict], tasks: list[tuple], chosen, ignore_unknown: bool, num_processes: int,
                      progress: bool) -> list[dict]:
    """Without a dataset.json: prediction values found in no reference and not asked for (-l / --regions) are
    refused naming the files, or with ``ignore_unknown`` those cases are scored again with them as background."""
    known = {0} | {v for r in records for v in r["labels_in_reference"]}
    for lr in chosen or ():
        known.update(lr if isinstance(lr, tuple) else (lr,))
    bad = {r["case"]: sorted(set(r["labels_in_prediction"]) - known) for r in records}
    bad = {c: v for c, v in bad.items() if v}
    if not bad:
        return records
    if not ignore_unknown:
        first = next(r for r in records if r["case"] in bad)
        more = f"; {len(bad) - 1} more case(s)" if len(bad) > 1 else ""
        raise InputError(f"{first['prediction_file']}: label value(s) {bad[first['case']]} appear in no reference "
                         f"and are not asked for with -l / --regions (labels known: {sorted(known)}){more}"
                         f"{_UNKNOWN_HINT.replace('dataset.json', 'the dataset.json (-djfile)')}")
    redo = [(*t[:-1], {**t[-1], "declared": known, "label_source": "the references or -l / --regions",
                       "ignore_unknown": True}) for t in tasks if t[0] in bad]
    again = {r["case"]: r for r in _run(redo, num_processes, progress)}
    return [again.get(r["case"], r) for r in records]


def _run(tasks: list[tuple], num_processes: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="evaluate", unit="case", disable=None if progress else True)
    try:
        n = max(1, min(int(num_processes), len(tasks)))
        if n == 1:
            records = []
            for t in tasks:
                records.append(_evaluate_case_star(t))
                bar.update()
            return records
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            records = []
            for record in pool.imap(_evaluate_case_star, tasks):
                records.append(record)
                bar.update()
            return records
    finally:
        bar.close()
