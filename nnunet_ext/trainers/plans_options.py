"""An experiment is trainer + plans: option families read from the plans, recorded in the checkpoint.

Layout of the plans (one section per option family, per configuration; a plans-level block is the default for
every configuration, the configuration's own block wins key by key)::

    "configurations": {"3d_fullres": {"nnext_training": {
        "num_epochs": 300,                                  # schedule keys (nnunet_ext.trainers.schedule)
        "clicks": {"radius": 3, "encoding": "ball"},        # one section per option family
        "optimizer": {"name": "adamw"}}}}

A trainer reads its families with :func:`plans_options` at construction and records them in
``checkpoint["nnext"]["options"]`` (:class:`nnunet_ext.trainers.base.NnextTrainer`); predictors read them back with
:func:`checkpoint_options`. No environment variable configures training: :func:`refuse_legacy_environment` names
the plans key that replaced each old ``NNEXT_*`` variable.

Pure Python (no torch): ``nnext plan --set / --show`` use it.
"""
from __future__ import annotations

import copy
import os

from nnunet_ext.core.options import Options, parse_text
from nnunet_ext.errors import OptionsError

PLANS_KEY = "nnext_training"

#: old environment variable -> the plans option that replaces it (refused when set)
LEGACY_ENVIRONMENT = {
    "NNEXT_CLICK_RADIUS": "clicks.radius", "NNEXT_CLICK_ENCODING": "clicks.encoding",
    "NNEXT_CLICK_P_PROMPT": "clicks.p_prompt", "NNEXT_CLICK_MAX_ERRORS": "clicks.max_errors",
    "NNEXT_PET_CHANNEL": "clicks.pet_channel", "NNEXT_PET_DROPOUT": "clicks.pet_dropout",
    "NNEXT_OPTIMIZER": "optimizer.name", "NNEXT_WARMUP_EPOCHS": "optimizer.warmup_epochs",
    "NNEXT_ADAMW_LR": "optimizer.adamw_lr", "NNEXT_ADAMW_WD": "optimizer.adamw_wd",
    "NNEXT_DROPOUT_P": "dropout.p", "NNEXT_DROPOUT_KIND": "dropout.kind",
    "NNEXT_SPHERICAL_P": "spherical.p", "NNEXT_SPHERICAL_RADIUS": "spherical.radius",
    "NNEXT_SPHERICAL_LR": "spherical.lr",
    "NNEXT_UGS_ALPHAS": "ugsnet.alphas", "NNEXT_UGS_DICE_WEIGHT": "ugsnet.dice_weight",
    "NNEXT_UGS_MAX_TOKENS": "ugsnet.max_tokens", "NNEXT_MA_DICE_WEIGHT": "multi_annotation.dice_weight",
    "NNEXT_LOVASZ_CE_WEIGHT": "lovasz.ce_weight", "NNEXT_DT_W0": "distance.w0", "NNEXT_DT_SIGMA": "distance.sigma",
    "NNEXT_UNC_SAMPLES": "uncertainty_loss.samples", "NNEXT_UNC_REFRESH": "uncertainty_loss.refresh",
    "NNEXT_UNC_SCALE": "uncertainty_loss.scale",
}


def refuse_legacy_environment(environ=None) -> None:
    """ValueError (one line) when an old ``NNEXT_*`` training variable is set: it would be silently ignored."""
    env = os.environ if environ is None else environ
    found = [name for name in LEGACY_ENVIRONMENT if env.get(name, "").strip()]
    if found:
        name = found[0]
        raise ValueError(f"{name} is no longer read: training options live in the plans; unset it and use "
                         f"'nnext plan ... --set {LEGACY_ENVIRONMENT[name]}=VALUE' (plans key "
                         f"nnext_training.{LEGACY_ENVIRONMENT[name]})")


def section_mapping(plans: dict, configuration: str, section: str) -> dict:
    """The merged raw mapping of ``section`` (plans level, then the configuration's block)."""
    return _merged_section((plans.get(PLANS_KEY) or {},
                            ((plans.get("configurations") or {}).get(configuration) or {}).get(PLANS_KEY) or {}),
                           section)


