"""Glioma pipeline on brain phantoms (Yang et al. 2025): Dice / HD95 per region of the 2D spherical ensemble, the 3D
model and the fused result, and the time per subject of the spherical ensemble / kernel refinement at two strides.

Runs the steps of ``nnext demo glioma`` (:func:`nnunet_ext.demos.glioma.run_glioma`, reusing what an earlier run
with the same settings made) with the given training length, then times ``nnext predict -m spherical`` and ``-m
kernel_refine --fusion`` on the test cases at every ``--timing-strides`` value (CPU). Prints a table and writes
``DIR/glioma/bench_glioma.json``. Take the load (``uptime``) with the numbers: the CPU is shared.

    OMP_NUM_THREADS=1 python benchmarks/bench_glioma.py -o DIR [-n 8 --n-test 4 --epochs 30 --iterations 20]
        [--stride 16] [--max-kernels 4] [--timing-strides 8 16]
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
    result = {"settings": vars(a) | {"o": str(root)}, "mean": mean, "per_case": summary["per_case"],
              "fusion": summary["fusion"], "pipeline_timings_s": summary["timings_s"], "timing": timing,
              "loads": loads | {"end": load()}, "total_s": round(time.perf_counter() - t0, 1)}
    (root / "bench_glioma.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{root / 'bench_glioma.json'} (load at start / after the pipeline / end: {loads['start']} / "
          f"{loads['pipeline_end']} / {load()})")


if __name__ == "__main__":
    main()
