"""Glioma pipeline on brain phantoms (Yang et al. 2025): Dice / HD95 per region of the 2D spherical ensemble, the 3D
model and the fused result, and the time per subject of the spherical ensemble / kernel refinement at two strides.

Runs the steps of ``nnext demo glioma`` (:func:`nnunet_ext.demos.glioma.run_glioma`, reusing what an earlier run
with the same settings made) with the given training length, then times ``nnext predict -m spherical`` and ``-m
kernel_refine --fusion`` on the test cases at every ``--timing-strides`` value (CPU). Prints a table and writes
``DIR/glioma/bench_glioma.json``. Take the load (``uptime``) with the numbers: the CPU is shared.

    OMP_NUM_THREADS=1 python benchmarks/bench_glioma.py -o DIR [-n 8 --n-test 4 --epochs 30 --iterations 20]
        [--stride 16] [--max-kernels 4] [--timing-strides 8 16] [--crop-refiner [--crop-kernels 8]]

``--crop-refiner`` adds the paper's refiner (section 2.2.3): ``nnext kernel-dataset`` crops the training cases at
their high-uncertainty kernels (2D model's spherical ensemble), a 3D model (the same trainer, plans and schedule)
is trained on those crops only, and kernel refinement + PSO fusion are redone with it; the fused result is printed
beside the demo's (3D model trained on whole phantoms).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


CROP_ID = 997


def crop_refiner(a, root: Path, raw: Path, m2: str) -> dict:
    """The paper's refiner: 3D model trained on kernel crops; fused test result with it (module docstring)."""
    import subprocess

    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.demos import glioma
    from nnunet_ext.demos.steps import demo_threads, train_command
    from nnunet_ext.io.paths import dataset_folders, env_dir
    from nnunet_ext.planners.run import plan_and_preprocess

    def run(*argv):
        if nnext([str(v) for v in argv]):
            raise SystemExit(f"nnext {argv[0]} failed")

    times, t = {}, time.perf_counter()
    run("kernel-dataset", "-d", glioma.RAW_ID, "-t", CROP_ID, "--uncertainty-from", m2, "--stride", a.stride,
        "--max-kernels", a.crop_kernels, "-device", "cpu", "--overwrite", "--no-progress")
    crops = dataset_folders(env_dir("nnUNet_raw"))[CROP_ID]
    n_crops = json.loads((crops / "dataset.json").read_text())["numTraining"]
    plan_and_preprocess(CROP_ID, "TinyPlanner", ["3d_fullres"], num_processes=1,
                        schedule={"num_epochs": a.epochs, "num_iterations_per_epoch": a.iterations,
                                  "num_val_iterations_per_epoch": 2})
    times["crops_plan_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    model = env_dir("nnUNet_results") / crops.name / f"{glioma.TRAINER_3D}__{glioma.PLANS}__3d_fullres"
    if not (model / f"fold_{glioma.FOLD}" / "checkpoint_final.pth").is_file():
        cmd = train_command([CROP_ID, "3d_fullres", glioma.FOLD, "-tr", glioma.TRAINER_3D, "-p", glioma.PLANS,
                             "-device", "cpu"], demo_threads(), a.seed)
        if subprocess.run(cmd, capture_output=True).returncode:
            raise SystemExit("training the crop refiner failed")
    times["train_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    m3 = f"{CROP_ID},3d_fullres,{glioma.TRAINER_3D},{glioma.PLANS},{glioma.FOLD}"
    common = ["--model2d", m2, "--model3d", m3, "--stride", a.stride, "--max-kernels", a.max_kernels,
              "--disable_tta", "-device", "cpu", "--overwrite"]
    fit, pred, fusion = root / "crop_fit", root / "crop_pred", root / "crop_fusion.json"
    run("predict", "-m", "kernel_refine", "-i", raw / "imagesTr", "-o", fit, *common)
    run("fusion-fit", "--pred2d", fit, "--pred3d", fit, "-ref", raw / "labelsTr", "-o", fusion, "--particles",
        glioma.PSO["particles"], "--iters", glioma.PSO["iters"], "--sum-to-one", "--seed", a.seed, "--overwrite")
    run("predict", "-m", "kernel_refine", "-i", raw / "imagesTs", "-o", pred, "--fusion", fusion, *common)
    times["refine_fit_predict_s"] = round(time.perf_counter() - t, 1)
    ev = glioma.evaluate(raw, pred, root / "pred3d")  # "fused" = with the crop refiner
    fused = ev["mean"]["fused"]
    print(f"crop refiner ({n_crops} kernel crops, {a.epochs} x {a.iterations} iterations): fused "
          + "  ".join(f"{r} {fused[r]['dice']:.3f} / {fused[r]['hd95']:.1f} mm" for r in glioma.REGIONS), flush=True)
    return {"n_crops": n_crops, "fused_mean": fused, "per_case": ev["per_case"]["fused"],
            "fusion": json.loads(fusion.read_text()), "timings_s": times, "load": load()}


def main() -> None:
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.demos import glioma

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", default="bench_glioma_work")
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stride", type=int, default=glioma.STRIDE)
    p.add_argument("--max-kernels", type=int, default=glioma.MAX_KERNELS)
    p.add_argument("--timing-strides", type=int, nargs="*", default=[8, 16])
    p.add_argument("--crop-refiner", action="store_true", help="also train the 3D refiner on kernel crops (paper)")
    p.add_argument("--crop-kernels", type=int, default=8, help="kernels per case and region for the crop dataset")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    loads = {"start": load()}
    t0 = time.perf_counter()
    if glioma.run_glioma(a):
        raise SystemExit(1)
    loads["pipeline_end"] = load()
    root = (Path(a.o) / "glioma").resolve()
    summary = json.loads((root / "summary.json").read_text())
    raw = next((root / "nnUNet_raw").glob(f"Dataset{glioma.RAW_ID}_*"))
    m2, m3 = summary["models"]["2d"], summary["models"]["3d"]
    timing = {}
    for s in a.timing_strides:
        for method in ("spherical", "kernel_refine"):
            out = root / f"timing_{method}_s{s}"
            shutil.rmtree(out, ignore_errors=True)
            extra = (["--model2d", m2, "--model3d", m3, "--fusion", root / "fusion.json", "--max-kernels", a.max_kernels,
                      "--disable_tta"]
                     if method == "kernel_refine" else
                     ["-d", glioma.RAW_ID, "-c", "2d", "-tr", glioma.TRAINER_2D, "-p", glioma.PLANS, "-f", glioma.FOLD])
            t = time.perf_counter()
            code = nnext([str(v) for v in ["predict", "-m", method, "-i", raw / "imagesTs", "-o", out, "--stride", s,
                                           "-device", "cpu", *extra]])
            if code:
                raise SystemExit(code)
            sec = (time.perf_counter() - t) / len(summary["cases"])
            origins = [json.loads(f.read_text())["n_origins"] for f in out.glob("*_spherical.json")] or \
                      [json.loads(f.read_text())["spherical"]["n_origins"] for f in out.glob("*_kernels.json")]
            timing[f"{method}_stride{s}"] = {"s_per_subject": round(sec, 1), "origins_per_subject": origins,
                                             "load": load()}
            print(f"-m {method} stride {s}: {sec:.1f} s per subject ({origins} projections per subject; load {load()})",
                  flush=True)
    mean = summary["mean"]
    glioma.print_table(mean)
    crops = crop_refiner(a, root, raw, m2) if a.crop_refiner else None
    result = {"crop_refiner": crops, "settings": vars(a) | {"o": str(root)}, "mean": mean, "per_case": summary["per_case"],
              "fusion": summary["fusion"], "pipeline_timings_s": summary["timings_s"], "timing": timing,
              "loads": loads | {"end": load()}, "total_s": round(time.perf_counter() - t0, 1)}
    (root / "bench_glioma.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{root / 'bench_glioma.json'} (load at start / after the pipeline / end: {loads['start']} / "
          f"{loads['pipeline_end']} / {load()})")


if __name__ == "__main__":
    main()
