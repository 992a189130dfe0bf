"""Time ``filter_components`` on a 512 x 512 x 300 volume (numpy (z, y, x) = (300, 512, 512)) with ~50 random
components and a synthetic two-lung mask. Prints seconds per call (target < 2 s).

    python benchmarks/bench_postprocess.py [--repeats 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nnunet_ext.methods.lung_cascade.component_filter import (
    LungFilterConfig,
    filter_components,
)


def make_case(seed: int = 0, shape=(300, 512, 512), n_components: int = 50):
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    lung = np.zeros(shape, np.uint8)
    # two ellipsoids: right lung at low x, left lung at high x, mediastinum between
    for label, cx in ((1, 0.3 * nx), (2, 0.7 * nx)):
        ell = (((z - nz / 2) / (0.42 * nz)) ** 2 + ((y - ny / 2) / (0.3 * ny)) ** 2
               + ((x - cx) / (0.15 * nx)) ** 2) <= 1
        lung[ell] = label
    pred = np.zeros(shape, np.uint8)
    for _ in range(n_components):
        r = int(rng.integers(2, 9))
        c = [int(rng.integers(r, s - r)) for s in shape]
        pred[tuple(slice(a - r, a + r + 1) for a in c)] = 1
    return pred, lung


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    pred, lung = make_case(a.seed)
    spacing = (1.0, 0.7, 0.7)
    for unit in ("vox", "mm"):
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            _, log = filter_components(pred, lung, spacing, LungFilterConfig(rescue_unit=unit))
            times.append(time.perf_counter() - t0)
        reasons = {}
        for c in log["components"]:
            reasons[c["reason"]] = reasons.get(c["reason"], 0) + 1
        print(f"filter_components 512x512x300, {log['n_components']} components, rescue_unit={unit}: "
              f"min {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s  reasons={reasons}")


if __name__ == "__main__":
    main()
