"""``--accumulator-dtype float16`` does nnU-Net's arithmetic exactly: the stock method's blended logits equal
``nnUNetPredictor.predict_sliding_window_return_logits`` bit for bit (mirroring on, overlapping windows), so ``-m
stock`` and ``nnUNetv2_predict`` give identical segmentations (issue 24, part a of benchmarks/gpu_suite.py)."""
from __future__ import annotations

import torch
from bad_input_models import DATASET_JSON, tiny_plans


def _both(dtype):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.stock import StockMethod

    pm = PlansManager(tiny_plans())
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = nnUNetTrainer.build_network_architecture(pm, cm, 1, 2, enable_deep_supervision=False).eval()
    out = []
    for cls in (nnUNetPredictor, SlidingWindowEngine):
        p = cls(use_mirroring=True, device=torch.device("cpu"), allow_tqdm=False, perform_everything_on_device=False)
        p.manual_initialization(net, pm, cm, [net.state_dict()], DATASET_JSON, "nnUNetTrainer", (0, 1, 2))
        out.append(p)
    theirs, engine = out
    engine.accumulator_dtype = dtype
    return theirs, engine, StockMethod(engine, Sampling(), {})


def test_float16_accumulator_equals_nnunet_logits_bitwise():
    from nnunet_ext.predictors.method import CaseContext

    theirs, engine, method = _both(torch.float16)
    x = torch.randn(1, 12, 40, 36, generator=torch.Generator().manual_seed(1))
    assert len(theirs._internal_get_sliding_window_slicers(x.shape[1:])) > 4  # overlapping windows
    with torch.no_grad():
        ref = theirs.predict_sliding_window_return_logits(x)
    ours = engine.run(x, CaseContext.for_case("c", 0), method, method.sampling, ("entropy",)).logits
    assert ref.dtype == torch.float16
    assert torch.equal(ours, ref.float())
    assert torch.equal(ours.argmax(0), ref.float().argmax(0))


def test_float32_accumulator_is_the_exact_blend_not_nnunets():
    """The default keeps float32 sums: close to nnU-Net's logits on average, not equal (where the Gaussian weights
    are small, nnU-Net's float16 weight sum loses most of its precision)."""
    from nnunet_ext.predictors.method import CaseContext

    theirs, engine, method = _both(torch.float32)
    x = torch.randn(1, 12, 40, 36, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = theirs.predict_sliding_window_return_logits(x).float()
    ours = engine.run(x, CaseContext.for_case("c", 0), method, method.sampling, ("entropy",)).logits
    assert not torch.equal(ours, ref)
    assert float((ours - ref).abs().mean()) < 1e-2
