"""Cost of MC/TTA sampling: N batched passes (``-m tta_mc``) vs N sequential stock nnU-Net passes.

Prints, for each network: the time of nnU-Net's ``predict_sliding_window_return_logits`` (no mirroring) run N
times, the time of one engine call (``-m tta_mc``) with N passes batched per window, their ratio (target <= 0.6),
and the overhead at N = 1 vs one stock pass, with one random TTA and without (the float32 statistics
accumulators alone). ``--tta-scope volume`` (the paper, default) transforms the whole volume per pass;
``window`` draws per window. Networks are randomly initialised (timing does not depend on the weights).

    python benchmarks/bench_tta_mc.py [--device cpu|cuda] [--n 8] [--nets tiny resenc_m] [--repeats 3]
        [--tta-scope volume|window]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _models import initialise, resenc_m_arch, tiny_arch  # noqa: E402

from nnunet_ext.core.tta import TTAPolicy  # noqa: E402
from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine  # noqa: E402
from nnunet_ext.predictors.method import CaseContext  # noqa: E402
from nnunet_ext.predictors.tta_mc import TTAMCMethod  # noqa: E402


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def time_tta_mc(arch, n, device, repeats, image_shape, tta, scope, overheads: bool = True) -> dict:
    """Best-of-``repeats`` seconds (after one warm-up) of one stock pass (nnU-Net's sliding window, no mirroring)
    and of ``-m tta_mc`` with ``n`` batched passes; with ``overheads`` also N = 1 with and without TTA."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    stock = nnUNetPredictor(use_mirroring=False, device=device, allow_tqdm=False,
                            perform_everything_on_device=device.type == "cuda")
    initialise(stock, arch, device)
    x = torch.randn(1, *image_shape)
    out = {"stock": _time(lambda: stock.predict_sliding_window_return_logits(x), repeats, sync),
           "windows": len(stock._internal_get_sliding_window_slicers(x.shape[1:]))}
    arms = (("plain1", 1, ()), (1, 1, tta), (n, n, tta)) if overheads else ((n, n, tta),)
    for key, passes, kinds in arms:
        engine = SlidingWindowEngine(
            device=device, allow_tqdm=False, perform_everything_on_device=device.type == "cuda"
        )
        initialise(engine, arch, device)
        engine.training_metadata = {"dropout_p": 0.05}
        sampling = Sampling(n_passes=passes, tta=TTAPolicy(kinds=kinds), tta_scope=scope, blend="probabilities")
        method = TTAMCMethod(engine, sampling, {})
        out[key] = _time(lambda: engine.run(x, CaseContext.for_case("b", 0), method, sampling,
                                            ("entropy", "variance", "mi")), repeats, sync)
    return out


def bench(name, arch, n, device, repeats, image_shape, tta, scope):
    rows = time_tta_mc(arch, n, device, repeats, image_shape, tta, scope)
    t_stock = rows["stock"]
    print(f"{name:9s} image {tuple(image_shape)} windows {rows['windows']} device {device.type} "
          f"tta {','.join(tta) or 'none'} scope {scope}")
    print(f"  stock x1            {t_stock:8.3f} s")
    print(f"  stock x{n} (sequential) {n * t_stock:8.3f} s")
    print(f"  tta_mc N={n} (batched) {rows[n]:8.3f} s   ratio {rows[n] / (n * t_stock):.2f}")
    print(f"  tta_mc N=1          {rows[1]:8.3f} s   overhead vs stock {100 * (rows[1] / t_stock - 1):+.0f} %")
    print(f"  tta_mc N=1, no TTA  {rows['plain1']:8.3f} s   accumulator overhead vs stock "
          f"{100 * (rows['plain1'] / t_stock - 1):+.0f} %")
    return rows[n] / (n * t_stock)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--nets", nargs="+", default=["tiny", "resenc_m"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tta", default="noise,flip,rotate")
    ap.add_argument("--tta-scope", default="volume", choices=("volume", "window"))
    args = ap.parse_args()
    device = torch.device(args.device)
    tta = tuple(k for k in args.tta.split(",") if k and k != "none")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}")
    nets = {"tiny": (tiny_arch(), (40, 64, 64)), "resenc_m": (resenc_m_arch(), (128, 128, 128))}
    for name in args.nets:
        arch, shape = nets[name]
        bench(name, arch, args.n, device, args.repeats if name == "tiny" else 1, shape, tta, args.tta_scope)


if __name__ == "__main__":
    main()
