"""Shared statistics and command line of the benchmark summaries (``bench_*_summary.py``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def paired(d, seed: int = 0) -> dict:
    """Paired differences ``d``: mean, 95 % percentile-bootstrap CI of the mean (10,000 resamples, seeded) and the
    Wilcoxon signed-rank p (scipy.stats; 1.0 when every difference is 0)."""
    from scipy.stats import wilcoxon

    d = np.asarray(d, float)
    if d.size < 2:
        return {"n": int(d.size)}
    boot = np.random.default_rng(seed).choice(d, size=(10000, d.size), replace=True).mean(1)
    return {"n": int(d.size), "mean": float(d.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "wilcoxon_p": float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0}


def summary_cli(doc: str, summarise, folders_help: str) -> dict:
    """``SCRIPT FOLDER... [--json OUT]``: ``summarise(folders)``, written to OUT as JSON when asked; returned."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help=folders_help)
    ap.add_argument("--json", default=None, help="also write the summary to this JSON file")
    args = ap.parse_args()
    out = summarise(args.folders)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out
