"""Predictor engine v2 benchmark: parity and cost against nnU-Net, memory against the number of passes.

Prints (results go into benchmarks/RESULTS.md):

1. ``nnext predict -m stock`` vs ``nnUNetv2_predict`` on the same model and cases (both as fresh processes with
   the same ``-npp/-nps``; wall time, median of ``--repeats``): time ratio (target <= 1.05) and voxel agreement;
2. bytes per voxel of the engine's accumulators for each method / map set (nnU-Net: ~6 B with float16);
3. peak resident memory of one ``-m tta_mc`` case for N = 8, 64, 512 passes (``--pass-batch-size 8``, fresh
   process each; must stay flat);
4. ``-m ensemble`` over 5 folds against 5 separate ``-m stock`` runs (one fold each).

Usage: ``python benchmarks/bench_engine.py [-o WORKDIR] [--device cpu|cuda] [--repeats 3]``. The tiny chest model
(TinyPlanner, 3d_fullres, 2 x 10 iterations) is trained once into WORKDIR and reused.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ID = 981
TINY = "nnextTinyPlans"


def command(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else (shutil.which(name) or name)


def run(cmd, **kw) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def model(root: Path) -> tuple[Path, Path]:
    from nnunet_ext.io.paths import dataset_folders, use_workspace

    dirs = use_workspace(root)
    raw = dataset_folders(dirs["nnUNet_raw"]).get(ID)
    if raw is None:
        from nnunet_ext.synthetic.dataset import write_dataset

        raw = write_dataset("chest", ID, 6, 4, seed=0, progress=False)
    folder = dirs["nnUNet_results"] / raw.name / f"MCDropoutTrainer__{TINY}__3d_fullres"
    if not (folder / "fold_0" / "checkpoint_final.pth").is_file():
        from nnunet_ext.planners.run import plan_and_preprocess

        plan_and_preprocess(ID, "TinyPlanner", ["3d_fullres"], num_processes=1)
        run([command("nnUNetv2_train"), str(ID), "3d_fullres", "0", "-tr", "MCDropoutTrainer", "-p", TINY,
             "-device", "cpu"])
    return raw, folder


def five_folds(folder: Path) -> Path:
    """A copy of the model with folds 0-4 (fold 0 with perturbed weights), for the ensemble comparison."""
    import torch

    out = folder.parent / f"MCDropoutTrainer__{TINY}Five__3d_fullres"
    if not out.exists():
        shutil.copytree(folder, out)
        for f in range(1, 5):
            shutil.copytree(out / "fold_0", out / f"fold_{f}")
            ckpt = torch.load(out / f"fold_{f}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
            g = torch.Generator().manual_seed(f)
            for k, v in ckpt["network_weights"].items():
                if v.is_floating_point() and k.endswith("weight"):
                    v += 0.1 * v.std() * torch.randn(v.shape, generator=g)
            torch.save(ckpt, out / f"fold_{f}" / "checkpoint_final.pth")
    return out


def peak_rss_mb(cmd) -> float:
    """Peak resident memory (MB) of a child process (``ru_maxrss`` of the children, Linux KiB)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return float(proc.stdout.strip().splitlines()[-1])


