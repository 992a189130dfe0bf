"""Exceptions shared by the command-line tools."""


class InputError(ValueError):
    """Bad user input (missing file, wrong shape, unknown name). The CLI prints it as one line and exits 2."""


class OptionsError(InputError):
    """A ``nnext_training`` option of plans or a checkpoint that this nnunet_ext does not know or accept: a model
    trained with another version, or a hand-edited plans file. Raised without a file name; the loader that knows
    the file adds it (:meth:`nnunet_ext.predictors.engine.SlidingWindowEngine.load`)."""


class DiskFullError(OSError):
    """A write that did not complete: no room on the device (ENOSPC / EDQUOT / EFBIG) or a written file that is
    short or unreadable when read back (SimpleITK reports a short write only on stdout). The CLI prints
    ``disk full while writing FILE (detail)`` as one line and exits 2 (:mod:`nnunet_ext.io.atomic_write`)."""

    def __init__(self, path, detail: str = ""):
        import errno
        import os

        super().__init__(errno.ENOSPC, "disk full", os.fspath(path))
        self.detail = detail

    def __str__(self) -> str:
        return f"disk full while writing {self.filename}" + (f" ({self.detail})" if self.detail else "")
