"""Voxel-weighted Dice / CE, the lung-cascade adaptive loss, Lovász-softmax, MC-dropout variance and
distance-transform weights against hand-computed and brute-force values."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunet_ext.methods.lung_cascade.weighted_losses import (
    distance_weight_map,
    lovasz_softmax,
    lovasz_softmax_loss,
    mc_dropout_variance,
    uncertainty_adaptive_loss,
    weighted_cross_entropy,
    weighted_soft_dice_loss,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _logits_target(shape=(2, 3, 4, 5), seed=0):
    g = _gen(seed)
    logits = torch.randn(shape, generator=g)
    target = torch.randint(0, shape[1], (shape[0], 1) + shape[2:], generator=g)
    return logits, target


# ----------------------------------------------------------------------------------------------- gradients

def _all_losses(logits, target, weight, u):
    yield "dice", weighted_soft_dice_loss(logits, target, weight)
    yield "dice_bg_batch", weighted_soft_dice_loss(logits, target, weight, do_bg=True, batch_dice=True)
    yield "ce", weighted_cross_entropy(logits, target, weight)
    yield "ce_voxels", weighted_cross_entropy(logits, target, weight, normalize="voxels")
    yield "adaptive", uncertainty_adaptive_loss(logits, target, u)
    yield "lovasz", lovasz_softmax_loss(logits, target)
    yield "lovasz_all", lovasz_softmax_loss(logits, target, classes="all")
    yield "lovasz_w", lovasz_softmax_loss(logits, target, weight=1.0 + u)
    yield "lovasz_w0", lovasz_softmax_loss(logits, target, weight=weight)


@pytest.mark.parametrize("case", ["random", "all_background", "zero_weights"])
def test_gradients_are_finite(case):
    logits, target = _logits_target((2, 3, 4, 5, 3))
    weight = torch.rand((2,) + target.shape[2:], generator=_gen(1))
    weight[:, :2] = 0.0                                      # zeros in places
    u = torch.rand_like(weight) * 0.3
    if case == "all_background":
        target = torch.zeros_like(target)
    if case == "zero_weights":
        weight = torch.zeros_like(weight)
    for name, _ in _all_losses(logits, target, weight, u):
        x = logits.clone().requires_grad_(True)
        loss = dict(_all_losses(x, target, weight, u))[name]
        loss.backward()
        assert torch.isfinite(loss), (case, name)
        assert torch.isfinite(x.grad).all(), (case, name)


def test_uncertainty_gets_no_gradient():
    logits, target = _logits_target()
    u = torch.rand((2, 4, 5), generator=_gen(2), requires_grad=True)
    x = logits.clone().requires_grad_(True)
    uncertainty_adaptive_loss(x, target, u).backward()
    assert u.grad is None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------------------------- Dice / CE

def _two_class_2x2(p1):
    """logits (1, 2, 2, 2) whose softmax gives foreground probabilities ``p1``."""
    p1 = torch.tensor(p1, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p1), torch.log(p1 / (1 - p1))])[None]


def test_weighted_soft_dice_matches_hand_computation_on_2x2():
    logits = _two_class_2x2([[0.75, 0.25], [0.5, 0.9]])
    target = torch.tensor([[[[1, 0], [1, 0]]]])
    s = 1e-5
    # foreground: Σ p g = .75 + .5, Σ p = 2.4, Σ g = 2
    d1 = (2 * 1.25 + s) / (2.4 + 2 + s)
    assert weighted_soft_dice_loss(logits, target, 1.0, smooth=s).item() == pytest.approx(-d1, rel=1e-6)
    # background: p0 = [.25, .75, .5, .1], g0 = [0, 1, 0, 1]: Σ p g = .85, Σ p = 1.6, Σ g = 2
    d0 = (2 * 0.85 + s) / (1.6 + 2 + s)
    loss_bg = weighted_soft_dice_loss(logits, target, torch.ones(1, 2, 2), do_bg=True, smooth=s)
    assert loss_bg.item() == pytest.approx(-(d0 + d1) / 2, rel=1e-6)
    # weights [[2, 0], [1, 1]]: Σ w p g = 1.5 + .5, Σ w p = 1.5 + .5 + .9, Σ w g = 3
    w = torch.tensor([[[[2.0, 0.0], [1.0, 1.0]]]])
    dw = (2 * 2.0 + s) / (2.9 + 3 + s)
    assert weighted_soft_dice_loss(logits, target, w, smooth=s).item() == pytest.approx(-dw, rel=1e-6)


def test_batch_dice_pools_the_batch():
    logits, target = _logits_target((2, 2, 3, 3))
    pooled = weighted_soft_dice_loss(
        logits.movedim(0, 2).reshape(1, 2, 6, 3), target.movedim(0, 2).reshape(1, 1, 6, 3), 1.0
    )
    assert weighted_soft_dice_loss(logits, target, 1.0, batch_dice=True).item() == pytest.approx(
        pooled.item(), rel=1e-6
    )


def test_weighted_ce_with_unit_and_binary_weights_is_torch_cross_entropy():
    logits, target = _logits_target()
    labels = target[:, 0]
    ref = F.cross_entropy(logits, labels)
    assert torch.allclose(weighted_cross_entropy(logits, target, torch.ones_like(labels, dtype=torch.float)), ref)
    assert torch.allclose(weighted_cross_entropy(logits, target, 1.0, normalize="voxels"), ref)
    w = (torch.rand(labels.shape, generator=_gen(3)) > 0.5).float()        # 0/1 weights select voxels
    keep = w.bool()
    subset = F.cross_entropy(logits.movedim(1, -1)[keep], labels[keep])
    assert torch.allclose(weighted_cross_entropy(logits, target, w), subset)
    assert torch.allclose(weighted_cross_entropy(logits, target, w, normalize="voxels"), subset * keep.float().mean())
    assert weighted_cross_entropy(logits, target, torch.zeros_like(w)).item() == 0.0


# ----------------------------------------------------------------------------------------------- adaptive

def test_zero_uncertainty_is_plain_soft_dice_without_ce():
    logits, target = _logits_target()
    u = torch.zeros((2, 4, 5))
    alpha = torch.exp(-u)
    assert weighted_cross_entropy(logits, target, 1.0 - alpha, normalize="voxels").item() == 0.0
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    adaptive = uncertainty_adaptive_loss(x1, target, u)
    dice = weighted_soft_dice_loss(x2, target, 1.0)
    assert adaptive.item() == pytest.approx(dice.item(), abs=1e-7)
    adaptive.backward()
    dice.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-7)


def test_constant_uncertainty_matches_scalar_alpha_mixture():
    logits, target = _logits_target()
    u = torch.full((2, 4, 5), 0.7)
    a = math.exp(-0.7)
    expected = a * weighted_soft_dice_loss(logits, target, 1.0) + (1 - a) * F.cross_entropy(logits, target[:, 0])
    assert uncertainty_adaptive_loss(logits, target, u).item() == pytest.approx(expected.item(), rel=1e-5)


def test_large_uncertainty_limit_is_cross_entropy():
    logits, target = _logits_target()
    u = torch.full((2, 1, 4, 5), 50.0)                      # α = e^-50 ≈ 0
    expected = F.cross_entropy(logits, target[:, 0])
    assert uncertainty_adaptive_loss(logits, target, u).item() == pytest.approx(expected.item(), rel=1e-5)


def test_per_voxel_alpha_differs_from_mean_alpha():
    logits, target = _logits_target()
    u = torch.rand((2, 4, 5), generator=_gen(4)) * 3
    alpha = torch.exp(-u)
    a = alpha.mean().item()
    mean_version = a * weighted_soft_dice_loss(logits, target, 1.0) + (1 - a) * F.cross_entropy(logits, target[:, 0])
    ours = uncertainty_adaptive_loss(logits, target, u)
    manual = a * weighted_soft_dice_loss(logits, target, alpha) + (
        (1 - alpha) * F.cross_entropy(logits, target[:, 0], reduction="none")).mean()
    assert ours.item() == pytest.approx(manual.item(), rel=1e-6)
    assert abs(ours.item() - mean_version.item()) > 1e-4


# ----------------------------------------------------------------------------------------------- Lovász

def _jaccard_loss(mispredicted, gt):
    """ΔJ(S) = 1 - |G \\ S| / |G ∪ S| on python sets."""
    union = gt | mispredicted
    return 1.0 - len(gt - mispredicted) / len(union) if union else 0.0


def _lovasz_by_definition(errors, gt):
    """Σ_i e_(i) (ΔJ(S_i) - ΔJ(S_{i-1})), S_i = indices of the i largest errors."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total, prev = 0.0, 0.0
    for i in range(1, len(order) + 1):
        cur = _jaccard_loss(set(order[:i]), gt)
        total += errors[order[i - 1]] * (cur - prev)
        prev = cur
    return total


