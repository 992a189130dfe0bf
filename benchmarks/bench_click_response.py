"""Does a click-prompt model follow single clicks? Probability change at the click (issue 18).

For every model given (``-tr TRAINER:PLANS``, e.g. the three stages of ``nnext demo headneck``) and every test
case: the automatic prediction (no clicks), then, one at a time, (a) a positive click at the deepest voxel of
each reference lesion of each class that the automatic prediction misses at that voxel, and (b) a negative click
at the deepest voxel of each false-positive component of each class (at least the click ball's volume, as the
errors protocol). Reported per model and class: mean change of that class's probability at the click voxel
(positive clicks should raise it, negative lower it) and the share of clicks that flip the predicted label at
the click, the share of the clicked component the click corrects (lesion voxels found / false-positive voxels
removed), the component's size and how many voxels of the class change anywhere. Deterministic prediction
(1 pass, no TTA, no dropout).

    python benchmarks/bench_click_response.py --root /tmp/demo/headneck -d 995 -c 2d \\
        -tr ClickPromptTrainer:nnextTinyPlans ClickPromptErrorTrainer:nnextTinyPlansStage3
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

# per click: probability change at the click, label flipped there, share of the clicked component corrected,
# the component's size (voxels), voxels of the class whose label changed anywhere in the case
ROW = ("mean_dp", "flipped", "corrected_share", "component_voxels", "changed_voxels")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="workspace with nnUNet_raw / _preprocessed / _results inside")
    ap.add_argument("-d", required=True)
    ap.add_argument("-c", default="2d")
    ap.add_argument("-tr", nargs="+", required=True, metavar="TRAINER:PLANS")
    ap.add_argument("--test-dataset", default=None,
                    help="dataset whose imagesTs / labelsTs are clicked (default -d; bench_interactive's held-out "
                         "cases are in its Eval dataset, -d + 1)")
    ap.add_argument("-o", default=None, help="JSON output (default ROOT/results/click_response.json)")
    args = ap.parse_args()
    from nnunet_ext.io.paths import use_workspace

    dirs = use_workspace(Path(args.root))
    from nnunet_ext.io.imageio import read_image
    from nnunet_ext.methods.interactive.click_protocols import as_clicks
    from nnunet_ext.methods.interactive.click_simulation import components, region_centre
    from nnunet_ext.methods.interactive.clicks_eval import reference_min_voxels
    from nnunet_ext.methods.interactive.interactive_predictor import InteractiveMethod
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.method import CaseContext

    test_id = int(args.test_dataset or args.d)
    raw = next(dirs["nnUNet_raw"].glob(f"Dataset{test_id:03d}_*"))
    out = {"load_start": round(os.getloadavg()[0], 2)}
    for spec in args.tr:
        trainer, plans = spec.split(":")
        m = InteractiveMethod.load(args.d, args.c, trainer, plans, [0], "cpu")  # one deterministic pass
        classes = sorted(v for k, v in m.labels.items() if isinstance(v, int) and v)
        names = {v: k for k, v in m.labels.items()}
        stats = {names[v]: {"positive": [], "negative": []} for v in classes}
        for case in list_cases(str(raw / "imagesTs"), m.dataset_json):
            ref, g = read_image(raw / "labelsTs" / f"{case.case_id}.nii.gz", kind="label")
            prepared = m.prepare(case)
            base = prepared.data[:m.n_image_channels]  # image channels (prompts / previous channels follow)

            def predict(points):
                clicks = as_clicks(points, classes)
                prompt = m.prompt_for(clicks, base.shape[1:], prepared.properties) if clicks else None
                # previous-prediction models: predict_case fills prepared.previous with the automatic prediction
                prepared.data = m.with_channels(base, None if prompt is None else prompt.astype(base.dtype))
                prepared.clicks = clicks
                r = m.predict_case(prepared, CaseContext.for_case(case.case_id, 0))
                seg = r.segmentation[0] if r.segmentation.ndim == ref.ndim + 1 else r.segmentation
                return seg, r.probabilities

            seg0, p0 = predict([])
            min_voxels = reference_min_voxels(m, argparse.Namespace(min_error_mm3=None), g.spacing[::-1])
            for ch, v in enumerate(classes):
                todo = []
                comps, n = components(ref == v)
                for k in range(1, n + 1):
                    c = region_centre(comps == k, g.spacing[::-1])
                    if seg0[c] != v:
                        todo.append((c, True, comps == k))
                comps, n = components((seg0 == v) & (ref != v))
                sizes = np.bincount(comps.ravel(), minlength=n + 1)
                todo += [(region_centre(comps == k, g.spacing[::-1]), False, comps == k) for k in range(1, n + 1)
                         if sizes[k] >= min_voxels]
                for c, positive, region in todo:
                    seg1, p1 = predict([(ch, c, positive)])
                    delta = float(p1[(v, *c)] - p0[(v, *c)])
                    flipped = bool((seg1[c] == v) == positive)
                    # how much of the clicked component the click corrects (lesion found / false positive removed)
                    size = int(region.sum())
                    before, after = int((seg0[region] == v).sum()), int((seg1[region] == v).sum())
                    corrected = (after - before if positive else before - after) / size
                    changed = int(((seg1 == v) != (seg0 == v)).sum())
                    stats[names[v]]["positive" if positive else "negative"].append(
                        (delta, flipped, corrected, size, changed))
        out[spec] = {cls: {kind: {"n": len(vals), **{key: (round(float(np.mean([row[i] for row in vals])), 4)
                                                          if vals else None) for i, key in enumerate(ROW)}}
                           for kind, vals in d.items()} for cls, d in stats.items()}
        print(spec, json.dumps(out[spec]), flush=True)
    out["load_end"] = round(os.getloadavg()[0], 2)
    path = Path(args.o) if args.o else Path(args.root) / "results" / "click_response.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
