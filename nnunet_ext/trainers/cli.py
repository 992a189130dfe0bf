"""``nnext trainers``: list the extension trainers."""
from __future__ import annotations

import os

from nnunet_ext import _autoregister
from nnunet_ext.errors import InputError
from nnunet_ext.trainers.registry import TRAINERS


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="also check that nnU-Net's own trainer lookup finds each trainer")


def run(args) -> int:
    width = max(len(n) for n in TRAINERS)
    for name, (_, description) in TRAINERS.items():
        print(f"{name:<{width}}  {description}")
    registered = _autoregister.SHIM_DIR in os.environ.get(_autoregister.ENV_VAR, "").split(os.pathsep)
    print(f"\nnnUNet_extTrainer {'includes' if registered else 'does NOT include'} {_autoregister.SHIM_DIR}"
          + ("" if registered else f" (is {_autoregister.OPT_OUT_VAR} set?)"))
    if args.check:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        for name in TRAINERS:
            try:
                cls = recursive_find_trainer_class_by_name(name)
            except RuntimeError as e:
                raise InputError(f"nnU-Net's trainer lookup does not find {name} ({str(e).splitlines()[0]})") from None
            print(f"nnU-Net finds {name}: {cls.__module__}.{cls.__qualname__}")
    return 0
