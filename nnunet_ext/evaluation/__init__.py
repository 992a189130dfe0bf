"""Evaluation of segmentations and uncertainty maps (``nnext evaluate``, ``nnext compare``).

Public API (imported lazily so that ``nnext`` start-up stays light):

* :func:`evaluate_folders` (:mod:`.evaluate`): folder of predictions vs folder of references -> summary dict.
* :func:`compute_metrics` (:mod:`.metrics`): all metrics of one reference / prediction mask pair.
* :func:`load_summary`, :func:`write_summary` (:mod:`.summary_io`); :func:`compare_summaries` (:mod:`.compare_cli`).
"""
from __future__ import annotations

from nnunet_ext._lazy import lazy_exports

_LAZY = {
    "evaluate_folders": "nnunet_ext.evaluation.evaluate",
    "evaluate_case": "nnunet_ext.evaluation.evaluate",
    "compute_metrics": "nnunet_ext.evaluation.metrics",
    "labels_from_dataset_json": "nnunet_ext.evaluation.metrics",
    "METRIC_NAMES": "nnunet_ext.evaluation.metrics",
    "load_summary": "nnunet_ext.evaluation.summary_io",
    "write_summary": "nnunet_ext.evaluation.summary_io",
    "compare_summaries": "nnunet_ext.evaluation.compare_cli",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
