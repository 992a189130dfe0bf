"""Click-prompt training pieces: prompt-channel network, click simulation (transform and core), error clicks,
warm-up cosine schedule (no nnU-Net training here; see test_click_prompt_e2e.py)."""
import math
import pickle

import numpy as np
import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from tiny_plans import PLAIN  # noqa: E402 (tests/trainers)
from tiny_plans import resenc as _resenc
from tiny_plans import tiny_plans as _plans

from nnunet_ext.core.lr_schedule import warmup_cosine_lr
from nnunet_ext.methods.interactive.click_prompt_trainer import (
    ClickPromptAutoTrainer,
    ClickPromptErrorTrainer,
    ClickPromptTrainer,
    WarmupCosineLRScheduler,
)
from nnunet_ext.methods.interactive.click_simulation import error_clicks, region_centre, training_clicks
from nnunet_ext.methods.interactive.click_transform import SimulateClicksTransform
from nnunet_ext.methods.interactive.prompt_channels import PromptChannelNetwork


def _net(deep_supervision=False):
    pm = PlansManager(_plans(_resenc()))
    cm = pm.get_configuration("3d_fullres")
    return ClickPromptTrainer.build_network_architecture(pm, cm, 2, 3, enable_deep_supervision=deep_supervision)


def test_prompt_network_zero_fills_and_pickles():
    torch.manual_seed(0)
    net = _net()
    assert isinstance(net, PromptChannelNetwork) and (net.n_image_channels, net.n_prompt_channels) == (2, 4)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.in_channels == 6  # CT, PET + GTVp, GTVn positive + GTVp, GTVn negative prompts
    assert all(m.p == pytest.approx(0.05) for m in net.modules() if isinstance(m, torch.nn.Dropout3d))
    assert all(k.startswith("network.") for k in net.state_dict())
    net.eval()
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        auto = net(x)
        zero = net(torch.cat([x, torch.zeros(1, 4, 16, 16, 16)], 1))
        clicked = net(torch.cat([x, torch.ones(1, 4, 16, 16, 16)], 1))
    assert torch.equal(auto, zero) and not torch.allclose(auto, clicked)
    with pytest.raises(ValueError, match="expects 2 image channels"):
        net(torch.randn(1, 3, 16, 16, 16))
    # picklable (ResEnc blocks of dynamic_network_architectures hold a lambda, so pickle a PlainConvUNet one)
    pm = PlansManager(_plans(PLAIN))
    plain = ClickPromptTrainer.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 2, 3, False).eval()
    again = pickle.loads(pickle.dumps(plain))
    with torch.no_grad():
        assert type(again) is PromptChannelNetwork and torch.equal(again(x), plain(x))
    ds = _net(deep_supervision=True)
    ds.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    assert ds.network.decoder.deep_supervision is False


def _two_class_label(shape=(12, 20, 20)):
    label = np.zeros(shape, np.int64)
    label[2:5, 2:6, 2:6] = 1
    label[7:10, 12:16, 12:18] = 1  # second GTVp component
    label[2:6, 13:18, 3:7] = 2
    return label


def test_training_clicks_one_per_component_and_negatives_outside():
    label = _two_class_label()
    clicks = training_clicks(label, (1, 2), np.random.default_rng(0))
    by = {(c, p): [z for ch, z, pos in clicks if ch == c and pos == p] for c in (0, 1) for p in (True, False)}
    assert len(by[0, True]) == 2 == len(by[0, False]) and len(by[1, True]) == 1 == len(by[1, False])
    assert {label[z] for z in by[0, True]} == {1} and {label[z] for z in by[1, True]} == {2}
    assert {z[0] < 6 for z in by[0, True]} == {True, False}  # one in each GTVp component
    assert all(label[z] != 1 for z in by[0, False]) and all(label[z] != 2 for z in by[1, False])
    assert training_clicks(np.zeros((4, 4, 4), np.int64), (1, 2), np.random.default_rng(0)) == []


