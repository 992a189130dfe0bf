"""Spherical-projection warp: projections per second, batched vs one origin at a time, round-trip error.

A 4-channel 256 x 256 slice, origins on the paper's grid (stride 8 -> 1024; ``--origins`` takes the first K),
R = 128 px. Times ``forward_warp`` with all K origins in one call (chunked to the memory budget) against K calls
with one origin each (target >= 10x, a GPU figure: on a CPU both are bound by the same arithmetic), and
forward + inverse on a smooth image: max / mean absolute error in the magnified region (dT/dr >= 1, where
nothing is lost to resampling) and the mean over the whole field of view (values in about [-2, 2]).

Batched calls are timed at every ``--budgets`` memory budget (MiB of grid + output per chunk): on a CPU the
batch pays off only while a chunk stays cache-sized (measured: benchmarks/RESULTS.md). Each time is the best of
``--repeats``.

    python benchmarks/bench_spherical.py [--origins 128] [--device cpu|cuda] [--radius 128] [--budgets 512 16]
"""
from __future__ import annotations

import argparse
import time

import torch

from nnunet_ext.methods.glioma.spherical import forward_warp, inverse_warp, origin_grid, ray_length


def smooth_slice(h=256, w=256, c=4):
    rr, cc = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([torch.sin(6 * rr + k) * torch.cos(5 * cc - k) + rr * cc for k in range(c)])


def magnified(o, h, w, radius):
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    d = torch.stack([rr - o[0], cc - o[1]], -1)
    n = d.norm(dim=-1)
    r_max = ray_length(torch.tensor(o, dtype=torch.float64), d / n.clamp_min(1e-12)[..., None], (h, w))
    a = torch.sqrt(radius ** 2 + torch.where(n > 0, r_max, torch.zeros_like(r_max)) ** 2)
    return a * radius ** 2 / (radius ** 2 + n ** 2) ** 1.5 >= 1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_of(fn, repeats: int, device):
    """(best seconds of ``repeats`` calls, last output), synchronising a CUDA device around each call."""
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times), out


def time_warp(device, n_origins: int, radius: float, budgets_mib, repeats: int, size: int = 256) -> dict:
    """Seconds for ``forward_warp`` of a 4 x size x size slice around the first ``n_origins`` origins of the
    stride-8 grid: one origin per call (``single``) and batched at each memory budget (``batched``: MiB -> s;
    ``None`` = the device's default budget); ``y`` is the last batched output, ``x`` the slice."""
    x = smooth_slice(size, size).to(device)
    origins = origin_grid((size, size), 8)[:n_origins]
    forward_warp(x, origins[:2], radius)  # warm-up
    single, _ = best_of(lambda: [forward_warp(x, o[None], radius) for o in origins], repeats, device)
    batched, y = {}, None
    for mib in budgets_mib:
        budget = None if mib is None else int(mib * 2 ** 20)
        batched[mib], y = best_of(lambda: forward_warp(x, origins, radius, memory_budget=budget), repeats, device)
    return {"origins": origins, "single": single, "batched": batched, "x": x, "y": y}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--origins", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--radius", type=float, default=128.0)
    p.add_argument("--budgets", type=float, nargs="+", default=[512.0, 64.0, 16.0, 4.0],
                   help="memory budgets per chunk in MiB for the batched call (default 512 64 16 4)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    device = torch.device(a.device)
    r = time_warp(device, a.origins, a.radius, a.budgets, a.repeats)
    origins, t_single, x, y = r["origins"], r["single"], r["x"], r["y"]
    print(f"{len(origins)} projections of 4 x 256 x 256 on {device}, best of {a.repeats}: one origin per call "
          f"{t_single:.3f} s ({len(origins) / t_single:.0f} /s)")
    for mib, t_batch in r["batched"].items():
        print(f"  batched, {mib:g} MiB chunks: {t_batch:.3f} s ({len(origins) / t_batch:.0f} /s), "
              f"ratio {t_single / t_batch:.1f}x")
    back = inverse_warp(y, origins, a.radius)
    err = (back - x[None]).abs().cpu()
    worst = max(float(err[k][:, magnified(o, 256, 256, a.radius)].max()) for k, o in enumerate(origins[:16]))
    print(f"round trip (R = {a.radius:.0f} px): max |error| in the magnified region {worst:.4f}, "
          f"mean over the field of view {float(err.mean()):.5f}, max {float(err.max()):.3f}")


if __name__ == "__main__":
    main()
