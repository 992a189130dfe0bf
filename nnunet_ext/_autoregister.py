"""Make nnU-Net find the extension trainers with no manual step.

nnunetv2 (2.8.1) looks for ``-tr`` classes in its own source tree and in the directories listed in the
environment variable ``nnUNet_extTrainer`` (``os.pathsep``-separated). It imports every module of such a
directory and purges those modules afterwards, so the directory holds only thin *shim* modules that import
the real classes from :mod:`nnunet_ext.trainers` (their ``__module__`` stays importable, so pickling and
spawned workers keep working).

At install time a one-line ``nnunet_ext_autoregister.pth`` file is placed in ``site-packages``. Python's
``site`` module executes it in *every* interpreter start (including nnU-Net's DDP and spawn workers) and it
calls :func:`register`, which appends the shim directory to ``nnUNet_extTrainer`` without removing what the
user already set there. Opt out with ``NNUNET_EXT_NO_AUTOREGISTER=1``.

This module must stay free of heavy imports (no torch / numpy): it runs in every Python process.
"""
from __future__ import annotations

import os

ENV_VAR = "nnUNet_extTrainer"
OPT_OUT_VAR = "NNUNET_EXT_NO_AUTOREGISTER"
SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers", "_shims")


def register(environ: "os._Environ | dict | None" = None) -> str:
    """Append :data:`SHIM_DIR` to ``nnUNet_extTrainer`` (idempotent, keeps the user's entries first).

    Returns the new value of the variable.
    """
    env = os.environ if environ is None else environ
    current = env.get(ENV_VAR, "")
    entries = [p for p in current.split(os.pathsep) if p.strip()]
    if os.path.normcase(os.path.abspath(SHIM_DIR)) not in {os.path.normcase(os.path.abspath(p)) for p in entries}:
        entries.append(SHIM_DIR)
    env[ENV_VAR] = os.pathsep.join(entries)
    return env[ENV_VAR]
