"""Say in words what is empty or undefined in an evaluation, instead of printing ``nan``.

* :func:`empty_prediction_notes`: one line per case and label / region that the reference holds and the
  prediction does not (``chest_test_000: no tumor predicted``): its Dice is 0 and its HD95 the penalty, which a
  mean hides.
* :func:`metric_text`: ``"ECE 0.031"`` or ``"ECE: not defined, no foreground"``: a metric that is NaN is named
  with the reason it is undefined (:data:`REASONS`).
"""
from __future__ import annotations

import math

REASONS = {
    "auroc": "no voxel errors in the ROI (or only errors): nothing to rank",
    "top_dice": "no voxel errors in the ROI",
    "ece": "no foreground",
    "brier": "no foreground",
    "mean_uncertainty": "no uncertainty maps",
}
LABELS = {"auroc": "AUROC", "top_dice": "top-uncertainty Dice", "ece": "ECE", "brier": "Brier",
          "mean_uncertainty": "mean uncertainty"}


def undefined(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def metric_text(key: str, value, reason: str | None = None) -> str:
    """``"ECE 0.0312"`` or ``"ECE: not defined, no foreground"``."""
    name = LABELS.get(key, key)
    if undefined(value):
        return f"{name}: not defined, {reason or REASONS.get(key, 'no voxels to score')}"
    return f"{name} {value:.4g}"


def label_name(summary: dict, key: str) -> str:
    info = summary.get("labels", {}).get(key, {})
    return info.get("name") or (f"region {key}" if "," in key else f"label {key}")


def empty_prediction_notes(summary: dict) -> list[str]:
    """``CASE: no NAME predicted`` for every case and label / region in its reference but not in its prediction."""
    from nnunet_ext.evaluation.metrics import parse_label_key

    notes = []
    for record in summary.get("metric_per_case", []):
        in_ref, in_pred = set(record["labels_in_reference"]), set(record["labels_in_prediction"])
        for key in record["metrics"]:
            values = parse_label_key(key)
            values = set(values if isinstance(values, tuple) else (values,))
            if values & in_ref and not values & in_pred:
                notes.append(f"{record['case']}: no {label_name(summary, key)} predicted "
                             f"(Dice 0, HD95 = the penalty)")
    return notes
