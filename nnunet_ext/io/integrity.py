"""Input integrity: one place that decides whether a file is complete, sane and what a command needs.

Every check raises :class:`nnunet_ext.errors.InputError` with ONE line that names the file and the problem
(the ``nnext`` entry point prints it and exits 2). Module-level imports are light (standard library only);
numpy / SimpleITK / torch are imported inside the functions that need them.

Public API (what commands and the predict case loop call; the byte-level ones are in :mod:`nnunet_ext.io.filecheck`
and re-exported here):

* :func:`check_file_complete` / :func:`check_gzip_complete` - a truncated ``.nii.gz`` is read by SimpleITK as a
  half-zero image without any error, so the gzip stream is checked: the trailer's decompressed size (ISIZE)
  must equal what the NIfTI header announces (``vox_offset + prod(dim) * bitpix / 8``); when it does not (or
  ``full=True``) the whole stream is decompressed to its end (EOF / CRC errors -> refused). Plain ``.nii``:
  the file size must hold the voxels. Other formats are left to SimpleITK (MetaImage and NRRD check it).
* :func:`count_nonfinite_voxels` / :func:`check_nonfinite_file` ``(path, nan_policy)`` - NaN / Inf of a float NIfTI
  counted from its raw voxel bytes: ITK's reader (so also nnU-Net's ``SimpleITKIO``) silently zeroes them.
* :func:`check_image_file` ``(path, *, ndim=None, nan_policy="refuse") -> (shape_zyx, Geometry)`` - every
  file-level check at once (complete, dimension, spacing, raw NaN), for files another reader then reads.
* :func:`check_spacing` - spacing finite and within :data:`SPACING_RANGE_MM` ``(0.1, 100)`` mm per axis.
* :func:`check_values` - NaN / Inf counted; ``nan_policy="refuse"`` (default) refuses with the count,
  ``"zero"`` replaces them by 0 with a warning. ``kind="image"``: ``|v| <= MAX_ABS_INTENSITY`` (1e7; CT HU,
  MR and PET in Bq/ml stay far below); ``kind="label" | "mask"``: integer-valued and >= 0;
  ``kind="map"``: only finiteness plus the optional ``min_value`` / ``max_value`` (e.g. ``min_value=0`` for
  uncertainty maps, ``(0, 1)`` for probabilities).
* :func:`read_image_checked` ``(path, *, ndim=None, nan_policy="refuse", kind="image", ...) -> (array, Geometry)``
  - all of the above plus the file's dimension (``ndim``: int or tuple of allowed ints; vector images refused).
* :func:`read_header_checked` ``(path, *, ndim=None) -> (shape_zyx, Geometry)`` - completeness, dimension and
  spacing without reading the voxels (validate every input before writing anything).
* :func:`load_json_checked` ``(path, required_keys=(), what="dataset.json") -> dict`` - missing file, malformed
  JSON (line and column), not an object, missing keys (all named).
* :func:`check_checkpoint` ``(path, *, load=False) -> dict | None`` - missing / empty / truncated / foreign
  (not a PyTorch zip archive, or no nnU-Net keys) -> one line; ``load=True`` returns the loaded checkpoint.
* :func:`check_output_dir` / :func:`check_output_file` - output path that is a file (or a folder), parent path
  that is a file, unwritable folder -> one line; nothing is created.

The stale-output guard (settings records of output folders) is :mod:`nnunet_ext.io.settings_record`.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from nnunet_ext.errors import InputError
from nnunet_ext.io.filecheck import (  # noqa: F401
    NonFiniteWarning,
    check_file_complete,
    check_gzip_complete,
    check_nonfinite_file,
    count_nonfinite_voxels,
)

# byte-level checks (gzip streams, NIfTI voxels, raw NaN counts) live in filecheck; re-exported here
from nnunet_ext.io.sitk_read import read_sitk, sitk_error_text  # noqa: F401 (used below; part of the layer)

#: allowed voxel spacing per axis in mm (clinical CT / MR / PET: ~0.2 - 10 mm); outside -> refused
SPACING_RANGE_MM = (0.1, 100.0)
#: largest accepted |intensity| of an image (kind="image"); CT HU < 3.1e4, PET Bq/ml < 1e6
MAX_ABS_INTENSITY = 1e7
NAN_POLICIES = ("refuse", "zero")
KINDS = ("image", "label", "mask", "map")


def check_image_file(path: str | os.PathLike, *, ndim: int | Sequence[int] | None = None,
                     nan_policy: str = "refuse", full_gzip: bool = False,
                     spacing_range: tuple[float, float] = SPACING_RANGE_MM):
    """File-level checks for readers that are not ours (nnU-Net's ``SimpleITKIO`` in the predict case loop):
    complete file, dimension, spacing (:func:`read_header_checked`) and NaN / Inf in float NIfTI voxels
    (:func:`check_nonfinite_file`). Returns ``(shape (z, y, x), Geometry)``. Values that survive the reader
    (other formats, intensity range) are then checked with :func:`check_values` on the array."""
    header = read_header_checked(path, ndim=ndim, full_gzip=full_gzip, spacing_range=spacing_range)
    check_nonfinite_file(path, nan_policy)
    return header


# ------------------------------------------------------------------------------------------ values and geometry

def check_spacing(spacing: Sequence[float], path: str | os.PathLike,
                  spacing_range: tuple[float, float] = SPACING_RANGE_MM) -> None:
    """Every spacing finite and within ``spacing_range`` mm (x, y, z order as SimpleITK gives it)."""
    lo, hi = spacing_range
    bad = [s for s in spacing if not (math.isfinite(s) and lo <= s <= hi)]
    if bad:
        raise InputError(f"{os.fspath(path)}: implausible voxel spacing {tuple(round(float(s), 6) for s in spacing)} "
                         f"mm (each axis must be within {lo:g}-{hi:g} mm); is the header corrupt?")


def check_values(array, path: str | os.PathLike, *, kind: str = "image", nan_policy: str = "refuse",
                 min_value: float | None = None, max_value: float | None = None):
    """Check (and with ``nan_policy="zero"`` repair) the voxel values of ``array`` read from ``path``.

    Returns the array (a zero-filled copy when NaN / Inf were replaced). See the module docstring for the rules.
    """
    import numpy as np

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    path = os.fspath(path)
    arr = np.asarray(array)
    if arr.dtype.kind in "fc":
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum() - n_nan)
            what = f"{n_nan} NaN and {n_inf} infinite voxel(s) of {arr.size}"
            if nan_policy == "refuse" or kind in ("label", "mask"):
                hint = "" if kind in ("label", "mask") else " (use --nan-policy zero where offered to set them to 0)"
                raise InputError(f"{path}: {what}{hint}")
            warnings.warn(f"{path}: {what} set to 0 (--nan-policy zero)", NonFiniteWarning, stacklevel=2)
            arr = np.where(finite, arr, 0).astype(arr.dtype, copy=False)
    if arr.size == 0:
        raise InputError(f"{path}: the image has no voxels (shape {arr.shape})")
    if kind == "image":
        peak = (
            float(np.abs(arr).max()) if arr.dtype.kind in "fc" else float(max(abs(int(arr.min())), abs(int(arr.max()))))
        )
        if peak > MAX_ABS_INTENSITY:
            n = int((np.abs(arr.astype(np.float64, copy=False)) > MAX_ABS_INTENSITY).sum())
            raise InputError(f"{path}: {n} voxel(s) with |value| > {MAX_ABS_INTENSITY:g} (max |value| {peak:.3g}); "
                             "implausible intensities, is the file corrupt?")
    elif kind in ("label", "mask"):
        if arr.dtype.kind in "fc":
            frac = arr != np.round(arr)
            if frac.any():
                raise InputError(
                    f"{path}: {int(frac.sum())} non-integer voxel value(s) (e.g. {arr[frac].flat[0]:.4g}); "
                    f"a {kind} map must hold integers (is this a probability or an image?)"
                )
        if arr.dtype.kind != "u" and arr.min() < 0:
            raise InputError(f"{path}: negative {kind} value(s) (min {arr.min():g}); {kind} values must be >= 0")
    if min_value is not None or max_value is not None:
        below = int((arr < min_value).sum()) if min_value is not None else 0
        above = int((arr > max_value).sum()) if max_value is not None else 0
        if below or above:
            rng = (f"[{'-inf' if min_value is None else f'{min_value:g}'}, "
                   f"{'inf' if max_value is None else f'{max_value:g}'}]")
            raise InputError(f"{path}: {below + above} voxel value(s) outside {rng} (min {float(arr.min()):.4g}, "
                             f"max {float(arr.max()):.4g})")
    return arr


def _check_dimension(image, path: str, ndim) -> None:
    n, comps = image.GetDimension(), image.GetNumberOfComponentsPerPixel()
    if comps != 1:
        raise InputError(f"{path}: a vector image with {comps} components per voxel; expected a scalar image")
    if ndim is None:
        return
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if n not in allowed:
        want = " or ".join(f"{d}D" for d in allowed)
        raise InputError(f"{path}: a {n}D image of size {tuple(image.GetSize())}; expected {want}")


def read_image_checked(path: str | os.PathLike, *, ndim: int | Sequence[int] | None = None,
                       nan_policy: str = "refuse", kind: str = "image", min_value: float | None = None,
                       max_value: float | None = None, full_gzip: bool = False,
                       spacing_range: tuple[float, float] = SPACING_RANGE_MM):
    """Read ``path`` -> ``(array (z, y, x), Geometry)`` after every integrity check (one-line InputError)."""
    import SimpleITK as sitk

    from nnunet_ext.io.geometry import Geometry

    path = os.fspath(path)
    check_file_complete(path, full=full_gzip)
    image = read_sitk(path, "refuse" if kind in ("label", "mask") else nan_policy)  # NaN in NIfTI: ITK zeroes them
    _check_dimension(image, path, ndim)
    check_spacing(image.GetSpacing(), path, spacing_range)
    array = check_values(sitk.GetArrayFromImage(image), path, kind=kind, nan_policy=nan_policy,
                         min_value=min_value, max_value=max_value)
    return array, Geometry.of(image)


def read_header_checked(path: str | os.PathLike, *, ndim: int | Sequence[int] | None = None,
                        full_gzip: bool = False, spacing_range: tuple[float, float] = SPACING_RANGE_MM):
    """``(shape (z, y, x), Geometry)`` after completeness, dimension and spacing checks, without the voxels."""
    import SimpleITK as sitk

    from nnunet_ext.io.geometry import Geometry

    path = os.fspath(path)
    check_file_complete(path, full=full_gzip)
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise InputError(f"{path}: cannot be read as an image ({sitk_error_text(e)})") from None
    n, comps = reader.GetDimension(), reader.GetNumberOfComponents()
    if comps != 1:
        raise InputError(f"{path}: a vector image with {comps} components per voxel; expected a scalar image")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if n not in allowed:
            raise InputError(f"{path}: a {n}D image of size {tuple(reader.GetSize())}; expected "
                             + " or ".join(f"{d}D" for d in allowed))
    check_spacing(reader.GetSpacing(), path, spacing_range)
    geometry = Geometry(tuple(reader.GetSpacing()), tuple(reader.GetOrigin()), tuple(reader.GetDirection()))
    return tuple(reader.GetSize())[::-1], geometry


# ------------------------------------------------------------------------------------------ JSON, checkpoints

def load_json_checked(path: str | os.PathLike, required_keys: Iterable[str] = (), what: str = "dataset.json",
                      *, object_required: bool = True) -> Any:
    """Load a JSON file; InputError naming the file for: not found, unreadable, malformed (line / column),
    not a JSON object, and every missing key of ``required_keys`` (dotted ``"a.b"`` for nested keys)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: {what} not found")
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} is a folder, expected a JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not a text (UTF-8) file") from None
    if not text.strip():
        raise InputError(f"{path}: {what} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed {what} (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if object_required and not isinstance(data, dict):
        raise InputError(f"{path}: {what} must be a JSON object, got a JSON {type(data).__name__}")
    missing = []
    for key in required_keys:
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    if missing:
        raise InputError(f"{path}: {what} lacks required key(s) {', '.join(repr(k) for k in missing)}")
    return data


#: keys every nnU-Net v2 checkpoint (``checkpoint_final.pth``) holds
CHECKPOINT_KEYS = ("network_weights", "init_args", "trainer_name")


def check_checkpoint(path: str | os.PathLike, *, load: bool = False, required_keys: Sequence[str] = CHECKPOINT_KEYS):
    """Refuse a missing, empty, truncated or foreign checkpoint with one line; with ``load=True`` return it.

    PyTorch (>= 1.6) saves checkpoints as zip archives whose central directory is at the END of the file, so a
    truncated file is detected without torch (:mod:`zipfile`). ``load=True`` also unpickles it on the CPU and
    requires nnU-Net's keys (``network_weights``, ``init_args``, ``trainer_name``).
    """
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: checkpoint not found")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: empty checkpoint file (0 bytes)")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a readable PyTorch checkpoint (no zip directory at its end: truncated or a "
                         "foreign file)") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise InputError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl)")
    if not load:
        return None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt members surface as RuntimeError / UnpicklingError / EOFError
        raise InputError(f"{path}: corrupt checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    missing = [k for k in required_keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise InputError(f"{path}: not an nnU-Net checkpoint (lacks {', '.join(missing)})")
    return ckpt


# ------------------------------------------------------------------------------------------ outputs

def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """An output folder that exists as a folder or can be created: refuses (one line) an existing file, a parent
    path that is a file and an unwritable location. Creates nothing; returns the path."""
    p = Path(os.fspath(path)).expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: {what} is an existing file")
    base = _first_existing(p.absolute())
    if not base.is_dir():
        raise InputError(f"{p}: cannot create the {what}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{p}: {what} not writable (no write permission in {base})")
    return p


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """An output file that can be written: refuses a path that is a folder, a parent that is a file and an
    unwritable folder (one line). Creates nothing; returns the path."""
    p = Path(os.fspath(path)).expanduser()
    if p.is_dir():
        raise InputError(f"{p}: {what} is an existing folder")
    check_output_dir(p.absolute().parent, f"folder of the {what}")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{p}: {what} exists and is not writable")
    return p


__all__ = [
    "SPACING_RANGE_MM",
    "MAX_ABS_INTENSITY",
    "NonFiniteWarning",
    "check_gzip_complete",
    "check_file_complete",
    "count_nonfinite_voxels",
    "check_nonfinite_file",
    "check_image_file",
    "check_spacing",
    "check_values",
    "read_image_checked",
    "read_header_checked",
    "load_json_checked",
    "check_checkpoint",
    "check_output_dir",
    "check_output_file",
]