def _merged_section(blocks, section: str) -> dict:
    """``section`` of each ``nnext_training`` block in ``blocks``, later blocks winning; ValueError naming the
    section when one is not a JSON object."""
    merged = {}
    for block in blocks:
        value = block.get(section)
        if value is not None:
            if not isinstance(value, dict):
                raise ValueError(f"plans {PLANS_KEY}.{section} must be a JSON object of options, got {value!r}")
            merged.update(value)
    return merged


def plans_options(plans: dict, configuration: str, family: type[Options]) -> Options:
    """The options of ``family`` for ``configuration`` (defaults for keys the plans do not set)."""
    try:
        return family.from_mapping(section_mapping(plans, configuration, family.SECTION))
    except ValueError as e:
        raise OptionsError(f"plans {PLANS_KEY}: {e}") from None


def checkpoint_options(checkpoint: dict, family: type[Options], configuration: "str | None" = None) -> Options:
    """The options a checkpoint was trained with: ``checkpoint["nnext"]["options"][SECTION]``; for checkpoints
    written before options were recorded, the plans saved inside the checkpoint (``init_args``), else defaults."""
    recorded = ((checkpoint.get("nnext") or {}).get("options") or {})
    if family.SECTION in recorded:
        try:
            return family.from_mapping(recorded[family.SECTION])
        except ValueError as e:
            raise OptionsError(f"checkpoint nnext.options: {e}{version_note(checkpoint)}") from None
    init = checkpoint.get("init_args") or {}
    if isinstance(init.get("plans"), dict):
        return plans_options(init["plans"], configuration or init.get("configuration", ""), family)
    return family()


def version_note(checkpoint: dict) -> str:
    """``" (trained with nnunet_ext 0.2.0, this is 0.1.0)"`` when the checkpoint records another version than the
    installed one (``checkpoint["nnext"]["nnunet_ext_version"]``, written since 0.1.0), else ``""``."""
    from nnunet_ext import __version__

    trained = (checkpoint.get("nnext") or {}).get("nnunet_ext_version")
    return f" (trained with nnunet_ext {trained}, this is {__version__})" if trained and trained != __version__ else ""


def parse_assignment(text: str) -> tuple[str, str, object]:
    """``"clicks.radius=5"`` -> ``("clicks", "radius", 5)``; ValueError naming the text otherwise."""
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ValueError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. clicks.radius=5")
    return section, name, parse_text(value.strip())


def set_options(plans: dict, configurations, assignments, families: dict[str, type[Options]]) -> dict:
    """A copy of ``plans`` with each ``SECTION.KEY=VALUE`` of ``assignments`` written into every configuration in
    ``configurations``, validated by its family (``families``: section name -> Options class)."""
    plans = copy.deepcopy(plans)
    for text in assignments:
        section, name, value = parse_assignment(text)
        if section not in families:
            raise ValueError(f"--set {text}: unknown option section {section!r}; sections: {', '.join(families)}")
        for conf in configurations:
            if conf not in plans.get("configurations", {}):
                raise ValueError(f"--set {text}: the plans have no configuration {conf!r}; they have "
                                 f"{', '.join(plans.get('configurations', {}))}")
            block = plans["configurations"][conf].setdefault(PLANS_KEY, {})
            section_block = dict(block.get(section) or {})
            section_block[name] = value
            try:  # validates key and value; stores the coerced, JSON-ready value
                checked = families[section].from_mapping({**section_mapping(plans, conf, section), **section_block})
            except ValueError as e:
                raise ValueError(f"--set {text}: {e}") from None
            section_block[name] = checked.to_dict()[name]
            block[section] = section_block
    return plans


def effective_options(plans: dict, configuration: str, families: dict[str, type[Options]]) -> dict:
    """``{section: {key: value}}`` of every family for ``configuration``, as a trainer would read them."""
    return {name: plans_options(plans, configuration, fam).to_dict() for name, fam in families.items()}


def manager_options(plans_manager, configuration_manager, family: type[Options]) -> Options:
    """:func:`plans_options` from nnU-Net's managers (class methods such as ``build_network_architecture`` get
    these, not the configuration name): plans level, then the resolved configuration's block."""
    try:
        return family.from_mapping(_merged_section((plans_manager.plans.get(PLANS_KEY) or {},
                                                    configuration_manager.configuration.get(PLANS_KEY) or {}),
                                                   family.SECTION))
    except ValueError as e:
        raise OptionsError(f"plans {PLANS_KEY}: {e}") from None
