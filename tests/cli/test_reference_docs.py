"""The generated reference pages are current, and nnext -h lists every registered method and converter."""
from pathlib import Path

#: the checkout's reference pages (the package may be installed elsewhere: CI installs it into site-packages)
REFERENCE = Path(__file__).resolve().parents[2] / "documentation" / "reference"

from nnunet_ext.cli.reference_docs import render
from nnunet_ext.registry import option_families, table


def test_committed_reference_pages_match_the_code():
    pages = render()
    folder = REFERENCE
    stale = [name for name, text in pages.items()
             if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated pages {stale}: run python -m nnunet_ext.cli.reference_docs"


def test_pages_cover_every_command_option_family_and_trainer():
    from nnunet_ext.cli.main import COMMANDS
    from nnunet_ext.conversion.cli import CONVERTERS

    pages = render()
    assert all(f"## nnext {name}\n" in pages["commands.md"] for name in COMMANDS)
    assert all(f"### nnext convert {name}\n" in pages["commands.md"] for name in CONVERTERS)
    for family in option_families().values():
        assert all(f"| `{row['key']}` |" in pages["plans_options.md"] for row in family.schema())
    assert all(f"| `{name}` |" in pages["trainers.md"] for name in table("TRAINERS"))
    assert REFERENCE.parent.name == "documentation"


def test_top_level_help_lists_every_registered_method_and_converter(capsys):
    import pytest

    from nnunet_ext.cli.main import main
    from nnunet_ext.conversion.cli import CONVERTERS

    with pytest.raises(SystemExit) as exit_info:  # argparse's own -h
        main(["-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(m in out for m in table("PREDICT_METHODS")) and all(c in out for c in CONVERTERS)
    assert all(c in out for c in table("COMMANDS"))


def _string_constants(module: str) -> list[str]:
    import ast
    import importlib.util

    source = Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8")
    return [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_every_listed_output_name_is_a_string_in_the_module_that_writes_it():
    from nnunet_ext.cli.outputs_table import OUTPUTS

    missing = [(cmd, module, literal) for cmd, _, _, _, module, literal in OUTPUTS
               if not any(literal in s for s in _string_constants(module))]
    assert not missing, f"outputs.md names files its module no longer writes: {missing}"
    assert "| `nnext predict` | `CASE_uncertainty.nii.gz` |" in render()["outputs.md"]


def test_every_command_has_an_outputs_row():
    from nnunet_ext.cli.main import COMMANDS
    from nnunet_ext.cli.outputs_table import OUTPUTS

    listed = {cmd.split()[0] for cmd, *_ in OUTPUTS}
    assert set(COMMANDS) - {"trainers"} <= listed, set(COMMANDS) - {"trainers"} - listed
