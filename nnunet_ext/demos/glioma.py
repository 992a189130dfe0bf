"""Glioma demo (Yang 2025), end to end; meant as ``nnext demo glioma``.

synth brain phantoms -> ``nnext plan`` (TinyPlanner, 2d + 3d_fullres, short schedule) -> plain ``nnUNetv2_train``
of ``SphericalProjectionTrainer`` (2d) and ``MCDropoutTrainer`` (3d_fullres, the refinement model) -> ``nnext
predict -m kernel_refine`` on the training cases (spherical ensemble, kernels, 3D model per kernel) -> ``nnext
fusion-fit`` on them -> ``-m kernel_refine --fusion`` on the test cases, and ``-m stock`` with the 3D model ->
Dice per region of the 2D ensemble, the 3D model and the fused result -> ``overview.png`` (FLAIR with the three
regions, the WT entropy map and the selected WT kernels on the slice with most kernels) and ``summary.json``.
Everything lives in ``-o DIR/glioma``; a re-run with the same settings keeps the dataset, plans and trained
models and repeats the predictions (``--overwrite`` deletes the folder first).

Run it with ``run_glioma(args)`` (``args`` as parsed by ``nnext demo``: ``-o -n --n-test --epochs --iterations
--seed --overwrite``) or ``python -m nnunet_ext.demos.glioma [-o DIR]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RAW_ID = 994
PLANS = "nnextTinyPlans"
STRIDE = 16
MAX_KERNELS = 4  # per case and region: keeps the CPU demo short (the paper has no cap)


def _nnext(*args) -> None:
    proc = subprocess.run([sys.executable, "-m", "nnunet_ext.cli.main", *map(str, args)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nnext {' '.join(map(str, args[:3]))} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _train(configuration: str, trainer: str, results: Path) -> None:
    from nnunet_ext.paths import nnunet_command

    if (results / f"{trainer}__{PLANS}__{configuration}" / "fold_all" / "checkpoint_final.pth").is_file():
        return  # trained by an earlier run of the demo

    proc = subprocess.run([nnunet_command("nnUNetv2_train"), str(RAW_ID), configuration, "all", "-tr", trainer,
                           "-p", PLANS, "-device", "cpu"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nnUNetv2_train {trainer} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    den = a.sum() + b.sum()
    return 1.0 if den == 0 else float(2 * (a & b).sum() / den)


def overview_png(image, ref, entropy, kernels, path) -> int:
    """FLAIR with WT / TC / ET reference contours, the WT entropy and the WT kernels crossing the slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    z = int(np.argmax([sum(k["start"][0] <= s < k["start"][0] + k["size"][0] for k in kernels)
                       for s in range(image.shape[0])])) if kernels else image.shape[0] // 2
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.5))
    ax[0].imshow(image[z], cmap="gray")
    for labels, colour in (((1, 2, 3), "yellow"), ((2, 3), "orange"), ((3,), "red")):
        ax[0].contour(np.isin(ref[z], labels), levels=[0.5], colors=colour, linewidths=1)
    ax[0].set_title(f"FLAIR, reference WT / TC / ET (slice {z})")
    im = ax[1].imshow(entropy[z], cmap="magma")
    for k in kernels:
        if k["start"][0] <= z < k["start"][0] + k["size"][0]:
            ax[1].add_patch(patches.Rectangle((k["start"][2] - 0.5, k["start"][1] - 0.5), k["size"][2], k["size"][1],
                                              fill=False, edgecolor="cyan", linewidth=1.5))
    ax[1].set_title("WT entropy (eq. 1, bits) and WT kernels")
    fig.colorbar(im, ax=ax[1], fraction=0.046)
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return z


