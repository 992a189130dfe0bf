"""GPU check (run by hand on a machine with CUDA; the test suite never needs a GPU): TTA transforms sampled with a
CUDA generator stay on the device, equal their CPU application (noise aside) and invert on the device.

    python benchmarks/gpu_check_tta.py        # prints "ok" or raises; exits 0 with a note when there is no CUDA
"""
import torch

from nnunet_ext.core.tta import GaussianNoise, TTAPolicy, apply_each, invert_each


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return
    x = torch.randn(2, 8, 10, 12, device="cuda")
    g = torch.Generator(device="cuda")
    g.manual_seed(0)
    ts = TTAPolicy().sample(9, g, spatial_dims=3)
    xs = apply_each(ts, x)
    assert xs.is_cuda and xs.shape == (9, 2, 8, 10, 12)
    cpu = apply_each(ts, x.cpu())
    for i, t in enumerate(ts):
        if not isinstance(t, GaussianNoise):
            assert torch.allclose(xs[i].cpu(), cpu[i], atol=1e-5), i
    assert invert_each(ts, xs).is_cuda
    print("ok: TTA transforms stay on the GPU and match their CPU application")


if __name__ == "__main__":
    main()
