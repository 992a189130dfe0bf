"""DistanceTransformTrainer: loss time per training step with the boundary weights computed in the loss (before,
scipy EDT per batch in the training process) and handed in by the data pipeline (after), and the pipeline
transform's own cost per sample (now paid in nnU-Net's augmentation workers).

    python benchmarks/bench_distance_weights.py [--size 128] [--batch 2] [--repeats 3]

Targets: random ellipsoids (labels 0/1) at 0.8 x 0.8 x 1.5 mm, deep supervision at nnU-Net's 3d_fullres scales
1, 1/2, 1/4, 1/8, 1/16; logits random with gradients; the network's own forward / backward is the same in both
and is not included. CPU, single process.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

    from nnunet_ext.methods.lung_cascade.distance_trainer import DistanceWeightedLoss, deep_supervision_spacings
    from nnunet_ext.methods.lung_cascade.distance_weights_transform import DistanceWeightTransform, split_weights

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    n = args.size
    scales = [[1.0 / 2 ** k] * 3 for k in range(5)]
    spacing = (1.5, 0.8, 0.8)
    spacings = deep_supervision_spacings(spacing, scales)
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:n, :n, :n]
    samples = []
    for _ in range(args.batch):
        c, r = rng.uniform(0.3, 0.7, 3) * n, rng.uniform(0.1, 0.25) * n
        samples.append(torch.from_numpy((((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r * r)[None]
                                        .astype(np.int16)))
    ds = DownsampleSegForDSTransform(ds_scales=scales)
    dwt = DistanceWeightTransform(spacings)
    t = time.perf_counter()
    with_w = [dwt(segmentation=ds(segmentation=s)["segmentation"])["segmentation"] for s in samples]
    transform_s = (time.perf_counter() - t) / args.batch
    target_w = [torch.stack([w[i] for w in with_w]) for i in range(len(scales))]
    labels, weights = split_weights(target_w)
    loss = DistanceWeightedLoss(spacings, weight_factors=[0.53, 0.27, 0.13, 0.07, 0.0])
    logits = [torch.randn((args.batch, 2) + tuple(t.shape[2:]), requires_grad=True) for t in labels]

    def step(batch_weights):
        loss.batch_weights = batch_weights
        t0 = time.perf_counter()
        value = loss(logits, labels)
        value.backward()
        loss.batch_weights = None
        return time.perf_counter() - t0, float(value)

    before = [step(None) for _ in range(args.repeats)]
    after = [step(weights) for _ in range(args.repeats)]
    assert abs(before[0][1] - after[0][1]) < 1e-6, (before[0][1], after[0][1])  # the same loss
    b, a = min(t for t, _ in before), min(t for t, _ in after)
    print(f"batch {args.batch} x {n}^3, 5 deep-supervision outputs, 1 CPU thread")
    print(f"loss forward+backward, weights computed in the loss (before): {b:.3f} s")
    print(f"loss forward+backward, weights from the pipeline (after):     {a:.3f} s")
    print(f"pipeline transform per sample (in the augmentation workers):  {transform_s:.3f} s")


if __name__ == "__main__":
    main()