def _lovasz_by_integral(errors, gt):
    """Equivalent Choquet-integral form ∫_0^∞ ΔJ({i : e_i >= t}) dt (ΔJ(∅) = 0)."""
    levels = sorted(set(errors) | {0.0})
    return sum((hi - lo) * _jaccard_loss({i for i, e in enumerate(errors) if e >= hi}, gt)
               for lo, hi in zip(levels[:-1], levels[1:]))


def _reference(probas, labels, weight, classes):
    c_ids = [c for c in range(probas.shape[1]) if classes == "all" or (labels == c).any()]
    out_def, out_int = [], []
    for c in c_ids:
        gt = {i for i in range(len(labels)) if labels[i] == c}
        errors = [abs(float(labels[i] == c) - probas[i, c]) * weight[i] for i in range(len(labels))]
        out_def.append(_lovasz_by_definition(errors, gt))
        out_int.append(_lovasz_by_integral(errors, gt))
    return float(np.mean(out_def)), float(np.mean(out_int))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("weighted", [False, True])
def test_lovasz_matches_brute_force_on_six_pixels(seed, classes, weighted):
    g = _gen(seed)
    probas = torch.softmax(torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64) * 2, 1)
    target = torch.tensor([[[[0, 0, 1], [0, 1, 0]]]])                      # class 2 absent
    weight = 1.0 + torch.rand(1, 2, 3, generator=g, dtype=torch.float64) if weighted else None
    flat_p = probas[0].reshape(3, -1).T.numpy()
    flat_y = target.reshape(-1).numpy()
    flat_w = weight.reshape(-1).numpy() if weighted else np.ones(6)
    by_def, by_int = _reference(flat_p, flat_y, flat_w, classes)
    assert by_def == pytest.approx(by_int, abs=1e-12)
    ours = lovasz_softmax(probas, target, weight=weight, classes=classes).item()
    assert ours == pytest.approx(by_def, abs=1e-10)


