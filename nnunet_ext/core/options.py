"""Options as types: a frozen dataclass per option family, validated, documented and turned into CLI flags.

An option family (``clicks``, ``optimizer``, ``dropout``, ...) is a frozen dataclass deriving from
:class:`Options` whose fields are declared with :func:`option` (default, one-line help, an optional check and
choices). The same class

* validates a plans section (``plans["configurations"][C]["nnext_training"][SECTION]``, see
  :mod:`nnunet_ext.trainers.plans_options`) with :meth:`Options.from_mapping` — unknown keys and bad values are
  refused in one line naming the key;
* is what trainers record in ``checkpoint["nnext"]["options"][SECTION]`` (:meth:`Options.to_dict`) and what
  predictors rebuild from there;
* generates an argparse group (:meth:`Options.add_arguments` / :meth:`Options.from_args`), so a flag has one
  meaning wherever it appears, and Python callers simply construct the dataclass;
* generates the reference page of every plans option (:meth:`Options.schema`).

Pure Python (no numpy / torch): imported by the CLI before anything heavy.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any, Callable, ClassVar


def option(default: Any, help: str, check: "Callable[[Any], bool] | None" = None, requirement: str = "",
           choices: "tuple | None" = None, flag: "str | None" = None, nargs: "str | None" = None,
           metavar: "str | None" = None):
    """A dataclass field with its documentation: ``check(value)`` must hold (``requirement`` says what it is in
    words, e.g. ``"> 0"``); ``choices`` restricts the value; ``flag`` overrides the generated CLI flag name;
    ``nargs`` / ``metavar`` are passed to argparse (e.g. ``nargs="+"`` for a list given as separate words)."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check, "requirement": requirement,
                                                        "choices": choices, "flag": flag, "nargs": nargs,
                                                        "metavar": metavar})


