"""Exceptions shared by the command-line tools."""


class InputError(ValueError):
    """Bad user input (missing file, wrong shape, unknown name). The CLI prints it as one line and exits 2."""
