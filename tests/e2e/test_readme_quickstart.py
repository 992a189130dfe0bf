"""The README's "Quick start" block runs as written and means something: it is taken from README.md, run by bash
in an empty folder with only ``venv/bin/`` replaced by the folder of this Python (nnU-Net's paths are those the
block itself exports; none are inherited), and the held-out phantoms it evaluates reach a tumour Dice >= 0.3 in
the summary ``nnext evaluate`` writes, with the uncertainty map beside each segmentation."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MIN_DICE = 0.3


def quickstart_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_block_sets_what_it_needs_and_evaluates_held_out_cases():
    block = quickstart_block()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc=1", "nnUNet_n_proc_DA=0"):
        assert re.search(rf"export .*\b{name}", block), f"the quick start must export {name}"
    assert "imagesTs" in block and "labelsTs" in block  # predicts and scores the held-out cases, not training cases
    assert "nnext evaluate" in block and "summary.json" in block


@pytest.mark.slow
def test_readme_quickstart_runs_as_written_and_segments_the_tumours(tmp_path):
    block = quickstart_block().replace("venv/bin/", f"{Path(sys.executable).parent}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = re.search(r"-o (\S+/summary\.json)", block).group(1)
    summary = json.loads((tmp_path / out).read_text())
    pred = (tmp_path / out).parent
    cases = [r["case"] for r in summary["metric_per_case"]]
    assert len(cases) == 3 and all((pred / f"{c}_uncertainty.nii.gz").is_file() for c in cases)
    dice = summary["mean"]["1"]["dice"]
    assert dice >= MIN_DICE, f"quick start tumour Dice {dice:.3f} < {MIN_DICE}: {proc.stdout[-2000:]}"
