"""Bad-input matrix (issue 13), the demo kinds nodule, glioma and headneck (``nnext demo KIND``): option-level
cells, Ctrl-C in the first step and the stale-settings guard of the first step; no demo trains here (the chest
demo's cells are in test_bad_input_datasets.py). Harness and conventions: ``tests/bad_input_harness.py``."""
from __future__ import annotations

from pathlib import Path

import pytest
from bad_input_harness import (
    DISK_FULL,
    NAN_INT,
    Cell,
    cell_ids,
    disk_full,
    file_at,
    interrupt_on_call,
    matrix_cells,
    run_cell,
    workspace,  # noqa: F401 (a fixture)
)

#: kind -> (an option the kind refuses, the expected message)
BAD_OPTION = {
    "nodule": (["--n-samples", "1"], r"argument --n-samples: '1' must be >= 2"),
    "glioma": (["-c", "2d"], r"nnext demo glioma: -c does not apply"),
    "headneck": (["-n", "4"], r"argument -n: '4' must be >= 5"),
}


def _raw_id(kind: str) -> int:
    from nnunet_ext.demos import glioma, headneck, nodule

    return {"nodule": nodule.RAW_ID, "glioma": glioma.RAW_ID, "headneck": headneck.RAW_ID}[kind]


def _demo_kind(kind: str):
    def build(tmp: Path, mp, klass: str) -> Cell | None:
        import nnunet_ext.synthetic.dataset as ds

        root = tmp / "demo"
        argv = ["demo", kind, "-o", str(root)]
        raw = root / kind / "nnUNet_raw"
        if klass == "bad_option":
            extra, match = BAD_OPTION[kind]
            return Cell(argv + extra, match)
        if klass == "nan_option":
            return Cell(argv + ["--n-test", "nan"], r"argument --n-test: " + NAN_INT)
        if klass == "output_is_file":
            file_at(root / kind)
            return Cell(argv, rf"demo {kind} working folder \(-o/{kind}\) is an existing file")
        if klass == "disk_full":  # the first write of the first step (the synthesis)
            return Cell(argv + ["-n", "5", "--n-test", "1"], DISK_FULL, patches=[disk_full()],
                        reporter="synth" if kind == "headneck" else None)  # headneck runs `nnext synth` nested
        if klass == "unwritable_output":
            return Cell(["demo", kind, "-o", str(file_at(tmp / "f.txt") / "demo")], r"f\.txt is a file")
        if klass == "interrupted":  # Ctrl-C in the first step (the synthesis): no dataset, no step record
            def check():
                assert not list(raw.glob(f"Dataset{_raw_id(kind)}_*"))
                assert not list((root / kind).glob(".nnext_demo_*"))
            return Cell(argv + ["-n", "5", "--n-test", "1"], "interrupted", code=130, check=check,
                        patches=[interrupt_on_call(ds, "write_image", 3)])
        if klass == "other_settings":  # a recorded 8-case dataset is not reused for -n 6: it is redone, and said so
            from nnunet_ext.demos import headneck
            from nnunet_ext.demos.steps import STEP_RECORD
            from nnunet_ext.io.settings_record import record_settings

            folder = raw / f"Dataset{_raw_id(kind)}_{headneck.RAW_NAME if kind == 'headneck' else 'Old'}"
            folder.mkdir(parents=True)
            (folder / "dataset.json").write_text("{}")
            old = {"n": 8, "n_test": 2, "seed": 0, **({"raters": 4} if kind == "nodule" else {})}
            record_settings(root / kind, old, filename=STEP_RECORD.format("synth"))
            return Cell(argv + ["-n", "6", "--n-test", "2"], "interrupted", code=130,
                        stdout=r"redoing synth \(settings changed: n[,)]",
                        patches=[interrupt_on_call(ds, "write_image", 0)])
        return None
    return build


COMMANDS = {f"demo {kind}": _demo_kind(kind) for kind in ("nodule", "glioma", "headneck")}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {(c, k): "no input files (a demo makes its own phantoms)" for c in COMMANDS
                  for k in ("missing", "empty", "corrupt", "truncated", "nan", "wrong_dim", "wrong_geometry",
                            "malformed_json", "unknown_label")}
NOT_APPLICABLE.update({(c, "dropped_case"): "not a converter: a demo makes its own phantoms" for c in COMMANDS})
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys):
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)