def test_transform_appends_prompt_channels():
    label = torch.from_numpy(_two_class_label())[None]
    image = torch.randn(2, *label.shape[1:])
    np.random.seed(0)
    out = SimulateClicksTransform((1, 2), p_prompt=1.0, radius=1)(image=image.clone(), segmentation=label.clone())
    assert out["image"].shape == (6, *label.shape[1:]) and torch.equal(out["image"][:2], image)
    prompt = out["image"][2:].numpy()  # GTVp +, GTVn +, GTVp -, GTVn - (split layout: nothing cancels)
    assert set(np.unique(prompt)) == {0.0, 1.0}
    assert prompt[0].sum() == 2 * 7 and prompt[1].sum() == 7  # one 7-voxel ball per component
    assert 0 < prompt[2].sum() <= 2 * 7 and 0 < prompt[3].sum() <= 7
    assert prompt[1][label[0].numpy() == 2].max() == 1 and not prompt[2][label[0].numpy() == 1].any()
    assert torch.equal(out["segmentation"], label)
    off = SimulateClicksTransform((1, 2), p_prompt=0.0)(image=image.clone(), segmentation=label.clone())
    assert off["image"].shape == (6, *label.shape[1:]) and not off["image"][2:].any()
    signed = SimulateClicksTransform((1, 2), p_prompt=0.0, layout="signed")(image=image.clone(),
                                                                            segmentation=label.clone())
    assert signed["image"].shape == (4, *label.shape[1:])
    with pytest.raises(ValueError, match="p_prompt"):
        SimulateClicksTransform((1,), p_prompt=1.5)


def test_error_clicks_analytic():
    ref = np.zeros((20, 20, 20), np.int64)
    ref[2:9, 2:9, 2:9] = 1  # 7^3 cube, predicted only in its first 2 slices -> FN = 5 x 7 x 7 slab
    pred = np.zeros_like(ref)
    pred[2:4, 2:9, 2:9] = 1
    pred[12:15, 12:15, 12:15] = 1  # FP 3^3 cube, centre (13, 13, 13)
    pred[17, 17, 2] = 1  # 1-voxel FP
    ref[15:18, 2:5, 14:17] = 2  # GTVn missed entirely
    clicks = error_clicks(ref, pred, (1, 2))
    assert clicks[0] == (0, (6, 5, 5), True)  # slab z 4..8: deepest voxel z = 6, y = x = 5
    assert clicks[1] == (0, (13, 13, 13), False)
    assert clicks[2] == (0, (17, 17, 2), False)
    assert clicks[3] == (1, (16, 3, 15), True)
    assert error_clicks(ref, pred, (1, 2), max_per_class=1) == [clicks[0], clicks[3]]
    assert error_clicks(ref, pred, (1,), min_voxels=2) == clicks[:2]
    assert error_clicks(ref, ref, (1, 2)) == []
    # anisotropic spacing moves the deepest point of a box towards the middle of its long (thin-slice) axis
    box = np.zeros((9, 9, 9), bool)
    box[1:8, 2:5, 2:7] = True
    assert region_centre(box, spacing=(1.0, 3.0, 3.0))[0] == 4


def test_signed_checkpoint_loads_into_split_network_exactly():
    """A K-channel (signed P - N) state dict loads into the 2K-channel network with W_N = -W_P and computes
    what the signed network computed on the same clicks."""
    from nnunet_ext.methods.interactive.clicks import rasterize_voxels

    pm = PlansManager(_plans(PLAIN))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    split = ClickPromptTrainer.build_network_architecture(pm, cm, 2, 3, False).eval()
    # the earlier signed network: same architecture, K = 2 prompt channels
    from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer

    signed = PromptChannelNetwork(MCDropoutTrainer.build_network_architecture(pm, cm, 4, 3, False), 2, 2).eval()
    split.load_state_dict(signed.state_dict())
    clicks = [(0, (8, 8, 8), True), (0, (8, 9, 8), False), (1, (3, 3, 3), False)]  # overlapping +/- of GTVp
    x = torch.randn(1, 2, 16, 16, 16)
    p_signed = torch.from_numpy(rasterize_voxels(clicks, (16, 16, 16), 2, 2, layout="signed"))[None]
    p_split = torch.from_numpy(rasterize_voxels(clicks, (16, 16, 16), 2, 2, layout="split"))[None]
    assert p_split.shape[1] == 4 and (p_split[0, 0] * p_split[0, 2]).sum() > 0  # both kept where they overlap
    with torch.no_grad():
        assert torch.allclose(signed(torch.cat([x, p_signed], 1)), split(torch.cat([x, p_split], 1)), atol=1e-5)
    with pytest.raises(RuntimeError):  # any other channel count is refused by torch as before
        split.load_state_dict(PromptChannelNetwork(MCDropoutTrainer.build_network_architecture(
            pm, cm, 5, 3, False), 2, 3).state_dict())