def run_glioma(args) -> int:
    from nnunet_ext.imageio import read_image
    from nnunet_ext.paths import use_workspace
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    root = Path(args.o) / "glioma"
    if getattr(args, "overwrite", False) and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    dirs = use_workspace(root)
    t0, times = time.time(), {}
    settings = {"n": args.n, "n_test": args.n_test, "seed": args.seed, "epochs": args.epochs,
                "iterations": args.iterations}
    record = root / "demo_settings.json"
    reuse = record.is_file() and json.loads(record.read_text()) == settings
    raw = dirs["nnUNet_raw"] / "Dataset994_NnextBrain"
    if not reuse:  # a re-run with the same settings keeps the dataset, plans and trained models
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        raw = write_dataset("brain", RAW_ID, num_train=args.n, num_test=args.n_test, seed=args.seed,
                            progress=False)
        plan_and_preprocess(RAW_ID, "TinyPlanner", ["2d", "3d_fullres"], num_processes=1,
                            schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations,
                                      "num_val_iterations_per_epoch": 2})
        record.write_text(json.dumps(settings))
    times["synth_plan_s"] = time.time() - t0
    results = dirs["nnUNet_results"] / raw.name
    _train("2d", "SphericalProjectionTrainer", results)
    _train("3d_fullres", "MCDropoutTrainer", results)
    times["train_s"] = time.time() - t0 - times["synth_plan_s"]
    m2 = f"{RAW_ID},2d,SphericalProjectionTrainer,{PLANS},all"
    m3 = f"{RAW_ID},3d_fullres,MCDropoutTrainer,{PLANS},all"
    common = ["--model2d", m2, "--model3d", m3, "--stride", STRIDE, "--max-kernels", MAX_KERNELS, "--disable_tta",
              "-device", "cpu", "--overwrite"]
    fit, pred, pred3d = root / "fit", root / "pred", root / "pred3d"
    _nnext("predict", "-m", "kernel_refine", "-i", raw / "imagesTr", "-o", fit, *common)
    _nnext("fusion-fit", "--pred2d", fit, "--pred3d", fit, "-ref", raw / "labelsTr", "-o", root / "fusion.json",
           "--sum-to-one", "--overwrite")
    _nnext("predict", "-m", "kernel_refine", "-i", raw / "imagesTs", "-o", pred, "--fusion", root / "fusion.json",
           *common)
    _nnext("predict", "-m", "stock", "-i", raw / "imagesTs", "-o", pred3d, "-d", RAW_ID, "-c", "3d_fullres",
           "-tr", "MCDropoutTrainer", "-p", PLANS, "-f", "all", "-device", "cpu", "--overwrite")
    times["predict_s"] = time.time() - t0 - times["synth_plan_s"] - times["train_s"]
    regions = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz"))
    dice = {m: {t: [] for t in regions} for m in ("2d_ensemble", "3d_model", "fused")}
    for c in cases:
        ref, _ = read_image(raw / "labelsTs" / f"{c}.nii.gz")
        seg3, _ = read_image(pred3d / f"{c}.nii.gz")
        for t, labels in regions.items():
            truth = np.isin(ref, labels)
            dice["2d_ensemble"][t].append(_dice(read_image(pred / f"{c}_p2d_{t}.nii.gz")[0] > 0.5, truth))
            dice["fused"][t].append(_dice(read_image(pred / f"{c}_prob_{t}.nii.gz")[0] > 0.5, truth))
            dice["3d_model"][t].append(_dice(np.isin(seg3, labels), truth))
    c = cases[0]
    flair, _ = read_image(raw / "imagesTs" / f"{c}_0003.nii.gz")
    ref, _ = read_image(raw / "labelsTs" / f"{c}.nii.gz")
    ent, _ = read_image(pred / f"{c}_entropy_WT.nii.gz")
    kernels = json.loads((pred / f"{c}_kernels.json").read_text())["WT"]["kernels"]
    z = overview_png(flair, ref, ent, kernels, root / "overview.png")
    summary = {"mean_dice": {m: {t: float(np.mean(v)) for t, v in d.items()} for m, d in dice.items()},
               "per_case_dice": dice, "cases": cases, "fusion": json.loads((root / "fusion.json").read_text()),
               "overview_slice": z, "seconds": {**times, "total_s": time.time() - t0}}
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    for m, d in summary["mean_dice"].items():
        print(f"{m:12s} Dice  " + "  ".join(f"{t} {v:.3f}" for t, v in d.items()))
    print(f"{root / 'overview.png'}, {root / 'summary.json'} ({summary['seconds']['total_s']:.0f} s)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", default="nnext_demo")
    p.add_argument("-n", type=int, default=6, help="training cases (default 6)")
    p.add_argument("--n-test", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    return run_glioma(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
