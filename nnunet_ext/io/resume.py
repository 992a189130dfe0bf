"""What a resume checks before it keeps an existing output instead of recomputing it.

An output that merely exists may be the 0-byte or cut-off file of a full disk (SimpleITK does not raise on a short
write), an unreadable leftover, or the output of another input. :func:`output_problem` says why a file cannot be
kept (``None``: it can): missing, empty, incomplete or unreadable by the checks of
:func:`nnunet_ext.io.atomic_write.verify_written` (gzip trailer size against the NIfTI header; the whole stream only
when they disagree, so a resume over many cases stays fast), or, with ``like``, an image on another grid (size,
spacing, origin, direction) than its input. Callers redo the case and print the reason in one line.
"""
from __future__ import annotations

import os

from nnunet_ext.errors import DiskFullError, InputError


def output_problem(path: str | os.PathLike, like: "str | os.PathLike | None" = None) -> "str | None":
    """Why the existing output ``path`` cannot be kept by a resume (module docstring), ``None`` when it can."""
    from nnunet_ext.io.atomic_write import verify_written
    from nnunet_ext.io.integrity import read_header_checked

    path = os.fspath(path)
    name = os.path.basename(path)
    if not os.path.isfile(path):
        return f"{name} missing"
    try:
        verify_written(path, path, full_gzip=False)
    except DiskFullError as e:
        return f"{name}: {e.detail}"
    if like is None:
        return None
    try:
        shape_out, g_out = read_header_checked(path)
        shape_in, g_in = read_header_checked(like)
    except InputError as e:
        return str(e)
    if tuple(shape_out) != tuple(shape_in) or not g_in.matches(g_out):
        what = ([f"size (x,y,z) {tuple(shape_out)[::-1]} vs {tuple(shape_in)[::-1]}"] if shape_out != shape_in
                else []) + g_out.differences(g_in)
        return f"{name} is on another grid than {os.path.basename(os.fspath(like))} ({'; '.join(what)})"
    return None


__all__ = ["output_problem"]
