"""``OUT/confidence.csv`` of ``nnext predict``: structure- and lesion-level confidence, one file per folder.

Rows and formulas: :mod:`nnunet_ext.core.confidence` (documentation/explanation/confidence.md). The table is
rewritten atomically after every case (thread-safe under ``-nps``), sorted by case, label and component, so a
crash leaves the rows of the finished cases. A resumed run keeps the rows of the cases it skips; a skipped case
without rows (e.g. a folder written before this file existed) gets them recomputed from its segmentation and
``CASE_uncertainty`` on disk (no vote counts there: ``confidence_source`` = uncertainty), and says so.
"""
from __future__ import annotations

import csv
import io
import math
import os
import threading

import numpy as np

from nnunet_ext.core.confidence import COLUMNS, confidence_rows, uncertainty_max
from nnunet_ext.errors import InputError

FILE_NAME = "confidence.csv"


def foreground_labels(dataset_json: dict) -> tuple[list[int], bool]:
    """(label values a segmentation can hold other than 0, whether the model is region-based)."""
    labels = dataset_json.get("labels", {})
    regions = any(isinstance(v, (list, tuple)) for v in labels.values())
    if regions:
        order = dataset_json.get("regions_class_order") or []
        return sorted({int(v) for v in order if int(v) != 0}), True
    return sorted({int(v) for k, v in labels.items() if k != "ignore" and int(v) != 0}), False


def case_rows(case_id: str, result, map_name: "str | None", dataset_json: dict) -> list[dict]:
    """Rows of one predicted case (:class:`~nnunet_ext.predictors.method.CaseResult`)."""
    labels, regions = foreground_labels(dataset_json)
    n_classes = len(labels) if regions else len(labels) + 1
    u = None if map_name is None else result.maps.get(map_name)
    spacing = result.geometry.spacing
    probs = None if regions or result.probabilities is None else np.asarray(result.probabilities)
    return confidence_rows(case_id, np.asarray(result.segmentation), u, spacing, labels, votes=result.votes,
                           n_members=result.n_members, u_max=uncertainty_max(map_name, n_classes, regions),
                           map_name=map_name, probabilities=probs)


class ConfidenceTable:
    """The rows of ``OUT/confidence.csv`` by case; :meth:`set_case` replaces a case's rows and rewrites the file."""

    def __init__(self, out: "str | os.PathLike"):
        self.path = os.path.join(os.fspath(out), FILE_NAME)
        self.rows: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        if os.path.isfile(self.path):
            self.rows = _read(self.path)

    def set_case(self, case_id: str, rows: list[dict]) -> None:
        with self._lock:
            self.rows[case_id] = rows
            self._write()

    def _write(self) -> None:
        from nnunet_ext.io.imageio import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for case in sorted(self.rows):
            for row in sorted(self.rows[case], key=lambda r: (int(r["label"]), int(r["component"]))):
                w.writerow({k: _cell(row.get(k)) for k in COLUMNS})
        atomic_write_text(self.path, buf.getvalue())


def _cell(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def _read(path: str) -> dict[str, list[dict]]:
    """Rows of an existing confidence.csv by case; InputError naming the file if its columns are not ours."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("case", "label", "component", "confidence") if c not in (reader.fieldnames or ())]
        if missing:
            raise InputError(f"{path}: not a confidence table (columns {', '.join(missing)} missing); move it away")
        out: dict[str, list[dict]] = {}
        for row in reader:
            out.setdefault(row["case"], []).append(row)
    return out


def read_confidence_csv(path: str) -> list[dict]:
    """Every row of a confidence.csv with numbers parsed (empty cells -> NaN); InputError naming the file."""
    rows = []
    try:
        by_case = _read(path)
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable confidence table ({e})") from e
    for case_rows_ in by_case.values():
        for row in case_rows_:
            try:
                parsed = dict(row, label=int(row["label"]), component=int(row["component"]),
                              confidence=float(row["confidence"]) if row["confidence"] != "" else float("nan"))
            except (TypeError, ValueError) as e:
                raise InputError(f"{path}: case {row.get('case')}: label / component / confidence not a number "
                                 f"({e})") from None
            rows.append(parsed)
    return rows


def rows_from_files(case_id: str, seg_file: str, unc_file: "str | None", map_name: "str | None",
                    dataset_json: dict) -> list[dict]:
    """Rows of an already predicted case from its files on disk (a resumed run; no vote counts)."""
    from nnunet_ext.io.imageio import read_image

    seg, geometry = read_image(seg_file, kind="label")
    u = read_image(unc_file, kind="map")[0] if unc_file and os.path.isfile(unc_file) else None
    labels, regions = foreground_labels(dataset_json)
    n_classes = len(labels) if regions else len(labels) + 1
    return confidence_rows(case_id, seg, u, geometry.spacing, labels,
                           u_max=uncertainty_max(map_name, n_classes, regions), map_name=map_name if u is not None
                           else None)
