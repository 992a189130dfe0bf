"""Arms of ``nnext demo headneck`` over seeds, paired (issue 18): the click-refinement benchmark of RESULTS.md
(issue 18, sessions 10-12: arms that change plans options), as one script.

An arm is the demo with extra plans options (``nnext demo headneck --set SECTION.KEY=VALUE``); each seed
synthesises its own 40 training + 3 test phantoms, so two arms with the same seed train on the same data and are
compared per test case.

    # the demo's default and the previous-prediction ablation, seeds 0-7, two runs side by side (1 thread each)
    python benchmarks/bench_headneck_demo.py run -o W --arm default --seeds 0-7 --jobs 2
    python benchmarks/bench_headneck_demo.py run -o W --arm previous --set clicks.previous_prediction=true \\
        --seeds 0-7 --jobs 2
    # plain automatic nnU-Net on each run's data (ClickPromptAutoTrainer from scratch, prompts always zero, as many
    # epochs as the three stages together): the automatic branch against it
    python benchmarks/bench_headneck_demo.py baseline -o W --arm default --seeds 0-7 --jobs 2
    # every click protocol, 0..5 clicks, stage-1 and stage-3 models of each run (nnext clicks-eval)
    python benchmarks/bench_headneck_demo.py protocols -o W --arm default --seeds 0-7 --jobs 2
    python benchmarks/bench_headneck_demo.py summary -o W --arms default previous [--json S.json]

``summary`` prints, per arm and seed, the stage-3 model's mean Dice after 0..3 clicks (errors protocol, the
demo's ``clicks_eval_stage3``) with a flag where Dice drops from one click count to the next; pooled over the
(seed, case) pairs the 3-click gain (Wilcoxon, bootstrap CI: ``benchmarks/_stats.py``); each later arm against
the first, paired per (seed, case): gains and Dice at 0 and 3 clicks; where ``baseline`` ran, the automatic Dice
(0 clicks) of stage 3 against the plain baseline; where ``protocols`` ran, per model and protocol the mean Dice
after 0..5 clicks over the (seed, case) pairs and the gains after 3 and 5 clicks. A class absent from a test case's
reference counts as the demo counts it (Dice 1 when the prediction is empty too). The issue's targets per seed:
GTVn +0.10 and GTVp +0.03 after 3 clicks, no drop.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import paired  # noqa: E402

CLASSES = ("GTVp", "GTVn")
PROTOCOLS = ("errors", "autopet", "each-lesion")  # nnunet_ext.methods.interactive.click_protocols.PROTOCOLS
PROTOCOL_CLICKS = 5
PROTOCOL_STAGES = ("stage1", "stage3")  # the models clicks-eval runs with every protocol
#: ``nnext`` of this interpreter's environment (the package importable from here, as ``PYTHONPATH`` says)
NNEXT = (sys.executable, "-c", "import sys; from nnunet_ext.cli.main import main; sys.exit(main())")


def seeds_arg(text: str) -> list:
    """``0-7`` or ``0,2,5`` -> a list of seeds."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def run_dir(root: Path, arm: str, seed: int) -> Path:
    return root / arm / f"seed{seed}"


def _env(workspace: "Path | None" = None) -> dict:
    """One torch thread, one nnU-Net process; with ``workspace`` nnU-Net's folders inside it and augmentation in the
    training process (set per child, not in this process's environment: runs side by side in threads of this
    process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "nnUNet_def_n_proc": "1"}
    if workspace is not None:  # as nnunet_ext.io.paths.use_workspace, which sets them in its own process
        env.update({v: str(workspace / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        env.setdefault("nnUNet_n_proc_DA", "0")  # augmentation in the training process: a seeded run repeats
    return env


def _log(cmd, log: Path, workspace: "Path | None" = None) -> int:
    with open(log, "a") as f:
        return subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT,
                              env=_env(workspace)).returncode


def _run_folders(root: Path, arm: str, seed: int) -> tuple:
    """(demo folder, raw dataset, preprocessed dataset, dataset id, configuration trained) of a finished run."""
    from nnunet_ext.demos.headneck import RAW_ID, RAW_NAME

    demo = run_dir(root, arm, seed) / "headneck"
    name = f"Dataset{RAW_ID}_{RAW_NAME}"
    return (demo, demo / "nnUNet_raw" / name, demo / "nnUNet_preprocessed" / name, str(RAW_ID),
            _plan_record(demo)["config"])


def _plan_record(demo: Path) -> dict:
    """The settings of the demo's plan step (configuration trained, stage-1 epochs, options); the plans
    themselves hold 2d and 3d_fullres."""
    return json.loads((demo / ".nnext_demo_plan.json").read_text())["settings"]


def run_arm(root: Path, arm: str, seed: int, options: list) -> str:
    """``nnext demo headneck -o ROOT/ARM/seedS --seed S --set ...`` (one torch thread); a finished run's steps are
    reused by the demo's own settings check."""
    out = run_dir(root, arm, seed)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [*NNEXT, "demo", "headneck", "-o", out, "--seed", seed, *[a for o in options for a in ("--set", o)]]
    log = out / "demo.log"
    code = _log(cmd, log)
    return f"{arm} seed {seed}: " + ("done" if code == 0 else f"failed (exit {code}, see {log})")


