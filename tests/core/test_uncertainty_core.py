"""Entropy / MI / variance against analytic values."""
import math

import pytest
import torch

from nnunet_ext.core.uncertainty import ensemble_maps, entropy, max_entropy, pooled_logits


def test_identical_one_hot_passes_have_zero_uncertainty():
    onehot = torch.zeros(5, 3, 4, 4)
    onehot[:, 1] = 1
    m = ensemble_maps(onehot)
    for name in ("entropy", "expected_entropy", "mi", "variance"):
        assert torch.count_nonzero(m[name]) == 0, name


def test_uniform_probabilities_have_log_c_entropy_and_no_mi():
    uniform = torch.full((4, 3, 2, 2, 2), 1 / 3)
    m = ensemble_maps(uniform)
    assert torch.allclose(m["entropy"], torch.full((2, 2, 2), math.log(3)))
    assert torch.allclose(m["mi"], torch.zeros(2, 2, 2), atol=1e-6)
    assert max_entropy(3) == pytest.approx(math.log(3))


def test_disagreeing_confident_passes_are_epistemic():
    # half the passes say class 0, half class 1, each with certainty: H(mean)=log 2, E[H]=0, MI=log 2
    p = torch.zeros(4, 2, 1)
    p[:2, 0] = 1
    p[2:, 1] = 1
    m = ensemble_maps(p)
    assert m["entropy"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert m["expected_entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert m["mi"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert m["variance"].item() == pytest.approx(0.25)  # Var of a fair 0/1 variable, same for both classes


def test_sigmoid_entropy_is_sum_of_binary_entropies():
    p = torch.tensor([[0.5], [0.5], [1.0]])  # 3 regions, one voxel
    assert entropy(p, 0, sigmoid=True).item() == pytest.approx(2 * math.log(2))
    assert max_entropy(3, sigmoid=True) == pytest.approx(3 * math.log(2))


def test_pooled_logits_invert_the_nonlinearity_and_keep_argmax():
    torch.manual_seed(0)
    z = torch.randn(3, 10)
    soft = torch.softmax(z, 0)
    assert torch.equal(pooled_logits(soft).argmax(0), z.argmax(0))
    assert torch.allclose(torch.softmax(pooled_logits(soft), 0), soft, atol=1e-6)
    sig = torch.sigmoid(z)
    assert torch.allclose(pooled_logits(sig, sigmoid=True), z, atol=1e-4)
