"""``nnext clicks-eval``: simulated-click evaluation of a click-prompt model (HN-UISeg, Chu 2026 4, B, D.2).

Per case: the automatic prediction (step 0, zero prompts), then ``--max-clicks`` refinement steps whose
cumulative clicks come from :class:`nnunet_ext.methods.interactive.click_protocols.ClickProtocol` (``errors`` from the
previous
step's prediction, ``autopet`` / ``each-lesion`` from the reference; autoPET's background clicks use the image
channel ``--pet-channel``). Each step re-predicts with ``-m interactive`` (the same per-case seed every step, so
steps differ by their clicks only). Clicks are simulated in the reference's grid (the input image's grid) and
mapped into the network grid like user clicks. Metrics per step and class
(:func:`nnunet_ext.evaluation.metrics.compute_metrics`): Dice, NSD (``--tau`` mm), HD (the paper's maximum
Hausdorff distance, eq. 7) and HD95.

The ``errors`` protocol clicks only error components of at least ``--min-error-mm3`` (default: the model's
``clicks.min_error_mm3``; unset there, the volume of the click ball in the network grid, ``ball voxels x
network voxel volume``, i.e. what one click paints; for 2D configurations the disc's area in mm^2, compared
with the 3D component's voxel count times the in-plane voxel area) and never clicks a component twice unless
the model changed it; ``clicks_class`` / ``clicks_total`` count distinct clicks. A model with
previous-prediction channels (``clicks.previous_prediction``) gets, at each step, the prediction of the step
before (the one the new click was placed on), as a user's next click sees the current result.

Outputs in OUT: ``clicks_eval.csv`` (one row per case, step and class), ``summary.json`` (mean per step and
class, mean distinct clicks) and ``dice_vs_clicks.png``; ``--save-steps`` also writes
``steps/CASE_step{k}.nii.gz`` and the last step's clicks as clicks JSON ``steps/CASE_clicks.json`` (voxel x, y,
z; ``nnext predict -m interactive --clicks`` reads it). Defaults are deterministic (1 pass, no TTA, no
dropout); ``--n-samples`` / ``--tta`` / ``--dropout-p`` as ``nnext predict -m tta_mc``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

from nnunet_ext.errors import InputError
from nnunet_ext.methods.interactive.interactive_predictor import InteractiveMethod
from nnunet_ext.methods.interactive.options import InteractiveOptions
from nnunet_ext.predictors.model_flags import add_device_arguments, add_model_arguments, check_device
from nnunet_ext.predictors.sampling_options import SamplingOptions

METRICS = ("dice", "nsd", "hd", "hd95")  # hd: the paper's maximum Hausdorff distance (eq. 7)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", required=True, help="input images (nnU-Net naming CASE_XXXX.nii.gz)")
    p.add_argument("-ref", required=True, help="reference segmentations CASE.nii.gz")
    p.add_argument("-o", required=True, help="output folder")
    add_model_arguments(p, trainer_default="ClickPromptErrorTrainer", required=True)
    add_device_arguments(p)
    p.add_argument("--protocol", default="errors", choices=("errors", "autopet", "each-lesion"),
                   help="click simulation (default errors)")
    p.add_argument("--max-clicks", type=int, default=5, help="refinement steps = clicks per class (default 5)")
    p.add_argument("--pet-channel", type=int, default=1,
                   help="image channel of autopet's background hot spots (default 1 = PET; -1 = none)")
    p.add_argument("--min-error-mm3", type=float, default=None, metavar="MM3",
                   help="errors protocol: smallest error component clicked (default: the model's clicks.min_error_mm3, "
                        "else the click ball's volume)")
    SamplingOptions.add_arguments(p, "sampling (as nnext predict -m tta_mc; default one deterministic pass)",
                                  defaults=InteractiveMethod.DETERMINISTIC)
    InteractiveOptions.add_arguments(p, "clicks", skip=("clicks", "allow_missing_clicks", "point_names", "gc_space"))
    p.add_argument("--tau", type=float, default=2.0, help="NSD tolerance in mm (default 2, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="random seed (per case derived from it)")
    p.add_argument("--save-steps", action="store_true", help="also write the segmentation of every step")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def build_method(args):
    """An :class:`~nnunet_ext.methods.interactive.interactive_predictor.InteractiveMethod` for the model named by \
