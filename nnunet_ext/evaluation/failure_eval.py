"""``failure_detection`` of ``nnext evaluate``: how well ``confidence.csv`` ranks failed cases and false lesions.

Read when the prediction folder holds ``confidence.csv`` (written by ``nnext predict``, issue 23; or ``--confidence
FILE``). Per label (the ``component`` 0 rows, matched to the evaluated cases; labels absent from reference and
prediction of a case are left out, their Dice is the meaningless both-empty 1):

* ``auroc_failure``: AUROC of ``-confidence`` for the failures ``Dice < --fail-dice`` (default 0.5);
* ``aurc``, ``aurc_optimal``, ``eaurc``: risk-coverage with risk ``1 - Dice`` (Zenk et al. 2024; formulas in
  :mod:`nnunet_ext.core.failure_detection`);
* ``spearman_confidence_dice``;
* ``components``: every predicted connected component (``component`` >= 1, the numbering of
  :func:`nnunet_ext.core.confidence.components` on the prediction) is a true positive when it overlaps the
  reference's label, else a false positive; ``auroc_true_positive`` = AUROC of the confidence for true positives.

:func:`save_risk_coverage` draws the risk-coverage curves (one per label, with the oracle's) as a PNG.
"""
from __future__ import annotations

import os

import numpy as np

from nnunet_ext.core.calibration import auroc
from nnunet_ext.core.confidence import components
from nnunet_ext.core.failure_detection import aurc, aurc_optimal, failure_auroc, risk_coverage, spearman
from nnunet_ext.errors import InputError

__all__ = ["failure_detection", "save_risk_coverage", "CONFIDENCE_FILE"]

CONFIDENCE_FILE = "confidence.csv"


def _component_hits(pred_file: str, ref_file: str, label: int) -> dict[int, bool]:
    """{component id: overlaps the reference label} for the predicted components of ``label``."""
    from nnunet_ext.io.imageio import read_image

    pred, _ = read_image(pred_file, kind="label")
    ref, _ = read_image(ref_file, kind="label")
    comp, n = components(pred == label)
    hit = np.zeros(n + 1, dtype=bool)
    hit[np.unique(comp[(ref == label) & (comp > 0)])] = True
    return {k: bool(hit[k]) for k in range(1, n + 1)}


def failure_detection(summary: dict, confidence_file: str, fail_dice: float = 0.5) -> dict:
    """The ``failure_detection`` section for an evaluation ``summary`` (module docstring)."""
    from nnunet_ext.predictors.confidence_table import read_confidence_csv

    if not 0 < fail_dice <= 1:
        raise InputError(f"--fail-dice must be in (0, 1], got {fail_dice}")
    rows = read_confidence_csv(confidence_file)
    records = {r["case"]: r for r in summary["metric_per_case"]}
    missing = sorted(set(records) - {r["case"] for r in rows})
    if missing:
        raise InputError(f"{confidence_file}: no rows for {len(missing)} evaluated case(s): "
                         + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                         + " (a table of another run? re-predict, or pass --confidence FILE)")
    per_label = {}
    for key, info in summary["labels"].items():
        if info.get("region"):
            continue  # confidence rows are per label value
        label = int(key)
        conf, dice, cases = [], [], []
        for r in rows:
            rec = records.get(r["case"])
            if rec is None or r["label"] != label or r["component"] != 0 or key in rec.get("absent", []):
                continue
            d = rec["metrics"].get(key, {}).get("dice", float("nan"))
            if np.isfinite(r["confidence"]) and np.isfinite(d):
                conf.append(r["confidence"]), dice.append(d), cases.append(r["case"])
        conf, dice = np.array(conf, dtype=float), np.array(dice, dtype=float)
        risk = 1.0 - dice
        a, a_opt = aurc(conf, risk), aurc_optimal(risk)
        cov, sel = risk_coverage(conf, risk)
        comp_conf, comp_tp = [], []
        for case in sorted({r["case"] for r in rows if r["label"] == label and r["component"] > 0}):
            if case not in records:
                continue
            hits = _component_hits(records[case]["prediction_file"], records[case]["reference_file"], label)
            for r in rows:
                if r["case"] == case and r["label"] == label and r["component"] > 0:
                    if r["component"] not in hits:
                        raise InputError(f"{confidence_file}: case {case} label {label} component {r['component']}"
                                         f" is not in the prediction ({len(hits)} components): stale table?")
                    if np.isfinite(r["confidence"]):
                        comp_conf.append(r["confidence"]), comp_tp.append(hits[r["component"]])
        per_label[key] = {
            "n_cases": int(conf.size), "n_failures": int((dice < fail_dice).sum()),
            "auroc_failure": failure_auroc(conf, dice, fail_dice) if conf.size else float("nan"),
            "aurc": a, "aurc_optimal": a_opt, "eaurc": a - a_opt,
            "spearman_confidence_dice": spearman(conf, dice) if conf.size else float("nan"),
            "risk_coverage": {"coverage": cov.tolist(), "selective_risk": sel.tolist()},
            "cases": {c: {"confidence": float(k), "dice": float(d)} for c, k, d in zip(cases, conf, dice)},
            "components": {"n_true_positive": int(np.sum(comp_tp)),
                           "n_false_positive": int(len(comp_tp) - np.sum(comp_tp)),
                           "auroc_true_positive": auroc(comp_conf, comp_tp) if comp_conf else float("nan")},
        }
    return {"settings": {"confidence_file": os.path.abspath(confidence_file), "fail_dice": float(fail_dice),
                         "risk": "1 - Dice", "failure": f"Dice < {fail_dice:g}",
                         "auroc_failure": "AUROC of -confidence for failures (ties averaged)",
                         "aurc": "area under the risk-coverage step curve, ties accepted together (Zenk et al. 2024)",
                         "components": "true positive = overlaps the reference label; cc3d 26-connectivity"},
            "per_label": per_label}


def save_risk_coverage(section: dict, path: "str | os.PathLike", names: "dict | None" = None) -> str:
    """Risk-coverage PNG of a ``failure_detection`` section: one curve per label and its oracle (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.io.imageio import atomic_path

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    try:
        for i, (key, v) in enumerate(section["per_label"].items()):
            cov, sel = v["risk_coverage"]["coverage"], v["risk_coverage"]["selective_risk"]
            name = f"label {key}" + (f" {names[key]}" if names and names.get(key) else "")
            colour = f"C{i % 10}"
            if cov:
                ax.step([0.0, *cov], [sel[0], *sel], where="pre", color=colour,
                        label=f"{name}: AURC {v['aurc']:.3f}, AUROC(Dice<{section['settings']['fail_dice']:g}) "
                              f"{v['auroc_failure']:.2f}")
                r = np.sort([1.0 - c["dice"] for c in v["cases"].values()])
                k = np.arange(1, r.size + 1)
                ax.step(np.r_[0.0, k / r.size], np.r_[r[0], np.cumsum(r) / k], where="pre", color=colour,
                        linestyle="--", label=f"{name}: oracle (sorted by true risk), AURC {v['aurc_optimal']:.3f}")
        if not section["per_label"]:
            ax.text(0.5, 0.5, "no label with confidence rows", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage (fraction of cases accepted, most confident first)",
               ylabel="selective risk (mean 1 - Dice of the accepted)", title="risk-coverage of confidence.csv")
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        with atomic_path(os.fspath(path)) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return os.fspath(path)

