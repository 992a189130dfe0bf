"""UncertaintyTrainer.train_step on a tiny batch: U is refreshed from the MC passes (and, with refresh > 1, only a
scalar carries over), the loss changes with U, and the U scalings; U_max against exhaustive pass splits."""
import itertools
import json

import numpy as np
import pytest
import torch

from nnunet_ext.methods.lung_cascade.weighted_losses import max_mc_variance, scale_uncertainty


@pytest.mark.parametrize("c,k", [(2, 2), (2, 4), (3, 2), (3, 4), (4, 3)])
def test_max_mc_variance_against_one_hot_splits(c, k):
    """U of one-hot passes over every assignment of K passes to C classes: the largest equals U_max, and random
    probability passes never exceed it."""
    best = 0.0
    for assign in itertools.product(range(c), repeat=k):
        p = np.eye(c)[list(assign)]
        best = max(best, float(p.var(axis=0).mean()))
    assert best == pytest.approx(max_mc_variance(c, k))
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(c, 0.2), size=(20000, k))
    assert float(p.var(axis=1).mean(axis=-1).max()) <= max_mc_variance(c, k) + 1e-12
    u = torch.tensor([0.0, max_mc_variance(c, k) / 2])
    assert torch.allclose(scale_uncertainty(u, "max", c, k), torch.tensor([0.0, 0.5]))
    assert torch.allclose(scale_uncertainty(u, "batch", c, k), torch.tensor([0.0, 1.0]))


def _trainer(chest_dataset, nnunet_dirs, monkeypatch, **options):
    from nnunet_ext.methods.lung_cascade.uncertainty_trainer import UncertaintyTrainer

    pre = nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name
    plans = json.loads((pre / "nnextTinyPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["nnext_training"] = {
        **plans["configurations"]["3d_fullres"].get("nnext_training", {}), "uncertainty_loss": options}
    plans["continue_training"] = False  # what nnU-Net's run_training adds before building the trainer
    dataset_json = json.loads((pre / "dataset.json").read_text())
    tr = UncertaintyTrainer(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    tr.initialize()
    return tr


def _batch(tr, seed):
    g = torch.Generator().manual_seed(seed)
    patch = tuple(tr.configuration_manager.patch_size)
    data = torch.randn((2, 1) + patch, generator=g)
    full = (torch.rand((2, 1) + patch, generator=g) > 0.7).long()
    targets = []
    for scale in tr._get_deep_supervision_scales():
        step = [int(round(1 / s)) for s in scale]
        targets.append(full[(slice(None), slice(None)) + tuple(slice(None, None, st) for st in step)])
    return {"data": data, "target": targets}


def test_train_step_refreshes_u_and_the_loss_depends_on_it(chest_dataset, nnunet_dirs, monkeypatch):
    tr = _trainer(chest_dataset, nnunet_dirs, monkeypatch, refresh=2, samples=3)
    calls = []
    real = tr.mc_uncertainty

    def counting(data):
        calls.append(data.shape)
        return real(data)

    tr.mc_uncertainty = counting
    tr.train_step(_batch(tr, 0))
    u0 = tr.last_uncertainty.clone()
    assert len(calls) == 1 and u0.shape == (2,) + tuple(tr.configuration_manager.patch_size)
    assert float(u0.max()) > 0 and u0.std() > 0  # dropout on: a per-voxel map, not a constant
    tr.train_step(_batch(tr, 1))                 # between refreshes: one scalar, the mean of the last map
    assert len(calls) == 1 and torch.all(tr.last_uncertainty == u0.mean())
    tr.train_step(_batch(tr, 2))                 # refreshed on the new batch
    assert len(calls) == 2 and not torch.equal(tr.last_uncertainty, u0)

    # the loss of one and the same step changes with U (network and optimiser state restored in between)
    state = ({k: v.clone() for k, v in tr.network.state_dict().items()}, tr.optimizer.state_dict())
    losses = []
    for value in (0.0, 0.2):
        tr.network.load_state_dict(state[0])
        tr.optimizer.load_state_dict(state[1])
        tr._last_u, tr._iteration = None, 0
        tr.mc_uncertainty = lambda data, v=value: torch.full((data.shape[0],) + tuple(data.shape[2:]), v)
        torch.manual_seed(0)
        losses.append(float(tr.train_step(_batch(tr, 5))["loss"]))
    assert abs(losses[0] - losses[1]) > 1e-4, losses


def test_u_scaling_knob(chest_dataset, nnunet_dirs, monkeypatch):
    tr = _trainer(chest_dataset, nnunet_dirs, monkeypatch, scale="max", samples=4)
    assert tr.u_scaling == "max" and "U scaling max" in tr.loss_summary()
    torch.manual_seed(0)
    data = _batch(tr, 0)["data"]
    u = tr.mc_uncertainty(data)
    tr.u_scaling = "none"
    torch.manual_seed(0)
    raw = tr.mc_uncertainty(data)
    assert torch.allclose(u, raw / max_mc_variance(2, 4), atol=1e-6)
    with pytest.raises(ValueError, match="uncertainty_loss.scale: must be one of none, max, batch, got 'log'"):
        _trainer(chest_dataset, nnunet_dirs, monkeypatch, scale="log")
