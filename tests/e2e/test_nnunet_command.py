"""nnU-Net's console scripts are found next to the running interpreter when PATH lacks them (an environment used
without activating it: ``/path/to/venv/bin/nnext demo``)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.io.paths import nnunet_command


def test_found_next_to_the_interpreter_with_path_stripped(monkeypatch):
    monkeypatch.setenv("PATH", "")
    path = nnunet_command("nnUNetv2_train")
    assert Path(path).parent == Path(sys.executable).parent and os.access(path, os.X_OK)
    # the script runs with an empty PATH (its shebang names the interpreter)
    proc = subprocess.run([path, "-h"], env={**os.environ, "PATH": ""}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower()


def test_path_is_the_fallback(monkeypatch, tmp_path):
    fake = tmp_path / "nnUNetv2_fake_tool"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nnunet_command("nnUNetv2_fake_tool") == str(fake)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(InputError, match="nnUNetv2_fake_tool not found next to"):
        nnunet_command("nnUNetv2_fake_tool")


def test_demo_starts_training_through_the_helper(monkeypatch):
    """The demos start training through ``demos.steps.train_command``: nnU-Net's script found next to
    ``sys.executable`` or this interpreter running nnU-Net's entry point, never a bare name looked up on PATH (the
    failure was FileNotFoundError: 'nnUNetv2_train' when the venv was not activated)."""
    import inspect
    import sys

    from nnunet_ext.demos import cli as demo
    from nnunet_ext.demos import glioma, headneck, nodule
    from nnunet_ext.demos.steps import train_command

    monkeypatch.setenv("PATH", "/nonexistent")
    assert train_command([990, "2d", "0"]) == [nnunet_command("nnUNetv2_train"), "990", "2d", "0"]
    assert train_command([990, "2d", "0"], threads=1, seed=3)[0] == sys.executable
    for module in (demo, glioma, headneck, nodule):
        src = inspect.getsource(module)
        assert "train_command(" in src and 'run(["nnUNetv2_train"' not in src and 'which("nnUNetv2_train")' not in src
