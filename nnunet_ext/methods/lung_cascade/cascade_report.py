"""What the lung cascade found, in one console line per case (issue 20, item 3).

The component filter logs every stage-1 component with ``kept`` and a ``reason`` (``lung_overlap``, ``rescued``,
``no_lung_mask`` when kept; ``low_overlap_central``, ``too_far``, ``too_small``, ``too_few_dilated``,
``empty_lung``, ``below_min_size``, ``top_k`` when dropped). These helpers turn that log into the lines the
cascade and ``nnext postprocess lung`` print:

* ``CASE: stage 1: N components, K kept (reasons), M ROIs`` -- e.g.
  ``case_001: stage 1: 3 components, 1 kept (1 lung_overlap; dropped: 1 too_far, 1 top_k), 1 ROI``;
* ``CASE: no tumour predicted (...)`` when the case ends without a tumour voxel, with the step that emptied it;
* the lung-mask backend that really ran (``auto`` falling back to ``threshold`` says so and why);
* :func:`metric_text`: a metric that is undefined (None / NaN: no tumour in reference and prediction, no
  uncertainty ROI) is printed as ``undefined``, never ``nan``.
"""
from __future__ import annotations

import math
from collections import Counter


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def reason_summary(components: list) -> str:
    """``'1 lung_overlap; dropped: 1 too_far, 1 top_k'`` from a filter log's component entries."""
    kept = Counter(c["reason"] for c in components if c["kept"])
    dropped = Counter(c["reason"] for c in components if not c["kept"])
    parts = [", ".join(f"{n} {r}" for r, n in sorted(kept.items()))] if kept else []
    if dropped:
        parts.append("dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(dropped.items())))
    return "; ".join(parts) or "none"


def stage1_line(case_id: str, filter_log: dict, n_rois: int | None = None) -> str:
    """``CASE: stage 1: N components, K kept (reasons)[, M ROIs]``."""
    comps = filter_log.get("components", [])
    text = (f"{case_id}: stage 1: {_plural(len(comps), 'component')}, {sum(c['kept'] for c in comps)} kept"
            + (f" ({reason_summary(comps)})" if comps else ""))
    return text + (f", {_plural(n_rois, 'ROI')}" if n_rois is not None else "")


def no_tumour_line(case_id: str, filter_log: dict, final_voxels: int) -> str | None:
    """``CASE: no tumour predicted (why)`` when the case's output has no tumour voxel, else None."""
    if final_voxels > 0:
        return None
    comps = filter_log.get("components", [])
    if not comps:
        why = "stage 1 found no tumour voxel"
    elif not any(c["kept"] for c in comps):
        why = f"the component filter dropped all {_plural(len(comps), 'stage-1 component')}"
    else:
        why = "stage 2 found no tumour voxel in the ROIs"
    return f"{case_id}: no tumour predicted ({why})"


def lung_backend_line(requested: str, used: str, reason: str | None = None) -> str:
    """``lung masks: threshold`` / ``lung masks: auto -> threshold (lungmask unusable: ...)``."""
    if requested == used:
        return f"lung masks: {used}"
    return f"lung masks: {requested} -> {used}" + (f" ({reason})" if reason else "")


def metric_text(value, spec: str = ".4g", undefined: str = "undefined") -> str:
    """A metric for the console: ``undefined`` for None / NaN, else ``format(value, spec)``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return undefined
    try:
        if math.isnan(float(value)):
            return undefined
    except (TypeError, ValueError):
        return str(value)
    return format(value, spec)
