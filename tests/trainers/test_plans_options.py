"""Options as types (core/options.py) and training options carried by the plans (trainers/plans_options.py,
planners/plans_edit.py, nnext plan --set / --show)."""
import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from nnunet_ext.core.options import Options, option
from nnunet_ext.registry import option_families
from nnunet_ext.trainers.plans_options import (
    LEGACY_ENVIRONMENT,
    checkpoint_options,
    effective_options,
    manager_options,
    plans_options,
    refuse_legacy_environment,
    set_options,
)
from nnunet_ext.trainers.schedule import training_schedule


@dataclasses.dataclass(frozen=True)
class Demo(Options):
    SECTION = "demo"
    n: int = option(3, "a count", lambda v: v >= 1, ">= 1")
    x: float = option(0.5, "a weight")
    mode: str = option("a", "a mode", choices=("a", "b"))
    pair: tuple[float, ...] = option((1.0, 2.0), "two numbers", lambda v: len(v) == 2, "two numbers")
    flag: bool = option(False, "a switch")


def test_values_are_coerced_and_checked_with_one_line_naming_the_key():
    d = Demo.from_mapping({"n": 4.0, "x": "0.25", "pair": "3,4", "flag": "true"})
    assert (d.n, d.x, d.pair, d.flag) == (4, 0.25, (3.0, 4.0), True)
    assert d.to_dict() == {"n": 4, "x": 0.25, "mode": "a", "pair": [3.0, 4.0], "flag": True}
    assert d.changed() == {"n": 4, "x": 0.25, "pair": [3.0, 4.0], "flag": True}
    for mapping, message in [({"n": 0}, "demo.n: must be >= 1, got 0"), ({"n": 2.5}, "demo.n: expected an integer"),
                             ({"mode": "c"}, "demo.mode: must be one of a, b, got 'c'"),
                             ({"x": "nan"}, "demo.x: 'nan' is not a finite number"),
                             ({"pair": [1]}, "demo.pair: must be two numbers"),
                             ({"nn": 1}, "unknown option demo.nn; demo has: n, x, mode, pair, flag")]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
            Demo.from_mapping(mapping)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.n = 5


def test_the_command_line_group_is_generated_from_the_fields():
    parser = argparse.ArgumentParser()
    Demo.add_arguments(parser)
    args = parser.parse_args(["--n", "7", "--mode", "b", "--pair", "5,6"])
    assert Demo.from_args(args) == Demo(n=7, mode="b", pair=(5.0, 6.0))
    assert Demo.from_args(parser.parse_args([])) == Demo()
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "z"])
    rows = {r["key"]: r for r in Demo.schema()}
    assert (
        rows["demo.n"]["default"] == "3"
        and rows["demo.n"]["allowed"] == ">= 1"
        and rows["demo.mode"]["allowed"] == "a, b"
    )


def test_every_registered_family_has_documented_valid_defaults():
    families = option_families()
    assert {"clicks", "optimizer", "dropout", "spherical", "ugsnet", "multi_annotation", "uncertainty_loss",
            "lovasz", "distance"} <= set(families)
    for section, family in families.items():
        assert family.SECTION == section and family.from_mapping({}) == family()
        assert all(row["help"] for row in family.schema()), section
    # every legacy variable names a real option
    for name, key in LEGACY_ENVIRONMENT.items():
        section, _, field = key.partition(".")
        assert field in {f.name for f in dataclasses.fields(families[section])}, name


def test_lung_cascade_scalings_match_the_loss():
    from nnunet_ext.methods.lung_cascade.options import U_SCALINGS as OPTION_SCALINGS
    from nnunet_ext.methods.lung_cascade.weighted_losses import U_SCALINGS

    assert tuple(OPTION_SCALINGS) == tuple(U_SCALINGS)


