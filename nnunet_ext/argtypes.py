"""argparse ``type=`` validators shared by the ``nnext`` commands (errors name the value and the rule)."""
from __future__ import annotations

import argparse
import math


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def finite_float(text: str) -> float:
    """``type=float`` that refuses ``nan``, ``inf`` and ``-inf`` (Python's float() accepts them)."""
    return _number(text)




def refuse_nonfinite(parser: argparse.ArgumentParser) -> None:
    """Give every ``type=float`` option of ``parser`` (argument groups and sub-parsers included) the
    :func:`finite_float` type: one place where every ``nnext`` command refuses ``--tau nan`` and ``inf``."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk over its actions
        if action.type is float:
            action.type = finite_float
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                refuse_nonfinite(sub)


def non_negative(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1]")
    return value


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {minimum}")
        return value
    return parse
