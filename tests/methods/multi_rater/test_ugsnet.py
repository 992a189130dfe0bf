"""UGS-Net pieces: Gabor bank vs its analytic kernel, Otsu threshold vs scikit-image, the network's shapes and
gradients in 2D / 3D, building it by dotted path through nnU-Net, and the UGS loss."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from nnunet_ext.methods.multi_rater.gabor import GaborBank, gabor_bank, gabor_directions, gabor_kernel
from nnunet_ext.methods.multi_rater.otsu import OtsuFilter, otsu_threshold


def test_gabor_kernel_matches_analytic_formula_2d_and_3d():
    for u, sigma, lam, r in [((0.0, 1.0), 1.0, 2.5, 4), ((0.6, 0.8), 2.0, 5.0, 4),
                             ((0, 1 / math.sqrt(2), 1 / math.sqrt(2)), 1.0, 2.5, 2)]:
        k = gabor_kernel(u, sigma, lam, r)
        raw = np.zeros_like(k)
        for idx in np.ndindex(*k.shape):
            x = np.asarray(idx, float) - r
            raw[idx] = math.exp(-(x @ x) / (2 * sigma ** 2)) * math.cos(2 * math.pi * (x @ np.asarray(u)) / lam)
        raw -= raw.mean()
        np.testing.assert_allclose(k, raw / np.abs(raw).sum(), atol=1e-12)
        assert abs(k.sum()) < 1e-12 and np.abs(k).sum() == pytest.approx(1.0)


def test_gabor_bank_layout_and_orientation_selectivity():
    assert gabor_directions(2).shape == (4, 2) and gabor_directions(3).shape == (9, 3)
    np.testing.assert_allclose(np.linalg.norm(gabor_directions(3), axis=1), 1.0)
    assert gabor_bank(2).shape == (8, 9, 9) and gabor_bank(3).shape == (18, 9, 9, 9)
    # a grating varying along x (axis 1) with the σ=1 wavelength: θ = 0° (u along x) answers, θ = 90° (along y) not
    yy, xx = np.mgrid[0:40, 0:40]
    img = torch.as_tensor(np.cos(2 * np.pi * xx / 2.5), dtype=torch.float32)[None, None]
    out = GaborBank(1, 2)(img)[0, :, 10:30, 10:30].abs().mean((1, 2))  # filters: direction-major, 2 scales
    assert out[0] > 10 * out[4]  # channel = direction index * 2 + scale index: 0° σ=1 -> 0, 90° σ=1 -> 4
    # channels keep their own responses (channel folding into the batch)
    two = GaborBank(2, 2)(torch.cat([img, 2 * img], 1))
    torch.testing.assert_close(two[:, 8:], 2 * two[:, :8])


def test_otsu_threshold_matches_skimage():
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    maps = [np.concatenate([rng.normal(0, 1, 3000), rng.normal(5, 0.7, 1000)]),
            rng.gamma(2.0, 1.0, 4000), rng.uniform(-3, 1, 4000), np.r_[np.zeros(3990), np.ones(10) * 7]]
    x = torch.as_tensor(np.stack(maps), dtype=torch.float64)
    t = otsu_threshold(x).numpy()
    for m, ti in zip(maps, t):
        width = (m.max() - m.min()) / 256
        assert abs(ti - threshold_otsu(m)) <= width * 1.01  # same bin, up to float binning of edge values
    assert otsu_threshold(torch.ones(1, 10)).item() == 1.0


def test_otsu_filter_is_a_differentiable_soft_step():
    x = torch.cat([torch.zeros(500), torch.full((500,), 4.0)]).reshape(1, 1, 10, 100).requires_grad_()
    y = OtsuFilter()(x)
    t = otsu_threshold(x.reshape(1, -1)).item()
    assert 0 < t < 4
    assert torch.allclose(y[x > t], x[x > t], atol=1e-3) and torch.allclose(y[x < t], torch.zeros(()), atol=1e-3)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _kwargs(nd):
    conv = nn.Conv2d if nd == 2 else nn.Conv3d
    norm = nn.InstanceNorm2d if nd == 2 else nn.InstanceNorm3d
    return dict(n_stages=3, features_per_stage=[4, 8, 16], conv_op=conv, kernel_sizes=[[3] * nd] * 3,
                strides=[[1] * nd, [2] * nd, [2] * nd], n_conv_per_stage=[1, 1, 1], n_conv_per_stage_decoder=[1, 1],
                conv_bias=True, norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                nonlin_kwargs={"inplace": True})


@pytest.mark.parametrize("nd,size", [(2, (40, 36)), (3, (16, 24, 20))])
def test_ugsnet_forward_backward_shapes(nd, size):
    from nnunet_ext.methods.multi_rater.fusion_loss import ugs_loss
    from nnunet_ext.methods.multi_rater.raters import encode_raters
    from nnunet_ext.methods.multi_rater.ugsnet_network import UGSNet

    torch.manual_seed(0)
    net = UGSNet(1, 1, True, max_tokens=256, **_kwargs(nd))
    x = torch.randn(2, 1, *size)
    out = net(x)
    assert set(out) == {"xs", "union", "inter", "uni"}
    assert [o.shape for o in out["xs"]] == [(2, 1, *size), (2, 1, *[s // 2 for s in size])]
    for name in ("union", "inter", "uni"):
        assert out[name].shape == (2, 1, *size)
    masks = np.random.default_rng(0).random((3, 2, *size)) > 0.5
    label = torch.as_tensor(encode_raters(masks)[:, None].astype(np.int64))
    heads = {**out, "xs": out["xs"][0]}
    ugs_loss(heads, label)["total"].backward()
    grads = {n: p.grad for n, p in net.named_parameters()}  # (q, k, v get gradients once γ != 0: γ starts at 0)
    for part in ("faab.hc.fuse.weight", "faab.lc.filter.1.weight", "faab.uni.attention.gamma", "final.weight",
                 "branch.hc.0.weight", "backbone.encoder.stages.0.0.convs.0.conv.weight"):
        assert grads[part] is not None and grads[part].abs().sum() > 0, part
    # eval mode (nnU-Net inference, no deep supervision): X_S only
    net.eval()
    net.decoder.deep_supervision = False
    with torch.no_grad():
        assert net(x).shape == (2, 1, *size)
        net.return_heads = True
        assert set(net(x)) == {"xs", "union", "inter", "uni"}


def test_attention_pooling_bounds_tokens():
    from nnunet_ext.methods.multi_rater.ugsnet_network import SelfAttention

    att = SelfAttention(4, 3, max_tokens=4096)
    assert att.pool_factor((32, 32, 32)) == 2 and att.pool_factor((16, 16, 16)) == 1
    assert SelfAttention(4, 2).pool_factor((64, 64)) == 1


def test_ugsnet_builds_by_dotted_path_through_nnunet():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    kw = {k: v for k, v in _kwargs(2).items()}
    req = ["conv_op", "norm_op", "nonlin"]
    for key, value in (("conv_op", "torch.nn.modules.conv.Conv2d"), ("norm_op", "torch.nn.InstanceNorm2d"),
                       ("nonlin", "torch.nn.LeakyReLU")):
        kw[key] = value
    kw["backbone_class_name"] = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    net = get_network_from_plans(
        "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet", kw, req, 1, 1, deep_supervision=False
    )
    assert type(net).__name__ == "UGSNet" and net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    kw["backbone_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
    kw["n_blocks_per_stage"] = kw.pop("n_conv_per_stage")
    res = get_network_from_plans(
        "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet", kw, req, 1, 1, deep_supervision=False
    )
    assert type(res.backbone).__name__ == "ResidualEncoderUNet"
    assert res.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="one sigmoid"):
        get_network_from_plans(
            "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet", kw, req, 1, 3, deep_supervision=False
        )


def test_max_tokens_recorded_in_the_arch_kwargs_wins_over_the_plans_option():
    """UGSNetTrainer rebuilds the attention grid the model was trained with: ``max_tokens`` in the plans'
    arch_kwargs beats the plans option ``ugsnet.max_tokens``; an inheriting configuration gets the resolved block."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ext.methods.multi_rater.ugsnet_trainer import UGSNetTrainer, record_max_tokens

    kw = dict(_kwargs(2), conv_op="torch.nn.modules.conv.Conv2d", norm_op="torch.nn.InstanceNorm2d",
              nonlin="torch.nn.LeakyReLU")
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": kw, "_kw_requires_import": ["conv_op", "norm_op", "nonlin"]}
    plans = {
        "dataset_name": "D",
        "plans_name": "P",
        "original_median_spacing_after_transp": [1, 1],
        "original_median_shape_after_transp": [32, 32],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1],
        "transpose_backward": [0, 1],
        "foreground_intensity_properties_per_channel": {},
        "configurations": {
            "2d": {
                "data_identifier": "x",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": [32, 32],
                "median_image_size_in_voxels": [32, 32],
                "spacing": [1, 1],
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {},
                "resampling_fn_seg_kwargs": {},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {},
                "architecture": arch,
                "batch_dice": False,
            },
            "2d_child": {"inherits_from": "2d", "batch_size": 4},
        },
    }
    child = PlansManager(plans).get_configuration("2d_child")
    new = record_max_tokens(plans, "2d_child", child.configuration["architecture"], 64)
    assert plans["configurations"]["2d_child"]["architecture"]["arch_kwargs"]["max_tokens"] == 64
    assert "max_tokens" not in plans["configurations"]["2d"]["architecture"]["arch_kwargs"] and new is not arch

    plans["nnext_training"] = {"ugsnet": {"max_tokens": 1024}}  # the option, for every configuration
    pm = PlansManager(plans)
    net = UGSNetTrainer.build_network_architecture(pm, pm.get_configuration("2d_child"), 1, 1, False)
    assert {m.max_tokens for m in net.modules() if hasattr(m, "max_tokens")} == {64}
    net = UGSNetTrainer.build_network_architecture(pm, pm.get_configuration("2d"), 1, 1, False)  # no record: option
    assert {m.max_tokens for m in net.modules() if hasattr(m, "max_tokens")} == {1024}
