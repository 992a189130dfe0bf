"""``nnext demo nodule``: UGS-Net on multi-rater nodule phantoms, end to end (Yang & Wang).

synth nodule phantoms (4 simulated raters) -> ``nnext convert raters`` (rater-set labels) -> ``nnext plan``
(TinyPlanner, 2d) -> plain ``nnUNetv2_train -tr UGSNetTrainer`` -> ``nnext predict -m mcm`` (X_S, HC, LC,
MCM) -> ``nnext evaluate-raters`` -> one PNG per test case (the slice with the largest rater union): CT with
every rater's contour, X_S (green contour), predicted high-confidence (red) and low-confidence (blue) regions.
Everything lives in ``-o DIR/nodule`` (nnU-Net's env vars point there); ``--overwrite`` starts afresh, a
re-run repeats every step (it takes about as long as the first run).

Default length 12 epochs x 25 iterations (``--epochs`` / ``--iterations``): 7 minutes measured on a contended
machine, about 2-3 minutes estimated from the uncontended epoch time (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RAW_ID, RATER_ID = 993, 994
TRAINER, PLANS = "UGSNetTrainer", "nnextTinyPlans"


def overview_png(image: np.ndarray, raters: np.ndarray, xs: np.ndarray, hc: np.ndarray, lc: np.ndarray,
                 path, title: str = "") -> int:
    """Draw the slice with the largest rater union; returns its index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.imageio import atomic_path

    z = int(np.argmax(raters.any(0).sum((1, 2))))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax in axes:
        ax.imshow(image[z], cmap="gray", vmin=-1000, vmax=200)
        ax.set_axis_off()
    colours = ["gold", "orange", "magenta", "cyan", "white", "lime"]
    for k, m in enumerate(raters):
        if m[z].any():
            axes[0].contour(m[z], levels=[0.5], colors=colours[k % len(colours)], linewidths=1)
    axes[0].set_title(f"{len(raters)} raters")
    overlay = np.zeros(image[z].shape + (4,))
    overlay[hc[z] > 0] = (1, 0, 0, 0.45)
    overlay[lc[z] > 0] = (0, 0.3, 1, 0.45)
    axes[1].imshow(overlay)
    if xs[z].any():
        axes[1].contour(xs[z], levels=[0.5], colors="lime", linewidths=1.5)
    axes[1].set_title("X_S (green), HC (red), LC (blue)")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return z


def run_nodule(args) -> int:
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.errors import InputError
    from nnunet_ext.imageio import read_image
    from nnunet_ext.paths import nnunet_command, use_workspace

    epochs, iterations = args.epochs, args.iterations  # defaults: nnunet_ext.demo.KIND_DEFAULTS["nodule"]
    config = args.c
    root = (Path(args.o) / "nodule").resolve()
    if root.exists() and not (root / "nnUNet_raw").is_dir() and any(root.iterdir()):
        raise InputError(f"{root}: folder exists and was not made by nnext demo nodule; choose another -o")
    if root.exists():
        shutil.rmtree(root)  # every step is cheap on these phantoms: always start afresh
    dirs = use_workspace(root)
    t0 = time.perf_counter()

    from nnunet_ext.synthetic.dataset import write_dataset

    print(f"\n[1/6] nodule phantoms: {args.n} training + {args.n_test} test cases, 4 raters", flush=True)
    src = write_dataset("nodule", RAW_ID, args.n, args.n_test, seed=args.seed, progress=False, raters=4)
    print("\n[2/6] nnext convert raters (all raters in one rater-set label map)", flush=True)
    if nnext(["convert", "raters", "-i", str(src), "-d", str(RATER_ID), "--name", "DemoNoduleRaters",
              "--no-progress"]) != 0:
        return 1
    folder = next(dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*"))
    print(f"\n[3/6] nnext plan -pl TinyPlanner -c {config} ({epochs} x {iterations} iterations)", flush=True)
    from nnunet_ext.planners.run import plan_and_preprocess

    plan_and_preprocess(RATER_ID, "TinyPlanner", [config], num_processes=1,
                        schedule={"num_epochs": epochs, "num_iterations_per_epoch": iterations})
    print(f"\n[4/6] nnUNetv2_train {RATER_ID} {config} 0 -tr {TRAINER} -p {PLANS} -device cpu", flush=True)
    cmd = [nnunet_command("nnUNetv2_train"), str(RATER_ID), config, "0", "-tr", TRAINER, "-p", PLANS, "-device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if subprocess.run(cmd, env=env).returncode != 0:
        print("nnext demo nodule: error: nnUNetv2_train failed (see its output above)", file=sys.stderr)
        return 1
    print("\n[5/6] nnext predict -m mcm (X_S, high / low-confidence masks, MCM)", flush=True)
    pred = root / "prediction"
    if nnext(["predict", "-m", "mcm", "-i", str(folder / "imagesTs"), "-o", str(pred), "-d", str(RATER_ID),
              "-c", config, "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "--all-maps"]) != 0:
        return 1
    print("\n[6/6] nnext evaluate-raters + overview PNGs", flush=True)
    if nnext(["evaluate-raters", "-pred", str(pred), "-raters", str(folder / "labelsTs_raters"), "-o",
              str(root / "summary.json"), "--mcm", str(pred), "--images", str(folder / "imagesTs"),
              "--kde-png", str(root / "hu_kde.png")]) != 0:
        return 1
    summary = json.loads((root / "summary.json").read_text())
    for case, m in summary["cases"].items():
        image = read_image(folder / "imagesTs" / f"{case}_0000.nii.gz", kind="image")[0]
        raters = np.stack([read_image(p, kind="label")[0] > 0
                           for p in sorted((folder / "labelsTs_raters").glob(f"{case}_rater*.nii.gz"))])
        xs, hc, lc = (read_image(pred / f"{case}{s}.nii.gz", kind="label")[0] for s in ("", "_hc", "_lc"))
        overview_png(image, raters, xs, hc, lc, root / f"{case}.png",
                     f"{case}: Dice vs rater 0 {m['dice_rater0']:.2f}, HC {m.get('dice_hc', 0):.2f}, "
                     f"LC {m.get('dice_lc', 0):.2f}")
    summary["demo"] = {"epochs": epochs, "iterations": iterations, "configuration": config,
                       "seconds": round(time.perf_counter() - t0, 1)}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nnodule demo done in {summary['demo']['seconds']:.0f} s: {root} (PNG per test case, summary.json, "
          "hu_kde.png)")
    return 0
