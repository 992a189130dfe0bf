"""Kernel search speed: summed-volume table + blocking arg-max vs brute force (per-window sums + greedy walk).

On a BraTS-sized entropy-like map (numpy (z, y, x) = (155, 240, 240), 1 mm, smooth high-uncertainty shells
around a few "tumours" plus noise, zero outside a brain ellipsoid) with a 32 mm kernel and the paper's 40 %
overlap. The brute force's per-window summation (5.4 M windows of 32^3 voxels) would take minutes, so it is
timed on a random sample of windows and extrapolated linearly (each window costs the same); its greedy walk
is run in full. A small map (40 x 64 x 64, 8 mm kernel) is run in full both ways to check the extrapolation
and that both select the same kernels. Target: ratio >= 50x.

    python benchmarks/bench_kernels.py [--sample 3000] [--repeats 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from nnunet_ext.methods.glioma.kernels import direct_window_sums, greedy_walk, search_kernels, search_kernels_bruteforce


def entropy_like_map(shape, seed: int = 0, n_tumours: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = np.array(shape, np.float32) / 2
    brain = ((z - c[0]) / (0.45 * shape[0])) ** 2 + ((y - c[1]) / (0.4 * shape[1])) ** 2 \
        + ((x - c[2]) / (0.35 * shape[2])) ** 2 <= 1
    u = np.zeros(shape, np.float32)
    for _ in range(n_tumours):
        p = c + rng.uniform(-0.2, 0.2, 3) * np.array(shape)
        r = rng.uniform(0.05, 0.12) * min(shape)
        d = np.sqrt((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2)
        u += np.exp(-((d - r) / 3.0) ** 2) * rng.uniform(1.0, 3.0)  # uncertain boundary shell
    u += 0.05 * ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 1.0)
    return (u * brain).astype(np.float32)


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample", type=int, default=3000, help="windows summed directly for the extrapolation")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    # small map: both implementations in full
    u = entropy_like_map((40, 64, 64), a.seed, 2)
    t_fast, fast = best_of(lambda: search_kernels(u, (8, 8, 8), 0.4), a.repeats)
    t_slow, slow = best_of(lambda: search_kernels_bruteforce(u, (8, 8, 8), 0.4), 1)
    same = [(k.start, round(k.sum, 6)) for k in fast] == [(k.start, round(k.sum, 6)) for k in slow]
    print(f"small 40x64x64, kernel 8^3: fast {t_fast:.4f} s, brute force {t_slow:.2f} s (full), "
          f"ratio {t_slow / t_fast:.0f}x, {len(fast)} kernels, identical selection: {same}")

    shape, size = (155, 240, 240), (32, 32, 32)
    u = entropy_like_map(shape, a.seed)
    t_fast, fast = best_of(lambda: search_kernels(u, size, 0.4), a.repeats)
    n = [s - k + 1 for s, k in zip(shape, size)]
    total = int(np.prod(n))
    rng = np.random.default_rng(a.seed)
    idx = rng.choice(total, size=min(a.sample, total), replace=False)
    starts = np.stack(np.unravel_index(idx, n), 1)
    t = time.perf_counter()
    direct = direct_window_sums(u, size, [tuple(s) for s in starts])
    t_sums = (time.perf_counter() - t) * total / len(idx)
    from nnunet_ext.methods.glioma.kernels import window_sums

    sums = window_sums(u, size).reshape(-1)
    assert np.allclose(direct, sums[idx], rtol=1e-9, atol=1e-6)  # the table gives the direct sums
    all_starts = np.stack(np.unravel_index(np.arange(total), n), 1)
    t = time.perf_counter()
    walk = greedy_walk(sums, all_starts, size, 0.4, 0.1, None, None)
    t_walk = time.perf_counter() - t
    same = [k.start for k in walk] == [k.start for k in fast]
    t_brute = t_sums + t_walk
    print(f"155x240x240, kernel 32^3 ({total} windows): fast {t_fast:.3f} s; brute force {t_brute:.1f} s "
          f"(window sums {t_sums:.1f} s extrapolated from {len(idx)} windows + greedy walk {t_walk:.2f} s); "
          f"ratio {t_brute / t_fast:.0f}x (target >= 50x); {len(fast)} kernels; identical selection: {same}")


if __name__ == "__main__":
    main()
