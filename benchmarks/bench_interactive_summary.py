"""Pool ``bench_interactive.py`` runs (one ``--root`` per seed and configuration) into the issue-18 tables.

Stated beforehand (Chu 2026, fig. 4 / Table 2): the stage-3 model's Dice rises with each click (10 clicks over
the automatic branch: GTVp +4.2 to +7.6, GTVn +9.3 to +18.0 Dice points); the issue's demo targets: after 3
clicks GTVn +0.10 and GTVp +0.03, no drop between counts. nnInteractive's previous-prediction input (Isensee et
al. 2025) is expected to make corrections more local and decisive (higher Dice after the same clicks).

For each configuration (``-c`` of the runs) and model / protocol: mean Dice per class after 0..N clicks, pooled
over seeds and held-out cases; the gain after 3 clicks over 0; paired comparisons (per seed and case, Wilcoxon
signed-rank + 95 % bootstrap CI of the mean difference, scipy.stats):

* stage 3 with vs without previous-prediction channels at 0, 3 and N clicks (errors protocol);
* stage 3 vs stage 1 at 3 clicks (errors protocol);
* automatic branch (stage 3, prompts zero) vs the baseline trained without clicks (``auto_*`` predictions).

    python benchmarks/bench_interactive_summary.py /tmp/bi/2d_s0 /tmp/bi/2d_s1 ... [--json OUT.json]
"""
from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import paired as paired_difference  # noqa: E402
from _stats import summary_cli  # noqa: E402

CLASSES = {1: "GTVp", 2: "GTVn"}


def paired(a, b) -> dict:
    """b - a per pair: :func:`_stats.paired` with the mean and CI rounded for the tables."""
    row = paired_difference(np.asarray(b, float) - np.asarray(a, float))
    if "mean" in row:
        row["mean"], row["ci95"] = round(row["mean"], 4), [round(v, 4) for v in row["ci95"]]
    return row


def read_runs(roots) -> tuple[dict, dict]:
    """``(clicks, config_of)``: clicks[config][model/protocol][(seed, case, class)] = [Dice at step 0..N]."""
    from nnunet_ext.io.imageio import read_image

    clicks: dict = defaultdict(lambda: defaultdict(dict))
    configs = {}
    for root in map(Path, roots):
        res = json.loads((root / "results" / "results.json").read_text())
        conf, seed = res["setup"]["configuration"], res["setup"]["train_seed"]
        configs[str(root)] = conf
        labels = next((root / "nnUNet_raw").glob("Dataset*Eval")) / "labelsTs"
        present = set()  # (case, class) with the class in the reference: an absent class (Dice 1 when nothing is
        for f in sorted(labels.glob("*.nii.gz")):  # predicted) says nothing about clicks and is left out
            ref = read_image(f, kind="label")[0]
            present |= {(f.name[:-7], name) for v, name in CLASSES.items() if (ref == v).any()}
        for csv_file in sorted((root / "results").glob("*/*/clicks_eval.csv")):
            run = f"{csv_file.parent.parent.name}/{csv_file.parent.name}"
            rows = [r for r in csv.DictReader(open(csv_file)) if (r["case"], r["class"]) in present]
            for r in rows:
                curve = clicks[conf][run].setdefault((seed, r["case"], r["class"]), {})
                curve[int(r["step"])] = float(r["dice"])
    out = {c: {run: {k: [v[s] for s in sorted(v)] for k, v in d.items()} for run, d in runs.items()}
           for c, runs in clicks.items()}
    return out, configs


def auto_dice(roots) -> dict:
    """auto[config][model key][(seed, case, class)] = Dice of the automatic prediction (``results/auto_KEY``)."""
    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.io.imageio import read_image

    out: dict = defaultdict(lambda: defaultdict(dict))
    for root in map(Path, roots):
        res = json.loads((root / "results" / "results.json").read_text())
        conf, seed = res["setup"]["configuration"], res["setup"]["train_seed"]
        labels = next((root / "nnUNet_raw").glob("Dataset*Eval")) / "labelsTs"
        for pred_dir in sorted((root / "results").glob("auto_*")):
            key = pred_dir.name[len("auto_"):]
            for ref_file in sorted(labels.glob("*.nii.gz")):
                ref, g = read_image(ref_file, kind="label")
                pred, _ = read_image(pred_dir / ref_file.name, kind="label")
                for v, name in CLASSES.items():
                    if (ref == v).any():
                        out[conf][key][(seed, ref_file.name[:-7], name)] = compute_metrics(
                            ref == v, pred == v, g.spacing[::-1])["dice"]
    return out


