"""Rater masks on disk: ``CASE_rater{k}.nii.gz`` files, one binary mask per reader (``nnext convert raters``
input, ``nnext evaluate-raters`` reference)."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_ext.errors import InputError

FILE_ENDING = ".nii.gz"
RATER_RE = re.compile(r"^(?P<case>.+)_rater(?P<k>\d+)\.nii\.gz$")


def find_rater_files(folder: Path) -> dict[str, dict[int, Path]]:
    """``{case: {k: path}}`` of ``CASE_rater{k}.nii.gz`` files in ``folder``; another NIfTI file there (a
    ``.nii`` rater mask, ``CASE_Rater1.nii.gz``) is an InputError naming it rather than a rater left out."""
    out: dict[str, dict[int, Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.name.endswith((".nii", ".nii.gz")):
            continue
        m = RATER_RE.match(p.name)
        if not m:
            raise InputError(f"{p}: not a rater mask name CASE_rater{{k}}{FILE_ENDING} (k = 0, 1, ...); rename or "
                             "remove it")
        out.setdefault(m["case"], {})[int(m["k"])] = p
    return out
