"""MCDropoutTrainer network construction and the plans-driven training schedule (no training here)."""
import copy

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from tiny_plans import PLAIN  # noqa: E402 (tests/trainers)
from tiny_plans import resenc as _resenc
from tiny_plans import tiny_plans as _plans

from nnunet_ext.core.mc_dropout import dropout_arch_kwargs, dropout_modules, set_mc_dropout
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer
from nnunet_ext.trainers.schedule import training_schedule


def _build(arch, **extra):
    pm = PlansManager(_plans(arch, **extra))
    cm = pm.get_configuration("3d_fullres")
    return MCDropoutTrainer.build_network_architecture(pm, cm, 1, 2, enable_deep_supervision=False)


@pytest.mark.parametrize("arch", [PLAIN, _resenc()], ids=["PlainConvUNet", "ResidualEncoderUNet"])
def test_dropout_in_encoder_and_decoder(arch):
    net = _build(arch)
    names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Dropout3d)]
    assert any(n.startswith("encoder.") for n in names), names
    assert any(n.startswith("decoder.") for n in names), names
    assert all(m.p == pytest.approx(0.05) for m in dropout_modules(net))
    # dropout adds no parameters: same tensors as nnU-Net's stock network from the same plans (the keys differ
    # because dropout shifts module indices, so checkpoints must be loaded through MCDropoutTrainer)
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    stock = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                   1, 2, deep_supervision=False)
    assert [p.shape for p in stock.parameters()] == [p.shape for p in net.parameters()]


def test_dropout_p_precedence(monkeypatch):
    planned = copy.deepcopy(PLAIN)
    planned["arch_kwargs"], planned["_kw_requires_import"] = dropout_arch_kwargs(
        planned["arch_kwargs"], planned["_kw_requires_import"], 0.2)
    assert {m.p for m in dropout_modules(_build(planned))} == {0.2}
    # the plans' dropout section beats the architecture's planned dropout; a legacy variable is not read
    monkeypatch.setenv("NNEXT_DROPOUT_P", "0.4")
    assert {m.p for m in dropout_modules(_build(planned, nnext_training={"dropout": {"p": 0.3}}))} == {0.3}
    element = _build(planned, nnext_training={"dropout": {"kind": "element"}})
    assert {type(m) for m in dropout_modules(element)} == {torch.nn.Dropout}
    with pytest.raises(ValueError, match=r"dropout.p: must be in \[0, 1\)"):
        _build(PLAIN, nnext_training={"dropout": {"p": 1.5}})


def test_mc_mode_only_switches_dropout():
    torch.manual_seed(0)
    net = _build(PLAIN)
    n = set_mc_dropout(net, active=True)
    assert n > 0
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout3d):
            assert m.training
        elif isinstance(m, torch.nn.InstanceNorm3d):
            assert not m.training
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        a, b = net(x), net(x)
    assert not torch.equal(a, b), "dropout active: two passes must differ"
    set_mc_dropout(net, active=False)
    with torch.no_grad():
        assert torch.equal(net(x), net(x)), "eval mode must be deterministic"


def test_schedule_merge_and_validation():
    plans = _plans(PLAIN, nnext_training={"num_epochs": 3, "num_iterations_per_epoch": 5})
    plans["configurations"]["3d_fullres"]["nnext_training"] = {"num_epochs": 4}
    assert training_schedule(plans, "3d_fullres") == {"num_epochs": 4, "num_iterations_per_epoch": 5}
    assert training_schedule(_plans(PLAIN), "3d_fullres") == {}
    with pytest.raises(ValueError, match="unknown key"):
        training_schedule(_plans(PLAIN, nnext_training={"epochs": 1}), "3d_fullres")
    with pytest.raises(ValueError, match="positive"):
        training_schedule(_plans(PLAIN, nnext_training={"num_epochs": 0}), "3d_fullres")
    with pytest.raises(ValueError, match="<= 1"):
        training_schedule(_plans(PLAIN, nnext_training={"oversample_foreground_percent": 1.5}), "3d_fullres")
    assert training_schedule(_plans(PLAIN, nnext_training={"final_validation": False}), "3d_fullres") == {
        "final_validation": False}
    with pytest.raises(ValueError, match="true or false"):
        training_schedule(_plans(PLAIN, nnext_training={"final_validation": 0}), "3d_fullres")


def test_final_validation_skipped_only_when_the_plans_say_so(monkeypatch):
    """NnextTrainer.perform_actual_validation: nnU-Net's validation runs unless the schedule has
    final_validation = false and training ran in this process (on_train_end), which logs one line instead;
    ``nnUNetv2_train --val`` (no training first) still validates."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_ext.trainers.base import NnextTrainer

    class Bare(NnextTrainer):  # no dataset or network: only the schedule and the log matter here
        def __init__(self, schedule, trained):
            self.nnext_schedule = schedule
            if trained:
                self.on_train_end()

        def print_to_log_file(self, *args, **kwargs):
            logged.append(" ".join(map(str, args)))

    ran, logged = [], []
    monkeypatch.setattr(nnUNetTrainer, "perform_actual_validation", lambda self, p=False: ran.append(p))
    monkeypatch.setattr(nnUNetTrainer, "on_train_end", lambda self: None)
    for schedule in ({}, {"final_validation": True}, {"final_validation": False}):
        Bare(schedule, trained=True).perform_actual_validation(True)
    assert ran == [True, True] and len(logged) == 1 and "final validation skipped" in logged[0]
    Bare({"final_validation": False}, trained=False).perform_actual_validation(False)  # --val: validates
    assert ran == [True, True, False] and len(logged) == 1
