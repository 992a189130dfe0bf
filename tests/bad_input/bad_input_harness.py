"""Harness of the bad-input matrix: every ``nnext`` command x every class of bad input (issue 13).

The matrix is split by command group into ``tests/test_bad_input_<group>.py``; each holds ``COMMANDS`` (name ->
``_cmd_<name>(tmp, mp, klass) -> Cell``, the argv and expectations of one class for that command) and
``NOT_APPLICABLE`` ((command, class) -> why the cell does not exist; the README reports the counts), and one
parametrised test over its cells that calls :func:`run_cell`.

Each cell builds valid inputs in a fresh ``tmp_path`` (nnU-Net's folders point there too), spoils one thing,
runs the command in-process through ``nnunet_ext.cli.main.main`` and asserts
  * the exit status (2 for bad input / operational errors, 130 for Ctrl-C),
  * exactly one error line ``nnext CMD: error: ...`` (or ``... interrupted``) matching the expected text, and no
    ``Traceback``,
  * no new file left behind (the tree under ``tmp_path`` is unchanged; for interrupted resumable commands only
    finished, complete outputs remain and a re-run finishes the job).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import Geometry, read_image, write_image

CLASSES = ("missing", "empty", "corrupt", "truncated", "nan", "wrong_dim", "wrong_geometry", "malformed_json",
           "bad_option", "output_is_file", "unwritable_output", "interrupted", "other_settings", "disk_full",
           # issue 19: a label value the dataset does not declare (rater / lung masks: not binary / not 0-2), a
           # numeric option given as nan, and input a converter used to drop or change silently
           "unknown_label", "nan_option", "dropped_case")
#: what the argparse types say about ``nan`` given to an option (nnunet_ext.argtypes.refuse_nonfinite / int())
NAN_FLOAT = r"'nan' is not a finite number"
NAN_INT = r"(invalid int value: 'nan'|'nan' is not an integer)"
G = Geometry((0.8, 0.9, 2.0), (-10.0, 5.0, 3.0))


@dataclass
class Cell:
    argv: list[str]
    match: str                      # regex the error line must match
    code: int = 2
    resumable: bool = False         # interrupted: finished outputs may stay; `rerun` must then succeed
    rerun: list[str] | None = None
    check: Callable[[], None] | None = None   # extra assertions after the failing run
    patches: list = field(default_factory=list)  # (target, name, value) applied just before the run
    keep: str | None = None         # regex of new paths that may stay: finished, complete outputs kept for resume
    stdout: str | None = None       # regex the standard output of the failing run must match
    reporter: str | None = None     # the command whose line it is (a demo's nested step reports under its own name)


# ----------------------------------------------------------------------------------------------- helpers

def label_map(shape=(8, 16, 16), at=(2, 4, 4)):
    lab = np.zeros(shape, np.uint8)
    lab[at[0]:at[0] + 3, at[1]:at[1] + 5, at[2]:at[2] + 5] = 1
    return lab


def ct_image(shape=(8, 16, 16), seed=0):
    return (np.random.default_rng(seed).normal(0, 50, shape)).astype(np.float32)


def chest_ct(shape=(14, 48, 48)):
    """Chest-like HU volume (7 mm pixels, 10 mm slices): body ellipse with two air-filled lungs."""
    k, r, c = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    x, y, z = (c - 23.5) * 7.0, (r - 23.5) * 7.0, (k - 6.5) * 10.0
    hu = np.full(shape, -1000, np.int16)
    hu[(x / 150) ** 2 + (y / 110) ** 2 <= 1] = 40
    for cx in (-70.0, 70.0):
        hu[((x - cx) / 45) ** 2 + (y / 70) ** 2 + (z / 60) ** 2 <= 1] = -850
    return hu


CHEST_G = Geometry((7.0, 7.0, 10.0), (0.0, 0.0, 0.0))


def spoil(path: Path, klass: str) -> None:
    """Turn a valid image file into the bad-input class ``klass``."""
    if klass == "missing":
        path.unlink()
    elif klass == "empty":
        path.write_bytes(b"")
    elif klass == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif klass == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    else:
        raise ValueError(klass)


#: what the integrity layer says about a file spoiled as empty / corrupt / truncated (:func:`spoil`)
SPOILED = {"empty": r"empty file", "corrupt": r"(not a gzip|corrupt|cannot be read)", "truncated": r"truncated"}


def spoiled_cell(klass: str, argv: list, bad: Path) -> "Cell | None":
    """For an empty / corrupt / truncated ``klass``: spoil ``bad`` and expect its one-line message naming it."""
    if klass not in SPOILED:
        return None
    spoil(bad, klass)
    return Cell(argv, bad.name.replace(".", r"\.") + ": " + SPOILED[klass])


def raw_dataset(raw: Path, dataset_id=901, n=2, ending=".nii.gz") -> Path:
    folder = raw / f"Dataset{dataset_id}_Bad"
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    for k in range(n):
        write_image(ct_image(seed=k), G, folder / "imagesTr" / f"c{k}_0000{ending}")
        write_image(label_map(at=(2, 3 + k, 4)), G, folder / "labelsTr" / f"c{k}{ending}")
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                         "tumor": 1}, "numTraining": n, "file_ending": ending}))
    return folder


def interrupt_on_call(module, name: str, after: int = 1):
    """A replacement for ``module.name`` that works ``after`` times, then raises KeyboardInterrupt (Ctrl-C)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def fake(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*a, **k)
    return (module, name, fake)


