"""Writing and reading evaluation summaries (``summary.json`` + ``summary.csv``), atomically.

NaN (undefined metric, e.g. sensitivity with an empty reference) is written as JSON ``null`` (strict JSON)
and read back as ``float('nan')``; in the CSV it is written as ``nan``. With an ``"uncertainty"`` section the
CSV gains the case-level columns ``unc_auroc``, ``unc_top_dice``, ... (same value on every label row of a case).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.metrics import METRIC_NAMES
from nnunet_ext.evaluation.uncertainty_eval import UNCERTAINTY_METRICS
from nnunet_ext.io.imageio import atomic_write_text

__all__ = ["json_safe", "atomic_write_text", "write_summary", "csv_path_for", "load_summary"]


def json_safe(obj):
    """Recursively turn numpy scalars / arrays into Python values and non-finite floats into None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _nan_from_json(obj):
    if isinstance(obj, dict):
        return {k: _nan_from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_from_json(v) for v in obj]
    return float("nan") if obj is None else obj


def csv_path_for(json_path: str | os.PathLike) -> str:
    """``out/summary.json -> out/summary.csv``."""
    root, ext = os.path.splitext(os.fspath(json_path))
    return (root if ext.lower() == ".json" else os.fspath(json_path)) + ".csv"


def _csv_text(summary: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    unc = (summary.get("uncertainty") or {}).get("per_case")
    extra = [f"unc_{m}" for m in UNCERTAINTY_METRICS] if unc is not None else []
    writer.writerow(["case", "label", "name", *METRIC_NAMES, *extra])
    labels = summary.get("labels", {})
    for record in summary["metric_per_case"]:
        case_unc = [_csv_value((unc.get(record["case"]) or {}).get(m)) for m in UNCERTAINTY_METRICS] if extra else []
        for key, metrics in record["metrics"].items():
            name = (labels.get(key) or {}).get("name") or ""
            writer.writerow([record["case"], key, name, *(_csv_value(metrics.get(m)) for m in METRIC_NAMES),
                             *case_unc])
    return buf.getvalue()


def _csv_value(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    return repr(float(v)) if isinstance(v, float) else str(v)


def write_summary(summary: dict, json_path: str | os.PathLike) -> tuple[str, str]:
    """Write ``summary`` to ``json_path`` and the per-case table to the ``.csv`` beside it; return both paths."""
    json_path = os.fspath(json_path)
    csv_path = csv_path_for(json_path)
    json_text, csv_text = json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n", _csv_text(summary)
    existed = os.path.exists(json_path)
    atomic_write_text(json_path, json_text)
    try:
        atomic_write_text(csv_path, csv_text)
    except BaseException:  # no summary.json without its CSV (unless one was there before)
        if not existed and os.path.isfile(json_path):
            os.remove(json_path)
        raise
    return json_path, csv_path


def load_summary(path: str | os.PathLike) -> dict:
    """Read a summary written by :func:`write_summary` (nulls back to NaN); InputError if it is not one."""
    from nnunet_ext.io.integrity import load_json_checked

    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        raise InputError(f"{path}: not a regular file (a device or pipe?); expected a summary.json of nnext evaluate")
    summary = load_json_checked(path, what="evaluation summary")
    cases = summary.get("metric_per_case")
    if not isinstance(cases, list) or not all(isinstance(c, dict) and "case" in c and isinstance(c.get("metrics"), dict)
                                              for c in cases):
        raise InputError(f"{path}: not an evaluation summary (needs 'metric_per_case' entries with 'case' and "
                         f"'metrics'; write one with 'nnext evaluate')")
    seen = {}
    for n, record in enumerate(cases):  # a case twice: which entry counts would be a silent choice
        if record["case"] in seen:
            raise InputError(f"{path}: case {record['case']!r} appears twice in metric_per_case (entries "
                             f"{seen[record['case']]} and {n}); one entry per case")
        seen[record["case"]] = n
    for record in cases:
        record["metrics"] = _nan_from_json(record["metrics"])
        for key, metrics in record["metrics"].items():
            bad = [m for m, v in (metrics.items() if isinstance(metrics, dict) else [("?", metrics)])
                   if not isinstance(v, (int, float)) or isinstance(v, bool)]
            if bad:
                raise InputError(
                    f"{path}: case {record['case']!r}, label {key!r}: non-numeric value(s) for "
                    f"{', '.join(bad)} (e.g. {metrics.get(bad[0]) if isinstance(metrics, dict) else metrics!r})"
                )
    for key in ("mean", "median", "foreground_mean"):
        if isinstance(summary.get(key), dict):
            summary[key] = _nan_from_json(summary[key])
    if isinstance(summary.get("uncertainty"), dict):
        unc = summary["uncertainty"]
        for key in ("per_case", "mean"):
            if isinstance(unc.get(key), dict):
                unc[key] = _nan_from_json(unc[key])
        if isinstance(unc.get("pooled"), dict) and unc["pooled"].get("ece") is None:
            unc["pooled"]["ece"] = float("nan")
    return summary
