"""An experiment is trainer + plans: no module reads an ``NNEXT_*`` environment variable as a setting. The only
``NNEXT_*`` names in the package are ``NNEXT_DEBUG`` (tracebacks, cli/main.py) and the table of removed training
variables that are refused naming their plans key (trainers/plans_options.py)."""
import ast
from pathlib import Path

import nnunet_ext

ROOT = Path(nnunet_ext.__file__).parent
ALLOWED = {"trainers/plans_options.py": None, "cli/main.py": {"NNEXT_DEBUG"}}


def test_no_nnext_environment_variable_is_read_outside_the_allowed_places():
    found = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for word in node.value.replace("`", " ").replace("=", " ").split():
                    if word.startswith("NNEXT_") and word.rstrip(".,:;)") != "NNEXT_":
                        name = word.rstrip(".,:;)'\"")
                        if rel in ALLOWED and (ALLOWED[rel] is None or name in ALLOWED[rel]):
                            continue
                        found.append(f"{rel}:{node.lineno}: {name}")
    assert not found, "\n".join(found)


def test_the_refusal_table_covers_every_removed_variable_the_docs_name():
    from nnunet_ext.trainers.plans_options import LEGACY_ENVIRONMENT

    assert len(LEGACY_ENVIRONMENT) == 25 and all(k.startswith("NNEXT_") for k in LEGACY_ENVIRONMENT)
