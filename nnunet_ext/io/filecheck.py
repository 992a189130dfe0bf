"""Byte-level checks of image files, below any image reader: gzip streams complete, NIfTI voxels all present,
NaN / Inf counted from the raw voxels. Part of the input-integrity layer (:mod:`nnunet_ext.io.integrity`, which
re-exports the public names); standard-library imports only at module level (numpy inside the functions).

Why byte level: SimpleITK reads a truncated ``.nii.gz`` as a half-zero image without an error, and ITK's NIfTI
reader silently turns NaN and +-Inf voxels into 0 (measured with SimpleITK 2.5 / ITK 5.4), so neither the array
nor nnU-Net's ``SimpleITKIO`` can show either problem afterwards.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import warnings
import zlib

from nnunet_ext.errors import InputError

_CHUNK = 1 << 16

class NonFiniteWarning(UserWarning):
    """NaN / Inf voxels were replaced by 0 (``nan_policy="zero"``)."""


# ------------------------------------------------------------------------------------------ file completeness

def _nifti_expected_bytes(header: bytes) -> int | None:
    """Bytes of header + voxels a NIfTI-1 / NIfTI-2 header announces (``None`` if it is not NIfTI)."""
    if len(header) < 348:
        return None
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", header[:4])
        if size == 348:
            dim = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = struct.unpack(endian + "f", header[108:112])[0]
            break
        if size == 540 and len(header) >= 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dim = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    n = dim[0]
    if not 1 <= n <= 7 or bitpix <= 0 or any(d < 0 for d in dim[1:n + 1]):
        return None
    voxels = math.prod(max(1, int(d)) for d in dim[1:n + 1])
    return int(max(vox_offset, len(header) if size == 540 else 348)) + voxels * bitpix // 8


def _gzip_stream_size(path: str) -> int:
    """Decompress the whole gzip file (all members) and return its size; InputError if it ends early / is corrupt."""
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
    except EOFError:
        raise InputError(f"{path}: truncated file (the gzip stream ends before its end-of-stream marker; "
                         "incomplete download or copy?)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: corrupt gzip file ({e})") from None
    return total


def check_gzip_complete(path: str | os.PathLike, full: bool = False) -> None:
    """Refuse a truncated / corrupt gzip file (one line naming it).

    Fast path (default): for a gzipped NIfTI, the trailer's ISIZE (decompressed size mod 2**32) must equal the
    size the header announces; otherwise, and always with ``full=True``, the stream is decompressed to its end
    (gzip raises on a missing end-of-stream marker and on a CRC mismatch) and must hold the announced bytes.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
            if magic != b"\x1f\x8b":
                raise InputError(f"{path}: not a gzip file although its name ends in .gz (corrupt or mislabelled)")
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
        with gzip.open(path, "rb") as g:
            header = g.read(540)
    except InputError:
        raise
    except EOFError:
        raise InputError(f"{path}: truncated file (the gzip stream ends inside the header)") from None
    except (gzip.BadGzipFile, zlib.error, OSError, struct.error) as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise InputError(f"{path}: corrupt gzip file ({e})") from None
    expected = _nifti_expected_bytes(header)
    if expected is not None and not full and isize == expected % (1 << 32):
        return
    total = _gzip_stream_size(path)
    if expected is not None and total < expected:
        raise InputError(f"{path}: truncated image (holds {total} of the {expected} bytes its NIfTI header "
                         "announces)")


def check_file_complete(path: str | os.PathLike, full: bool = False) -> None:
    """Existence plus :func:`check_gzip_complete` for ``*.gz``; plain ``.nii``: file size >= header + voxels."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if not os.path.isfile(path):
        raise InputError(f"{path}: is a folder, expected an image file")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    if path.endswith(".gz"):
        check_gzip_complete(path, full=full)
    elif path.endswith(".nii"):
        with open(path, "rb") as f:
            expected = _nifti_expected_bytes(f.read(540))
        if expected is not None and size < expected:
            raise InputError(f"{path}: truncated image ({size} of the {expected} bytes its NIfTI header announces)")


# ------------------------------------------------------------------------------------------ NaN in NIfTI files

#: NIfTI datatype code -> numpy dtype character of the float types (the only ones that can hold NaN / Inf)
_NIFTI_FLOATS = {16: "f4", 64: "f8", 32: "c8", 1792: "c16"}


def _nifti_float_layout(header: bytes):
    """``(numpy dtype, vox_offset)`` of a float NIfTI-1 / NIfTI-2 header, ``None`` for other files / types."""
    import numpy as np

    if len(header) < 348:
        return None
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", header[:4])
        if size == 348:
            code = struct.unpack(endian + "h", header[70:72])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            code = struct.unpack(endian + "h", header[12:14])[0]
            offset = int(struct.unpack(endian + "q", header[168:176])[0])
            break
    else:
        return None
    if code not in _NIFTI_FLOATS:
        return None
    return np.dtype(endian + _NIFTI_FLOATS[code]), max(offset, 348)


def count_nonfinite_voxels(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(n_nan, n_inf)`` of a float NIfTI file read from its raw voxel bytes, ``None`` when it is not a float
    NIfTI (integer voxels cannot be NaN; other formats keep NaN through SimpleITK, check the array instead).

    Why not the array: ITK's NIfTI reader silently turns NaN AND +-Inf voxels into 0 (measured with SimpleITK
    2.5 / ITK 5.4), so neither SimpleITK nor nnU-Net's ``SimpleITKIO`` can see them afterwards.
    """

    path = os.fspath(path)
    if not (path.endswith(".nii") or path.endswith(".nii.gz")):
        return None
    try:
        return _count_nonfinite(path)
    except EOFError:
        raise InputError(f"{path}: truncated file (the gzip stream ends before its end-of-stream marker)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: corrupt gzip file ({e})") from None


def _count_nonfinite(path: str) -> tuple[int, int] | None:
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        layout = _nifti_float_layout(f.read(540))
        if layout is None:
            return None
        dtype, offset = layout
        f.seek(offset)
        n_nan = n_inf = 0
        step = dtype.itemsize * (1 << 18)
        rest = b""
        while True:
            chunk = f.read(step)
            if not chunk:
                break
            chunk = rest + chunk
            usable = len(chunk) - len(chunk) % dtype.itemsize
            values, rest = np.frombuffer(chunk[:usable], dtype=dtype), chunk[usable:]
            if not np.isfinite(values).all():
                nan = np.isnan(values)
                n_nan += int(nan.sum())
                n_inf += int((~np.isfinite(values) & ~nan).sum())
    return n_nan, n_inf


def check_nonfinite_file(path: str | os.PathLike, nan_policy: str = "refuse") -> int:
    """Refuse (``nan_policy="refuse"``) a float NIfTI file with NaN / Inf voxels, naming the counts; with
    ``"zero"`` warn (the reader has already set them to 0). Returns the number of non-finite voxels."""
    counts = count_nonfinite_voxels(path)
    if not counts or not sum(counts):
        return 0
    what = f"{counts[0]} NaN and {counts[1]} infinite voxel(s)"
    if nan_policy == "refuse":
        raise InputError(f"{os.fspath(path)}: {what} (use --nan-policy zero where offered to set them to 0)")
    warnings.warn(f"{os.fspath(path)}: {what} set to 0 (--nan-policy zero)", NonFiniteWarning, stacklevel=2)
    return sum(counts)


__all__ = ["NonFiniteWarning", "check_gzip_complete", "check_file_complete", "count_nonfinite_voxels",
           "check_nonfinite_file"]
