"""Head-and-neck click-prompt demo (HN-UISeg, Chu 2026), end to end; meant as ``nnext demo headneck``.

synth head-and-neck PET/CT phantoms -> ``nnext plan`` (TinyPlanner, ``3d_fullres`` by default: the engine's
MC passes fail on ``2d`` configurations at the time of writing) -> plain ``nnUNetv2_train -tr
ClickPromptTrainer`` (stage 1: clicks simulated from the reference with p = 0.5) -> ``nnext clicks-eval
--protocol errors`` on the test cases (automatic prediction, then ``--max-clicks`` simulated clicks; CSV and the
Dice-against-clicks curve) -> for the first test case ``nnext predict -m interactive`` (MC dropout + TTA,
``--n-samples`` passes) without and with the last step's clicks -> ``before_after.png`` (CT, reference and
predicted contours, uncertainty, before / after the clicks) and ``summary.json``. Everything lives in
``-o DIR/headneck``; a re-run repeats every step (``--overwrite`` deletes the folder first).

Run it with ``run_headneck(args)`` (``args`` as parsed by ``nnext demo``'s parser: ``-o -n --n-test -c --epochs
--iterations --n-samples --seed --overwrite``) or ``python -m nnunet_ext.demos.headneck [-o DIR]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

RAW_ID = 995
TRAINER, PLANS = "ClickPromptTrainer", "nnextTinyPlans"
MAX_CLICKS = 3


def before_after_png(ct, ref, before, after, u_before, u_after, clicks_zyx, path, title="") -> int:
    """Two rows (before / after the clicks): CT with reference (white) and predicted GTVp (red) / GTVn (blue)
    contours and the clicks (+ green, x yellow), and the uncertainty map. Returns the slice shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.imageio import atomic_path

    z = int(np.argmax((ref > 0).sum((1, 2)))) if ref.any() else ct.shape[0] // 2
    fig, axes = plt.subplots(2, 2, figsize=(8, 8))
    for row, (seg, unc, name) in enumerate(((before, u_before, "automatic"), (after, u_after, "after clicks"))):
        ax = axes[row, 0]
        ax.imshow(np.clip(ct[z], -200, 300), cmap="gray")
        ax.contour(ref[z] > 0, levels=[0.5], colors="white", linewidths=1)
        for value, colour in ((1, "red"), (2, "deepskyblue")):
            if (seg[z] == value).any():
                ax.contour(seg[z] == value, levels=[0.5], colors=colour, linewidths=1)
        if row == 1:
            for cz, cy, cx, positive in clicks_zyx:
                if abs(cz - z) <= 1:
                    ax.plot(cx, cy, "+" if positive else "x", color="lime" if positive else "yellow", ms=10, mew=2)
        ax.set_title(name)
        im = axes[row, 1].imshow(unc[z], cmap="magma")
        axes[row, 1].set_title(f"{name}: entropy (nats)")
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"{title}\nreference white, GTVp red, GTVn blue; clicks + positive, x negative")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return z