def test_lovasz_on_binary_predictions_is_one_minus_iou():
    labels = torch.tensor([[0, 1, 1, 2, 0, 1]])
    for pred in itertools.islice(itertools.product(range(3), repeat=6), 0, None, 37):
        pred = torch.tensor(pred)[None]
        probas = F.one_hot(pred, 3).movedim(-1, 1).double()                  # (1, 3, 6)
        ious = []
        for c in range(3):
            inter = ((pred == c) & (labels == c)).sum().item()
            union = ((pred == c) | (labels == c)).sum().item()
            ious.append(inter / union)
        assert lovasz_softmax(probas, labels[:, None]).item() == pytest.approx(1 - np.mean(ious), abs=1e-12)


def test_lovasz_unit_weights_equal_unweighted_and_perfect_prediction_is_zero():
    logits, target = _logits_target()
    assert torch.allclose(lovasz_softmax_loss(logits, target), lovasz_softmax_loss(logits, target, torch.ones(2, 4, 5)))
    perfect = F.one_hot(target[:, 0], 3).movedim(-1, 1).double()
    assert lovasz_softmax(perfect, target).item() == 0.0


# ----------------------------------------------------------------------------------------------- MC dropout

def _net(dropout):
    layers = [torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()]
    if dropout:
        layers.append(torch.nn.Dropout2d(0.5))
    layers.append(torch.nn.Conv2d(4, 3, 1))
    return torch.nn.Sequential(*layers)