def test_error_clicks_minimum_order_and_no_repeats():
    from nnunet_ext.methods.interactive.click_protocols import ClickProtocol
    from nnunet_ext.methods.interactive.click_simulation import ball_voxels, min_error_voxels

    assert (ball_voxels(3, 3), ball_voxels(3, 2)) == (123, 29)
    assert min_error_voxels(None, (4.0, 3.0, 3.0), 3, 3) == 123  # default: the ball's own volume
    assert min_error_voxels(100.0, (2.0, 2.0, 2.0), 3, 3) == 13  # ceil(100 / 8)
    ref = np.zeros((30, 30, 30), np.int64)
    ref[2:10, 2:10, 2:10] = 1  # 512 voxels missed
    ref[20:27, 20:27, 20:27] = 1  # 343 voxels missed
    ref[15, 15, 2:4] = 1  # 2-voxel sliver missed
    pred = np.zeros_like(ref)
    clicks = error_clicks(ref, pred, (1,), min_voxels=123)
    assert [c[1] for c in clicks] == [(5, 5, 5), (23, 23, 23)]  # largest first, the sliver ignored
    rng = np.random.default_rng(0)
    firsts = [error_clicks(ref, pred, (1,), 1, min_voxels=123, order="proportional", rng=rng)[0][1]
              for _ in range(400)]
    share = sum(f == (5, 5, 5) for f in firsts) / 400
    assert abs(share - 512 / 855) < 0.08  # drawn proportional to size
    # the protocol never clicks an unchanged component twice: the model ignoring the click -> next component
    protocol = ClickProtocol("errors", ref, (1,), 3, min_voxels=123)
    assert [c[1] for c in protocol.step(1, pred)] == [(5, 5, 5)]
    assert [c[1] for c in protocol.step(2, pred)] == [(5, 5, 5), (23, 23, 23)]
    assert len(protocol.step(3, pred)) == 2  # nothing eligible left: no click, nothing counted twice
    # a changed component is eligible again (here at a new deepest voxel)
    protocol = ClickProtocol("errors", ref, (1,), 2, min_voxels=123)
    protocol.step(1, pred)
    changed = pred.copy()
    changed[2:10, 2:10, 2:4] = 1  # the first cube's x 2..3 now predicted: what is left is x 4..9
    assert [c[1] for c in protocol.step(2, changed)] == [(5, 5, 5), (5, 5, 6)]