def run_headneck(args) -> int:
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.paths import nnunet_command, use_workspace

    root = Path(args.o).resolve() / "headneck"
    if args.overwrite and root.exists():
        shutil.rmtree(root)
    dirs = use_workspace(root)
    timings, t0 = {}, time.perf_counter()
    raw = dirs["nnUNet_raw"] / "Dataset995_NnextDemoHeadNeck"

    def step(name, fn):
        t = time.perf_counter()
        print(f"\n[headneck demo] {name}", flush=True)
        fn()
        timings[name] = round(time.perf_counter() - t, 1)

    step("synth", lambda: nnext(["synth", "headneck", "-d", str(RAW_ID), "-n", str(args.n), "--n-test",
                                 str(args.n_test), "--seed", str(args.seed), "--name", "NnextDemoHeadNeck",
                                 "--overwrite"]))
    step("plan", lambda: nnext(["plan", "-d", str(RAW_ID), "-pl", "TinyPlanner", "-c", args.c, "--epochs",
                                str(args.epochs), "--iterations", str(args.iterations), "-np", "1"]))

    def train():
        shutil.rmtree(dirs["nnUNet_results"] / raw.name, ignore_errors=True)
        subprocess.run([nnunet_command("nnUNetv2_train"), str(RAW_ID), args.c, "0", "-tr", TRAINER, "-p", PLANS,
                        "-device", "cpu"], check=True)

    step("train", train)
    model = ["-d", str(RAW_ID), "-c", args.c, "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu"]
    out = root / "results"
    step("clicks-eval", lambda: nnext(["clicks-eval", "-i", str(raw / "imagesTs"), "-ref", str(raw / "labelsTs"),
                                       "-o", str(out / "clicks_eval"), *model, "--protocol", "errors",
                                       "--max-clicks", str(MAX_CLICKS), "--save-steps", "--overwrite"]))
    summary = json.loads((out / "clicks_eval" / "summary.json").read_text())

    def before_after():
        from nnunet_ext.core.click_protocols import ClickProtocol, as_clicks
        from nnunet_ext.imageio import read_image

        case = sorted(p.name for p in (raw / "labelsTs").glob("*.nii.gz"))[0][: -len(".nii.gz")]
        ref, _ = read_image(raw / "labelsTs" / f"{case}.nii.gz", kind="label")
        protocol = ClickProtocol("errors", ref, (1, 2), MAX_CLICKS)
        points = []
        for k in range(1, MAX_CLICKS + 1):  # the clicks clicks-eval used, from its saved step predictions
            prev, _ = read_image(out / "clicks_eval" / "steps" / f"{case}_step{k - 1}.nii.gz", kind="label")
            points = protocol.step(k, prev)
        clicks = [{"point": list(c.position), "space": "voxel", "label": "GTVp" if c.label == 1 else "GTVn",
                   "positive": c.positive} for c in as_clicks(points, (1, 2))]
        (out / "clicks.json").write_text(json.dumps({case: clicks}, indent=1))
        folder = out / "single"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "in").mkdir(parents=True)
        for f in (raw / "imagesTs").glob(f"{case}_*.nii.gz"):
            shutil.copy(f, folder / "in" / f.name)
        n = ["--n-samples", str(args.n_samples), "--seed", str(args.seed)]
        nnext(["predict", "-m", "interactive", "-i", str(folder / "in"), "-o", str(folder / "before"), *model, *n])
        nnext(["predict", "-m", "interactive", "-i", str(folder / "in"), "-o", str(folder / "after"), *model, *n,
               "--clicks", str(out / "clicks.json")])
        ct, _ = read_image(folder / "in" / f"{case}_0000.nii.gz", kind="image")
        seg = [read_image(folder / s / f"{case}.nii.gz", kind="label")[0] for s in ("before", "after")]
        unc = [read_image(folder / s / f"{case}_uncertainty.nii.gz")[0] for s in ("before", "after")]
        before_after_png(ct, ref, seg[0], seg[1], unc[0], unc[1],
                         [(z, y, x, pos) for _, (z, y, x), pos in points], out / "before_after.png",
                         f"{case}: {len(points)} simulated clicks (errors protocol)")

    step("before-after", before_after)
    timings["total"] = round(time.perf_counter() - t0, 1)
    result = {"timings_s": timings, "dice_vs_clicks": {c: {s: round(v["dice"], 4) for s, v in d.items()}
                                                       for c, d in summary["mean"].items()},
              "outputs": [str(out / "clicks_eval" / "dice_vs_clicks.png"), str(out / "before_after.png")]}
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", default="nnext_demo")
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--n-test", type=int, default=3)
    p.add_argument("-c", default="3d_fullres", choices=("2d", "3d_fullres"))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    return p


if __name__ == "__main__":
    raise SystemExit(run_headneck(_parser().parse_args()))
