"""The one writer of every file nnunet_ext writes: a temporary name beside the target, the write verified, fsync,
rename.

Why verify: a full disk does not always raise. SimpleITK's ``WriteImage`` prints ``wrote only 0 of N bytes`` and
returns normally (ITK 5.4), so a 0-byte or cut-off ``.nii.gz`` would be renamed into place and a later resume would
skip it. Every write therefore goes through :func:`atomic_path`:

1. the caller writes ``FOLDER/.tmp-PID-NAME`` (same folder: the rename stays on one file system, atomic);
2. the temporary file is flushed to the device (``fsync``: delayed write errors such as ENOSPC surface here);
3. it is verified by what its final name says it is (:func:`verify_written`): non-empty and, where the writer knows
   it, exactly the expected byte count (text, JSON, copies); ``.nii.gz`` / ``.gz``: the whole gzip stream
   decompressed (end-of-stream marker and CRC) and holding the voxels its NIfTI header announces, then the image
   header read back by SimpleITK (size and number of components as written); other image formats read back in full;
   ``.json``: parsed; ``.png``: signature and the closing ``IEND`` chunk; ``.npz`` / ``.pt`` / ``.pth`` / ``.zip``:
   every member's CRC (``zipfile.testzip``); ``.pkl``: every opcode parsed up to STOP (nothing executed);
4. ``os.replace`` onto the target, then the folder is fsynced (best effort).

Any failure removes the temporary file. ENOSPC / EDQUOT / EFBIG and a verification failure raise
:class:`nnunet_ext.errors.DiskFullError` (one line: ``disk full while writing FILE (...)``; the CLI exits 2);
other OS errors are re-raised naming the target, never the temporary name.

Functions: :func:`write_text`, :func:`write_json`, :func:`write_bytes`, :func:`copy_file`, :func:`write_sitk`
(SimpleITK image), :func:`save_figure` (matplotlib), :func:`save_npz`, :func:`save_pickle`, :func:`torch_save`.
Only standard-library imports at module level.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import zipfile
from typing import Any

from nnunet_ext.errors import DiskFullError, InputError

#: errno values that mean "no room": reported as disk full
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: file endings read back in full by SimpleITK (the NIfTI ones are checked byte-level first)
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
TEMP_PREFIX = ".tmp-"


def temp_name(path: str | os.PathLike) -> str:
    """The temporary name :func:`atomic_path` writes ``path`` under (same folder, same ending, hidden)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{name}")


