"""Issue 22: identical multi-rater arms — the single-reader (Label_1) decoder, eq. 4 with X_S at weight 1 and
deep supervision on top, the paper's SGDR schedule, the UGS-Net-without-IUCM ablation, and the options."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunet_ext.methods.multi_rater.fusion_loss import decode_reader, decode_targets, mcm_loss
from nnunet_ext.methods.multi_rater.multi_annotation_trainer import FusionLoss, SGDRScheduler, ds_weights
from nnunet_ext.methods.multi_rater.raters import encode_raters
from nnunet_ext.methods.multi_rater.ugsnet_trainer import UGSLoss


def _label(shape=(2, 1, 8, 8), k=3, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((k, *shape)) < 0.4
    return masks, torch.as_tensor(encode_raters(masks).astype(np.int64))


def test_ds_weights_keep_full_resolution_at_one():
    assert ds_weights(4).tolist() == [1.0, 0.5, 0.25, 0.0]
    assert ds_weights(1).tolist() == [1.0]


def test_single_reader_loss_is_bce_and_dice_against_reader0():
    masks, label = _label()
    logits = torch.randn(label.shape, generator=torch.Generator().manual_seed(1))
    r0 = torch.as_tensor(masks[0], dtype=torch.float32)
    np.testing.assert_array_equal(decode_reader(label, 0).numpy(), masks[0])
    bce = F.binary_cross_entropy_with_logits(logits, r0)
    assert FusionLoss(0.0, reader=0)(logits, label).item() == pytest.approx(bce.item(), rel=1e-6)
    p = torch.sigmoid(logits)
    dice = 1 - ((2 * (p * r0).sum((2, 3)) + 1e-5) / (p.sum((2, 3)) + r0.sum((2, 3)) + 1e-5)).mean()
    assert FusionLoss(1.0, reader=0)(logits, label).item() == pytest.approx((bce + dice).item(), rel=1e-5)
    mean = torch.as_tensor(masks.mean(0), dtype=torch.float32)  # the multi-annotation arm: same family, mean mask
    assert FusionLoss(0.0)(logits, label).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, mean).item(), rel=1e-6)


def test_ugs_loss_is_eq4_with_xs_at_weight_one_and_deep_supervision_on_top():
    _, label = _label((2, 1, 8, 8))
    low = label[:, :, ::2, ::2]
    g = torch.Generator().manual_seed(2)
    heads = {k: torch.randn(2, 1, 8, 8, generator=g) for k in ("union", "inter", "uni")}
    xs, o1, o2 = (
        torch.randn(2, 1, 8, 8, generator=g),
        torch.randn(2, 1, 4, 4, generator=g),
        torch.randn(2, 1, 2, 2, generator=g),
    )
    nnunet_normalised = (4 / 7, 2 / 7, 1 / 7, 0.0)[:3]  # what nnU-Net's wrapper would use: X_S at 0.57
    loss = UGSLoss((0.5, 0.5, 1.0), weight_factors=nnunet_normalised)
    out = loss({"xs": [xs, o1, o2], **heads}, [label, low, label[:, :, ::4, ::4]])
    t, tl, tll = decode_targets(label), decode_targets(low), decode_targets(label[:, :, ::4, ::4])
    phi = F.binary_cross_entropy_with_logits
    expected = (0.5 * mcm_loss(heads["union"], heads["inter"], t["union"], t["intersection"])
                + 0.5 * phi(heads["uni"], t["mean"])
                + 1.0 * (phi(xs, t["mean"]) + 0.5 * phi(o1, tl["mean"]) + 0.25 * phi(o2, tll["mean"])))
    assert out.item() == pytest.approx(expected.item(), rel=1e-6)
    single = UGSLoss((0.5, 0.5, 1.0))({"xs": xs, **heads}, label)  # one output: exactly eq. 4
    assert single.item() == pytest.approx((expected - 0.5 * phi(o1, tl["mean"]) - 0.25 * phi(o2, tll["mean"])).item(),
                                          rel=1e-6)


def test_sgdr_schedule_restarts_every_period():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-5, momentum=0.9, weight_decay=1e-4)
    sched = SGDRScheduler(opt, 50)
    lrs = {}
    for epoch in (0, 25, 49, 50, 75, 199):
        sched.step(epoch)
        lrs[epoch] = opt.param_groups[0]["lr"]
    assert lrs[0] == pytest.approx(1e-5) and lrs[50] == pytest.approx(1e-5)  # warm restart
    assert lrs[25] == pytest.approx(0.5e-5) and lrs[75] == pytest.approx(0.5e-5)
    assert lrs[49] == pytest.approx(1e-5 * 0.5 * (1 + math.cos(math.pi * 49 / 50)))
    assert lrs[199] == pytest.approx(lrs[49])


def test_ugsnet_without_iucm_has_no_attention_blocks():
    from nnunet_ext.methods.multi_rater.ugsnet_network import UGSNet

    kw = dict(n_stages=3, features_per_stage=[4, 8, 16], conv_op=torch.nn.Conv2d, kernel_sizes=[[3, 3]] * 3,
              strides=[[1, 1], [2, 2], [2, 2]], n_conv_per_stage=[1] * 3, n_conv_per_stage_decoder=[1] * 2,
              conv_bias=True, norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"affine": True},
              nonlin=torch.nn.LeakyReLU)
    full, ablated = UGSNet(1, 1, True, **kw), UGSNet(1, 1, True, iucm=False, **kw)
    assert not hasattr(ablated, "faab") and hasattr(full, "faab")
    out = ablated.train()(torch.zeros(2, 1, 16, 16))
    assert set(out) == {"xs", "union", "inter", "uni"} and out["xs"][0].shape == (2, 1, 16, 16)
    assert ablated.eval()(torch.zeros(1, 1, 16, 16))[0].shape == (1, 1, 16, 16)
    assert sum(p.numel() for p in ablated.parameters()) < sum(p.numel() for p in full.parameters())


def test_options_and_registration():
    from nnunet_ext.methods.multi_rater.options import RaterTrainingOptions
    from nnunet_ext.registry import option_families
    from nnunet_ext.trainers.registry import TRAINERS, load_trainer

    assert option_families()["rater_training"] is RaterTrainingOptions
    opts = RaterTrainingOptions.from_mapping({"optimizer": "sgdr"})
    assert (opts.sgdr_lr, opts.sgdr_momentum, opts.sgdr_weight_decay, opts.sgdr_period) == (1e-5, 0.9, 1e-4, 50)
    with pytest.raises(ValueError, match="optimizer"):
        RaterTrainingOptions.from_mapping({"optimizer": "adam"})
    assert load_trainer("UGSNetNoIUCMTrainer").IUCM is False and "SingleReaderTrainer" in TRAINERS