def summarise(roots) -> dict:
    clicks, _ = read_runs(roots)
    autos = auto_dice(roots)
    summary = {}
    for conf, runs in clicks.items():
        s = summary.setdefault(conf, {"curves": {}, "gain_3_clicks": {}, "paired": {}})
        for run, curves in sorted(runs.items()):
            for cls in CLASSES.values():
                keys = sorted(k for k in curves if k[2] == cls)
                if not keys:
                    continue
                m = np.asarray([curves[k] for k in keys])
                s["curves"].setdefault(run, {})[cls] = {"n": len(keys), "seeds": len({k[0] for k in keys}),
                                                        "dice": [round(float(v), 4) for v in m.mean(0)]}
                if m.shape[1] > 3:
                    s["gain_3_clicks"].setdefault(run, {})[cls] = paired(m[:, 0], m[:, 3])

        def compare(name, run_a, run_b, step):
            a, b = runs.get(run_a), runs.get(run_b)
            if a is None or b is None:
                return
            for cls in CLASSES.values():
                keys = sorted(k for k in a if k[2] == cls and k in b and len(a[k]) > step and len(b[k]) > step)
                if keys:
                    s["paired"].setdefault(name, {})[cls] = paired([a[k][step] for k in keys],
                                                                   [b[k][step] for k in keys])

        for step in (0, 3, 5):
            compare(f"errors, {step} clicks: stage 3 +previous - stage 3", "ClickPromptErrorTrainer/errors",
                    "ClickPromptErrorTrainer+previous/errors", step)
        compare("errors, 3 clicks: stage 3 - stage 1", "ClickPromptTrainer/errors", "ClickPromptErrorTrainer/errors", 3)
        compare("autopet, 3 clicks: stage 3 +previous - stage 3", "ClickPromptErrorTrainer/autopet",
                "ClickPromptErrorTrainer+previous/autopet", 3)
        auto = autos.get(conf, {})
        baseline = next((k for k in auto if k.startswith("ClickPromptAutoTrainer") or k == "MCDropoutTrainer"), None)
        for key in ("ClickPromptErrorTrainer", "ClickPromptErrorTrainer+previous"):
            if baseline and key in auto:
                for cls in CLASSES.values():
                    keys = sorted(k for k in auto[baseline] if k[2] == cls and k in auto[key])
                    s["paired"].setdefault(f"automatic: {key} - {baseline} (no clicks)", {})[cls] = paired(
                        [auto[baseline][k] for k in keys], [auto[key][k] for k in keys])
        s["automatic_mean"] = {key: {cls: round(float(np.mean([v for k, v in d.items() if k[2] == cls])), 4)
                                     for cls in CLASSES.values()} for key, d in auto.items()}
    return summary


def main():
    summary = summary_cli(__doc__, summarise, "bench_interactive.py workspaces (--root), one per seed and -c")
    for conf, s in summary.items():
        print(f"\n== {conf}")
        for run, per in s["curves"].items():
            for cls, c in per.items():
                g = s["gain_3_clicks"].get(run, {}).get(cls, {})
                gain = (f" | +3 clicks {g['mean']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}] "
                        f"p {g['wilcoxon_p']:.3g}" if g.get("n") else "")
                print(f"{run:45s} {cls}: n {c['n']:3d} ({c['seeds']} seeds) Dice "
                      + " -> ".join(f"{v:.3f}" for v in c["dice"]) + gain)
        for name, per in s["paired"].items():
            for cls, d in per.items():
                if d.get("n"):
                    print(f"{name:70s} {cls}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] "
                          f"p {d['wilcoxon_p']:.3g} (n {d['n']})")
        print("automatic mean Dice:", json.dumps(s["automatic_mean"]))


if __name__ == "__main__":
    main()