class _DeepSupervision(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _net(True)

    def forward(self, x):
        y = self.net(x)
        return [y, F.avg_pool2d(y, 2)]


@pytest.mark.parametrize("train_mode", [True, False])
def test_mc_dropout_variance_zero_without_dropout_and_state_restored(train_mode):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 6)
    for dropout in (False, True):
        net = _net(dropout).train(train_mode)
        net[1].train(not train_mode)                                  # a mixed state must survive too
        before = [m.training for m in net.modules()]
        stats = net[1].running_mean.clone()
        u = mc_dropout_variance(net, x, k=6)
        assert u.shape == (2, 6, 6)
        assert [m.training for m in net.modules()] == before
        assert torch.equal(net[1].running_mean, stats)               # norm layers ran in eval mode
        if dropout:
            assert (u > 0).any() and (u >= 0).all()
            assert torch.count_nonzero(mc_dropout_variance(net, x, k=6, dropout_active=False)) == 0
        else:
            assert torch.count_nonzero(u) == 0


def test_mc_dropout_variance_uses_full_resolution_deep_supervision_output():
    torch.manual_seed(0)
    u = mc_dropout_variance(_DeepSupervision(), torch.randn(1, 1, 8, 8), k=4)
    assert u.shape == (1, 8, 8) and (u > 0).any() and not u.requires_grad


# ----------------------------------------------------------------------------------------------- distance map

def test_distance_weights_peak_at_the_boundary():
    labels = np.zeros((21, 21), dtype=np.int64)
    labels[5:15, 5:15] = 1
    w = distance_weight_map(labels, sigma=3.0, w0=10.0)
    assert isinstance(w, torch.Tensor) and w.dtype == torch.float32 and w.shape == (21, 21)
    assert w.max().item() == pytest.approx(11.0)
    assert w[5, 10].item() == pytest.approx(11.0) and w[4, 10].item() == pytest.approx(11.0)  # both sides
    row = w[10, :5].numpy()                                          # moving inward to the edge at column 4
    assert np.all(np.diff(row) > 0)
    assert w[10, 10].item() == pytest.approx(1 + 10 * math.exp(-16 / 18), rel=1e-5)  # 4 voxels from the edge
    assert w.min().item() >= 1.0


def test_distance_weights_spacing_batch_and_no_boundary():
    labels = np.zeros((2, 1, 1, 9), dtype=np.int64)
    labels[0, 0, 0, 5:] = 1
    w = distance_weight_map(torch.from_numpy(labels), spacing=(1.0, 2.0), sigma=2.0, w0=1.0)
    assert w.shape == labels.shape
    assert torch.equal(w[1], torch.ones(1, 1, 9))                      # uniform labels: no boundary
    # boundary voxels 4 and 5; voxel 2 is 2 voxels = 4 mm away
    assert w[0, 0, 0, 2].item() == pytest.approx(1 + math.exp(-16 / 8), rel=1e-5)


@pytest.mark.parametrize("do_bg,batch_dice", [(False, False), (True, True)])
def test_unit_weight_dice_is_nnunet_memory_efficient_soft_dice(do_bg, batch_dice):
    nnunet_dice = pytest.importorskip("nnunetv2.training.loss.dice")
    from nnunetv2.utilities.helpers import softmax_helper_dim1

    logits, target = _logits_target((2, 3, 4, 5, 3))
    ref = nnunet_dice.MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice,
                                                  do_bg=do_bg, smooth=1e-5, ddp=False)(logits, target)
    ours = weighted_soft_dice_loss(logits, target, 1.0, do_bg=do_bg, batch_dice=batch_dice)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
