"""The stage-3 loss term on the clicked error components (``nnunet_ext.methods.interactive.component_loss``) and the
clicked-component mask the rounds of ``error_click_prompts`` fill."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnunet_ext.methods.interactive.click_prompt_trainer import error_click_prompts
from nnunet_ext.methods.interactive.click_simulation import components, error_clicks
from nnunet_ext.methods.interactive.component_loss import ClickedComponentLoss, clicked_component_ce


def test_ce_is_taken_over_the_mask_only_at_full_resolution():
    """Logits 0 inside the mask (CE = ln 2 for two classes, whatever the label) and confidently wrong outside:
    the term is exactly ln 2; a deep-supervision list uses its first (full-resolution) entry."""
    logits = torch.zeros(2, 2, 4, 6)
    target = torch.zeros(2, 1, 4, 6)
    target[:, :, :2] = 1
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[0, 1:3, 1:4] = mask[1, 0, 0] = True
    logits[:, 0][~mask] = 20.0  # outside the mask: class 0 predicted, wrong where the target is 1
    assert clicked_component_ce(logits, target, mask).item() == pytest.approx(math.log(2), abs=1e-6)
    low = torch.full((2, 2, 2, 3), 7.0)
    assert clicked_component_ce([logits, low], [target, target[:, :, ::2, ::2]], mask).item() == pytest.approx(
        math.log(2), abs=1e-6)


def test_empty_mask_adds_nothing_but_keeps_the_graph():
    logits = torch.randn(1, 3, 5, 5, requires_grad=True)
    term = clicked_component_ce(logits, torch.zeros(1, 1, 5, 5), torch.zeros(1, 5, 5, dtype=torch.bool))
    term.backward()
    assert term.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_wrapper_adds_the_weighted_term_only_while_a_mask_is_set():
    base = torch.nn.CrossEntropyLoss()
    wrapped = ClickedComponentLoss(lambda o, t: base(o, t[:, 0].long()), 0.5)
    logits = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    target = (torch.arange(36).view(1, 1, 6, 6) % 2).float()
    plain = base(logits, target[:, 0].long())
    assert wrapped(logits, target).item() == pytest.approx(plain.item())  # no mask: the base loss (validation)
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, :3] = True
    wrapped.mask = mask
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0].long(), reduction="none")
    expected = plain + 0.5 * ce[mask].mean()
    assert wrapped(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="must be > 0"):
        ClickedComponentLoss(base, 0.0)


def test_a_training_step_with_the_term_corrects_more_of_the_clicked_component():
    """One SGD step of the same seeded 1x1-conv network, same batch: with the term the reference class's mean
    probability on the clicked component's voxels ends higher than with the base loss alone (measured: -0.014
    against -0.080; the term's purpose)."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 16, 16)
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4:12, 4:12] = 1
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 4:6, 4:12] = True  # a missed rim of the square, as a clicked FN component

    def gain(weight):
        torch.manual_seed(1)
        net = torch.nn.Conv2d(2, 2, 1)
        base = lambda o, t: torch.nn.functional.cross_entropy(o, t[:, 0].long())  # noqa: E731
        loss = ClickedComponentLoss(base, weight) if weight else base
        if weight:
            loss.mask = mask
        before = net(x).softmax(1)[0, 1][mask[0]].mean()
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        loss(net(x), target).backward()
        opt.step()
        return (net(x).softmax(1)[0, 1][mask[0]].mean() - before).item()

    assert gain(1.0) > gain(0) + 0.01


def test_error_clicks_report_the_component_of_each_click():
    ref = np.zeros((30, 30), np.int64)
    ref[2:12, 2:12] = 1  # missed: 100 px
    ref[20:26, 20:26] = 1  # missed: 36 px
    pred = np.zeros_like(ref)
    pred[20:24, 2:6] = 1  # false positive: 16 px
    masks = []
    clicks = error_clicks(ref, pred, (1,), None, (1.0, 1.0), 10, components_out=masks)
    assert [(c[2], int(m.sum())) for c, m in zip(clicks, masks)] == [(True, 100), (True, 36), (False, 16)]
    assert all(m[c[1]] for c, m in zip(clicks, masks))  # each click lies in its own component


def test_stage3_rounds_fill_the_union_of_the_clicked_components():
    """A model that predicts nothing: rounds [1] with 2 first clicks mark the two largest missed components,
    rounds [3] with 1 first click the three largest; the component below the minimum is never marked."""
    ref = np.zeros((2, 40, 40), np.int64)
    for b in range(2):
        ref[b, 2:12, 2:12] = 1  # 100 px
        ref[b, 20:28, 2:10] = 1  # 64 px
        ref[b, 30:36, 30:36] = 1  # 36 px
        ref[b, 2:6, 30:35] = 1  # 20 px: below 29
    data = torch.zeros(2, 3, 40, 40)

    def nothing(x):
        return np.zeros((x.shape[0], 40, 40), np.int64)

    for rounds, max_first, sizes in (([1, 0], 2, [100, 64]), ([3, 1], 1, [100, 64, 36])):
        clicked = np.zeros(ref.shape, bool)
        error_click_prompts(nothing, data, ref, (1,), rounds, max_first, (1.0, 1.0), 29, radius=3.0,
                            clicked=clicked)
        labels, n = components(clicked[0])
        assert sorted(np.bincount(labels.ravel())[1:].tolist(), reverse=True) == sizes
        assert clicked[0][ref[0] == 0].sum() == 0  # only reference voxels (missed components)
        assert int(clicked[1].sum()) == (0 if rounds[1] == 0 else 100)  # sample 1: its own rounds