def run_baseline(root: Path, arm: str, seed: int) -> str:
    """Plain automatic nnU-Net on the run's data and plans: ``ClickPromptAutoTrainer`` from scratch (its prompt
    channels are always zero; the same network, dropout and optimiser) for the three stages' epochs together, then
    its automatic Dice: step 0 of ``nnext clicks-eval --max-clicks 1`` (the demo's metric and test cases)."""
    from nnunet_ext.demos.headneck import PLANS, stage_epochs
    from nnunet_ext.demos.steps import train_command

    demo, raw, pre, dataset, config = _run_folders(root, arm, seed)
    plans = json.loads((pre / f"{PLANS}.json").read_text())
    base = plans["plans_name"] = f"{PLANS}Base"
    epochs = sum(stage_epochs(_plan_record(demo)["epochs"]).values())
    block = plans["configurations"][config].setdefault("nnext_training", {})
    block["num_epochs"] = epochs
    block.setdefault("optimizer", {})["warmup_epochs"] = max(1, epochs // 10)
    (pre / f"{base}.json").write_text(json.dumps(plans, indent=4))
    model = ["-d", dataset, "-c", config, "-tr", "ClickPromptAutoTrainer", "-p", base, "-f", "0"]
    log = demo / "baseline.log"
    if not (demo / "nnUNet_results" / pre.name / f"ClickPromptAutoTrainer__{base}__{config}" / "fold_0"
            / "checkpoint_final.pth").is_file():
        if _log(train_command([dataset, config, "0", "-tr", "ClickPromptAutoTrainer", "-p", base, "-device", "cpu"],
                              threads=1, seed=seed), log, demo):
            return f"{arm} seed {seed}: baseline training failed (see {log})"
    code = _log([*NNEXT, "clicks-eval", "-i", raw / "imagesTs", "-ref", raw / "labelsTs", "-o",
                 demo / "results" / "clicks_eval_base", *model, "-device", "cpu", "--protocol", "errors",
                 "--max-clicks", 1, "--seed", seed, "--overwrite"], log, demo)
    return f"{arm} seed {seed}: baseline " + ("done" if code == 0 else f"evaluation failed (see {log})")


def run_protocols(root: Path, arm: str, seed: int) -> str:
    """``nnext clicks-eval`` of the run's stage-1 and stage-3 models with every protocol, 0..5 clicks, into
    ``results/protocols/<stage>_<protocol>`` (a finished one is kept)."""
    from nnunet_ext.demos.headneck import STAGES, stage_plans_name

    demo, raw, pre, dataset, config = _run_folders(root, arm, seed)
    log = demo / "protocols.log"
    for stage in PROTOCOL_STAGES:
        trainer, plans = dict(STAGES)[stage], stage_plans_name(stage)
        for protocol in PROTOCOLS:
            out = demo / "results" / "protocols" / f"{stage}_{protocol}"
            if (out / "summary.json").is_file():
                continue
            cmd = [*NNEXT, "clicks-eval", "-i", raw / "imagesTs", "-ref", raw / "labelsTs", "-o", out,
                   "-d", dataset, "-c", config, "-tr", trainer, "-p", plans,
                   "-f", "0", "-device", "cpu", "--protocol", protocol, "--max-clicks", PROTOCOL_CLICKS,
                   "--seed", seed, "--overwrite"]
            if _log(cmd, log, demo):
                return f"{arm} seed {seed}: clicks-eval {stage} {protocol} failed (see {log})"
    return f"{arm} seed {seed}: protocols done"


def summarise_protocols(root: Path, arm: str) -> dict:
    """Per model and protocol: mean Dice after each step over the (seed, case) pairs (0..5 clicks; each-lesion: 0
    and one click per lesion) and the paired gains after 3 and the last step."""
    out = {}
    for stage in PROTOCOL_STAGES:
        for protocol in PROTOCOLS:
            rows = {}
            for d in (root / arm).glob("seed*"):
                f = d / "headneck" / "results" / "protocols" / f"{stage}_{protocol}" / "clicks_eval.csv"
                if f.is_file():
                    rows.update({(d.name, *k): v for k, v in _rows(f).items()})
            if not rows:
                continue
            last = max(k[-1] for k in rows)  # each-lesion has one step (every lesion at once), the others 5
            out[f"{stage} {protocol}"] = {
                cls: {"dice": [round(x, 4) for x in curve(rows, cls, last)],
                      "gains": {n: paired(gains(rows, cls, n)) for n in sorted({min(3, last), last})}}
                for cls in CLASSES}
    return out


def _rows(csv_file: Path) -> dict:
    """``{(case, class, step): Dice}`` of a clicks_eval.csv."""
    with open(csv_file) as f:
        return {(r["case"], r["class"], int(r["step"])): float(r["dice"]) for r in csv.DictReader(f)}


def load_arm(root: Path, arm: str) -> dict:
    """``{seed: {"stage3": rows, "base": rows or None}}`` of the arm's finished runs."""
    out = {}
    for d in sorted((root / arm).glob("seed*"), key=lambda p: int(p.name[4:])):
        res = d / "headneck" / "results"
        if (res / "clicks_eval_stage3" / "clicks_eval.csv").is_file() and (res / "summary.json").is_file():
            base = res / "clicks_eval_base" / "clicks_eval.csv"
            out[int(d.name[4:])] = {"stage3": _rows(res / "clicks_eval_stage3" / "clicks_eval.csv"),
                                    "base": _rows(base) if base.is_file() else None}
    return out


# Rows are keyed ``(*case id, class, step)``: the case id is ``(case,)`` within one run and ``(seed, case)`` pooled.
def cases(rows: dict, cls: str) -> list:
    """The case ids that have rows of class ``cls``."""
    return sorted({k[:-2] for k in rows if k[-2] == cls})


def dice_at(rows: dict, cls: str, step: int, ids: "list | None" = None) -> list:
    """Dice of ``cls`` after ``step`` clicks per case id (``ids``: default every case of the class)."""
    return [rows[(*i, cls, step)] for i in (cases(rows, cls) if ids is None else ids)]


def gains(rows: dict, cls: str, step: int, ids: "list | None" = None) -> list:
    """Dice after ``step`` clicks minus Dice at 0 clicks, per case id."""
    return [b - a for a, b in zip(dice_at(rows, cls, 0, ids), dice_at(rows, cls, step, ids))]


def curve(rows: dict, cls: str, clicks: int = 3) -> list:
    """Mean Dice over the cases after 0..``clicks`` clicks."""
    return [float(np.mean(dice_at(rows, cls, s))) for s in range(clicks + 1)]


def _pooled(runs: dict, key: str, seeds=None) -> dict:
    """The rows ``key`` of the runs (``seeds``: default all that have them), keyed ``(seed, case, class, step)``."""
    return {(seed, *k): v for seed, r in runs.items() if r[key] and (seeds is None or seed in seeds)
            for k, v in r[key].items()}


def summarise(root: Path, arms: list) -> dict:
    data = {arm: load_arm(root, arm) for arm in arms}
    result = {}
    for arm, runs in data.items():
        per_seed = {}
        for seed, r in runs.items():
            per_seed[seed] = {}
            for cls in CLASSES:
                v = curve(r["stage3"], cls)
                per_seed[seed][cls] = {"dice": [round(x, 4) for x in v], "gain3": round(v[3] - v[0], 4),
                                       "drop": any(b < a - 1e-9 for a, b in zip(v, v[1:]))}
        pooled = _pooled(runs, "stage3")
        entry = {"seeds": per_seed, "pooled_gain3": {c: paired(gains(pooled, c, 3)) for c in CLASSES},
                 "targets": {"GTVn+0.10": [s for s, v in per_seed.items() if v["GTVn"]["gain3"] >= 0.10],
                             "GTVp+0.03": [s for s, v in per_seed.items() if v["GTVp"]["gain3"] >= 0.03],
                             "no_drop": [s for s, v in per_seed.items() if not any(v[c]["drop"] for c in CLASSES)]}}
        base = _pooled(runs, "base")
        if base:  # the automatic branch (0 clicks) against the plain baseline, on the seeds that have one
            stage3 = _pooled(runs, "stage3", {k[0] for k in base})
            entry["automatic_stage3_minus_plain"] = {
                c: paired([a - b for a, b in zip(dice_at(stage3, c, 0), dice_at(base, c, 0, cases(stage3, c)))])
                for c in CLASSES}
            entry["automatic_plain_mean"] = {c: float(np.mean(dice_at(base, c, 0))) for c in CLASSES}
        protocols = summarise_protocols(root, arm)
        if protocols:
            entry["protocols"] = protocols
        result[arm] = entry
    first = arms[0]
    for arm in arms[1:]:
        common = sorted(set(data[arm]) & set(data[first]))
        ours, theirs = _pooled(data[arm], "stage3", set(common)), _pooled(data[first], "stage3", set(common))
        cmp = {}
        for cls in CLASSES:
            ids = cases(theirs, cls)

            def minus(per_case):  # arm - first per (seed, case), paired
                return paired([a - b for a, b in zip(per_case(ours), per_case(theirs))])
            cmp[cls] = {"gain3": minus(lambda rows: gains(rows, cls, 3, ids)),
                        "dice0": minus(lambda rows: dice_at(rows, cls, 0, ids)),
                        "dice3": minus(lambda rows: dice_at(rows, cls, 3, ids))}
        result[arm][f"minus_{first}"] = {"seeds": common, **cmp}
    return result


def _fmt(p: dict) -> str:
    if "mean" not in p:
        return f"n {p['n']}"
    return f"{p['mean']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}] p {p['wilcoxon_p']:.2g} (n {p['n']})"


def print_summary(result: dict) -> None:
    for arm, e in result.items():
        print(f"== {arm}")
        for seed, v in e["seeds"].items():
            parts = [f"{c} {' -> '.join(f'{x:.3f}' for x in v[c]['dice'])} ({v[c]['gain3']:+.3f}"
                     f"{', drop' if v[c]['drop'] else ''})" for c in CLASSES]
            print(f"  seed {seed}: " + " | ".join(parts))
        for c in CLASSES:
            print(f"  pooled 3-click gain {c}: {_fmt(e['pooled_gain3'][c])}")
        print(f"  seeds meeting GTVn +0.10: {e['targets']['GTVn+0.10']}; GTVp +0.03: {e['targets']['GTVp+0.03']}; "
              f"no drop: {e['targets']['no_drop']}")
        if "automatic_stage3_minus_plain" in e:
            for c in CLASSES:
                print(f"  automatic {c}: stage 3 - plain nnU-Net {_fmt(e['automatic_stage3_minus_plain'][c])}; "
                      f"plain mean {e['automatic_plain_mean'][c]:.3f}")
        for model, entry in e.get("protocols", {}).items():
            for c in CLASSES:
                gains = "; ".join(f"gain after {n} {_fmt(g)}" for n, g in entry[c]["gains"].items())
                print(f"  {model} {c}: {' -> '.join(f'{x:.3f}' for x in entry[c]['dice'])}; {gains}")
        for key, cmp in e.items():
            if key.startswith("minus_"):
                for c in CLASSES:
                    print(f"  {arm} {key.replace('_', ' ')} {c}: gain {_fmt(cmp[c]['gain3'])}; Dice at 0 clicks "
                          f"{_fmt(cmp[c]['dice0'])}; at 3 {_fmt(cmp[c]['dice3'])}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("run", "baseline", "protocols", "summary"))
    ap.add_argument("-o", required=True, help="workspace: ARM/seedS/ per run")
    ap.add_argument("--arm", default="default", help="run / baseline: the arm's name (its folder)")
    ap.add_argument("--arms", nargs="+", default=None, help="summary: arms to compare, the first is the reference")
    ap.add_argument("--set", dest="set_options", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="run: plans option of the arm (nnext demo headneck --set); repeatable")
    ap.add_argument("--seeds", type=seeds_arg, default=[0, 1, 2, 3, 4])
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each")
    ap.add_argument("--json", default=None, help="summary: also write it to this JSON file")
    a = ap.parse_args(argv)
    root = Path(a.o).resolve()
    if a.what == "summary":
        result = summarise(root, a.arms or sorted(p.name for p in root.iterdir() if p.is_dir()))
        print_summary(result)
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=1))
        return 0
    if a.what == "run":
        (root / a.arm).mkdir(parents=True, exist_ok=True)
        (root / a.arm / "arm.json").write_text(json.dumps({"set": a.set_options}, indent=1))
    jobs = {"run": lambda s: run_arm(root, a.arm, s, a.set_options), "baseline": lambda s: run_baseline(root, a.arm, s),
            "protocols": lambda s: run_protocols(root, a.arm, s)}
    job = jobs[a.what]
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        lines = list(pool.map(job, a.seeds))
    print("\n".join(lines))
    return 0 if all(line.endswith("done") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