@contextlib.contextmanager
def _denied(path, **verify):
    raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
    yield  # pragma: no cover


def unwritable():
    """Every atomic write (images, JSON, CSV, figures: all go through io.atomic_write.atomic_path) fails with EACCES."""
    import nnunet_ext.io.atomic_write as aw
    return (aw, "atomic_path", _denied)


def disk_full(mode: str = "short", after: int = 0):
    """Fault injection into the one writer (:mod:`nnunet_ext.io.atomic_write`): from write number ``after + 1`` on,
    the device is full. ``mode="short"``: the data reached the file only partly (truncated to a third, as SimpleITK's
    silent "wrote only 0 of N bytes" leaves it; 0 bytes for files under 64 bytes) and nothing raises, so the
    verification must catch it; ``mode="enospc"``: flushing the file raises ENOSPC. Patches ``_fsync``, the step
    where delayed write errors surface, so every writer of the project is covered by one patch."""
    import nnunet_ext.io.atomic_write as aw

    real, calls = aw._fsync, {"n": 0}

    def fsync(path):
        calls["n"] += 1
        if calls["n"] > after:
            if mode == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device", path)
            size = os.path.getsize(path)
            os.truncate(path, size // 3 if size >= 64 else 0)
        return real(path)
    return (aw, "_fsync", fsync)


#: the one line of a disk-full cell
DISK_FULL = r"disk full while writing \S+"


def file_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("I am a file\n")
    return path


def write_nan_image(path: Path, shape=(8, 16, 16), geometry=G):
    arr = ct_image(shape)
    arr[1, 2, 3] = np.nan
    arr[2, 2, 3] = np.inf
    write_image(arr, geometry, path)


def matrix_cells(commands: dict, not_applicable: dict) -> list[tuple[str, str]]:
    """The (command, class) cells of a group; every NOT_APPLICABLE entry must name a known command and class."""
    for (c, k), why in not_applicable.items():
        assert c in commands and k in CLASSES and why.strip(), (c, k)
    return [(c, k) for c in commands for k in CLASSES if (c, k) not in not_applicable]


def cell_ids(cells) -> list[str]:
    return [f"{c.replace(' ', '_')}-{k}" for c, k in cells]


def _tree(root: Path) -> set[str]:
    """Files, and dataset folders (a visible ``Dataset*`` folder is an output even when empty)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.name.startswith("Dataset")}


def _one_error_line(err: str, cmd: str, match: str, code: int) -> None:
    assert "Traceback" not in err, err
    tag = "interrupted" if code == 130 else ": error:"
    assert err.count(tag) == 1, err
    line = [ln for ln in re.split(r"[\r\n]", err) if tag in ln][0]
    line = line[line.index(f"nnext {cmd}"):]
    assert re.search(match, line), (match, line)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "res")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.delenv("NNEXT_DEBUG", raising=False)
    return tmp_path


def run_cell(cell: Cell | None, name: str, workspace: Path, monkeypatch, capsys) -> None:
    """Run one built cell and assert exit code, the one error line, no traceback, nothing new left behind
    (or only complete resumable outputs) and, for interrupted runs, that a re-run finishes."""
    assert cell is not None, f"cell {name} is neither built nor listed in NOT_APPLICABLE"
    before = _tree(workspace)
    capsys.readouterr()
    with monkeypatch.context() as m:
        for target, attr, value in cell.patches:
            m.setattr(target, attr, value)
        try:
            code = main(cell.argv)
        except SystemExit as e:  # argparse's own range checks: usage + one error line, exit status 2
            code = e.code
    out, err = capsys.readouterr()
    assert code == cell.code, err
    assert cell.stdout is None or re.search(cell.stdout, out), (cell.stdout, out)
    _one_error_line(err, cell.reporter or cell.argv[0], cell.match, cell.code)
    new = _tree(workspace) - before
    assert not any(".tmp-" in p for p in new), new     # never a half-written file
    if cell.resumable or cell.keep:                      # only finished, complete outputs stay
        assert cell.resumable or all(re.match(cell.keep, p) for p in new), sorted(new)
        for p in new:
            if p.endswith(".nii.gz"):
                read_image(workspace / p)
    else:
        assert not new, f"left behind: {sorted(new)}"
    if cell.check is not None:
        cell.check()
    if cell.rerun is not None:                           # an interrupted run resumes / can be redone
        assert main(cell.rerun) == 0, capsys.readouterr().err
