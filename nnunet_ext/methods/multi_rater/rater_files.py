"""Rater masks on disk: ``CASE_rater{k}.nii.gz`` files, one binary mask per reader (``nnext convert raters``
input, ``nnext evaluate-raters`` reference)."""
from __future__ import annotations

import re
from pathlib import Path

FILE_ENDING = ".nii.gz"
RATER_RE = re.compile(r"^(?P<case>.+)_rater(?P<k>\d+)\.nii\.gz$")


def find_rater_files(folder: Path) -> dict[str, dict[int, Path]]:
    """``{case: {k: path}}`` of ``CASE_rater{k}.nii.gz`` files in ``folder``."""
    out: dict[str, dict[int, Path]] = {}
    for p in sorted(folder.glob(f"*{FILE_ENDING}")):
        m = RATER_RE.match(p.name)
        if m:
            out.setdefault(m["case"], {})[int(m["k"])] = p
    return out