def test_plans_sections_merge_and_leave_the_schedule_alone():
    families = option_families()
    plans = {"nnext_training": {"num_epochs": 3, "clicks": {"radius": 2}},
             "configurations": {"2d": {"nnext_training": {"clicks": {"encoding": "edt"}}}, "3d_fullres": {}}}
    assert plans_options(plans, "2d", families["clicks"]).to_dict()["radius"] == 2.0  # plans level ...
    assert plans_options(plans, "2d", families["clicks"]).encoding == "edt"           # ... configuration wins
    assert plans_options(plans, "3d_fullres", families["clicks"]).encoding == "ball"
    assert training_schedule(plans, "2d") == {"num_epochs": 3}
    written = set_options(plans, ["3d_fullres"], ["clicks.radius=5", "optimizer.name=adamw"], families)
    assert written["configurations"]["3d_fullres"]["nnext_training"] == {"clicks": {"radius": 5.0},
                                                                         "optimizer": {"name": "adamw"}}
    assert plans["configurations"]["3d_fullres"] == {}  # a copy
    eff = effective_options(written, "3d_fullres", families)
    assert eff["clicks"]["radius"] == 5.0 and eff["optimizer"]["name"] == "adamw" and eff["dropout"]["p"] is None
    for bad, message in [("clicks.radius=-1", "clicks.radius: must be > 0"),
                         ("click.radius=1", "unknown option section"),
                         ("clicks.radius", "expected SECTION.KEY=VALUE"),
                         ("clicks.size=1", "unknown option clicks.size")]:
        with pytest.raises(ValueError, match=message):
            set_options(plans, ["2d"], [bad], families)


def test_checkpoint_options_win_over_plans_and_old_checkpoints_fall_back():
    families = option_families()
    plans = {"configurations": {"2d": {"nnext_training": {"clicks": {"radius": 4}}}}}
    new = {"nnext": {"options": {"clicks": {"radius": 6}}}, "init_args": {"plans": plans, "configuration": "2d"}}
    old = {"nnext": {}, "init_args": {"plans": plans, "configuration": "2d"}}
    assert checkpoint_options(new, families["clicks"]).radius == 6.0
    assert checkpoint_options(old, families["clicks"]).radius == 4.0
    assert checkpoint_options({}, families["clicks"]) == families["clicks"]()


