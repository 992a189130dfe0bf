"""The closing lines of every converter: ``N converted, M skipped`` and one line per skipped case with its reason.

A converter that leaves a case out without saying so is a silent loss (a BraTS 2023 case in a 2021 folder, a
case folder named differently from its files, a nodule outside the diameter range): every case a converter
sees either ends up in the dataset or is listed here, and ``conversion_log.json`` keeps the same reasons.

:func:`report` prints (standard output)::

    /raw/Dataset912_BraTS2021: 2 converted, 1 skipped
    skipped BraTS-GLI-00003-000: BraTS 2023 case, --year 2021 converts BraTS 2021 cases only

and returns the counts.
"""
from __future__ import annotations

import os
from typing import Mapping


def skipped_line(case: str, reason: str) -> str:
    """``skipped CASE: REASON`` (the reason on one line)."""
    return f"skipped {case}: {' '.join(str(reason).split())}"


def report(dataset: str | os.PathLike, converted: int, skipped: Mapping[str, str], detail: str = "") -> dict:
    """Print ``DATASET: N converted, M skipped[; DETAIL]`` and ``skipped CASE: REASON`` per skipped case (sorted);
    return ``{"converted": N, "skipped": M}``."""
    tail = f"; {detail}" if detail else ""
    print(f"{os.fspath(dataset)}: {converted} converted, {len(skipped)} skipped{tail}")
    for case in sorted(skipped):
        print(skipped_line(case, skipped[case]))
    return {"converted": int(converted), "skipped": len(skipped)}


__all__ = ["report", "skipped_line"]
