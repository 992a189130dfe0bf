"""Rater-set encoding (nnunet_ext.methods.multi_rater.raters) and the fusion / MCM losses (core.fusion_loss)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnunet_ext import decode_raters, encode_raters
from nnunet_ext.methods.multi_rater import raters as R
from nnunet_ext.methods.multi_rater.fusion_loss import decode_targets, fusion_bce, mcm_loss, soft_dice_loss, ugs_loss


@st.composite
def rater_masks(draw):
    k = draw(st.integers(1, R.MAX_RATERS))
    shape = draw(st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6)))
    return draw(arrays(bool, (k,) + shape))


@settings(max_examples=200, deadline=None)
@given(rater_masks())
def test_round_trip_every_rater_count_and_pattern(masks):
    label = encode_raters(masks)
    k = masks.shape[0]
    assert label.dtype == np.uint8 and label.shape == masks.shape[1:]
    np.testing.assert_array_equal(decode_raters(label, k), masks)
    maps = R.consensus_maps(label)  # no K needed
    np.testing.assert_array_equal(maps["union"], masks.any(0))
    np.testing.assert_array_equal(maps["intersection"], masks.all(0) & masks.any(0) if k else masks.all(0))
    np.testing.assert_allclose(maps["mean"], masks.mean(0), rtol=0, atol=1e-6)
    assert R.raters_in(label) in (0, k)


def test_every_pattern_of_every_k_has_its_own_label():
    seen = {}
    for k in range(1, R.MAX_RATERS + 1):
        patterns = np.array([[(p >> j) & 1 for p in range(1 << k)] for j in range(k)], bool)[:, :, None, None]
        label = encode_raters(patterns)[:, 0, 0]
        assert label[0] == 0 and len(set(label[1:])) == (1 << k) - 1
        for p, lab in enumerate(label[1:], start=1):
            assert seen.setdefault(int(lab), (k, p)) == (k, p)  # no two (K, pattern) share a label
        np.testing.assert_array_equal(decode_raters(label, k), patterns[:, :, 0, 0])
    assert max(seen) == R.max_label(R.MAX_RATERS) == 120 and len(seen) == 120


def test_intersection_is_over_the_raters_of_the_case():
    # two raters both positive: intersection for K = 2, but not if the case had a third (negative) rater
    two = encode_raters(np.ones((2, 1, 1, 1), bool))
    three = encode_raters(np.array([1, 1, 0], bool).reshape(3, 1, 1, 1))
    assert R.consensus_maps(two)["intersection"].all() and not R.consensus_maps(three)["intersection"].any()
    assert R.consensus_maps(three)["mean"].item() == pytest.approx(2 / 3)


def test_limits_and_bad_input():
    with pytest.raises(ValueError, match="1 to 6 raters"):
        encode_raters(np.zeros((7, 2, 2), bool))
    with pytest.raises(ValueError, match="1 to 6 raters"):
        encode_raters(np.zeros((0, 2, 2), bool))
    with pytest.raises(ValueError, match="binary"):
        encode_raters(np.full((2, 2, 2), 2))
    label = encode_raters(np.ones((3, 2, 2), bool))
    with pytest.raises(ValueError, match="do not belong to a 2-rater case"):
        decode_raters(label, 2)
    with pytest.raises(ValueError, match="0..120"):
        decode_raters(np.array([121]), 4)


def test_lazy_import_stays_cheap():
    code = "import sys, nnunet_ext; assert 'numpy' not in sys.modules; nnunet_ext.encode_raters; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"NNUNET_EXT_NO_AUTOREGISTER": "1", "PATH": ""})
    assert out.stdout.strip() == "ok", out.stderr


def _bce(p, t):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()


def test_fusion_loss_is_mean_of_per_rater_bces_by_hand():
    rng = np.random.default_rng(0)
    cases = []
    for k in (2, 3, 4):  # one batch mixing rater counts
        cases.append(rng.random((k, 6, 7)) > 0.5)
    label = torch.as_tensor(np.stack([encode_raters(m) for m in cases])[:, None].astype(np.int64))
    logits = torch.as_tensor(rng.normal(size=label.shape), dtype=torch.float64)
    p = torch.sigmoid(logits).numpy()[:, 0]
    by_hand = np.mean([np.mean([_bce(p[b], m[j]) for j in range(len(m))]) for b, m in enumerate(cases)])
    got = fusion_bce(logits, decode_targets(label)["mean"].double()).item()
    assert got == pytest.approx(by_hand, rel=1e-6)  # the mean mask is float32 (1/3 rounded)


def test_mcm_and_ugs_loss_against_hand_computation():
    rng = np.random.default_rng(1)
    m = rng.random((3, 1, 5, 5)) > 0.4
    label = torch.as_tensor(encode_raters(m)[None].astype(np.int64))  # (1, 1, 5, 5)
    heads = {n: torch.as_tensor(rng.normal(size=(1, 1, 5, 5))) for n in ("union", "inter", "uni", "xs")}
    sig = {n: torch.sigmoid(v).numpy()[0, 0] for n, v in heads.items()}
    u, i = m.any(0)[0], m.all(0)[0]
    l_mcm = _bce(sig["union"], u) + _bce(sig["inter"], i)
    assert mcm_loss(heads["union"], heads["inter"], torch.as_tensor(u)[None, None],
                    torch.as_tensor(i)[None, None]).item() == pytest.approx(l_mcm)
    phi_a = np.mean([_bce(sig["uni"], m[j, 0]) for j in range(3)])
    phi_b = np.mean([_bce(sig["xs"], m[j, 0]) for j in range(3)])
    parts = ugs_loss(heads, label)
    assert parts["total"].item() == pytest.approx(0.5 * l_mcm + 0.5 * phi_a + phi_b)


def test_soft_dice_matches_formula():
    logits = torch.tensor([[[0.0, 2.0, -1.0]]])
    t = torch.tensor([[[1.0, 0.5, 0.0]]])
    p = torch.sigmoid(logits)
    expected = 1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    assert soft_dice_loss(logits, t).item() == pytest.approx(expected.item())
    # a perfect hard prediction of a hard target gives ~0
    assert soft_dice_loss(torch.tensor([[[50.0, -50.0]]]), torch.tensor([[[1.0, 0.0]]])).item() < 1e-6