``args``."""
    check_device(args.device)
    try:
        sampling = SamplingOptions.from_args(args, InteractiveMethod.DETERMINISTIC)
        options = InteractiveOptions.from_args(args)
    except ValueError as e:
        raise InputError(str(e)) from None
    return InteractiveMethod.load(args.d, args.c, args.tr, args.p, args.f, args.device, args.chk, sampling, options)


def reference_min_voxels(method, args, ref_spacing) -> int:
    """Smallest error component of the errors protocol, in voxels of the reference grid (module docstring)."""
    import numpy as np

    from nnunet_ext.methods.interactive.click_simulation import ball_voxels

    mm3 = args.min_error_mm3 if getattr(args, "min_error_mm3", None) is not None else \
        getattr(getattr(method, "click_options", None), "min_error_mm3", None)
    if mm3 is not None and mm3 < 0:
        raise InputError(f"--min-error-mm3 must be >= 0, got {mm3}")
    net_spacing = [float(v) for v in method.engine.configuration_manager.spacing]
    if mm3 is None:
        mm3 = ball_voxels(method.click_radius, len(net_spacing)) * float(np.prod(net_spacing))
    ref = [float(v) for v in ref_spacing]
    pm = method.engine.plans_manager
    ref_t = [ref[i] for i in pm.transpose_forward][-len(net_spacing):]  # in-plane axes for 2D configurations
    return max(1, int(np.ceil(mm3 / float(np.prod(ref_t)) - 1e-9)))


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.io.imageio import atomic_write_text, read_image, write_image
    from nnunet_ext.methods.interactive.click_protocols import ClickProtocol, as_clicks
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.method import CaseContext

    if args.max_clicks < 1:
        raise InputError(f"--max-clicks must be >= 1, got {args.max_clicks}")
    from nnunet_ext.io.integrity import check_output_dir

    out = check_output_dir(args.o, "output folder (-o)")
    if (out / "clicks_eval.csv").exists() and not args.overwrite:
        raise InputError(f"{out / 'clicks_eval.csv'} exists; pass --overwrite to replace it")
    if not os.path.isdir(args.ref):
        raise InputError(f"{args.ref}: reference folder not found")
    method = build_method(args)
    ending = method.dataset_json["file_ending"]
    classes = sorted(v for k, v in method.labels.items() if isinstance(v, int) and v != 0)
    names = {v: k for k, v in method.labels.items() if isinstance(v, int)}
    cases = list_cases(args.i, method.dataset_json)
    from nnunet_ext.io.label_check import check_label_values, declared_label_values

    declared = declared_label_values(method.labels, "the model's dataset.json")
    refs = {c.case_id: os.path.join(args.ref, c.case_id + ending) for c in cases}
    missing = [p for p in refs.values() if not os.path.isfile(p)]
    if missing:
        raise InputError(f"{missing[0]}: reference segmentation not found ({len(missing)} case(s) without one)")
    if args.protocol == "autopet" and args.pet_channel >= len(cases[0].files):
        raise InputError(f"--pet-channel {args.pet_channel}: the images have {len(cases[0].files)} channel(s)")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in tqdm(cases, desc="clicks-eval", unit="case", disable=not sys.stderr.isatty()):
        ref, geometry = read_image(refs[case.case_id], kind="label")
        check_label_values(ref, refs[case.case_id], declared, "the model's dataset.json")
        pet = (read_image(case.files[args.pet_channel])[0] if args.protocol == "autopet" and args.pet_channel >= 0
               else None)
        prepared = method.prepare(case)
        base = prepared.data[:method.n_image_channels]
        if tuple(ref.shape) != tuple(prepared.properties["shape_before_cropping"][i]
                                     for i in method.engine.plans_manager.transpose_backward):
            raise InputError(f"{refs[case.case_id]}: shape {ref.shape} differs from the image")
        protocol = ClickProtocol(args.protocol, ref, classes, args.max_clicks, image=pet,
                                 spacing=geometry.spacing[::-1],
                                 min_voxels=reference_min_voxels(method, args, geometry.spacing[::-1]))
        pred, points = None, []
        for step in range(protocol.n_steps + 1):
            if step:
                points = protocol.step(step, pred)
                clicks = as_clicks(points, classes)
                prompt = method.prompt_for(clicks, base.shape[1:], prepared.properties)
                # previous-prediction models: the prediction of the step before, on which these clicks were placed
                prepared.data = method.with_channels(base, prompt, prepared.labels)
                prepared.previous, prepared.clicks = prepared.labels, clicks
            pred = method.predict_case(prepared, CaseContext.for_case(case.case_id, args.seed)).segmentation
            pred = pred[0] if pred.ndim == ref.ndim + 1 else pred
            if args.save_steps:
                write_image(pred.astype(np.uint8), geometry, out / "steps" / f"{case.case_id}_step{step}{ending}")
            for ch, value in enumerate(classes):
                m = compute_metrics(ref == value, pred == value, geometry.spacing[::-1], tau=args.tau)
                rows.append({"case": case.case_id, "step": step, "class": names.get(value, str(value)),
                             "clicks_total": len({(c, tuple(z), p) for c, z, p in points}),
                             "clicks_class": len({(c, tuple(z), p) for c, z, p in points if c in (ch, None)}),
                             **{k: float(m[k]) for k in METRICS}})
        if args.save_steps:
            labels = {v: k for k, v in method.labels.items() if isinstance(v, int)}
            used = [{"point": [int(round(v)) for v in c.position], "space": "voxel",
                     "label": None if c.label is None else labels.get(int(c.label), c.label),
                     "positive": bool(c.positive)} for c in as_clicks(points, classes)]
            atomic_write_text(out / "steps" / f"{case.case_id}_clicks.json", json.dumps(used, indent=1))
    _write_outputs(out, rows, args)
    print(f"{len(cases)} case(s), protocol {args.protocol}: {out / 'clicks_eval.csv'}, summary.json, "
          "dice_vs_clicks.png")
    return 0


def _write_outputs(out: Path, rows: list, args) -> None:
    import numpy as np

    from nnunet_ext.io.atomic_write import save_figure
    from nnunet_ext.io.imageio import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "clicks_eval.csv", buf.getvalue())
    summary = {"protocol": args.protocol, "max_clicks": args.max_clicks, "tau_mm": args.tau, "mean": {},
               "mean_distinct_clicks": {}}
    for cls in dict.fromkeys(r["class"] for r in rows):
        steps = sorted({r["step"] for r in rows if r["class"] == cls})
        summary["mean"][cls] = {str(s): {k: float(np.mean([r[k] for r in rows if r["class"] == cls and
                                                            r["step"] == s])) for k in METRICS}
                                for s in steps}
        summary["mean_distinct_clicks"][cls] = {str(s): float(np.mean([r["clicks_class"] for r in rows if r["class"]
                                                                       == cls and r["step"] == s])) for s in steps}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for cls, per_step in summary["mean"].items():
        steps = sorted(int(s) for s in per_step)
        ax.plot(steps, [per_step[str(s)]["dice"] for s in steps], marker="o", label=cls)
    ax.set_xlabel("refinement step (clicks per class)")
    ax.set_ylabel("mean Dice")
    ax.set_title(f"protocol {args.protocol}")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "dice_vs_clicks.png", format="png", dpi=100)
    plt.close(fig)