def _base_type(tp) -> type:
    """``float`` for ``float``, ``'float'``, ``Optional[float]``; ``tuple`` for ``tuple[float, ...]``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin in (tuple, list):
        return tuple
    return tp


def _item_type(tp) -> type:
    args = [a for a in typing.get_args(tp) if a is not Ellipsis and a is not type(None)]
    if typing.get_origin(tp) is typing.Union:
        return _item_type(args[0])
    return args[0] if args else float


def _optional(tp) -> bool:
    return typing.get_origin(tp) is typing.Union and type(None) in typing.get_args(tp)


def parse_text(text: str):
    """A ``--set key=VALUE`` value: JSON when it parses (numbers, lists, true / false / null), else the string."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every option family; subclasses are ``@dataclasses.dataclass(frozen=True)`` and set ``SECTION``."""

    SECTION: ClassVar[str] = ""
    #: where the option family comes from (paper and section), shown on the reference page
    SOURCE: ClassVar[str] = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._coerce(f, hints[f.name], getattr(self, f.name)))

    # -- validation -------------------------------------------------------------------------------------------
    @classmethod
    def _where(cls, name: str) -> str:
        """How a message names an option: ``section.key`` for plans options, the flag for command-line ones."""
        if cls.SECTION:
            return f"{cls.SECTION}.{name}"
        f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
        return cls.cli_flag(f) if f is not None else name

    @classmethod
    def _coerce(cls, f: dataclasses.Field, tp, value):
        where, meta = cls._where(f.name), f.metadata
        if value is None and _optional(tp):
            return None
        base = _base_type(tp)
        try:
            if base is tuple:
                items = value.split(",") if isinstance(value, str) else list(value)
                item = _item_type(tp)
                value = tuple(item(v.strip() if isinstance(v, str) else v) for v in items)
                if any(isinstance(v, float) and not math.isfinite(v) for v in value):
                    raise ValueError
            elif base is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                elif not isinstance(value, (bool, int)) or value not in (0, 1):
                    raise ValueError
                value = bool(value)
            elif base is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                value = int(value)
            elif base is float:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
                if not math.isfinite(number):  # the wording of nnunet_ext.argtypes.finite_float
                    raise ValueError(f"{where}: {value if isinstance(value, str) else str(number)!r} is not a "
                                     "finite number")
                value = number
            elif base is str:
                if not isinstance(value, str):
                    raise ValueError
        except (TypeError, ValueError) as e:
            if str(e).startswith(f"{where}: "):
                raise
            raise ValueError(f"{where}: expected {cls._type_name(tp)}, got {value!r}") from None
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ValueError(f"{where}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        check = meta.get("check")
        if check is not None and not check(value):
            raise ValueError(f"{where}: must be {meta.get('requirement') or 'valid'}, got {value!r}")
        return value

    @staticmethod
    def _type_name(tp) -> str:
        base = _base_type(tp)
        if base is tuple:
            return f"a list of {_item_type(tp).__name__} (JSON list or comma-separated)"
        name = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}.get(base,
                                                                                                    str(base))
        return name + (" or null" if _optional(tp) else "")

    @classmethod
    def from_mapping(cls, mapping: "dict | None"):
        """The options of a plans / checkpoint section; keys not given keep their defaults. Unknown keys: one
        ValueError line naming the key and the allowed ones."""
        mapping = dict(mapping or {})
        if not isinstance(mapping, dict):
            raise ValueError(f"{cls.SECTION}: expected a JSON object of options, got {mapping!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise ValueError(f"unknown option {cls._where(unknown[0])}; {cls.SECTION} has: {', '.join(names)}")
        return cls(**mapping)

    def to_dict(self) -> dict:
        """JSON-ready values (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    def changed(self) -> dict:
        """The options that differ from the defaults."""
        default = type(self)()
        return {k: v for k, v in self.to_dict().items() if v != default.to_dict()[k]}

    # -- documentation ----------------------------------------------------------------------------------------
    @classmethod
    def schema(cls) -> list[dict]:
        """One row per option: key, type, default, allowed values, help."""
        hints = typing.get_type_hints(cls)
        rows = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            allowed = (", ".join(map(str, meta["choices"])) if meta.get("choices") else meta.get("requirement", ""))
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            rows.append({"key": cls._where(f.name), "type": cls._type_name(hints[f.name]),
                         "default": json.dumps(default), "allowed": allowed, "help": meta.get("help", "")})
        return rows

    # -- command line -----------------------------------------------------------------------------------------
    @classmethod
    def cli_flag(cls, f: dataclasses.Field) -> str:
        return f.metadata.get("flag") or "--" + f.name.replace("_", "-")

    @classmethod
    def add_arguments(cls, parser, title: "str | None" = None, skip: tuple = (), group=None,
                      defaults: "Options | None" = None) -> None:
        """One argparse group (or the given ``group``); flag ``--field-name``, destination ``field_name`` (one
        meaning per flag name across commands); every flag defaults to ``None`` (= the dataclass default, or
        ``defaults``' value for a command with other defaults: pass the same instance to :meth:`from_args`)."""
        group = group if group is not None else parser.add_argument_group(title or f"{cls.SECTION} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            default = getattr(defaults, f.name) if defaults is not None else f.default
            default = list(default) if isinstance(default, tuple) else default
            if _base_type(hints[f.name]) is bool and default is False:  # a switch
                group.add_argument(cls.cli_flag(f), dest=f.name, action="store_true", help=f.metadata.get("help", ""))
                continue
            extra = {"choices": f.metadata["choices"]} if f.metadata.get("choices") else {}
            if f.metadata.get("nargs"):
                extra["nargs"] = f.metadata["nargs"]
            metavar = f.metadata.get("metavar") or (None if "choices" in extra else cls._metavar(hints[f.name]))
            group.add_argument(cls.cli_flag(f), dest=f.name, default=None, metavar=metavar,
                               help=f"{f.metadata.get('help', '')} (default: {default})", **extra)

    @staticmethod
    def _metavar(tp) -> str:
        base = _base_type(tp)
        return {int: "N", float: "X", bool: "BOOL", str: "TEXT", tuple: "A,B"}.get(base, "VALUE")

    @classmethod
    def from_args(cls, args, defaults: "Options | None" = None, **overrides):
        """The options given on the command line (``None`` = not given: the dataclass default, or ``defaults``'
        value), plus ``overrides``."""
        values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
        values = {k: parse_text(v) if isinstance(v, str) and _base_type(
            typing.get_type_hints(cls)[k]) in (int, float, bool) else v for k, v in values.items() if v is not None}
        values.update(overrides)
        base = defaults.to_dict() if defaults is not None else {}
        return cls(**{**base, **values})