def test_legacy_environment_is_refused_by_trainer_hook_and_cli(tmp_path):
    refuse_legacy_environment({"NNEXT_DEBUG": "1", "NNEXT_CLICK_RADIUS": ""})  # empty or unrelated: fine
    with pytest.raises(ValueError, match=r"NNEXT_CLICK_RADIUS is no longer read.*--set clicks.radius=VALUE"):
        refuse_legacy_environment({"NNEXT_CLICK_RADIUS": "5"})
    import os

    proc = subprocess.run([sys.executable, "-m", "nnunet_ext.cli.main", "trainers"], capture_output=True, text=True,
                          env={**os.environ, "NNEXT_OPTIMIZER": "adamw"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "NNEXT_OPTIMIZER is no longer read" in proc.stderr and "optimizer.name" in proc.stderr


def test_nnext_plan_set_and_show_on_existing_plans(chest_dataset, nnunet_dirs, capsys):
    from nnunet_ext.cli.main import main

    pre = nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name
    before = (pre / "nnextTinyPlans.json").read_text()
    assert main(["plan", "-d", "501", "-p", "nnextTinyPlans", "--set", "clicks.radius=5", "--set",
                 "optimizer.name=adamw", "-overwrite_plans_name", "nnextTinyPlansR5"]) == 0
    assert (pre / "nnextTinyPlans.json").read_text() == before  # the source plans are untouched
    plans = json.loads((pre / "nnextTinyPlansR5.json").read_text())
    assert plans["plans_name"] == "nnextTinyPlansR5"
    block = plans["configurations"]["3d_fullres"]["nnext_training"]
    assert block["clicks"] == {"radius": 5.0} and block["optimizer"] == {"name": "adamw"}
    assert plans["nnext_training"] == json.loads(before)["nnext_training"]  # the schedule block is kept
    capsys.readouterr()
    assert main(["plan", "-d", "501", "-p", "nnextTinyPlansR5", "-c", "3d_fullres", "--show"]) == 0
    shown = json.loads(capsys.readouterr().out)["nnext_training (nnextTinyPlansR5)"]["3d_fullres"]
    assert shown["clicks"]["radius"] == 5.0 and shown["clicks"]["encoding"] == "ball"
    assert shown["schedule"]["num_epochs"] >= 1 and shown["dropout"] == {"p": None, "kind": "channel"}
    assert main(["plan", "-d", "501", "-p", "nnextTinyPlans", "--set", "clicks.radius=0"]) == 2
    assert "clicks.radius: must be > 0, got 0" in capsys.readouterr().err
    assert (pre / "nnextTinyPlans.json").read_text() == before
    assert main(["plan", "-d", "501", "-p", "nope", "--show"]) == 2
    assert "nope.json: no such plans" in capsys.readouterr().err


def test_same_trainer_and_plans_train_identical_seeded_iterations_whatever_the_environment(
        chest_dataset, nnunet_dirs, monkeypatch):
    """An experiment is trainer + plans: two trainers built from the same plans, one in a shell full of unrelated
    and empty NNEXT_* variables, train identical seeded first iterations; the plans' options reach the loss."""
    import torch

    from nnunet_ext.methods.lung_cascade.lovasz_trainer import UncertaintyLovaszTrainer

    pre = nnunet_dirs["nnUNet_preprocessed"] / chest_dataset.name
    plans = json.loads((pre / "nnextTinyPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["nnext_training"] = {"lovasz": {"ce_weight": 0.5},
                                                               "uncertainty_loss": {"samples": 2}}
    plans["continue_training"] = False
    dataset_json = json.loads((pre / "dataset.json").read_text())

    def first_losses():
        torch.manual_seed(0)
        trainer = UncertaintyLovaszTrainer(json.loads(json.dumps(plans)), "3d_fullres", 0, dataset_json,
                                           device=torch.device("cpu"))
        trainer.initialize()
        g = torch.Generator().manual_seed(1)
        patch = tuple(trainer.configuration_manager.patch_size)
        data = torch.randn((2, 1) + patch, generator=g)
        full = (torch.rand((2, 1) + patch, generator=g) > 0.7).long()
        target = [full[(slice(None), slice(None)) + tuple(slice(None, None, int(round(1 / s))) for s in scale)]
                  for scale in trainer._get_deep_supervision_scales()]
        assert trainer.loss.ce_weight == 0.5 and trainer.mc_samples == 2  # the plans' values reached the loss
        torch.manual_seed(2)
        return [trainer.train_step({"data": data, "target": target})["loss"] for _ in range(2)]

    clean = first_losses()
    for name, value in {"NNEXT_SOMETHING": "7", "NNEXT_CLICK_RADIUS": "", "NNEXT_DROPOUT_P": " "}.items():
        monkeypatch.setenv(name, value)  # unrelated or empty: not read, not refused
    assert first_losses() == clean


def test_options_from_nnunet_managers_merge_as_from_the_plans_and_refuse_a_section_that_is_not_an_object():
    from nnunet_ext.errors import OptionsError

    families = option_families()

    class Managers:  # what nnU-Net hands build_network_architecture: the plans and the resolved configuration
        def __init__(self, plans, configuration):
            self.plans, self.configuration = plans, plans["configurations"][configuration]

    plans = {"nnext_training": {"clicks": {"radius": 2}},
             "configurations": {"2d": {"nnext_training": {"clicks": {"encoding": "edt"}}}}}
    m = Managers(plans, "2d")
    assert manager_options(m, m, families["clicks"]) == plans_options(plans, "2d", families["clicks"])
    plans["configurations"]["2d"]["nnext_training"]["clicks"] = "radius=2"  # a hand-edited plans file
    m = Managers(plans, "2d")
    for read in (lambda: manager_options(m, m, families["clicks"]), lambda: plans_options(plans, "2d",
                                                                                          families["clicks"])):
        with pytest.raises(OptionsError, match=r"plans nnext_training\.clicks must be a JSON object of options, "
                                               r"got 'radius=2'"):
            read()
