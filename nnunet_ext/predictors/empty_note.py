"""One line for a case whose prediction lacks a foreground label (``chest_test_000: no tumor predicted``), so an
empty segmentation is said, not discovered later as a Dice of 0 or a black PNG."""
from __future__ import annotations

import numpy as np


def empty_prediction_note(case_id: str, segmentation, dataset_json: dict) -> str | None:
    """``"CASE: no NAME predicted"`` naming every foreground label absent from ``segmentation`` (label-based
    datasets); for region-based datasets (label values are lists) only an entirely empty segmentation is named.
    ``None`` when every label is there."""
    seg = np.asarray(segmentation)
    present = set(np.unique(seg).tolist())
    labels = {name: value for name, value in dataset_json.get("labels", {}).items()
              if name != "ignore" and value not in (0, [0])}
    if any(isinstance(v, (list, tuple)) for v in labels.values()):  # regions: painted values are not label ids
        missing = list(labels) if present <= {0} else []
    else:
        missing = [name for name, value in labels.items() if int(value) not in present]
    return f"{case_id}: no {' or '.join(missing)} predicted" if missing else None