def accumulator_bytes(folder: Path, image: Path) -> dict:
    import torch

    from nnunet_ext.core.tta import TTAPolicy
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
    e.load(str(folder), [0])
    data, _, _ = e.configuration_manager.preprocessor_class().run_case(
        [str(image)], None, e.plans_manager, e.configuration_manager, e.dataset_json)
    m = StockMethod(e, Sampling(), {})
    rows = {}
    for label, sampling, maps, dtype in [
        ("stock, entropy (float32)", Sampling(), ("entropy",), torch.float32),
        ("stock, entropy (float16)", Sampling(), ("entropy",), torch.float16),
        ("tta_mc N=4 (window scope), entropy", Sampling(n_passes=4, blend="probabilities"), ("entropy",),
         torch.float32),
        ("tta_mc N=4 (window scope), entropy+variance+MI", Sampling(n_passes=4, blend="probabilities"),
         ("entropy", "variance", "mi"), torch.float32),
        ("tta_mc N=4 (window scope), all maps (float16)", Sampling(n_passes=4, blend="probabilities"),
         ("entropy", "variance", "mi"), torch.float16),
        ("tta_mc N=4, window-scope TTA, all maps", Sampling(n_passes=4, tta=TTAPolicy(), tta_scope="window",
                                                           blend="probabilities"), ("entropy", "variance", "mi"),
         torch.float32),
        ("tta_mc N=4, volume-scope TTA, chunk 4, all maps", Sampling(n_passes=4, tta=TTAPolicy(), tta_scope="volume",
                                                                     blend="probabilities"),
         ("entropy", "variance", "mi"), torch.float32),
    ]:
        e.accumulator_dtype = dtype
        e.run(torch.from_numpy(data), CaseContext.for_case("c", 0), m, sampling, maps)
        rows[label] = e.last_accumulator_bytes_per_voxel
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", default="bench_engine_work")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="1,2,3,4", help="which of the four measurements to run (default all)")
    args = ap.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    root = Path(args.o).resolve()
    raw, folder = model(root)
    images = raw / "imagesTs"
    common = [
        "-d",
        str(ID),
        "-c",
        "3d_fullres",
        "-p",
        TINY,
        "-f",
        "0",
        "-device",
        args.device,
        "-npp",
        "1",
        "-nps",
        "1",
    ]

    if 1 in parts:
        stock_vs_nnunet(root, images, common, args.repeats)
    if 2 in parts:
        print("2. accumulator bytes per voxel (K = 2 classes):")
        for label, b in accumulator_bytes(folder, sorted(images.glob("*_0000.nii.gz"))[0]).items():
            print(f"   {label:<50} {b:6.1f}")
    if 3 in parts:
        memory_against_n(root, images, common)
    if 4 in parts:
        ensemble_vs_stock(root, images, folder, args.device)


def stock_vs_nnunet(root, images, common, repeats) -> None:
    t_ours, t_theirs = [], []
    for r in range(repeats):
        for d in ("ours", "theirs"):
            shutil.rmtree(root / d, ignore_errors=True)
        t_theirs.append(run([command("nnUNetv2_predict"), "-i", str(images), "-o", str(root / "theirs"),
                             "-tr", "MCDropoutTrainer", *common]))
        t_ours.append(run([command("nnext"), "predict", "-m", "stock", "-i", str(images), "-o", str(root / "ours"),
                           "-tr", "MCDropoutTrainer", *common, "--accumulator-dtype", "float16"]))
    from nnunet_ext.io.imageio import read_image

    same = total = 0
    for f in sorted((root / "theirs").glob("*.nii.gz")):
        a, b = read_image(f)[0], read_image(root / "ours" / f.name)[0]
        same += int((a == b).sum())
        total += a.size
    mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"1. -m stock {mo:.2f} s vs nnUNetv2_predict {mt:.2f} s (median of {repeats}, {len(list(images.glob('*')))}"
          f" cases, processes included): ratio {mo / mt:.3f}; voxel agreement {same}/{total} = {same / total:.6f}")


def memory_against_n(root, images, common) -> None:
    one = root / "one_case"
    one.mkdir(exist_ok=True)
    first = sorted(images.glob("*_0000.nii.gz"))[0]
    shutil.copy(first, one / first.name)
    print("3. peak RSS of one tta_mc case (--pass-batch-size 8, volume-scope TTA):")
    for n in (8, 64, 512):
        out = root / f"mem{n}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        mb = peak_rss_mb([command("nnext"), "predict", "-m", "tta_mc", "-i", str(one), "-o", str(out), *common,
                          "--n-samples", str(n), "--pass-batch-size", "8", "--all-maps"])
        print(f"   N = {n:4d}: {mb:7.0f} MB peak, {time.perf_counter() - t:6.1f} s")


def ensemble_vs_stock(root, images, folder, device) -> None:
    five = five_folds(folder)
    plans5 = f"{TINY}Five"
    base = ["-d", str(ID), "-c", "3d_fullres", "-p", plans5, "-device", device]
    shutil.rmtree(root / "ens", ignore_errors=True)
    t_ens = run([command("nnext"), "predict", "-m", "ensemble", "-i", str(images), "-o", str(root / "ens"), *base,
                 "--all-maps"])
    t_stock = 0.0
    for f in range(5):
        shutil.rmtree(root / f"stock{f}", ignore_errors=True)
        t_stock += run([command("nnext"), "predict", "-m", "stock", "-i", str(images), "-o", str(root / f"stock{f}"),
                        *base, "-f", str(f), "--disable_tta"])
    print(f"4. -m ensemble (5 folds, maps) {t_ens:.1f} s vs 5 x -m stock (1 fold each) {t_stock:.1f} s: "
          f"ratio {t_ens / t_stock:.2f}")
    print(f"   ({five})")


if __name__ == "__main__":
    main()