def _fsync(path: str) -> None:
    """Flush ``path``'s data to the device (where delayed write errors such as ENOSPC are reported)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: str) -> None:
    """Persist the rename (best effort: some file systems refuse fsync on a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _image_header(tmp: str) -> tuple[tuple[int, ...], int]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(tmp)
    reader.ReadImageInformation()
    return tuple(reader.GetSize()), reader.GetNumberOfComponents()


def verify_written(tmp: str, final: str, *, expected_size: int | None = None,
                   image_size: tuple[int, ...] | None = None, components: int | None = None,
                   full_gzip: bool = True) -> None:
    """Check the freshly written ``tmp`` as the kind of file ``final`` names (module docstring, step 3).
    :class:`DiskFullError` naming ``final`` when it is short or unreadable. ``full_gzip=False`` (a resume checking
    existing outputs): the gzip trailer's size against the NIfTI header, the whole stream only when they differ."""
    from nnunet_ext.io.filecheck import check_file_complete

    def short(detail: str):
        return DiskFullError(final, detail)

    size = os.path.getsize(tmp)
    if size == 0:
        raise short("0 bytes written")
    if expected_size is not None and size != expected_size:
        raise short(f"wrote only {size} of {expected_size} bytes")
    lower = final.lower()
    try:
        if lower.endswith(IMAGE_ENDINGS) or lower.endswith(".gz"):
            if lower.endswith((".gz", ".nii")):
                check_file_complete(tmp, full=full_gzip)  # the whole gzip stream; voxels the header announces
            if lower.endswith(IMAGE_ENDINGS):
                if lower.endswith((".nii.gz", ".nii")):
                    got, comps = _image_header(tmp)
                else:  # MetaImage / NRRD: the reader checks the voxel data length
                    import SimpleITK as sitk

                    image = sitk.ReadImage(tmp)
                    got, comps = tuple(image.GetSize()), image.GetNumberOfComponentsPerPixel()
                if image_size is not None and tuple(got) != tuple(image_size):
                    raise short(f"header read back gives size {got}, written {tuple(image_size)}")
                if components is not None and comps != components:
                    raise short(f"header read back gives {comps} components, written {components}")
        elif lower.endswith(".json"):
            with open(tmp, encoding="utf-8") as f:
                json.load(f)
        elif lower.endswith(".png"):
            with open(tmp, "rb") as f:
                head = f.read(8)
                f.seek(max(0, size - 8))
                tail = f.read(8)
            if head != _PNG_SIGNATURE or tail != _PNG_END:
                raise short("PNG signature or end chunk missing")
        elif lower.endswith((".npz", ".pt", ".pth", ".zip")):
            with zipfile.ZipFile(tmp) as z:
                bad = z.testzip()
            if bad is not None:
                raise short(f"member {bad} corrupt")
        elif lower.endswith(".pkl"):  # every opcode parsed up to STOP, nothing executed (safe on any file)
            import pickletools

            with open(tmp, "rb") as f:
                for _ in pickletools.genops(f):
                    pass
    except DiskFullError:
        raise
    except InputError as e:  # filecheck names the temporary file: name the target and keep the reason
        raise short("read back: " + (str(e).replace(tmp, "").lstrip(": ").split(" (")[0] or "incomplete")) from None
    except OSError as e:
        if e.errno is not None and e.errno not in NO_ROOM and e.errno != errno.EIO:
            raise  # e.g. permission: not a short write
        raise short(f"cannot be read back ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - a reader's complaint about the content (zip, pickle, JSON, ITK)
        text = str(e).strip().splitlines()
        raise short(f"cannot be read back: {type(e).__name__}{': ' + text[-1][:120] if text else ''}") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, expected_size: int | None = None,
                image_size: tuple[int, ...] | None = None, components: int | None = None, verify: bool = True):
    """Yield a temporary name beside ``path``; after the block: fsync, :func:`verify_written`, rename onto ``path``.
    The temporary file never survives a failure; errors name ``path`` (module docstring)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_name(path)
    try:
        try:
            yield tmp
            _fsync(tmp)
        except DiskFullError:
            raise
        except OSError as e:
            if e.errno in NO_ROOM:
                raise DiskFullError(path, "no space left on the device") from None
            if e.filename is not None and os.fspath(e.filename) == tmp:
                raise type(e)(e.errno, e.strerror, path) from None
            raise
        if verify:
            verify_written(tmp, path, expected_size=expected_size, image_size=image_size, components=components)
        os.replace(tmp, path)
        _fsync_dir(folder)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``data`` to ``path`` (verified: exactly ``len(data)`` bytes)."""
    with atomic_path(path, expected_size=len(data)) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 ``text`` to ``path`` (no newline translation; verified: exact byte count, JSON parsed for .json)."""
    data = text.encode("utf-8")
    with atomic_path(path, expected_size=len(data)) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, **dumps: Any) -> None:
    """``json.dumps(obj, indent=indent, **dumps)`` plus a final newline to ``path`` (:func:`write_text`)."""
    write_text(path, json.dumps(obj, indent=indent, **dumps) + "\n")


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` (contents and metadata) to ``dst``; verified: the same byte count (and type checks by name)."""
    with atomic_path(dst, expected_size=os.path.getsize(src)) as tmp:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)


def write_sitk(image, path: str | os.PathLike, compress: bool = True) -> None:
    """A SimpleITK image to ``path``; verified: complete file and the header read back (size, components)."""
    import SimpleITK as sitk

    with atomic_path(path, image_size=tuple(image.GetSize()),
                     components=image.GetNumberOfComponentsPerPixel()) as tmp:
        sitk.WriteImage(image, tmp, compress)


def save_figure(fig, path: str | os.PathLike, **savefig: Any) -> None:
    """A matplotlib figure to ``path`` (format from its ending unless given; verified as that format)."""
    fmt = savefig.pop("format", None) or os.fspath(path).rsplit(".", 1)[-1].lower()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig)


def save_npz(path: str | os.PathLike, *, compressed: bool = True, **arrays: Any) -> None:
    """numpy arrays to an ``.npz`` archive (``np.savez_compressed`` unless ``compressed=False``); CRCs verified."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def save_pickle(obj: Any, path: str | os.PathLike) -> None:
    """``obj`` pickled to ``path`` (verified by unpickling)."""
    import pickle

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` (PyTorch's zip format: every member's CRC verified)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


__all__ = ["NO_ROOM", "IMAGE_ENDINGS", "TEMP_PREFIX", "temp_name", "verify_written", "atomic_path", "write_bytes",
           "write_text", "write_json", "copy_file", "write_sitk", "save_figure", "save_npz", "save_pickle",
           "torch_save"]
