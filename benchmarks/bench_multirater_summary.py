"""Pool ``bench_multirater.py`` work folders (one per regime, or both in one) into the issue-22 tables.

Stated beforehand (Yang & Wang, UGS-Net, five-fold LIDC): UGS-Net - U-Net +1.39 Dice points against Label_1
overall, +11.03 on hard nodules. What would show the paper's *mechanism* (learning from reader disagreement)
rather than any advantage of UGS-Net's extra heads: a gain with exchangeable (LIDC-like) readers that is absent
or smaller with fixed raters, where a single-reader baseline can learn Label_1's fixed style exactly.

Reads every ``REGIME_seedS/arm_ARM/eval.json`` under the given folders and prints, per regime (cases pooled over
seeds; every phantom held out once per seed):

* mean Dice per arm against Label_1, the latent truth, the majority and every reader (expected Dice);
* paired arm - baseline and UGS-Net - UGS-Net-without-IUCM differences (mean, 95 % bootstrap CI, Wilcoxon p),
  overall and on the a-priori hard subset;
* the regime contrast: (UGS-Net - baseline) with exchangeable readers minus the same with fixed raters (different
  phantoms: unpaired bootstrap CI of the difference of the two mean paired differences).

    python benchmarks/bench_multirater_summary.py /tmp/mr/exchangeable /tmp/mr/fixed [--json OUT.json]
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import paired, summary_cli  # noqa: E402

ARMS = ("baseline", "phi", "ugs_noiucm", "ugsnet")
METRICS = ("dice_rater0", "dice_truth", "dice_majority", "dice_rater_mean")


def load(folders) -> dict:
    """data[regime][arm] = {(seed, case): metrics}; hard[regime] = {(seed, case)} of the a-priori hard subset."""
    data: dict = defaultdict(lambda: defaultdict(dict))
    hard: dict = defaultdict(set)
    for folder in map(Path, folders):
        for ev in sorted(folder.glob("*_seed*/arm_*/eval.json")):
            m = re.fullmatch(r"(\w+)_seed(\d+)", ev.parent.parent.name)
            regime, seed, arm = m.group(1), int(m.group(2)), ev.parent.name[len("arm_"):]
            summary = json.loads(ev.read_text())
            for case, metrics in summary["cases"].items():
                data[regime][arm][(seed, case)] = metrics
            if arm == "baseline":
                hard[regime] |= {(seed, c) for c in summary["hard"]["cases"]}
    return data, hard


def differences(data, regime, arm_a, arm_b, metric, keys=None) -> np.ndarray:
    a, b = data[regime][arm_a], data[regime][arm_b]
    keys = sorted(k for k in a if k in b and (keys is None or k in keys))
    return np.asarray([b[k][metric] - a[k][metric] for k in keys], float)


def summarise(folders) -> dict:
    data, hard = load(folders)
    out: dict = {"regimes": {}, "contrast": {}}
    for regime, arms in data.items():
        r = out["regimes"].setdefault(regime, {"n_cases": {}, "seeds": None, "means": {}, "paired": {}})
        r["seeds"] = sorted({k[0] for a in arms.values() for k in a})
        r["hard_n"] = len(hard[regime])
        for arm in (a for a in ARMS if a in arms):
            r["n_cases"][arm] = len(arms[arm])
            r["means"][arm] = {m: float(np.mean([v[m] for v in arms[arm].values()])) for m in METRICS}
        for arm_a, arm_b in [("baseline", a) for a in ARMS[1:]] + [("ugs_noiucm", "ugsnet")]:
            if arm_a not in arms or arm_b not in arms:
                continue
            for metric in ("dice_rater0", "dice_truth"):
                for subset, keys in (("all", None), ("hard", hard[regime])):
                    d = differences(data, regime, arm_a, arm_b, metric, keys)
                    r["paired"][f"{arm_b} - {arm_a} / {metric} / {subset}"] = paired(d)
    if {"exchangeable", "fixed"} <= set(data):
        rng = np.random.default_rng(0)
        for metric in ("dice_rater0", "dice_truth"):
            for arm in ("ugsnet", "ugs_noiucm", "phi"):
                if arm not in data["exchangeable"] or arm not in data["fixed"]:
                    continue
                ex = differences(data, "exchangeable", "baseline", arm, metric)
                fx = differences(data, "fixed", "baseline", arm, metric)
                boot = (rng.choice(ex, (10000, ex.size)).mean(1) - rng.choice(fx, (10000, fx.size)).mean(1))
                out["contrast"][f"{arm} - baseline: exchangeable minus fixed / {metric}"] = {
                    "mean": float(ex.mean() - fx.mean()),
                    "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                    "n": [int(ex.size), int(fx.size)]}
    return out


def main():
    out = summary_cli(__doc__, summarise, "bench_multirater.py work folders (--work)")
    for regime, r in out["regimes"].items():
        print(f"\n== {regime}: seeds {r['seeds']}, cases per arm {r['n_cases']}, hard subset {r['hard_n']}")
        for arm, means in r["means"].items():
            print(f"  {arm:11s} " + "  ".join(f"{m} {v:.3f}" for m, v in means.items()))
        for name, d in r["paired"].items():
            if "mean" in d:
                print(f"  {name:50s} {100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
                      f" points, p {d['wilcoxon_p']:.2g} (n {d['n']})")
    for name, d in out["contrast"].items():
        print(f"{name:60s} {100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] points")


if __name__ == "__main__":
    main()
