"""UncertaintyTrainer: the distribution of alpha = exp(-U) with the U scalings none / max / batch, and the cost of
the K MC passes per training iteration.

    python benchmarks/bench_uncertainty_trainer.py [-o WORKDIR] [--k 4] [--batches 8]

In WORKDIR (default ./bench_uncertainty): 6 chest phantoms, TinyPlanner 3d_fullres, MCDropoutTrainer fold 0 trained
with the plain nnUNetv2_train command (reused when present; ``--epochs`` / ``--iterations`` of the tiny schedule),
then an UncertaintyTrainer with those weights draws training batches from nnU-Net's own data loader. Per batch:
U (K MC passes) and alpha for each scaling (all voxels and tumour voxels); time of train_step with the MC passes
and with them replaced by a precomputed map (the difference is the overhead). CPU; the numbers of a tiny network
on 2 shared cores say little about a GPU run, the ratio is the point.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np


def _quantiles(a: np.ndarray) -> dict:
    return {"mean": round(float(a.mean()), 5), "min": round(float(a.min()), 5),
            **{f"p{q}": round(float(np.percentile(a, q)), 5) for q in (1, 10, 50)}}


def main() -> None:
    import torch

    from nnunet_ext.io.paths import dataset_folders, nnunet_command, use_workspace
    from nnunet_ext.methods.lung_cascade.weighted_losses import mc_dropout_variance, scale_uncertainty

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", default="bench_uncertainty")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=20)
    args = p.parse_args()
    dirs = use_workspace(Path(args.o).resolve())
    dataset_id, plans_name = 720, "nnextTinyPlans"
    raw = dataset_folders(dirs["nnUNet_raw"]).get(dataset_id)
    if raw is None:
        from nnunet_ext.synthetic.dataset import write_dataset

        raw = write_dataset("chest", dataset_id, 6, 0, seed=0, progress=False)
    pre = dirs["nnUNet_preprocessed"] / raw.name
    if not (pre / f"{plans_name}.json").is_file():
        from nnunet_ext.planners.run import plan_and_preprocess

        plan_and_preprocess(dataset_id, "TinyPlanner", ["3d_fullres"], num_processes=1,
                            schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations})
    model = dirs["nnUNet_results"] / raw.name / f"MCDropoutTrainer__{plans_name}__3d_fullres" / "fold_0"
    if not (model / "checkpoint_final.pth").is_file():
        subprocess.run([nnunet_command("nnUNetv2_train"), str(dataset_id), "3d_fullres", "0", "-tr",
                        "MCDropoutTrainer", "-p", plans_name, "-device", "cpu"], check=True, env=os.environ.copy())

    from nnunet_ext.methods.lung_cascade.uncertainty_trainer import UncertaintyTrainer

    plans = json.loads((pre / f"{plans_name}.json").read_text())
    plans["continue_training"] = False
    tr = UncertaintyTrainer(plans, "3d_fullres", 0, json.loads((pre / "dataset.json").read_text()),
                            device=torch.device("cpu"))
    tr.initialize()
    tr.mc_samples = args.k  # the benchmark varies K on one loaded model (training reads plans uncertainty_loss.samples)
    ckpt = torch.load(model / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    tr.network.load_state_dict(ckpt["network_weights"])
    dl_tr, _ = tr.get_dataloaders()
    c = tr.label_manager.num_segmentation_heads
    alphas = {s: [] for s in ("none", "max", "batch")}
    tumour = {s: [] for s in alphas}
    t_mc, t_plain = [], []
    for _ in range(args.batches):
        batch = next(dl_tr)
        data = batch["data"]
        torch.manual_seed(0)
        u = mc_dropout_variance(tr.network, data, args.k)
        fg = (batch["target"][0][:, 0] > 0).numpy()
        for s in alphas:
            a = torch.exp(-scale_uncertainty(u, s, c, args.k)).numpy()
            alphas[s].append(a.ravel())
            tumour[s].append(a[fg])
        state = ({k: v.clone() for k, v in tr.network.state_dict().items()}, tr.optimizer.state_dict())
        for timings, replace in ((t_mc, False), (t_plain, True)):
            tr.network.load_state_dict(state[0])
            tr.optimizer.load_state_dict(state[1])
            tr._last_u, tr._iteration = None, 0
            tr.mc_uncertainty = (lambda d, u=u: u) if replace else UncertaintyTrainer.mc_uncertainty.__get__(tr)
            t0 = time.perf_counter()
            tr.train_step(batch)
            timings.append(time.perf_counter() - t0)
    out = {"k": args.k, "batches": args.batches, "patch": list(tr.configuration_manager.patch_size),
           "alpha_all_voxels": {s: _quantiles(np.concatenate(v)) for s, v in alphas.items()},
           "alpha_tumour_voxels": {s: _quantiles(np.concatenate(v)) for s, v in tumour.items()
                                   if sum(len(x) for x in v)},
           "train_step_s": {"with_mc_passes": round(float(np.median(t_mc)), 4),
                            "u_given": round(float(np.median(t_plain)), 4)}}
    out["train_step_s"]["overhead_pct"] = round(100 * (out["train_step_s"]["with_mc_passes"]
                                                       / out["train_step_s"]["u_given"] - 1), 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
