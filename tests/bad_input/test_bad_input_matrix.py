"""The bad-input matrix as a whole (issue 13): every ``nnext`` command, converter and demo kind has a row, and the
counts the README reports. The cells themselves run in ``tests/test_bad_input_<group>.py``."""
from __future__ import annotations

import importlib

GROUPS = ("core", "datasets", "maps", "convert", "models", "demos")
#: commands without a row, and why
NO_ROW = {"trainers": "lists the trainer classes: reads no input, writes nothing"}


def _groups():
    return [importlib.import_module(f"test_bad_input_{g}") for g in GROUPS]


def test_every_command_converter_and_demo_kind_has_a_row():
    from nnunet_ext.cli.main import COMMANDS
    from nnunet_ext.conversion.cli import CONVERTERS
    from nnunet_ext.demos.cli import KIND_DEFAULTS

    rows = [c for m in _groups() for c in m.COMMANDS]
    assert len(rows) == len(set(rows)), "a command is in two groups"
    expected = ({c for c in COMMANDS if c not in ("convert", "demo", *NO_ROW)} | {f"convert {k}" for k in CONVERTERS}
                | {"demo"} | {f"demo {k}" for k in KIND_DEFAULTS if k != "chest"})
    assert set(rows) == expected


def test_matrix_counts():
    """The README's numbers: commands x classes, cells run, cells not applicable."""
    from bad_input_harness import CLASSES

    groups = _groups()
    n_commands = sum(len(m.COMMANDS) for m in groups)
    run = sum(len(m.CELLS) for m in groups)
    not_applicable = sum(len(m.NOT_APPLICABLE) for m in groups)
    assert run + not_applicable == n_commands * len(CLASSES)
    assert (n_commands, len(CLASSES), run, not_applicable) == (24, 17, 316, 92)
