"""Glioma pipeline on brain phantoms (Yang et al. 2025), out of fold: Dice / HD95 per region of the 2D spherical
ensemble, the whole-volume 3D baseline and the fused result, over several seeds, with paired tests.

The paper's claim (Table 1): the fused model beats both the 2D and the 3D model on all three regions (DSC ET 0.81
vs 0.75 / 0.75, TC 0.75 vs ~0.70, WT 0.91 vs 0.89 / 0.90; Wilcoxon, Bonferroni 0.025). Here each seed runs the
steps of ``nnext demo glioma`` (:func:`nnunet_ext.demos.glioma.run_glioma`: synthetic phantoms drawn with that seed,
2D model and kernel-crop refiner in ``--folds``-fold cross-validation, out-of-fold ``fusion-fit`` with the global
DSC, the whole-volume 3D baseline with its own patch, test cases held out throughout), identical arms on the same
test cases. ``--collect`` pools the per-case results of every seed found and runs, per region, a paired Wilcoxon
signed-rank test (scipy) of fused vs 2D and fused vs 3D over (seed, test case) pairs.

    OMP_NUM_THREADS=1 python benchmarks/bench_glioma.py -o DIR --seed S [-n 6 --n-test 3 --epochs 6 --iterations 10
        --folds 2]                       # one seed (run several seeds as separate processes)
    python benchmarks/bench_glioma.py -o DIR --collect      # the table and the tests -> DIR/bench_glioma.json

Take the load (``uptime``) with the numbers: the CPU is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REGIONS = ("WT", "TC", "ET")


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def one_seed(a) -> None:
    from nnunet_ext.demos import glioma

    args = argparse.Namespace(o=str(Path(a.o) / f"seed{a.seed}"), n=a.n, n_test=a.n_test, epochs=a.epochs,
                              iterations=a.iterations, seed=a.seed, stride=a.stride, max_kernels=a.max_kernels,
                              folds=a.folds, crop_kernels=a.crop_kernels, overwrite=a.overwrite)
    t0, l0 = time.perf_counter(), load()
    if glioma.run_glioma(args):
        raise SystemExit(1)
    root = Path(args.o) / "glioma"
    summary = json.loads((root / "summary.json").read_text())
    summary["bench"] = {"settings": vars(a), "wall_s": round(time.perf_counter() - t0, 1), "load_start": l0,
                        "load_end": load()}
    (root / "bench_seed.json").write_text(json.dumps(summary, indent=1) + "\n")


def collect(a) -> dict:
    import numpy as np
    from scipy.stats import wilcoxon

    runs = sorted(Path(a.o).glob("seed*/glioma/bench_seed.json"))
    if not runs:
        raise SystemExit(f"{a.o}: no seed*/glioma/bench_seed.json")
    pairs = {m: {r: {"dice": [], "hd95": []} for r in REGIONS} for m in ("2d_ensemble", "3d_model", "fused")}
    per_seed, fusion = {}, {}
    for path in runs:
        s = json.loads(path.read_text())
        seed = path.parent.parent.name
        per_seed[seed] = s["mean"]
        fusion[seed] = {r: {k: round(v[k], 3) for k in ("w2d", "w3d", "b", "dice", "dice_2d")}
                        for r, v in s["fusion"].items()}
        for m in pairs:
            for c in s["cases"]:
                for r in REGIONS:
                    for k in ("dice", "hd95"):
                        pairs[m][r][k].append(s["per_case"][m][c][r][k])
    out = {"seeds": list(per_seed), "n_pairs": len(pairs["fused"]["WT"]["dice"]), "per_seed_mean": per_seed,
           "fusion": fusion, "regions": {}}
    print(f"{len(runs)} seeds, {out['n_pairs']} (seed, test case) pairs; mean Dice / HD95 (mm)")
    print(f"{'':8s}{'2D':>14s}{'3D':>14s}{'fused':>14s}   fused-2D p      fused-3D p")
    for r in REGIONS:
        row = {}
        for m in pairs:
            row[m] = {k: float(np.mean(pairs[m][r][k])) for k in ("dice", "hd95")}
        tests = {}
        for other in ("2d_ensemble", "3d_model"):
            d = np.asarray(pairs["fused"][r]["dice"]) - np.asarray(pairs[other][r]["dice"])
            p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
            tests[f"fused_vs_{other}"] = {"mean_diff_dice": float(d.mean()), "wins": int((d > 0).sum()),
                                          "losses": int((d < 0).sum()), "wilcoxon_p": p}
        out["regions"][r] = {"mean": row, "tests": tests}
        t2, t3 = tests["fused_vs_2d_ensemble"], tests["fused_vs_3d_model"]
        print(
            f"{r:8s}"
            + "".join(f"{row[m]['dice']:7.3f}/{row[m]['hd95']:5.1f} " for m in pairs)
            + f"  {t2['mean_diff_dice']:+.3f} {t2['wilcoxon_p']:.3f}"
            f"   {t3['mean_diff_dice']:+.3f} {t3['wilcoxon_p']:.3f}"
        )
    best = all(out["regions"][r]["mean"]["fused"]["dice"] > max(out["regions"][r]["mean"][m]["dice"]
                                                               for m in ("2d_ensemble", "3d_model")) for r in REGIONS)
    sig = all(t["wilcoxon_p"] < 0.025 and t["mean_diff_dice"] > 0 for r in REGIONS
              for t in out["regions"][r]["tests"].values())
    out["fused_best_mean_dice_all_regions"], out["fused_significantly_better_all"] = best, sig
    print(
        f"fused best mean Dice on all three regions: {best}; significantly (p < 0.025) better than both on all: {sig}"
    )
    out["load"] = load()
    (Path(a.o) / "bench_glioma.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> None:
    from nnunet_ext.demos import glioma

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", default="bench_glioma_work")
    p.add_argument("--collect", action="store_true", help="pool the seeds found under -o and test")
    p.add_argument("-n", type=int, default=6)
    p.add_argument("--n-test", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stride", type=int, default=glioma.STRIDE)
    p.add_argument("--max-kernels", type=int, default=3)
    p.add_argument("--crop-kernels", type=int, default=3)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    collect(a) if a.collect else one_seed(a)


if __name__ == "__main__":
    main()
