"""nnU-Net's folder conventions (``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results``), read at call time."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from pathlib import Path

from nnunet_ext.errors import InputError

ENV_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def env_dir(name: str) -> Path:
    """The folder named by nnU-Net env var ``name``; :class:`InputError` if unset."""
    value = os.environ.get(name)
    if not value:
        raise InputError(f"environment variable {name} is not set (e.g. export {name}=/data/{name}); "
                         "see nnU-Net's documentation/setting_up_paths.md")
    return Path(value)


def nnunet_command(name: str) -> str:
    """Full path of the nnU-Net console script ``name`` (e.g. ``nnUNetv2_train``) to run as a subprocess.

    Looked up next to the running interpreter first (``<venv>/bin`` or ``Scripts`` on Windows: the scripts of the
    environment nnunetv2 is installed in, also when that environment is not activated and PATH lacks it), then on
    PATH. :class:`InputError` naming both places when neither has it."""
    folder = Path(sys.executable).parent
    for candidate in (folder / name, folder / f"{name}.exe", folder / "Scripts" / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise InputError(f"nnU-Net command {name} not found next to {sys.executable} nor on PATH; is nnunetv2 "
                     "installed in this environment (pip install nnunetv2)?")


def use_workspace(root: Path) -> dict[str, Path]:
    """Create ``root/nnUNet_raw|nnUNet_preprocessed|nnUNet_results``, point nnU-Net's env vars at them (this
    process and its children) and, unless already set, ask for one export process and in-process data
    loading (spawning torch workers costs more than it saves on a few CPU cores). Returns ``{var: folder}``."""
    dirs = {v: Path(root) / v for v in ENV_VARS}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    os.environ.update({k: str(v) for k, v in dirs.items()})
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    return dirs


def dataset_folders(root: Path) -> dict[int, Path]:
    """``{id: folder}`` for every ``DatasetXXX_Name`` folder in ``root``."""
    found = {}
    if root.is_dir():
        for p in sorted(root.iterdir()):
            m = re.fullmatch(r"Dataset(\d{3})_.+", p.name)
            if m and p.is_dir():
                found[int(m.group(1))] = p
    return found


def find_dataset(dataset: "int | str", root_var: str = "nnUNet_raw") -> Path:
    """Folder of dataset ``dataset`` (ID like 501 / '501' or full name) under ``$root_var``.

    Raises :class:`InputError` naming the known datasets when it is missing.
    """
    root = env_dir(root_var)
    folders = dataset_folders(root)
    text = str(dataset)
    if text.isdigit():
        if int(text) in folders:
            return folders[int(text)]
    else:
        for p in folders.values():
            if p.name == text:
                return p
    known = ", ".join(p.name for p in folders.values()) or "none"
    raise InputError(f"dataset {text} not found in {root_var}={root} (known: {known})")


def check_dataset_name(name: str) -> str:
    """A dataset name that makes one folder ``DatasetXXX_NAME`` in ``nnUNet_raw``: letters, digits, ``_`` and ``-``
    (no ``/``, ``..`` or spaces, which would place the dataset elsewhere or break nnU-Net's name parsing)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise InputError(f"--name {name!r}: a dataset name may only contain letters, digits, '_' and '-' (it becomes "
                         "the folder DatasetXXX_NAME)")
    return name


@contextlib.contextmanager
def staged_dataset(raw: Path, dataset_id: int, name: str, overwrite: bool = False):
    """Yield a hidden temporary folder to build ``raw/DatasetXXX_name`` in; on success it replaces any
    ``DatasetXXX_*`` (only with ``overwrite``, else :class:`InputError` up front) and is renamed into place; on
    failure it is deleted, so no half-written dataset is ever visible. ``name``: :func:`check_dataset_name`."""
    check_dataset_name(name)
    old = sorted(p for p in raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir()) if raw.is_dir() else []
    if old and not overwrite:
        raise InputError(f"dataset ID {dataset_id} already exists: {old[0]}; pass --overwrite to replace it")
    raw.mkdir(parents=True, exist_ok=True)
    final = raw / f"Dataset{dataset_id:03d}_{name}"
    tmp = raw / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        yield tmp, final
        trash = []
        for i, p in enumerate(old):
            t = raw / f".trash-{p.name}-{os.getpid()}-{i}"
            os.replace(p, t)
            trash.append(t)
        os.replace(tmp, final)
        for t in trash:
            shutil.rmtree(t, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
