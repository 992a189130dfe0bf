"""HN-UISeg pieces on head-and-neck phantoms with tiny plans (Chu 2026; issue 12 item 7).

Builds its own workspace (``--root``): ``nnext synth headneck`` (``--n-train`` + ``--n-test`` cases, ``--size``),
TinyPlanner 3d_fullres with ``--epochs`` x ``--iterations``, then trains with the plain ``nnUNetv2_train``:
``MCDropoutTrainer`` (plain nnU-Net + dropout, the automatic baseline), ``ClickPromptTrainer`` (stage 1) and
``ClickPromptErrorTrainer`` (stage 3, ``-pretrained_weights`` from stage 1). Prints and writes ``results.json``:

* automatic Dice per class: the baseline (``nnext predict -m stock --disable_tta``) and the click-prompt
  model with zero prompts (clicks-eval step 0);
* mean Dice per class after 0..``--max-clicks`` simulated clicks, protocols errors / autopet / each-lesion;
* session latency after one click: full re-prediction vs tile-local update (best of ``--repeats``) on a test
  case widened ``--widen`` times along x (more sliding windows).

    python benchmarks/bench_interactive.py [--root DIR] [--epochs 10] [--iterations 20] [--n-train 16]
        [--n-test 4] [--max-clicks 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HN_ID, TINY, C = 541, "nnextTinyPlans", "3d_fullres"


def _nnunet(name):
    return str(Path(sys.executable).parent / name)


def _run(cmd, **env):
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="bench_interactive_ws")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=3, default=(24, 48, 48))
    ap.add_argument("--max-clicks", type=int, default=5)
    ap.add_argument("--widen", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.paths import use_workspace

    dirs = use_workspace(Path(args.root))
    raw = dirs["nnUNet_raw"] / "Dataset541_NnextHeadNeck"
    if not raw.is_dir():
        nnext(["synth", "headneck", "-d", str(HN_ID), "-n", str(args.n_train), "--n-test", str(args.n_test),
               "--size", *map(str, args.size)])
        nnext(["plan", "-d", str(HN_ID), "-pl", "TinyPlanner", "-c", C, "--epochs", str(args.epochs),
               "--iterations", str(args.iterations), "-np", "1"])
    res = dirs["nnUNet_results"] / raw.name
    times = {}
    for trainer, extra in (("MCDropoutTrainer", []), ("ClickPromptTrainer", []),
                           ("ClickPromptErrorTrainer", ["-pretrained_weights", str(
                               res / f"ClickPromptTrainer__{TINY}__{C}" / "fold_0" / "checkpoint_final.pth")])):
        if not (res / f"{trainer}__{TINY}__{C}" / "fold_0" / "checkpoint_final.pth").is_file():
            times[trainer] = _run([_nnunet("nnUNetv2_train"), str(HN_ID), C, "0", "-tr", trainer, "-p", TINY,
                                   "-device", args.device, *extra])
    out = Path(args.root) / "results"
    model = ["-d", str(HN_ID), "-c", C, "-p", TINY, "-f", "0", "-device", args.device]
    nnext(["predict", "-m", "stock", "-i", str(raw / "imagesTs"), "-o", str(out / "baseline"), *model, "-tr",
           "MCDropoutTrainer", "--disable_tta", "--overwrite"])
    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.imageio import read_image

    base = {"GTVp": [], "GTVn": []}
    for ref_file in sorted((raw / "labelsTs").glob("*.nii.gz")):
        ref, g = read_image(ref_file)
        pred, _ = read_image(out / "baseline" / ref_file.name)
        for name, v in (("GTVp", 1), ("GTVn", 2)):
            base[name].append(compute_metrics(ref == v, pred == v, g.spacing[::-1])["dice"])
    results = {"train_seconds": times, "baseline_dice": {k: float(np.mean(v)) for k, v in base.items()},
               "protocols": {}}
    for protocol in ("errors", "autopet", "each-lesion"):
        nnext(["clicks-eval", "-i", str(raw / "imagesTs"), "-ref", str(raw / "labelsTs"), "-o",
               str(out / protocol), *model, "--protocol", protocol, "--max-clicks", str(args.max_clicks),
               "--overwrite"])
        results["protocols"][protocol] = json.loads((out / protocol / "summary.json").read_text())["mean"]
    results["latency"] = _latency(raw, args)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def _latency(raw, args) -> dict:
    import SimpleITK as sitk

    from nnunet_ext.session import InteractiveSession

    case = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[0].name[:-len("_0000.nii.gz")]
    wide = []
    for ch in (0, 1):
        img = sitk.ReadImage(str(raw / "imagesTs" / f"{case}_{ch:04d}.nii.gz"))
        arr = sitk.GetArrayFromImage(img)
        w = sitk.GetImageFromArray(np.concatenate([arr] * args.widen, -1))
        w.SetSpacing(img.GetSpacing()), w.SetOrigin(img.GetOrigin()), w.SetDirection(img.GetDirection())
        wide.append(w)
    s = InteractiveSession.from_model(HN_ID, C, plans=TINY, folds=(0,), device=args.device)
    t = time.perf_counter()
    s.set_image(wide)
    set_image = time.perf_counter() - t
    size = wide[0].GetSize()
    click = (2, size[1] // 2, size[2] // 2)
    local, full = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        s.add_point_interaction(click, "GTVp")
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        s.recompute_all()
        full.append(time.perf_counter() - t)
        s.undo()
    s.add_point_interaction(click, "GTVp")
    return {"image_xyz": list(size), "windows": len(s._slicers), "windows_recomputed": s.last_recomputed,
            "set_image_s": set_image, "tile_local_s": min(local), "full_s": min(full)}


if __name__ == "__main__":
    main()
