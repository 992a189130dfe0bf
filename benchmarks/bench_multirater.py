"""Multi-annotation learning on nodule phantoms: baseline (rater 0 only) vs MultiAnnotationTrainer vs
UGSNetTrainer, same TinyPlanner backbone (Yang & Wang, Tables I and III protocol, tiny CPU scale).

    OMP_NUM_THREADS=1 python benchmarks/bench_multirater.py [--work DIR] [-n 24] [--n-test 12] [-c 2d]
        [--epochs 40] [--iterations 25] [--seeds 0 1] [--tokens 256]

Steps: ``nnext synth nodule`` (4 raters; the raw label is rater 0 = the paper's Label_1) -> baseline
``MCDropoutTrainer`` with dropout 0 (= nnU-Net's U-Net with Dice + CE) on rater 0; ``nnext convert raters``
-> ``MultiAnnotationTrainer`` (Φ + Dice) and ``UGSNetTrainer`` (eq. 4) on all raters; predictions with
``nnUNetv2_predict`` (baseline, MA) and ``nnext predict -m mcm`` (UGS-Net); ``nnext evaluate-raters`` for each,
with the baseline as reference of the Complex-Nodule Validation. Prints one table and writes
``DIR/bench_multirater.json``. ``--seeds``: one run per seed (phantoms drawn with that seed, a fresh nnU-Net
training of each model, seeded through nnU-Net's training entry point with torch / numpy / random seeds S,
and with ``OMP_NUM_THREADS`` (default 1) torch threads, not nnUNetv2_train's every core) under ``DIR/seed{S}``; a finished seed
(``DIR/seed{S}/result.json`` with the same settings) is reused, so an interrupted run resumes. The table gives
the mean over seeds and the spread (min..max). ``--tokens`` = the plans option ``ugsnet.max_tokens`` for UGS-Net's training
(recorded in the model's arch_kwargs, so prediction rebuilds it) (256: self-attention on a 16x16 grid for the 32x32 2D patches, 4x cheaper on a CPU than the
full-resolution default 4096). Every run also records the load average (``os.getloadavg``) after each step.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RAW_ID, RATER_ID = 951, 952
PLANS = "nnextTinyPlans"


#: nnU-Net's predict entry point with a fixed number of torch threads (argv[1]): nnUNetv2_predict -device cpu sets
#: torch to every core, which on a shared machine makes OpenMP threads spin (an order of magnitude slower)
_PREDICT_WITH_THREADS = ("import sys, torch; n = int(sys.argv.pop(1)); f = torch.set_num_threads; "
                         "torch.set_num_threads = lambda _: f(n); "
                         "from nnunetv2.inference.predict_from_raw_data import predict_entry_point; "
                         "sys.argv[0] = 'nnUNetv2_predict'; predict_entry_point()")


def _run(cmd, env=None):
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def run_seed(args, seed: int, root: Path) -> dict:
    """Data, three trainings, predictions and evaluations for one seed (module docstring)."""
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.demos.steps import demo_threads, train_command  # fixed torch threads, seeded
    from nnunet_ext.paths import use_workspace
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    dirs = use_workspace(root)
    env1 = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    schedule = {"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations}
    times, load = {}, {}
    t = time.perf_counter()
    stamp = {**_settings(args), "seed": seed}
    data_done = root / "data_done.json"
    if data_done.is_file() and json.loads(data_done.read_text()) == stamp:
        src = next(dirs["nnUNet_raw"].glob(f"Dataset{RAW_ID}_*"))  # same data and plans as an earlier run
    else:
        data_done.unlink(missing_ok=True)
        src = write_dataset("nodule", RAW_ID, args.n, args.n_test, seed=seed, progress=False, raters=4,
                            overwrite=True)
        assert nnext(["convert", "raters", "-i", str(src), "-d", str(RATER_ID), "--name", "BenchRaters",
                      "--overwrite", "--no-progress"]) == 0
        for d in (RAW_ID, RATER_ID):
            plan_and_preprocess(d, "TinyPlanner", [args.c], num_processes=1, schedule=schedule, clean=True)
        from nnunet_ext.planners.plans_edit import plans_path, write_options

        write_options(plans_path(RAW_ID, PLANS), ["dropout.p=0"], [args.c])
        write_options(plans_path(RATER_ID, PLANS), [f"ugsnet.max_tokens={args.tokens}"], [args.c])
        for old in root.glob("model_done_*.json"):
            old.unlink()
        data_done.write_text(json.dumps(stamp))
    rater_folder = next(dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*"))
    times["data_s"], load["data"] = time.perf_counter() - t, os.getloadavg()

    runs = {"baseline": (RAW_ID, "MCDropoutTrainer", {}),
            "multi_annotation": (RATER_ID, "MultiAnnotationTrainer", {}),
            "ugsnet": (RATER_ID, "UGSNetTrainer", {})}
    summaries = {}
    for name, (ds, trainer, env) in runs.items():
        model_done = root / f"model_done_{name}.json"
        if model_done.is_file() and (root / f"eval_{name}.json").is_file():
            print(f"seed {seed}: reusing {name} (trained, predicted and evaluated by an earlier run)")
            summaries[name] = json.loads((root / f"eval_{name}.json").read_text())
            times.update(json.loads(model_done.read_text()))
            continue
        t = time.perf_counter()
        _run(train_command([ds, args.c, 0, "-tr", trainer, "-p", PLANS, "-device", "cpu"], demo_threads(), seed),
             {**env1, **env})
        times[f"train_{name}_s"], load[f"train_{name}"] = time.perf_counter() - t, os.getloadavg()
        t = time.perf_counter()
        pred = root / f"pred_{name}"
        images = (src if ds == RAW_ID else rater_folder) / "imagesTs"
        if name == "ugsnet":
            assert nnext(["predict", "-m", "mcm", "-i", str(images), "-o", str(pred), "-d", str(ds), "-c", args.c,
                          "-tr", trainer, "-p", PLANS, "-f", "0", "-device", "cpu", "--overwrite"]) == 0
        else:
            _run([sys.executable, "-c", _PREDICT_WITH_THREADS, str(demo_threads()), "-i", str(images), "-o", str(pred), "-d", str(ds), "-c", args.c,
                  "-f", "0", "-tr", trainer, "-p", PLANS, "-device", "cpu"], env1)
        times[f"predict_{name}_s"], load[f"predict_{name}"] = time.perf_counter() - t, os.getloadavg()
        extra = ["--baseline", str(root / "eval_baseline.json")] if name != "baseline" else []
        if name == "ugsnet":
            extra += ["--mcm", str(pred), "--images", str(images), "--kde-png", str(root / "hu_kde_ugsnet.png")]
        assert nnext(["evaluate-raters", "-pred", str(pred), "-raters", str(rater_folder / "labelsTs_raters"),
                      "-o", str(root / f"eval_{name}.json"), *extra]) == 0
        summaries[name] = json.loads((root / f"eval_{name}.json").read_text())
        model_done.write_text(json.dumps({k: v for k, v in times.items() if name in k}))
    return {"settings": _settings(args), "seed": seed, "times_s": {k: round(v, 1) for k, v in times.items()},
            "load_average": load, "mean": {n: s["mean"] for n, s in summaries.items()},
            "dice_each_rater": {n: _per_rater(s) for n, s in summaries.items()},
            "complex_nodules": {n: summaries[n]["complex_nodules"] for n in ("multi_annotation", "ugsnet")}}


def _settings(args) -> dict:
    return {k: getattr(args, k) for k in ("n", "n_test", "c", "epochs", "iterations", "tokens")}


def _per_rater(summary) -> list:
    """Mean Dice against rater k over the cases that have a rater k."""
    each = [c["dice_each"] for c in summary["cases"].values()]
    return [float(sum(e[k] for e in each if len(e) > k) / sum(len(e) > k for e in each))
            for k in range(max(map(len, each)))]


def _stat(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f}..{max(values):.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="bench_multirater_work")
    p.add_argument("-n", type=int, default=24)
    p.add_argument("--n-test", type=int, default=12)
    p.add_argument("-c", default="2d", choices=["2d", "3d_fullres"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--iterations", type=int, default=25)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--tokens", type=int, default=256, help="plans option ugsnet.max_tokens for UGS-Net (default 256)")
    args = p.parse_args()

    work = Path(args.work).resolve()
    results = []
    for seed in args.seeds:
        root = work / f"seed{seed}"
        done = root / "result.json"
        if done.is_file() and json.loads(done.read_text()).get("settings") == _settings(args):
            print(f"seed {seed}: reusing {done}")
            results.append(json.loads(done.read_text()))
            continue
        results.append(run_seed(args, seed, root))
        done.write_text(json.dumps(results[-1], indent=2))

    names = ("baseline", "multi_annotation", "ugsnet")
    keys = ["dice_rater0", "iou_rater0", "nsd_rater0", "dice_rater_mean", "dice_union", "iou_union", "nsd_union",
            "dice_intersection", "iou_intersection", "nsd_intersection", "dice_hc", "dice_lc"]
    print(f"\n{args.n} training / {args.n_test} test nodule phantoms, {args.c}, {args.epochs} x {args.iterations} = "
          f"{args.epochs * args.iterations} iterations per model, seeds {args.seeds}; mean (min..max over seeds)")
    table = {n: {k: _stat([r["mean"][n].get(k) for r in results]) for k in keys} for n in names}
    for k in keys:
        print(f"{k:<18}" + "".join(f"{table[n][k]:>26}" for n in names))
    for n in names:
        per = [r["dice_each_rater"][n] for r in results]
        table[n]["dice_each_rater"] = [_stat([q[k] for q in per if len(q) > k]) for k in range(max(map(len, per)))]
        print(f"Dice vs each rater, {n}: {', '.join(table[n]['dice_each_rater'])}")
    complex_rows = {}
    for thr in ("below_60", "below_70", "below_80"):
        rows = [r["complex_nodules"][n][thr] for r in results for n in ("multi_annotation",)]
        complex_rows[thr] = {"n": [row["n"] for row in rows],
                             "baseline": _stat([row["baseline_dice_rater0"] for row in rows]),
                             **{n: _stat([r["complex_nodules"][n][thr]["method_dice_rater0"] for r in results])
                                for n in ("multi_annotation", "ugsnet")},
                             **{f"{n}_iou": _stat([r["complex_nodules"][n][thr]["method_iou_rater0"] for r in results])
                                for n in ("multi_annotation", "ugsnet")},
                             "baseline_iou": _stat([row["baseline_iou_rater0"] for row in rows])}
        c = complex_rows[thr]
        print(f"complex nodules {thr} (cases per seed {c['n']}): Dice baseline {c['baseline']} -> MA "
              f"{c['multi_annotation']} / UGS-Net {c['ugsnet']}")
    out = {"args": vars(args), "table": table, "complex_nodules": complex_rows, "seeds": results}
    (work / "bench_multirater.json").write_text(json.dumps(out, indent=2))
    for r in results:
        print(f"seed {r['seed']}: times {json.dumps(r['times_s'])}; load {json.dumps(r['load_average'])}")


if __name__ == "__main__":
    main()
