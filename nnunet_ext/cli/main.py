"""``nnext`` entry point.

Each sub-command lives in its own module that defines ``add_arguments(parser)`` and ``run(args) -> int``.
Only the module of the requested command is imported, so ``nnext trainers`` does not pay for torch.
Errors of type :class:`nnunet_ext.errors.InputError` and operating-system errors (:class:`OSError`) are printed
as one line and give exit status 2; Ctrl-C gives one line and 130; other exceptions one line and 1, with the
traceback behind ``--debug`` / ``NNEXT_DEBUG=1`` (see :func:`main`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from nnunet_ext import __version__
from nnunet_ext.errors import InputError
from nnunet_ext.registry import table

#: command -> (module, one-line help). Add new commands here.
#: command -> (module, one-line help): shared commands and every method's (nnunet_ext.registry)
COMMANDS: dict[str, tuple[str, str]] = table("COMMANDS")


def command_help(name: str) -> str:
    """The one-line help of command ``name``, with the registered prediction methods / converters filled in."""
    text = COMMANDS[name][1]
    if "{methods}" in text:
        text = text.replace("{methods}", ", ".join(table("PREDICT_METHODS")))
    if "{converters}" in text:
        from nnunet_ext.conversion.cli import CONVERTERS

        text = text.replace("{converters}", ", ".join(CONVERTERS))
    return text


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<15} {command_help(name)}" for name in COMMANDS)
    p = argparse.ArgumentParser(
        prog="nnext", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="nnunet_ext: uncertainty-aware extensions for nnU-Net v2",
        epilog=f"commands:\n{lines}\n\nRun 'nnext COMMAND -h' for the options of a command.")
    p.add_argument("--version", action="version", version=f"nnunet_ext {__version__}")
    p.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    return p


def _debug(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` (anywhere on the command line) or ``NNEXT_DEBUG=1``: unexpected errors keep their traceback."""
    on = os.environ.get("NNEXT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    if "--debug" in argv:
        on, argv = True, [a for a in argv if a != "--debug"]
    return on, argv


def describe_os_error(e: OSError) -> str:
    """One line for an operating-system error: the file(s) and the problem (errno name and text)."""
    import errno as _errno

    from nnunet_ext.errors import DiskFullError

    if isinstance(e, DiskFullError):  # a write the atomic writer found short or without room
        return str(e)
    reason = e.strerror or str(e) or type(e).__name__
    names = [n for n in (e.filename, e.filename2) if n is not None]
    if e.errno in (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG):  # e.g. inside nnU-Net's own writers
        where = " -> ".join(os.fspath(n) for n in names)
        return f"disk full while writing {where}" if where else "disk full (no space left on the device)"
    elif e.errno in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        reason = f"not writable / readable ({e.strerror or 'permission denied'})"
    elif e.errno == _errno.ENOTDIR and e.filename2 is not None:  # rename of a folder onto an existing file
        return f"{os.fspath(e.filename2)}: is a file, expected a folder (cannot put {os.fspath(e.filename)} there)"
    elif e.errno == _errno.ENOTDIR:
        reason = "a path component is a file, not a folder"
    elif e.errno == _errno.EEXIST:
        reason = "already exists (is an output path an existing file?)"
    elif e.errno == _errno.EISDIR:
        reason = "is a folder, expected a file"
    where = " -> ".join(os.fspath(n) for n in names)
    return f"{where}: {reason}" if where else reason


_NESTING = [0]  # main() calls in progress: a command run by another one (the demos) passes Ctrl-C on


def main(argv: list[str] | None = None) -> int:
    """Run one ``nnext`` command. Exit status: 0 ok, 2 bad input or an operational error (one line on stderr
    naming the file and the problem: :class:`InputError`, :class:`OSError` such as unreadable / unwritable paths,
    an output path that is a file, disk full, corrupt files), 130 on Ctrl-C. Unexpected exceptions print their
    traceback only with ``--debug`` or ``NNEXT_DEBUG=1``; otherwise one line (exit 1) that says how to get it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, argv = _debug(argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["-h"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; known commands: {', '.join(COMMANDS)}")
    prefix = f"nnext {name}: error:"
    _NESTING[0] += 1
    try:
        from nnunet_ext.trainers.plans_options import refuse_legacy_environment

        try:
            refuse_legacy_environment()
        except ValueError as e:
            raise InputError(str(e)) from None
        module = importlib.import_module(COMMANDS[name][0])
        parser = argparse.ArgumentParser(prog=f"nnext {name}", description=command_help(name))
        module.add_arguments(parser)
        from nnunet_ext.argtypes import refuse_nonfinite

        refuse_nonfinite(parser)  # no command takes NaN / Inf for a number (--tau nan was accepted)
        parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        args = parser.parse_args(rest)  # argparse: usage + one error line, SystemExit(2)
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if _NESTING[0] > 1:  # inside another nnext command: its caller reports the interruption (one line)
            raise
        print(f"nnext {name}: interrupted (Ctrl-C); finished outputs are kept, re-run to resume", file=sys.stderr)
        return 130
    except InputError as e:
        if debug:
            traceback.print_exc()
        print(f"{prefix} {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            traceback.print_exc()
        print(f"{prefix} {describe_os_error(e)}", file=sys.stderr)
        return 2
    except (EOFError, MemoryError) as e:  # truncated pickles / archives; arrays too large for this machine
        if debug:
            traceback.print_exc()
        what = "out of memory" if isinstance(e, MemoryError) else f"truncated or corrupt file ({e})"
        print(f"{prefix} {what}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - unexpected: one line, traceback behind --debug
        if debug:
            raise
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"nnext {name}: internal error: {type(e).__name__}{': ' + text if text else ''} "
              f"(re-run with --debug or NNEXT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        _NESTING[0] -= 1


if __name__ == "__main__":
    sys.exit(main())