def test_warmup_cosine():
    assert warmup_cosine_lr(0, 1.0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine_lr(9, 1.0, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine_lr(10, 1.0, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine_lr(55, 1.0, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine_lr(99, 1.0, 100, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert warmup_cosine_lr(1, 2.0, 2, 10) == pytest.approx(0.4)  # fewer epochs than warm-up: warm-up only
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = WarmupCosineLRScheduler(opt, 1e-3, 30, 10)
    sched.step(4)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_stage_variants():
    assert (ClickPromptTrainer.stage, ClickPromptTrainer.default_p_prompt, ClickPromptTrainer.click_source) == (
        1, 0.5, "reference")
    assert (ClickPromptAutoTrainer.default_p_prompt, ClickPromptAutoTrainer.click_source) == (0.0, "none")
    assert (ClickPromptErrorTrainer.default_p_prompt, ClickPromptErrorTrainer.click_source) == (1.0, "errors")


def test_pet_channel_dropout():
    from nnunet_ext.methods.interactive.click_transform import ChannelDropoutTransform

    image = torch.randn(2, 4, 8, 8) + 5
    seg = torch.zeros(1, 4, 8, 8, dtype=torch.int64)
    out = ChannelDropoutTransform(1, p=1.0)(image=image.clone(), segmentation=seg)
    assert torch.equal(out["image"][0], image[0]) and not out["image"][1].any()
    np.random.seed(0)
    kept = sum(bool(ChannelDropoutTransform(1, p=0.3)(image=image.clone(), segmentation=seg)["image"][1].any())
               for _ in range(200))
    assert 120 <= kept <= 160  # ~ 70 % of 200
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        ChannelDropoutTransform(1, p=2)


def test_intensity_tta_leaves_prompts_unchanged_and_spatial_tta_moves_them():
    from nnunet_ext.core.tta import Flip, GaussianNoise, apply_each

    torch.manual_seed(0)
    x = torch.randn(6, 8, 12, 12)  # CT, PET + 4 prompt channels
    x[2:] = 0
    x[2, 4, 3, 5] = 1
    out = apply_each([GaussianNoise(0.5, 1), Flip(-1)], x, n_image=2)
    assert torch.equal(out[0, 2:], x[2:]) and not torch.equal(out[0, :2], x[:2])  # noise: image channels only
    assert torch.equal(out[1], torch.flip(x, (-1,)))  # a flip moves the prompts with the image
    assert out[1, 2, 4, 3, 12 - 1 - 5] == 1
    assert not torch.equal(apply_each([GaussianNoise(0.5, 1)], x)[0, 2:], x[2:])  # without n_image: every channel


def test_stage3_clicks_never_land_on_components_below_the_minimum():
    """error_click_prompts (ClickPromptErrorTrainer's rounds): with a model that predicts nothing, round 1 clicks
    the largest missed components >= the minimum (max_first per class), round 2 the next one not clicked yet;
    the 2- and 20-pixel components (below the 29-pixel disc) never get a stamp."""
    from nnunet_ext.methods.interactive.click_prompt_trainer import error_click_prompts

    ref = np.zeros((1, 40, 40), np.int64)
    ref[0, 2:12, 2:12] = 1  # 100 px
    ref[0, 20:28, 2:10] = 1  # 64 px
    ref[0, 30:36, 30:36] = 1  # 36 px
    ref[0, 2:6, 30:35] = 1  # 20 px: below 29
    ref[0, 38, 20:22] = 1  # 2 px sliver
    small = np.zeros((40, 40), bool)
    small[2:6, 30:35] = small[38, 20:22] = True
    data = torch.zeros(1, 3, 40, 40)  # 1 image channel + GTV +/-
    calls = []

    def nothing(x):
        calls.append(x[:, 1:].clone())
        return np.zeros((x.shape[0], 40, 40), np.int64)

    for rounds, max_first, expected in (([1], 2, 2), ([2], 2, 3), ([3], 1, 3), ([0], 5, 0)):
        calls.clear()
        x = error_click_prompts(nothing, data, ref, (1,), rounds, max_first, (1.0, 1.0), 29, radius=3.0)
        pos = x[0, 1].numpy() > 0
        from nnunet_ext.methods.interactive.click_simulation import components

        assert components(pos)[1] == expected and not (pos & small).any()
        assert not x[0, 2].any() and torch.equal(x[0, 0], data[0, 0])  # no negatives; image untouched
        assert len(calls) == rounds[0] and (not calls or not calls[0].any())  # round 1 = automatic branch


def test_stage3_rounds_predict_only_the_samples_that_still_have_a_round():
    """A batch with rounds [0, 1, 3]: round 1 predicts samples 1 and 2, rounds 2 and 3 sample 2 only (each
    prediction gets exactly those samples' inputs); sample 0 gets no clicks and no prediction."""
    from nnunet_ext.methods.interactive.click_prompt_trainer import error_click_prompts

    ref = np.zeros((3, 40, 40), np.int64)
    for b in range(3):
        ref[b, 2:12, 2:12] = ref[b, 20:28, 2:10] = ref[b, 30:36, 30:36] = 1
    data = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 3, 40, 40).clone()
    batches = []

    def nothing(x):
        batches.append(x[:, 0, 0, 0].tolist())  # the image channel says which samples came
        return np.zeros((x.shape[0], 40, 40), np.int64)

    x = error_click_prompts(nothing, data, ref, (1,), [0, 1, 3], 1, (1.0, 1.0), 29, radius=3.0)
    assert batches == [[1.0, 2.0], [2.0], [2.0]]
    assert not x[0, 1:].any() and x[1, 1].any() and x[2, 1].sum() > x[1, 1].sum()  # 1 click vs 3


def _previous_plans(base):
    plans = _plans(base)
    plans["configurations"]["3d_fullres"]["nnext_training"] = {"clicks": {"previous_prediction": True}}
    return plans


def test_previous_prediction_channels_from_the_plans_option():
    """clicks.previous_prediction = true: the network takes C + 2K + K channels; image-only and image + prompt
    input get the missing channels zero-filled; the previous channels change the output; off by default."""
    pm = PlansManager(_previous_plans(PLAIN))
    torch.manual_seed(0)
    net = ClickPromptTrainer.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 2, 3, False).eval()
    assert (net.n_image_channels, net.n_prompt_channels, net.n_previous_channels) == (2, 4, 2)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.in_channels == 8
    x = torch.randn(1, 2, 16, 16, 16)
    prompt = torch.zeros(1, 4, 16, 16, 16)
    prompt[:, 0, 6:9, 6:9, 6:9] = 1
    previous = torch.zeros(1, 2, 16, 16, 16)
    previous[:, 0, 4:12, 4:12, 4:12] = 1
    with torch.no_grad():
        auto = net(x)
        assert torch.equal(auto, net(torch.cat([x, torch.zeros(1, 6, 16, 16, 16)], 1)))
        assert torch.equal(net(torch.cat([x, prompt], 1)), net(torch.cat([x, prompt, torch.zeros_like(previous)], 1)))
        assert not torch.allclose(net(torch.cat([x, prompt], 1)), net(torch.cat([x, prompt, previous], 1)))
    with pytest.raises(ValueError, match="2 previous-prediction channels"):
        net(torch.randn(1, 7, 16, 16, 16))
    default = ClickPromptTrainer.build_network_architecture(PlansManager(_plans(PLAIN)),
                                                            PlansManager(_plans(PLAIN)).get_configuration("3d_fullres"),
                                                            2, 3, False)
    assert default.n_previous_channels == 0
    np.random.seed(0)
    label = torch.from_numpy(_two_class_label())[None]
    out = SimulateClicksTransform((1, 2), 1.0, 1, n_previous=2)(image=torch.randn(2, *label.shape[1:]),
                                                                segmentation=label)
    assert out["image"].shape[0] == 8 and out["image"][2:6].any() and not out["image"][6:].any()


def test_stage3_rounds_feed_the_prediction_their_clicks_were_placed_on():
    """error_click_prompts(previous=True): round r + 1 and the training pass see the clicks so far with the
    prediction of round r (one-hot per class) in the previous channels; round 1 predicts with zeros."""
    from nnunet_ext.methods.interactive.click_prompt_trainer import error_click_prompts

    ref = np.zeros((1, 40, 40), np.int64)
    ref[0, 2:12, 2:12] = 1
    ref[0, 20:28, 2:10] = 2
    data = torch.zeros(1, 1 + 4 + 2, 40, 40)
    seen = []

    def predictor(x):  # round r predicts class 1 in a (r + 1)-row band: each round's prediction differs
        seen.append(x[0, 5:].clone())
        r = len(seen)
        out = np.zeros((1, 40, 40), np.int64)
        out[0, 30:30 + r, :] = 1
        return out

    x = error_click_prompts(predictor, data, ref, (1, 2), [3], 5, (1.0, 1.0), 29, previous=True)
    assert len(seen) == 3 and not seen[0].any()
    for r in (1, 2):  # round r + 1 saw round r's prediction
        band = torch.zeros(40, 40)
        band[30:30 + r] = 1
        assert torch.equal(seen[r][0], band) and not seen[r][1].any()
    last = np.zeros((40, 40), bool)
    last[30:33] = True
    assert torch.equal(x[0, 5], torch.from_numpy(last).float()) and not x[0, 6].any()  # round 3's prediction
    assert x[0, 1].any() and x[0, 2].any()  # GTVp and GTVn positives were clicked
    off = error_click_prompts(lambda t: np.zeros((1, 40, 40), np.int64), data[:, :5], ref, (1, 2), [2], 5,
                              (1.0, 1.0), 29)
    assert off.shape[1] == 5


def test_pretrained_weights_carry_the_segmentation_heads_over(tmp_path):
    """nnU-Net's -pretrained_weights loader (as run_training calls it) re-initialises the heads; with the click
    trainers' wrapper a PromptChannelNetwork gets every tensor of the previous stage, heads included, unless
    clicks.transfer_heads is false."""
    import nnunetv2.run.run_training as run_training

    from nnunet_ext.methods.interactive.stage_chain import install_head_transfer

    pm = PlansManager(_plans(PLAIN))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    previous = ClickPromptTrainer.build_network_architecture(pm, cm, 2, 3, True)
    ckpt = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": previous.state_dict()}, ckpt)
    install_head_transfer()
    install_head_transfer()  # idempotent: one wrapper
    assert run_training.load_pretrained_weights.nnext_head_transfer
    for transfer in (True, False):
        torch.manual_seed(1)
        net = ClickPromptTrainer.build_network_architecture(pm, cm, 2, 3, True)
        net.transfer_heads = transfer
        run_training.load_pretrained_weights(net, str(ckpt))
        new, old = net.state_dict(), previous.state_dict()
        heads = [k for k in new if ".seg_layers." in k]
        assert heads and all(torch.equal(new[k], old[k]) for k in new if k not in heads)
        assert all(torch.equal(new[k], old[k]) for k in heads) is transfer
    plans = _plans(PLAIN)
    plans["configurations"]["3d_fullres"]["nnext_training"] = {"clicks": {"transfer_heads": False}}
    pm2 = PlansManager(plans)
    assert not ClickPromptTrainer.build_network_architecture(pm2, pm2.get_configuration("3d_fullres"), 2, 3,
                                                             True).transfer_heads
