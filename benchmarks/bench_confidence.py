"""Case-level failure detection of ``confidence.csv`` (issue 23) on chest and head-and-neck phantoms.

Expected beforehand (Zenk et al. 2024): the pooled pairwise Dice between passes / members is the best case-level
score (lowest AURC); the mean predictive entropy over the structure is weaker; temperature scaling changes the
entropy's scale, hardly its ranking. Target: AUROC >= 0.8 for Dice < 0.5 with the best score.

Per phantom (``nnext synth``-style ``write_dataset``: chest CT with tumours; head-and-neck PET/CT with GTVp and
GTVn): 8 training cases, TinyPlanner ``2d``, MCDropoutTrainer fold 0 trained with plain ``nnUNetv2_train`` (seeded)
twice: the model (chest 20 x 50, head-and-neck 30 x 50 iterations) and 1 x ``--short-iterations`` (short
training). Held-out test
cases (seeds disjoint from training) are predicted with ``nnext predict -m tta_mc --n-samples N`` under five
conditions: ``clean``; ``noise`` (Gaussian, sigma = 0.5 x the channel's standard deviation); ``shift`` (unseen
intensity shift: CT + 350 HU, PET x 0.5); ``crop`` (field of view cut through the largest lesion's centre along
x, image and reference alike); ``short`` (clean images, the short-trained model). Every (case, label) is one
sample; failure = Dice < 0.5 (``nnext evaluate``). Scores, higher = more trustworthy:

* ``pairwise_dice``: the confidence of ``confidence.csv`` (pooled pairwise Dice of the N passes, streamed votes);
* ``entropy``: ``1 - mean predictive entropy over dilate(S) / log K`` (the single-pass rule of
  :mod:`nnunet_ext.core.confidence`, applied to the MC mean's entropy map);
* ``entropy_calibrated``: the same after temperature scaling of the mean probabilities (T fitted by NLL on 3
  extra clean cases of the clean model, :func:`nnunet_ext.core.temperature.fit_temperature`);
* ``mi``: ``1 - mean mutual information over dilate(S) / log K``.

    python benchmarks/bench_confidence.py [-o WORKDIR] [--phantoms chest headneck] [--n-test 8] [--n-samples 6]

CPU only, seeded; reuses trained models and predictions in WORKDIR. Prints a Markdown table (AUROC, AURC, Spearman
per score, phantom and label, and all labels pooled) and writes WORKDIR/bench_confidence.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

PHANTOMS = {"chest": 731, "headneck": 732}
#: epochs x iterations of the (normal) model per phantom: the demos' schedules shortened (chest demo 30 x 50 reaches
#: Dice ~0.5; fewer iterations leave a model that fails on some clean cases too, which failure detection needs)
SCHEDULES = {"chest": (20, 50), "headneck": (30, 50)}
CONDITIONS = ("clean", "noise", "shift", "crop", "short")
TRAINER, PLANS, SHORT_PLANS = "MCDropoutTrainer", "nnextTinyPlans", "nnextTinyShortPlans"
SCORES = ("pairwise_dice", "entropy", "entropy_calibrated", "mi")


def _train(dataset_id: int, plans: str, seed: int) -> Path:
    from nnunet_ext.demos.steps import train_command

    cmd = train_command([dataset_id, "2d", "0", "-tr", TRAINER, "-p", plans, "-device", "cpu"], 1, seed)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"nnUNetv2_train failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _prepare(kind: str, dataset_id: int, args, dirs) -> Path:
    """Dataset, both plans (normal and short schedule), both trained models (reused when present)."""
    from nnunet_ext.io.paths import dataset_folders
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    raw = dataset_folders(dirs["nnUNet_raw"]).get(dataset_id)
    if raw is None:
        raw = write_dataset(kind, dataset_id, args.n_train, args.n_test + 3, seed=args.seed, progress=False)
    epochs, iterations = SCHEDULES[kind] if args.epochs is None else (args.epochs, args.iterations)
    for plans, schedule in ((PLANS, {"num_epochs": epochs, "num_iterations_per_epoch": iterations}),
                            (SHORT_PLANS, {"num_epochs": 1, "num_iterations_per_epoch": args.short_iterations})):
        model = dirs["nnUNet_results"] / raw.name / f"{TRAINER}__{plans}__2d"
        if (model / "fold_0" / "checkpoint_final.pth").is_file():
            continue
        if not (dirs["nnUNet_preprocessed"] / raw.name / f"{plans}.json").is_file():
            plan_and_preprocess(dataset_id, "TinyPlanner", ["2d"], num_processes=1, plans_name=plans,
                                schedule=schedule)
        _train(dataset_id, plans, args.seed)
    return raw


def _degrade(raw: Path, out: Path, condition: str, cases: list[str], n_channels: int, rng) -> tuple[Path, Path]:
    """Images and references of ``cases`` under ``condition`` -> (image folder, reference folder)."""
    import SimpleITK as sitk

    img_dir, ref_dir = out / "images", out / "labels"
    if img_dir.is_dir():
        return img_dir, ref_dir
    tmp_img, tmp_ref = out / ".images", out / ".labels"
    for d in (tmp_img, tmp_ref):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for case in cases:
        ref = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
        chans = [sitk.ReadImage(str(raw / "imagesTs" / f"{case}_{c:04d}.nii.gz")) for c in range(n_channels)]
        crop = None
        if condition == "crop":
            lab = sitk.GetArrayFromImage(ref)
            from nnunet_ext.evaluation.report import largest_component_centroid

            centre = largest_component_centroid(lab)
            crop = int(centre[2]) if centre is not None else lab.shape[2] // 2
        for c, im in enumerate(chans):
            a = sitk.GetArrayFromImage(im).astype(np.float32)
            if condition == "noise":
                a = a + rng.normal(0, 0.5 * float(a.std()), a.shape).astype(np.float32)
            elif condition == "shift":
                a = a + 350.0 if c == 0 else a * 0.5  # CT + 350 HU; PET x 0.5
            new = sitk.GetImageFromArray(a)
            new.CopyInformation(im)
            if crop is not None:
                new = new[crop:, :, :]
            sitk.WriteImage(new, str(tmp_img / f"{case}_{c:04d}.nii.gz"))
        sitk.WriteImage(ref[crop:, :, :] if crop is not None else ref, str(tmp_ref / f"{case}.nii.gz"))
    tmp_img.rename(img_dir)
    tmp_ref.rename(ref_dir)
    return img_dir, ref_dir


def _predict(images: Path, out: Path, dataset_id: int, plans: str, args) -> None:
    from nnunet_ext.cli.main import main

    code = main(["predict", "-i", str(images), "-o", str(out), "-d", str(dataset_id), "-c", "2d", "-tr", TRAINER,
                 "-p", plans, "-f", "0", "-device", "cpu", "-m", "tta_mc", "--n-samples", str(args.n_samples),
                 "--all-maps", "--save-probabilities", "--seed", str(args.seed)])
    if code != 0:
        raise SystemExit(f"nnext predict failed for {images}")


def _evaluate(ref: Path, pred: Path) -> dict:
    from nnunet_ext.cli.main import main

    if main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-q"]) != 0:
        raise SystemExit(f"nnext evaluate failed for {pred}")
    return json.loads((pred / "summary.json").read_text())


def _fit_temperature(pred: Path, ref: Path, cases: list[str]) -> float:
    from nnunet_ext.core.temperature import fit_temperature, scores_from_probabilities
    from nnunet_ext.io.imageio import read_image, read_probabilities

    scores, targets = [], []
    for case in cases:
        p, _ = read_probabilities(pred / f"{case}_probabilities.nii.gz")
        y, _ = read_image(ref / f"{case}.nii.gz", kind="label")
        s = scores_from_probabilities(p)
        scores.append(s.reshape(s.shape[0], -1)), targets.append(y.reshape(-1))
    fit = fit_temperature(np.concatenate(scores, 1), np.concatenate(targets))
    return float(fit.temperature)


def _uncertainty_scores(pred: Path, case: str, label: int, n_classes: int, temperature: float) -> dict:
    """The three map-based scores of one (case, label): confidence rule of core.confidence on each map."""
    import torch

    from nnunet_ext.core.confidence import confidence_rows
    from nnunet_ext.core.temperature import apply_temperature
    from nnunet_ext.core.uncertainty import entropy
    from nnunet_ext.io.imageio import read_image, read_probabilities

    seg, g = read_image(pred / f"{case}.nii.gz", kind="label")
    probs, _ = read_probabilities(pred / f"{case}_probabilities.nii.gz")
    maps = {"entropy": read_image(pred / f"{case}_entropy.nii.gz")[0], "mi": read_image(pred / f"{case}_mi.nii.gz")[0],
            "entropy_calibrated": entropy(torch.from_numpy(np.asarray(
                apply_temperature(probs, np.full(probs.shape[0], temperature)), dtype=np.float32)), 0).numpy()}
    u_max = math.log(n_classes)
    out = {}
    for name, u in maps.items():
        row = confidence_rows(case, seg, u, g.spacing, [label], u_max=u_max, map_name=name)[0]
        out[name] = row["confidence"]
    return out


def _metrics(samples: list[dict], tau: float = 0.5) -> dict:
    from nnunet_ext.core.failure_detection import aurc, aurc_optimal, failure_auroc, spearman

    dice = np.array([s["dice"] for s in samples])
    out = {"n": len(samples), "n_fail": int((dice < tau).sum()), "aurc_optimal": aurc_optimal(1 - dice)}
    for score in SCORES:
        k = np.array([s[score] for s in samples])
        out[score] = {"auroc": failure_auroc(k, dice, tau), "aurc": aurc(k, 1 - dice), "spearman": spearman(k, dice)}
    return out


def run_phantom(kind: str, args, dirs, root: Path) -> tuple[list[dict], float]:
    dataset_id = PHANTOMS[kind]
    raw = _prepare(kind, dataset_id, args, dirs)
    dj = json.loads((raw / "dataset.json").read_text())
    n_channels, labels = len(dj["channel_names"]), sorted(v for v in dj["labels"].values() if v)
    cases = sorted(p.name[:-7] for p in (raw / "labelsTs").glob("*.nii.gz"))
    test, calib = cases[:args.n_test], cases[args.n_test:]
    rng = np.random.default_rng(args.seed)
    cal_dir = root / kind / "calibration"
    img, ref = _degrade(raw, cal_dir, "clean", calib, n_channels, rng)
    if not (cal_dir / "pred" / "confidence.csv").is_file():
        _predict(img, cal_dir / "pred", dataset_id, PLANS, args)
    temperature = _fit_temperature(cal_dir / "pred", ref, calib)
    samples = []
    for condition in CONDITIONS:
        folder = root / kind / condition
        img, ref = _degrade(raw, folder, "clean" if condition == "short" else condition, test, n_channels, rng)
        pred = folder / "pred"
        if not (pred / "summary.json").is_file():
            _predict(img, pred, dataset_id, SHORT_PLANS if condition == "short" else PLANS, args)
            _evaluate(ref, pred)
        summary = json.loads((pred / "summary.json").read_text())
        conf = {(r["case"], int(r["label"])): float(r["confidence"]) for r in _rows(pred / "confidence.csv")
                if r["component"] == "0"}
        for record in summary["metric_per_case"]:
            for label in labels:
                if str(label) in record.get("absent", []):
                    continue
                s = {"phantom": kind, "condition": condition, "case": record["case"], "label": label,
                     "dice": record["metrics"][str(label)]["dice"], "pairwise_dice": conf[record["case"], label]}
                s.update(_uncertainty_scores(pred, record["case"], label, len(labels) + 1, temperature))
                samples.append(s)
    print(f"{kind}: temperature {temperature:.3f}; samples {len(samples)}")
    return samples, temperature


def _rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", default="bench_confidence")
    p.add_argument("--phantoms", nargs="+", default=list(PHANTOMS), choices=list(PHANTOMS))
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--n-samples", type=int, default=6)
    p.add_argument("--n-train", type=int, default=8)
    p.add_argument("--epochs", type=int, default=None, help="default per phantom: SCHEDULES")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--short-iterations", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from nnunet_ext.io.paths import use_workspace

    root = Path(args.o).resolve()
    dirs = use_workspace(root)
    t0, load0 = time.time(), os.getloadavg()
    samples, temps = [], {}
    for kind in args.phantoms:
        s, temps[kind] = run_phantom(kind, args, dirs, root)
        samples += s
    # per phantom and label (Zenk et al. score each structure separately); pooling labels would mix a label the
    # model never predicts (every row a failure, confidence from the empty-structure rule) into the ranking
    groups = sorted({(s["phantom"], s["label"]) for s in samples})
    results = {f"{kind} label {label}": _metrics([s for s in samples if (s["phantom"], s["label"]) == (kind, label)])
               for kind, label in groups}
    results["all labels pooled"] = _metrics(samples)
    per_condition = {c: {"n": sum(s["condition"] == c for s in samples),
                         "mean_dice": float(np.mean([s["dice"] for s in samples if s["condition"] == c])),
                         "fail": int(sum(s["dice"] < 0.5 for s in samples if s["condition"] == c))}
                     for c in CONDITIONS}
    wall = time.time() - t0
    report = {"settings": vars(args), "temperature": temps, "results": results, "per_condition": per_condition,
              "wall_s": wall, "load_start": load0, "load_end": os.getloadavg(), "samples": samples}
    (root / "bench_confidence.json").write_text(json.dumps(report, indent=1, default=float))
    print("| phantom, label | n (fail) | score | AUROC Dice<0.5 | AURC (oracle) | Spearman |")
    print("|---|---|---|---|---|---|")
    for key, r in results.items():
        for score in SCORES:
            m = r[score]
            print(f"| {key} | {r['n']} ({r['n_fail']}) | {score} | {m['auroc']:.3f} | {m['aurc']:.3f} "
                  f"({r['aurc_optimal']:.3f}) | {m['spearman']:.3f} |")
    print("per condition:", json.dumps(per_condition))
    print(f"wall {wall:.0f} s, load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
