"""The README's quick-start block ("Using it with nnU-Net") runs as written: only its ``export`` line is pointed
at a temporary folder; the commands are found the way a newcomer's shell finds them (the environment's bin
folder on PATH, nothing else)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using it with nnU-Net"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_block_names_the_files_evaluate_needs():
    block = quickstart_block()
    assert "--save-probabilities" in block or "--save_probabilities" in block  # evaluate --probabilities pred
    assert "export nnUNet_raw=/data/nnUNet_raw" in block


@pytest.mark.slow
def test_readme_quickstart_runs_as_written(tmp_path):
    block = quickstart_block().replace("/data/", f"{tmp_path}/data/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", nnUNet_def_n_proc="1", nnUNet_n_proc_DA="0")
    for d in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / "data" / d).mkdir(parents=True)
    proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary and (tmp_path / "pred").glob("*_uncertainty.nii.gz")
    assert list((tmp_path / "pred").glob("*_probabilities.nii.gz"))
